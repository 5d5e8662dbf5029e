"""The platform of seed 002 (issue 12): the run calendar, the dashboard, search, system info and
purge, scheduler status. Each route calls one use case of sluice.domain.platform."""

from __future__ import annotations

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from sluice import __version__, composition, timeutil
from sluice.auth.principal import Principal
from sluice.domain import platform
from sluice.domain.views.runs import runs_api_view
from sluice.edge.app import admin, area_router, json_body, viewer
from sluice.edge.responses.platform import (
    CalendarDay,
    Dashboard,
    Purged,
    ScheduleEntry,
    SearchItem,
    SystemInfo,
)
from sluice.store.platform import PlatformRepository, RunPurge
from sluice.store.run_calendar import RunCalendarRepository
from sluice.store.settings import SettingsRepository

router = area_router()


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    days: int = Field(platform.PURGE_DEFAULT_DAYS, ge=1, le=100_000)


@router.get("/api/runs/calendar", response_model=list[CalendarDay])
def get_calendar(
    caller: Principal = Depends(viewer),
    days: int = Query(platform.CALENDAR_DEFAULT_DAYS),
    counters: RunCalendarRepository = Depends(composition.run_counters),
) -> list[dict]:
    return platform.run_calendar(counters, caller.project, days, timeutil.now())


@router.get("/api/dashboard", response_model=Dashboard)
def get_dashboard(
    caller: Principal = Depends(viewer),
    counters: RunCalendarRepository = Depends(composition.run_counters),
    reads: PlatformRepository = Depends(composition.platform_reads),
) -> dict:
    return platform.dashboard(counters, reads, caller.project, timeutil.now(), runs_api_view)


@router.get("/api/search", response_model=list[SearchItem])
def get_search(
    caller: Principal = Depends(viewer),
    q: str | None = Query(None),
    limit: int = Query(platform.SEARCH_DEFAULT_LIMIT),
    reads: PlatformRepository = Depends(composition.platform_reads),
) -> list[dict]:
    return platform.search(reads, caller.project, q, limit)


@router.get("/api/system/info", response_model=SystemInfo)
def get_system_info(
    caller: Principal = Depends(viewer),
    reads: PlatformRepository = Depends(composition.platform_reads),
    settings: SettingsRepository = Depends(composition.project_settings),
) -> dict:
    limit = settings.get(caller.project).max_concurrent_runs
    return platform.system_info(reads, caller.project, __version__, limit)


@router.post("/api/system/purge", response_model=Purged)
def post_purge(
    caller: Principal = Depends(admin),
    body: PurgeBody = Depends(json_body(PurgeBody, empty_is_object=True)),
    store: RunPurge = Depends(composition.run_purge),
) -> dict:
    return platform.purge(store, composition.run_folders(), caller.project, body.days, timeutil.now())


@router.get("/api/scheduler/status", response_model=list[ScheduleEntry])
def get_scheduler_status(
    caller: Principal = Depends(viewer),
    reads: PlatformRepository = Depends(composition.platform_reads),
) -> list[dict]:
    return platform.scheduler_status(reads, caller.project, timeutil.now())
