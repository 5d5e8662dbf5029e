"""Executions: Watcher's start/end reports of external pipeline runs, which are Sluice runs (SPEC 1, 7)."""

from __future__ import annotations

import datetime as _dt
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Protocol

import pendulum
from aws_lambda_powertools import Logger
from pydantic import ConfigDict, Field, field_validator

from sluice import timeutil
from sluice.domain.events import EXECUTION_ENDED, EventPublisher
from sluice.domain.registry import Id, Metadata, WatcherRequest, Watermark
from sluice.domain.status import RunStatus
from sluice.domain.views.executions import watcher_view
from sluice.errors import Conflict, InvalidRequest, NotFound, Unavailable, ValidationFailed

TARGET_TIMES = {
    "inserts": "last_target_insert",
    "updates": "last_target_update",
    "soft_deletes": "last_target_soft_delete",
}
END_ATTEMPTS = 10

logger = Logger(service="sluice")


# -- request bodies -------------------------------------------------------------------------------
Count = Annotated[Id, Field(ge=0)]


def _instant(value: Any, field_name: str) -> pendulum.DateTime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be an ISO 8601 string")
    try:
        return timeutil.parse_instant(value, field_name)
    except ValidationFailed as exc:
        raise ValueError(exc.detail) from exc


class StartExecution(WatcherRequest):
    pipeline_id: Id
    start_date: pendulum.DateTime | None = None
    watermark: Watermark = None
    next_watermark: Watermark = None
    parent_id: Id | None = None
    execution_metadata: Metadata = None

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    @field_validator("start_date", mode="before")
    @classmethod
    def _start(cls, value: Any) -> pendulum.DateTime | None:
        return _instant(value, "start_date")


class EndExecution(WatcherRequest):
    id: Id
    end_date: pendulum.DateTime
    completed_successfully: bool
    total_rows: Count | None = None
    inserts: Count | None = None
    updates: Count | None = None
    soft_deletes: Count | None = None
    execution_metadata: Metadata = None

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    @field_validator("end_date", mode="before")
    @classmethod
    def _end(cls, value: Any) -> pendulum.DateTime | None:
        return _instant(value, "end_date")


# -- the run -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """A run of a pipeline, whether Sluice started it or an external system reported it."""

    id: int
    pipeline_id: int
    status: str
    start_date: pendulum.DateTime
    parent_id: int | None = None
    ancestors: tuple[int, ...] = ()  # nearest first: ancestors[0] is the parent
    end_date: pendulum.DateTime | None = None
    completed_successfully: bool | None = None
    duration_seconds: int | None = None
    total_rows: int | None = None
    inserts: int | None = None
    updates: int | None = None
    soft_deletes: int | None = None
    throughput: float | None = None
    watermark: str | None = None
    next_watermark: str | None = None
    execution_metadata: dict[str, Any] | None = None
    anomaly_flags: dict[str, bool] = field(default_factory=dict)
    end_count: int = 0  # how many ends were recorded; guards concurrent ends
    origin: str = "watcher"
    created_at: pendulum.DateTime | None = None
    updated_at: pendulum.DateTime | None = None

    @property
    def hour_recorded(self) -> int:
        return self.start_date.in_timezone("UTC").hour

    @property
    def date_recorded(self) -> str:
        return self.start_date.in_timezone("UTC").to_date_string()

    @property
    def ended(self) -> bool:
        return self.end_date is not None

    @property
    def succeeded(self) -> bool:
        return self.end_date is not None and self.completed_successfully is True

    def metric(self, name: str) -> int | float | None:
        return getattr(self, name)

    def flagged(self, metric: str) -> bool:
        return self.anomaly_flags.get(metric) is True


@dataclass(frozen=True)
class BaselineRun:
    """What anomaly detection reads of one successful run of a baseline: its id, when it ended
    (`timeutil.sortable`, so windows compare as text), the metrics the active rules judge, its flags.
    A baseline can hold thousands of runs: nothing else of them is read or parsed."""

    id: int
    ended: str
    metrics: Mapping[str, int | float | None]
    flags: Mapping[str, bool]

    def flagged(self, metric: str) -> bool:
        return self.flags.get(metric) is True


