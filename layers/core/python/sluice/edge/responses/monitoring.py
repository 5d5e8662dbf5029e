"""The monitor area and Watcher's executions (seed 004, SPEC 7): executions, anomaly rules, queued
checks, the freshness report, log cleanup and the run-queue monitor."""

from __future__ import annotations

from sluice.edge.responses import Answer, Json, Number


class ExecutionStarted(Answer):
    id: int


class ChildExecution(Answer):
    id: int
    parent_id: int | None = None
    pipeline_id: int
    start_date: str | None = None
    end_date: str | None = None
    duration_seconds: int | None = None
    completed_successfully: bool | None = None
    inserts: int | None = None
    updates: int | None = None
    soft_deletes: int | None = None
    total_rows: int | None = None
    watermark: str | None = None
    next_watermark: str | None = None
    execution_metadata: dict[str, Json] | None = None
    anomaly_flags: dict[str, bool] | None = None
    throughput: float | None = None


class Execution(ChildExecution):
    """One execution with its children, one level deep (`GET /pipeline_execution/{id}`)."""

    child_executions: list[ChildExecution]


class AnomalyRule(Answer):
    id: int
    pipeline_id: int
    metric_field: str
    z_threshold: float
    lookback_days: int
    minimum_executions: int
    active: bool
    created_at: str | None = None
    updated_at: str | None = None
    baseline: str | None = None  # only for a rule that opted into median/MAD or a min_delta
    min_delta: Number | None = None


class RuleSaved(Answer):
    id: int


class CheckQueued(Answer):
    status: str


class Freshness(Answer):
    """A Watcher pipeline (pipeline_name, its SLA as `N datepart`) or a dataset Sluice writes
    (dataset_name, its freshness_hours rule's hours)."""

    dataset_name: str
    pipeline_id: int | None = None
    pipeline_name: str | None = None
    last_refresh_at: str | None = None
    freshness_threshold: str | Number | None = None
    is_fresh: bool
    mute_freshness_check: bool | None = None
    run_id: str | None = None
    row_count: int | None = None


class LogCleanup(Answer):
    """Watcher's counts of what one cleanup deleted."""

    total_pipeline_executions_deleted: int
    total_timeliness_pipeline_execution_logs_deleted: int
    total_anomaly_detection_results_deleted: int
    total_pipeline_execution_closure_parent_deleted: int
    total_pipeline_execution_closure_child_deleted: int
    total_freshness_pipeline_logs_deleted: int


class QueueMonitor(Answer):
    """The run queue's depth (`status: success`), or why it could not be read (`status: error`)."""

    status: str
    detail: str | None = None
    total_pending: int | None = None
    visible: int | None = None
    in_flight: int | None = None
    delayed: int | None = None
