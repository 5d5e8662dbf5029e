"""A run and its node runs as the engine reads them: typed records the repository builds from the
stored attributes (`RunRecord.from_stored`), so no rule reads an item with `.get(...)`.

Writes still name attributes (the engine's changes are dicts of them), because a write changes a
few of them under a condition, never the whole record.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pendulum

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.executions import Run, run_from_stored
from sluice.domain.status import HAS_OUTPUT, NodeStatus, RunStatus

DEFAULT_PARALLELISM = 4


def run_ref(run_id: int) -> str:
    return ids.render("run", run_id)


def artifact_run(run_id: int) -> str:
    """The run's folder name under projects/<p>/runs/ (the node engine's `run_id`)."""
    return run_ref(run_id)


def execution_name(project: str, run_id: int) -> str:
    """Step Functions names allow [A-Za-z0-9-_] and 80 characters; the run id keeps it unique."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in project)
    suffix = f"-{run_id}"
    return safe[: 80 - len(suffix)] + suffix


@dataclass(frozen=True)
class RunPlan:
    """What PlanRun stored: the levels of node ids to execute in order, the nodes whose outputs are
    reused instead, and how many nodes of a level run at once."""

    levels: list[list[str]]
    reused: list[str]
    parallelism: int

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> RunPlan:
        return cls(
            levels=[list(level) for level in stored.get("levels") or []],
            reused=list(stored.get("reused") or []),
            parallelism=max(1, int(stored.get("parallelism") or DEFAULT_PARALLELISM)),
        )


@dataclass(frozen=True)
class FlowProgress:
    """A flow parent's plan (seed 000: pipelines level by level) and where its hand-over stands."""

    target: dict[str, Any]
    scope: str | None
    levels: list[list[int]]  # pipeline ids, level by level
    level: int  # the level whose children run now
    remaining: int  # children of that level not yet counted
    counted: frozenset[int]  # pipelines of that level already counted (each once)
    failed: bool  # a child of the flow did not succeed
    level_started_at: str | None  # when the level's children were started, as stored

    @property
    def members(self) -> list[int]:
        """The pipelines of the current level."""
        return self.levels[self.level] if self.level < len(self.levels) else []

    @property
    def last_level(self) -> bool:
        return self.level + 1 >= len(self.levels)


@dataclass(frozen=True)
class RunRecord:
    """A Sluice run: the execution (Watcher's fields, `execution`) and the engine's attributes.

    Times stay as stored until asked for (`execution`, `last_queued`, `running_since`): a list
    filtered on status reads many records and parses none.
    """

    id: int
    pipeline_id: int
    status: RunStatus
    stored: Mapping[str, Any] = field(repr=False, compare=False)  # the attributes it was read from
    origin: str = "watcher"
    pipeline_name: str | None = None
    revision: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    scope: str | None = None
    target_node: str | None = None
    trigger: str | None = None
    resumed_from: int | None = None
    flow_parent: int | None = None  # a flow child's parent run
    flow_level: int = 0  # a flow child's level in its parent (a parent's own level: flow.level)
    flow: FlowProgress | None = None  # a flow parent's plan and progress
    plan: RunPlan | None = None
    progress_stage: str | None = None
    rows_processed: int = 0
    error: str | None = None
    cancel_requested: bool = False
    queued_at: str | None = None  # when its queue message was last sent, as stored (a re-send's guard)
    running_at: str | None = None  # when the dispatcher took its slot, as stored
    execution_name: str | None = None

    @cached_property
    def execution(self) -> Run:
        """The run as Watcher's execution: start and end, metrics, end count, parent."""
        return run_from_stored(self.stored)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def last_queued(self) -> pendulum.DateTime | None:
        """When its queue message was last sent (a run written before queued_at existed: created)."""
        return _instant(self.queued_at) or self.execution.created_at

    @property
    def running_since(self) -> pendulum.DateTime | None:
        return _instant(self.running_at)

    @property
    def day(self) -> str:
        """The UTC day (`YYYY-MM-DD`) the run started, which its day counter counts it on."""
        return self.execution.start_date.astimezone(_dt.UTC).date().isoformat()

    @property
    def param_date(self) -> str | None:
        """Its `params.date` when that is a `YYYY-MM-DD` date (a backfill child's date)."""
        value = self.params.get("date")
        if not isinstance(value, str):
            return None
        try:
            return _dt.date.fromisoformat(value).isoformat() if len(value) == 10 else None
        except ValueError:
            return None

    @property
    def backfill(self) -> dict[str, Any] | None:
        """A backfill parent's range and choice (`start_date`, `end_date`, `reprocess`)."""
        found = self.stored.get("backfill")
        return dict(found) if found else None

    @property
    def backfill_parent(self) -> int | None:
        """A backfill child's parent run."""
        return _int(self.stored.get("backfill_parent"))

    @property
    def started_by_sluice(self) -> bool:
        """Triggered through Sluice (not an external run reported through Watcher's routes)."""
        return self.origin == "sluice"

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> RunRecord:
        """The record of a run item's attributes (the repository's reader; fakes use it too)."""
        plan = stored.get("plan")
        return cls(
            id=int(stored["id"]),
            pipeline_id=int(stored["pipeline_id"]),
            status=RunStatus(stored.get("status") or RunStatus.running),
            stored=stored,
            origin=stored.get("origin") or "watcher",
            pipeline_name=stored.get("pipeline_name"),
            revision=_int(stored.get("revision")),
            params=dict(stored.get("params") or {}),
            variables=dict(stored.get("variables") or {}),
            full_refresh=bool(stored.get("full_refresh")),
            scope=stored.get("scope"),
            target_node=stored.get("target_node"),
            trigger=stored.get("trigger"),
            resumed_from=_int(stored.get("resumed_from")),
            flow_parent=_int(stored.get("flow_parent")),
            flow_level=int(stored.get("flow_level") or 0),
            flow=_flow_progress(stored),
            plan=RunPlan.from_stored(plan) if plan else None,
            progress_stage=stored.get("progress_stage"),
            rows_processed=int(stored.get("rows_processed") or 0),
            error=stored.get("error"),
            cancel_requested=bool(stored.get("cancel_requested")),
            queued_at=stored.get("queued_at"),
            running_at=stored.get("running_at"),
            execution_name=stored.get("execution_name"),
        )


