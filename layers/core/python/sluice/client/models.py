"""Typed answers of the SDK, named and shaped as the OpenAPI document's schemas (openapi.json):
`Pipeline` is the Pipeline API's definition, `Run`/`NodeRun` the Runs API's, `Execution` Watcher's.
Every model keeps the keys it does not name (`extra="allow"`), so a newer server loses nothing."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

TERMINAL_STATUSES = frozenset({"success", "failed", "cancelled", "blocked", "skipped"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class LastRun(Model):
    id: str | None = None
    status: str | None = None
    started_at: str | None = None
    duration_ms: int | None = None
    rows_loaded: int | None = None


class Pipeline(Model):
    id: int | str | None = None
    name: str
    version: str | None = None
    status: str | None = None
    schedule: str | None = None
    description: str | None = None
    last_run: LastRun | None = None
    next_run_at: str | None = None
    nodes: list[dict[str, Any]] | None = None
    edges: list[dict[str, Any]] | None = None


class Progress(Model):
    stage: str | None = None
    rows_processed: int | None = None


class NodeRun(Model):
    id: str | None = None
    node_id: str
    status: str
    row_count: int | None = None
    duration_ms: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


class RunInfo(Model):
    """A run as the Runs API reads it (`GET /api/runs/{id}`), or as a trigger or a history lists it."""

    id: str
    status: str
    pipeline_id: str | None = None
    pipeline: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    duration_ms: int | None = None
    rows_loaded: int | None = None
    error: str | None = None
    resumed_from: str | None = None
    progress: Progress | None = None
    node_runs: list[NodeRun] | None = None

    @property
    def seconds(self) -> float | None:
        """How long the run took (or has taken so far, from its start to its last change)."""
        import datetime as _dt

        if self.duration_ms is not None:
            return self.duration_ms / 1000
        end = self.finished_at or self.updated_at
        if not (self.started_at and end):
            return None
        parse = _dt.datetime.fromisoformat
        return (
            parse(end.replace("Z", "+00:00")) - parse(self.started_at.replace("Z", "+00:00"))
        ).total_seconds()

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "success"


class LogLine(Model):
    run_id: str | None = None
    node_id: str | None = None
    timestamp: str | None = None
    level: str | None = None
    message: str | None = None


class Execution(Model):
    """A Watcher execution (`GET /pipeline_execution/{id}`): a run an external system reported."""

    id: int
    pipeline_id: int | None = None
    parent_id: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    completed_successfully: bool | None = None
    total_rows: int | None = None
    duration_seconds: int | None = None
    child_executions: list[Execution] | None = None


class Address(Model):
    """A dataset (Watcher's address)."""

    id: int
    name: str
    address_type_id: int | None = None
