"""The platform of seed 002 (SPEC 5 and 8): the run calendar, the dashboard, search, system info and
purge, scheduler status.

Each read is a bounded number of Queries: the calendar and the dashboard's trends read the per-day
counters the run writers maintain (store/run_calendar.py), never the runs; the dashboard adds one
page of pipelines, the pipelines' last runs (one item each) and one page of recent runs; search
reads the project's pipelines, connectors and variables (their names and descriptions only).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any, Protocol

import pendulum

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.run_engine.record import RunRecord, run_ref
from sluice.domain.status import DEFAULT_PIPELINE_STATUS, PipelineStatus
from sluice.errors import ValidationFailed

CALENDAR_DEFAULT_DAYS = 90
CALENDAR_MAX_DAYS = 365
TREND_DAYS = 7
DASHBOARD_PIPELINES = 100  # one page of pipeline summaries
DASHBOARD_RECENT_RUNS = 20
TOP_FAILING = 5
SEARCH_DEFAULT_LIMIT = 30
SEARCH_MAX_LIMIT = 100
SEARCH_MAX_QUERY = 200
PURGE_DEFAULT_DAYS = 30
COUNTED = ("total", "success", "failed", "running", "pending", "cancelled")
PIPELINE_FAILED = "failed#"


class Counters(Protocol):
    """The maintained counters (sluice.store.run_calendar.RunCalendarRepository)."""

    def days(self, project: str, first: str, last: str) -> dict[str, dict[str, Any]]: ...
    def last_runs(self, project: str) -> dict[int, dict[str, Any]]: ...


class PlatformReads(Protocol):
    """What the platform reads besides the counters (sluice.store.platform.PlatformRepository)."""

    def pipelines_page(self, project: str, limit: int) -> list[dict[str, Any]]: ...
    def recent_runs(self, project: str, limit: int) -> list[RunRecord]: ...
    def searchable(self, project: str) -> list[dict[str, Any]]: ...
    def scheduled(self, project: str) -> list[dict[str, Any]]: ...
    def pipeline_count(self, project: str) -> int: ...
    def active_run_count(self, project: str) -> int: ...
    def stored_bytes(self, project: str) -> int: ...
    def pipeline_names(self, project: str, pipeline_ids: list[int]) -> dict[int, str]: ...


def check_days(days: int) -> int:
    if not 1 <= days <= CALENDAR_MAX_DAYS:
        raise ValidationFailed(f"days must be from 1 to {CALENDAR_MAX_DAYS}, not {days}.")
    return days


def day_range(today: _dt.date, days: int) -> list[str]:
    """The `days` UTC days ending today, oldest first."""
    return [(today - _dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def day_counts(day: str, item: dict[str, Any] | None) -> dict[str, Any]:
    """One calendar day; a counter never shows below zero (a run written before counting began
    that ends now moves its day's `running` down once)."""
    item = item or {}
    counts = {name: max(0, int(item.get(name) or 0)) for name in COUNTED}
    return {"date": day, **counts}


def run_calendar(counters: Counters, project: str, days: int, now: pendulum.DateTime) -> list[dict[str, Any]]:
    """Per UTC day `{date, total, success, failed, running}` (and `pending`, `cancelled`), oldest
    first: one Query of the day counters."""
    span = day_range(now.in_timezone("UTC").date(), check_days(days))
    found = counters.days(project, span[0], span[-1])
    return [day_counts(day, found.get(day)) for day in span]


def dashboard(
    counters: Counters,
    reads: PlatformReads,
    project: str,
    now: pendulum.DateTime,
    run_view: Callable[[RunRecord], dict[str, Any]],
) -> dict[str, Any]:
    """SPEC 8's dashboard: pipeline summaries with their last runs, recent runs, 7-day trends and
    the pipelines that failed most in those 7 days."""
    span = day_range(now.in_timezone("UTC").date(), TREND_DAYS)
    found = counters.days(project, span[0], span[-1])
    trends = [
        {
            k: v
            for k, v in day_counts(day, found.get(day)).items()
            if k in ("date", "success", "failed", "total")
        }
        for day in span
    ]
    failures: dict[int, int] = {}
    for item in found.values():
        for name, value in item.items():
            if name.startswith(PIPELINE_FAILED) and int(value or 0) > 0:
                pipeline_id = int(name.removeprefix(PIPELINE_FAILED))
                failures[pipeline_id] = failures.get(pipeline_id, 0) + int(value)
    pipelines = reads.pipelines_page(project, DASHBOARD_PIPELINES)
    last = counters.last_runs(project)
    names = {int(p["id"]): p["name"] for p in pipelines}
    ranked = sorted(failures.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_FAILING]
    unnamed = [p for p, _ in ranked if p not in names]
    if unnamed:
        names.update(reads.pipeline_names(project, unnamed))
    return {
        "pipelines": [pipeline_summary(p, last.get(int(p["id"]))) for p in pipelines],
        "recent_runs": [run_view(run) for run in reads.recent_runs(project, DASHBOARD_RECENT_RUNS)],
        "trends": trends,
        "top_failing": [
            {"pipeline_id": ids.render("pipeline", p), "name": names.get(p), "fail_count": count}
            for p, count in ranked
            if p in names  # a deleted pipeline's failures are not listed
        ],
    }


def pipeline_summary(record: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": ids.render("pipeline", int(record["id"])),
        "name": record["name"],
        "status": record.get("status") or DEFAULT_PIPELINE_STATUS.value,
        "last_run": None
        if last is None
        else {
            "id": run_ref(int(last["run_id"])),
            "status": last.get("status"),
            "started_at": last.get("start_date"),
            "finished_at": last.get("end_date"),
        },
    }


def check_search(q: str | None, limit: int) -> tuple[str, int]:
    text = (q or "").strip()
    if not text:
        raise ValidationFailed("q is required: the text to search for.")
    if len(text) > SEARCH_MAX_QUERY:
        raise ValidationFailed(f"q is at most {SEARCH_MAX_QUERY} characters.")
    if not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {SEARCH_MAX_LIMIT}, not {limit}.")
    return text, limit


def search(reads: PlatformReads, project: str, q: str | None, limit: int) -> list[dict[str, Any]]:
    """Case-insensitive substring match on the names (and descriptions) of the project's
    pipelines, connectors and variables: `{type, id, name, description?}`, name matches first."""
    text, limit = check_search(q, limit)
    needle = text.casefold()
    by_name, by_description = [], []
    for entry in reads.searchable(project):
        name = str(entry.get("name") or "")
        description = entry.get("description")
        if needle in name.casefold():
            by_name.append(entry)
        elif isinstance(description, str) and needle in description.casefold():
            by_description.append(entry)
    found = sorted(by_name, key=_order) + sorted(by_description, key=_order)
    return [_search_item(entry) for entry in found[:limit]]


def _order(entry: dict[str, Any]) -> tuple[str, str]:
    return str(entry.get("name") or "").casefold(), str(entry.get("id"))


def _search_item(entry: dict[str, Any]) -> dict[str, Any]:
    item = {"type": entry["type"], "id": entry["id"], "name": entry["name"]}
    if entry.get("description"):
        item["description"] = entry["description"]
    return item


def system_info(reads: PlatformReads, project: str, version: str, max_concurrent_runs: int) -> dict[str, Any]:
    size = reads.stored_bytes(project)
    return {
        "version": version,
        "db_size": size,
        "db_size_mb": f"{size / (1024 * 1024):.2f} MB",
        "pipelines": reads.pipeline_count(project),
        "active_runs": reads.active_run_count(project),
        "max_concurrent_runs": max_concurrent_runs,
    }


def scheduler_status(reads: PlatformReads, project: str, now: pendulum.DateTime) -> list[dict[str, Any]]:
    """Every pipeline with a schedule; a paused or inactive one is listed with `enabled: false`."""
    entries = []
    for record in reads.scheduled(project):
        enabled = (record.get("status") or DEFAULT_PIPELINE_STATUS) == PipelineStatus.active and record.get(
            "active", True
        ) is not False
        entries.append(
            {
                "pipeline_id": ids.render("pipeline", int(record["id"])),
                "name": record["name"],
                "cron": record["schedule"],
                "next_run_at": _next_run(record, now) if enabled else None,
                "enabled": enabled,
            }
        )
    return entries


def _next_run(record: dict[str, Any], now: pendulum.DateTime) -> str | None:
    from sluice.domain.schedules import parse_cron

    stored = timeutil.from_stored(record.get("next_run_at")) if record.get("next_run_at") else None
    if stored is not None and stored > now:
        return timeutil.iso(stored)
    try:
        return timeutil.iso(parse_cron(record["schedule"]).next_after(now))
    except ValidationFailed:
        return None


def purge_cutoff(days: int, now: pendulum.DateTime) -> pendulum.DateTime:
    if days < 1:
        raise ValidationFailed(f"days must be at least 1, not {days}.")
    return now.subtract(days=days)


PURGE_BATCH = 100  # runs per batch: each batch is a few parallel Queries and deletes


class PurgeStore(Protocol):
    """A project's old runs (sluice.store.platform.RunPurge)."""

    def run_months(self, project: str, until_month: str) -> list[str]: ...
    def expired_runs(
        self, project: str, month: str, cutoff: _dt.datetime, limit: int, after: str | None
    ) -> tuple[list[Any], str | None, bool]: ...
    def purge_runs(self, project: str, runs: list[Any]) -> dict[str, int]: ...
    def resumed_from(self, project: str, runs: list[Any]) -> set[int]: ...


class RunFolders(Protocol):
    """The runs' objects in the data bucket (sluice.adapters.node_engine.S3RunArtifacts)."""

    def delete_run(self, project: str, artifact_run: str) -> int: ...


def purge(
    store: PurgeStore,
    folders: RunFolders | None,
    project: str,
    days: int,
    now: pendulum.DateTime,
    batch_size: int = PURGE_BATCH,
) -> dict[str, int]:
    """Delete the project's finished runs that started more than `days` ago, batch by batch, month
    by month: each run's objects (logs, previews, profiles, outputs) unless a later run was resumed
    from it and reuses them, then its node runs, closure rows, results and records, the run item
    last, so an interrupted purge leaves no run half-deleted that the next one would not finish."""
    from sluice.domain.run_engine.record import artifact_run

    cutoff = purge_cutoff(days, now)
    deleted = 0
    for month in store.run_months(project, cutoff.format("YYYY-MM")):
        after: str | None = None
        while True:
            batch, after, exhausted = store.expired_runs(project, month, cutoff, batch_size, after)
            if batch:
                kept = store.resumed_from(project, batch)
                if folders is not None:
                    for run in batch:
                        if run.id not in kept:
                            folders.delete_run(project, artifact_run(run.id))
                counts = store.purge_runs(project, batch)
                deleted += int(counts.get("total_pipeline_executions_deleted", 0))
            if exhausted or not after:
                break
    return {"deleted": deleted, "days": days}
