"""Log cleanup (SPEC 7, `POST /log_cleanup` and the daily Step Functions loop): runs older than the
retention, with everything kept about them, and old freshness records, deleted in bounded batches
project by project, with Watcher's counts of what went."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any, Protocol

import pendulum
from pydantic import Field

from sluice import timeutil
from sluice.domain.executions import Run
from sluice.domain.registry import Id, WatcherRequest
from sluice.errors import ValidationFailed

MIN_RETENTION_DAYS = 90
# Past a few thousand years the cutoff is before any run and, past ~2.9 million days, before year 1:
# `now - retention_days` overflowed into a 500 (found by schemathesis, issue 15). 100 years is plenty.
MAX_RETENTION_DAYS = 36_500
MAX_BATCH_SIZE = 1_000_000
DEFAULT_BATCH_SIZE = 10_000
CLEANUP_COUNTS = (
    "total_pipeline_executions_deleted",
    "total_timeliness_pipeline_execution_logs_deleted",
    "total_anomaly_detection_results_deleted",
    "total_pipeline_execution_closure_parent_deleted",
    "total_pipeline_execution_closure_child_deleted",
    "total_freshness_pipeline_logs_deleted",
)


class CleanupRequest(WatcherRequest):
    retention_days: Annotated[Id, Field(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)]
    batch_size: Annotated[Id, Field(gt=0, le=MAX_BATCH_SIZE)] = DEFAULT_BATCH_SIZE


class RunRetention(Protocol):
    def run_months(self, project: str, until_month: str) -> list[str]: ...
    def expired_runs(
        self, project: str, month: str, cutoff: _dt.datetime, limit: int, after: str | None
    ) -> tuple[list[Run], str | None, bool]: ...
    def purge_runs(self, project: str, runs: list[Run]) -> dict[str, int]: ...


class FreshnessRetention(Protocol):
    def expired_freshness(
        self, project: str, cutoff: _dt.datetime, limit: int, after: str | None
    ) -> tuple[list[tuple[str, str]], str | None, bool]: ...
    def purge_freshness(self, keys: list[tuple[str, str]]) -> int: ...


class ProjectDirectory(Protocol):
    def first(self) -> str | None: ...
    def after(self, project: str) -> str | None: ...


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(CLEANUP_COUNTS, 0)


def cleanup_step(
    project: str,
    cutoff: pendulum.DateTime,
    batch_size: int,
    position: dict[str, Any] | None,
    runs: RunRetention,
    freshness: FreshnessRetention,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Delete at most `batch_size` expired executions (with their closure rows, anomaly results and
    timeliness records) or freshness records of one project; returns the counts and where to go on
    from (None when the project is clean). Runs are found month by month on the start-time index."""
    position = position or {"phase": "runs"}
    counts = zero_counts()
    if position.get("phase", "runs") == "runs":
        months = runs.run_months(project, cutoff.format("YYYY-MM"))
        month = position.get("month") or (months[0] if months else None)
        if month is not None:
            batch, last, exhausted = runs.expired_runs(
                project, month, cutoff, batch_size, position.get("after")
            )
            for name, value in runs.purge_runs(project, batch).items():
                counts[name] += value
            if not exhausted:
                return counts, {"phase": "runs", "month": month, "after": last}
            later = [m for m in months if m > month]
            return counts, ({"phase": "runs", "month": later[0]} if later else {"phase": "freshness"})
        position = {"phase": "freshness"}
    keys, last, exhausted = freshness.expired_freshness(project, cutoff, batch_size, position.get("after"))
    counts["total_freshness_pipeline_logs_deleted"] += freshness.purge_freshness(keys)
    return counts, (None if exhausted else {"phase": "freshness", "after": last})


def clean_up_logs(
    project: str,
    request: CleanupRequest,
    now: pendulum.DateTime,
    runs: RunRetention,
    freshness: FreshnessRetention,
) -> dict[str, int]:
    """Delete everything of the project older than the retention, batch by batch; the six counts
    are what this call itself deleted (a concurrent cleanup's deletions are not counted twice)."""
    cutoff = now.subtract(days=request.retention_days)
    totals = zero_counts()
    position: dict[str, Any] | None = None
    while True:
        counts, position = cleanup_step(project, cutoff, request.batch_size, position, runs, freshness)
        for name, value in counts.items():
            totals[name] += value
        if position is None:
            return totals


def cleanup_batch(
    state: dict[str, Any],
    now: pendulum.DateTime,
    projects: ProjectDirectory,
    runs: RunRetention,
    freshness: FreshnessRetention,
) -> dict[str, Any]:
    """One step of the scheduled cleanup loop over every project (a Step Functions Choice loops
    while `done` is false). The cutoff is fixed on the first step and carried in the state."""
    try:
        request = CleanupRequest.model_validate(
            {
                "retention_days": state.get("retention_days", MIN_RETENTION_DAYS),
                "batch_size": state.get("batch_size", DEFAULT_BATCH_SIZE),
            }
        )
    except ValueError as exc:
        raise ValidationFailed(f"Cleanup state is invalid: {exc}") from exc
    cutoff = (
        timeutil.parse_instant(state["cutoff"], "cutoff")
        if state.get("cutoff")
        else now.subtract(days=request.retention_days)
    )
    totals = zero_counts()
    totals.update({k: int(v) for k, v in (state.get("totals") or {}).items() if k in totals})
    cursor = state.get("cursor") or {}
    project = cursor.get("project") if cursor else projects.first()
    if project is not None:
        counts, position = cleanup_step(
            project, cutoff, request.batch_size, cursor.get("position"), runs, freshness
        )
        for name, value in counts.items():
            totals[name] += value
        if position is not None:
            next_cursor: dict[str, Any] | None = {"project": project, "position": position}
        else:
            following = projects.after(project)
            next_cursor = {"project": following} if following else None
    else:
        next_cursor = None
    return {
        "retention_days": request.retention_days,
        "batch_size": request.batch_size,
        "cutoff": timeutil.iso(cutoff),
        "cursor": next_cursor,
        "totals": totals,
        "done": next_cursor is None,
    }