@dataclass(frozen=True)
class WatchedPipeline:
    """What executions and checks need of a registry pipeline (the item the registry writes)."""

    id: int
    name: str
    pipeline_type_id: int | None = None
    watermark: str | None = None
    next_watermark: str | None = None
    last_target_insert: pendulum.DateTime | None = None
    last_target_update: pendulum.DateTime | None = None
    last_target_soft_delete: pendulum.DateTime | None = None
    freshness_number: int | None = None
    freshness_datepart: str | None = None
    mute_freshness_check: bool = False
    timeliness_number: int | None = None
    timeliness_datepart: str | None = None
    mute_timeliness_check: bool = False
    active: bool = True
    load_lineage: bool = True

    @property
    def last_dml(self) -> pendulum.DateTime | None:
        times = [
            t for t in (self.last_target_insert, self.last_target_update, self.last_target_soft_delete) if t
        ]
        return max(times) if times else None


@dataclass(frozen=True)
class WatchedPipelineType:
    id: int
    name: str
    freshness_number: int | None = None
    freshness_datepart: str | None = None
    mute_freshness_check: bool = False
    timeliness_number: int | None = None
    timeliness_datepart: str | None = None
    mute_timeliness_check: bool = False


@dataclass(frozen=True)
class EndReport:
    """What one end report sets on a run; ending again replaces all of it."""

    end_date: pendulum.DateTime
    completed_successfully: bool
    duration_seconds: int
    throughput: float | None
    total_rows: int | None
    inserts: int | None
    updates: int | None
    soft_deletes: int | None
    execution_metadata: dict[str, Any] | None

    @property
    def status(self) -> str:
        return (RunStatus.success if self.completed_successfully else RunStatus.failed).value

    def target_times(self) -> dict[str, pendulum.DateTime]:
        """The pipeline's last_target_* times this end moves: those whose count is above zero."""
        counts = {"inserts": self.inserts, "updates": self.updates, "soft_deletes": self.soft_deletes}
        return {TARGET_TIMES[name]: self.end_date for name, count in counts.items() if count and count > 0}


@dataclass(frozen=True)
class PipelineAdvance:
    """A successful end's effect on its pipeline: watermark <- next_watermark, last_target_* times,
    and load_lineage turned off (Watcher: clients send lineage once, on the first successful run;
    POST /pipeline or PATCH with load_lineage true turns it back on)."""

    pipeline_id: int
    next_watermark: str | None
    target_times: dict[str, pendulum.DateTime]
    lineage_loaded: bool = False

    @property
    def changes_anything(self) -> bool:
        return self.next_watermark is not None or bool(self.target_times) or self.lineage_loaded


def report_end(run: Run, request: EndExecution) -> EndReport:
    """Duration and throughput as Watcher computes them; an end at or before the start is refused."""
    end = request.end_date
    if end <= run.start_date:
        raise InvalidRequest(
            f"end_date ({timeutil.iso(end)}) must be after the execution's start_date "
            f"({timeutil.iso(run.start_date)})."
        )
    duration = int((end - run.start_date).total_seconds())
    if request.total_rows is None:
        throughput = None
    elif duration > 0:
        throughput = round(request.total_rows / duration, 4)
    else:
        throughput = 0.0
    return EndReport(
        end_date=end,
        completed_successfully=request.completed_successfully,
        duration_seconds=duration,
        throughput=throughput,
        total_rows=request.total_rows,
        inserts=request.inserts,
        updates=request.updates,
        soft_deletes=request.soft_deletes,
        execution_metadata=request.execution_metadata,
    )


def apply_end(run: Run, report: EndReport, now: _dt.datetime) -> Run:
    return replace(
        run,
        status=report.status,
        end_date=report.end_date,
        completed_successfully=report.completed_successfully,
        duration_seconds=report.duration_seconds,
        throughput=report.throughput,
        total_rows=report.total_rows,
        inserts=report.inserts,
        updates=report.updates,
        soft_deletes=report.soft_deletes,
        execution_metadata=report.execution_metadata,
        end_count=run.end_count + 1,
        updated_at=pendulum.instance(now),
    )


def run_from_stored(item: Mapping[str, Any]) -> Run:
    """A run from the attributes stored for it (the repository's item; the run engine's record)."""
    metadata = item.get("execution_metadata")
    throughput = item.get("throughput")
    return Run(
        id=int(item["id"]),
        pipeline_id=int(item["pipeline_id"]),
        status=item.get("status", RunStatus.running.value),
        start_date=timeutil.from_stored(item["start_date"]),
        parent_id=item.get("parent_id"),
        ancestors=tuple(int(a) for a in item.get("ancestors") or ()),
        end_date=timeutil.from_stored(item.get("end_date")),
        completed_successfully=item.get("completed_successfully"),
        duration_seconds=item.get("duration_seconds"),
        total_rows=item.get("total_rows"),
        inserts=item.get("inserts"),
        updates=item.get("updates"),
        soft_deletes=item.get("soft_deletes"),
        throughput=float(throughput) if throughput is not None else None,
        watermark=item.get("watermark"),
        next_watermark=item.get("next_watermark"),
        execution_metadata=json.loads(metadata) if isinstance(metadata, str) else metadata,
        anomaly_flags={k: bool(v) for k, v in (item.get("anomaly_flags") or {}).items()},
        end_count=int(item.get("end_count") or 0),
        origin=item.get("origin", "watcher"),
        created_at=timeutil.from_stored(item.get("created_at")),
        updated_at=timeutil.from_stored(item.get("updated_at")),
    )


