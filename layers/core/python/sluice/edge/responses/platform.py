"""The platform area: liveness, API keys, project settings."""

from __future__ import annotations

from sluice.edge.responses import Answer
from sluice.edge.responses.runs import Run


class Liveness(Answer):
    status: str
    version: str | None = None


class ApiKey(Answer):
    """An API key as listed: never its secret or hash."""

    id: str
    name: str
    role: str
    created_at: str | None = None
    created_by: str | None = None


class NewApiKey(ApiKey):
    key: str  # the secret, answered here once and never again


class ApiKeys(Answer):
    data: list[ApiKey]


class ProjectSettings(Answer):
    max_concurrent_runs: int


# -- the platform of seed 002 (issue 12) --------------------------------------------------------
class CalendarDay(Answer):
    date: str
    total: int
    success: int
    failed: int
    running: int
    pending: int | None = None
    cancelled: int | None = None


class TrendDay(Answer):
    date: str
    success: int
    failed: int
    total: int


class DashboardLastRun(Answer):
    id: str
    status: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class PipelineSummary(Answer):
    id: str
    name: str
    status: str
    last_run: DashboardLastRun | None = None


class TopFailing(Answer):
    pipeline_id: str
    name: str | None = None
    fail_count: int


class Dashboard(Answer):
    pipelines: list[PipelineSummary]
    recent_runs: list[Run]
    trends: list[TrendDay]
    top_failing: list[TopFailing]


class SearchItem(Answer):
    type: str
    id: str
    name: str
    description: str | None = None


class SystemInfo(Answer):
    version: str
    db_size: int
    db_size_mb: str
    pipelines: int
    active_runs: int
    max_concurrent_runs: int


class Purged(Answer):
    deleted: int
    days: int


class ScheduleEntry(Answer):
    pipeline_id: str
    name: str
    cron: str
    next_run_at: str | None = None
    enabled: bool