@dataclass(frozen=True)
class NodeRunRecord:
    """One node's run within a run: planned, executed (or reused from an earlier run), its output."""

    id: int
    node_id: str
    status: NodeStatus
    position: int = 0
    node_type: str | None = None
    run_id: int | None = None
    row_count: int | None = None
    duration_ms: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    reused_from: int | None = None  # the run whose output a reused node takes
    artifact_run: str | None = None  # the run folder holding its artifacts
    output: str | None = None  # the output's object key
    columns: list[Any] | None = None
    compiled_sql: str | None = None
    written: dict[str, Any] | None = None  # what a target wrote: dataset, rows, inserts, updates
    watermark: str | None = None
    incremental: bool = False
    datasets_read: list[str] = field(default_factory=list)

    @property
    def has_output(self) -> bool:
        """An output later nodes (or a resume) can read."""
        return self.status in HAS_OUTPUT and bool(self.output)

    @property
    def dataset_written(self) -> str | None:
        return (self.written or {}).get("dataset") if self.status == NodeStatus.success else None

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> NodeRunRecord:
        return cls(
            id=int(stored["id"]),
            node_id=stored["node_id"],
            status=NodeStatus(stored.get("status") or NodeStatus.pending),
            position=int(stored.get("position") or 0),
            node_type=stored.get("node_type"),
            run_id=_int(stored.get("run_id")),
            row_count=_int(stored.get("row_count")),
            duration_ms=_int(stored.get("duration_ms")),
            started_at=stored.get("started_at"),
            finished_at=stored.get("finished_at"),
            error=stored.get("error"),
            reused_from=_int(stored.get("reused_from")),
            artifact_run=stored.get("artifact_run"),
            output=stored.get("output"),
            columns=stored.get("columns"),
            compiled_sql=stored.get("compiled_sql"),
            written=stored.get("written"),
            watermark=stored.get("watermark"),
            incremental=bool(stored.get("incremental")),
            datasets_read=list(stored.get("datasets_read") or []),
        )


def _flow_progress(stored: Mapping[str, Any]) -> FlowProgress | None:
    flow = stored.get("flow")
    if not flow:
        return None
    return FlowProgress(
        target=dict(flow.get("target") or {}),
        scope=flow.get("scope"),
        levels=[[int(p) for p in level] for level in flow.get("levels") or []],
        level=int(stored.get("flow_level") or 0),
        remaining=int(stored.get("flow_remaining") or 0),
        counted=frozenset(int(p) for p in stored.get("flow_counted") or ()),
        failed=bool(stored.get("flow_failed")),
        level_started_at=stored.get("flow_level_started_at"),
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _instant(text: str | None) -> pendulum.DateTime | None:
    return timeutil.from_stored(text) if text else None