# -- ports ------------------------------------------------------------------------------------------
class ConcurrentEnd(Conflict):
    """Another end of the same run was recorded between our read and our write."""


class RunStore(Protocol):
    def next_run_id(self, project: str) -> int: ...
    def create(self, project: str, run: Run) -> None: ...
    def get(self, project: str, run_id: int) -> Run | None: ...
    def children(self, project: str, run_id: int) -> list[Run]: ...
    def record_end(
        self, project: str, ended: Run, seen_end_count: int, advance: PipelineAdvance | None
    ) -> None: ...


class PipelineDirectory(Protocol):
    def get(self, project: str, pipeline_id: int) -> WatchedPipeline | None: ...


# -- use cases -----------------------------------------------------------------------------------------
def start_execution(
    project: str,
    request: StartExecution,
    runs: RunStore,
    pipelines: PipelineDirectory,
    now: pendulum.DateTime,
) -> int:
    """Record an external run as `running`; returns its id."""
    if pipelines.get(project, request.pipeline_id) is None:
        raise NotFound(f"Pipeline {request.pipeline_id} not found.")
    ancestors: tuple[int, ...] = ()
    if request.parent_id is not None:
        parent = runs.get(project, request.parent_id)
        if parent is None:
            raise NotFound(f"Parent execution {request.parent_id} not found.")
        ancestors = (parent.id, *parent.ancestors)
    run_id = runs.next_run_id(project)
    if request.parent_id == run_id or run_id in ancestors:
        raise InvalidRequest("An execution cannot be its own parent; check parent_id.")
    runs.create(
        project,
        Run(
            id=run_id,
            pipeline_id=request.pipeline_id,
            status=RunStatus.running.value,
            start_date=request.start_date or now,
            parent_id=request.parent_id,
            ancestors=ancestors,
            watermark=request.watermark,
            next_watermark=request.next_watermark,
            execution_metadata=request.execution_metadata,
            created_at=now,
        ),
    )
    return run_id


def end_execution(
    project: str,
    request: EndExecution,
    runs: RunStore,
    pipelines: PipelineDirectory,
    publisher: EventPublisher,
    now: pendulum.DateTime,
) -> Run:
    """Record the end of a run and, on success, move its pipeline's watermark and target times.

    The run and the pipeline change in one conditional transaction keyed on the run's end count,
    so two concurrent ends apply one after the other (the later overwrites, as a second end does).
    """
    for attempt in range(END_ATTEMPTS):
        run = runs.get(project, request.id)
        if run is None:
            raise NotFound(f"Pipeline execution {request.id} not found.")
        report = report_end(run, request)
        advance = None
        if report.completed_successfully:
            pipeline = pipelines.get(project, run.pipeline_id)
            if pipeline is None:
                raise NotFound(f"Pipeline {run.pipeline_id} of execution {run.id} no longer exists.")
            advance = PipelineAdvance(
                run.pipeline_id, pipeline.next_watermark, report.target_times(), pipeline.load_lineage
            )
        ended = apply_end(run, report, now)
        try:
            runs.record_end(project, ended, run.end_count, advance)
        except ConcurrentEnd:
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # jitter: let the other end land
            continue
        break
    else:
        raise Conflict(f"Pipeline execution {request.id} kept changing while it was being ended; try again.")
    if ended.succeeded:
        try:
            publisher.publish(
                EXECUTION_ENDED,
                {"project": project, "pipeline_id": ended.pipeline_id, "execution_id": ended.id},
            )
        except Unavailable as exc:
            # The end is recorded; only the asynchronous anomaly check is lost. Say so loudly.
            logger.error(
                "execution.ended not published", extra={"execution_id": ended.id, "reason": exc.detail}
            )
    return ended


def get_execution(project: str, run_id: int, runs: RunStore) -> dict[str, Any]:
    run = runs.get(project, run_id)
    if run is None:
        raise NotFound(f"Pipeline execution {run_id} not found.")
    return watcher_view(run, runs.children(project, run_id))
