"""Monitoring use cases (SPEC 7): timeliness and freshness checks and the run-queue monitor (log
cleanup is log_cleanup.py's)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import pendulum
from pydantic import BaseModel, Field

from sluice import timeutil
from sluice.domain.alerts import Alert, Alerting
from sluice.domain.events import QueueDepth
from sluice.domain.executions import Run, WatchedPipeline, WatchedPipelineType
from sluice.domain.registry import Id, WatcherRequest
from sluice.domain.status import UNFINISHED
from sluice.errors import Unavailable, ValidationFailed

CheckKind = Literal["timeliness", "freshness"]
DEFAULT_LOOKBACK_MINUTES = 60
MIN_LOOKBACK_MINUTES = 5
QUEUE_WARNING_AT = 50
QUEUE_CRITICAL_AT = 100
QUEUE_ALERT_EVERY = _dt.timedelta(hours=1)


# -- service levels ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sla:
    """A `number datepart` allowance, from the pipeline itself or inherited from its type."""

    number: int
    datepart: str
    from_pipeline: bool

    def deadline(self, moment: pendulum.DateTime) -> pendulum.DateTime:
        return timeutil.add_dateparts(moment, self.number, self.datepart)

    @property
    def label(self) -> str:
        return f"{self.number} {self.datepart}"


def sla_of(
    kind: CheckKind, pipeline: WatchedPipeline, pipeline_type: WatchedPipelineType | None
) -> Sla | None:
    """The pipeline's own pair when it has both parts, else its type's, else none (mute aside)."""
    number, datepart = getattr(pipeline, f"{kind}_number"), getattr(pipeline, f"{kind}_datepart")
    if number and datepart:
        return Sla(int(number), datepart, from_pipeline=True)
    if pipeline_type is not None:
        number, datepart = (
            getattr(pipeline_type, f"{kind}_number"),
            getattr(pipeline_type, f"{kind}_datepart"),
        )
        if number and datepart:
            return Sla(int(number), datepart, from_pipeline=False)
    return None


def is_muted(kind: CheckKind, pipeline: WatchedPipeline, pipeline_type: WatchedPipelineType | None) -> bool:
    """A check is muted by the pipeline's flag or by its type's."""
    flag = f"mute_{kind}_check"
    return bool(getattr(pipeline, flag)) or bool(pipeline_type is not None and getattr(pipeline_type, flag))


def checked_sla(
    kind: CheckKind, pipeline: WatchedPipeline, pipeline_type: WatchedPipelineType | None
) -> Sla | None:
    """The SLA a check applies: none when muted or not configured."""
    if is_muted(kind, pipeline, pipeline_type):
        return None
    return sla_of(kind, pipeline, pipeline_type)


def is_late(run: Run, deadline: pendulum.DateTime, now: pendulum.DateTime) -> bool:
    """Still running past the deadline, or succeeded with an end past it."""
    if run.end_date is None:
        return run.status in UNFINISHED and now > deadline
    return run.succeeded and run.end_date > deadline


def is_stale(last_dml: pendulum.DateTime, sla: Sla, now: pendulum.DateTime) -> bool:
    return sla.deadline(last_dml) < now


# -- records -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LateExecution:
    execution_id: int
    pipeline_id: int
    start_date: pendulum.DateTime
    deadline: pendulum.DateTime
    sla: Sla
    execution_status: str  # "running" or "completed"
    end_date: pendulum.DateTime | None
    seconds_late: int
    recorded_at: pendulum.DateTime

    def view(self) -> dict[str, Any]:
        return {
            "pipeline_execution_id": self.execution_id,
            "pipeline_id": self.pipeline_id,
            "execution_status": self.execution_status,
            "start_date": timeutil.iso(self.start_date),
            "end_date": timeutil.iso(self.end_date),
            "deadline": timeutil.iso(self.deadline),
            "timeliness_number": self.sla.number,
            "timeliness_datepart": self.sla.datepart,
            "used_pipeline_config": self.sla.from_pipeline,
            "seconds_late": self.seconds_late,
            "recorded_at": timeutil.iso(self.recorded_at),
        }


@dataclass(frozen=True)
class StalePipeline:
    pipeline_id: int
    pipeline_name: str
    last_dml: pendulum.DateTime
    deadline: pendulum.DateTime
    sla: Sla
    evaluated_at: pendulum.DateTime

    def view(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "pipeline_name": self.pipeline_name,
            "last_dml_timestamp": timeutil.iso(self.last_dml),
            "deadline": timeutil.iso(self.deadline),
            "freshness_number": self.sla.number,
            "freshness_datepart": self.sla.datepart,
            "used_pipeline_config": self.sla.from_pipeline,
            "evaluation_timestamp": timeutil.iso(self.evaluated_at),
        }


# -- ports -------------------------------------------------------------------------------------------
class PipelineCatalog(Protocol):
    def get(self, project: str, pipeline_id: int) -> WatchedPipeline | None: ...
    def get_type(self, project: str, type_id: int) -> WatchedPipelineType | None: ...
    def all(self, project: str) -> list[WatchedPipeline]: ...
    def types(self, project: str) -> dict[int, WatchedPipelineType]: ...


class StartedRuns(Protocol):
    def started_between(self, project: str, since: _dt.datetime, until: _dt.datetime) -> Iterable[Run]: ...


class CheckStore(Protocol):
    def has_timeliness_record(self, project: str, run_id: int) -> bool: ...
    def record_late_execution(self, project: str, record: LateExecution, alert: Alert) -> bool: ...
    def has_freshness_record(self, project: str, pipeline_id: int, last_dml: _dt.datetime) -> bool: ...
    def record_stale_pipeline(self, project: str, record: StalePipeline, alert: Alert) -> bool: ...


class CheckQueue(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


class QueueReader(Protocol):
    def depth(self) -> QueueDepth: ...


# -- requesting a check ---------------------------------------------------------------------------------
class TimelinessRequest(WatcherRequest):
    lookback_minutes: Annotated[Id, Field(ge=MIN_LOOKBACK_MINUTES)] = DEFAULT_LOOKBACK_MINUTES


class CheckMessage(BaseModel):
    """The body of a check-queue message."""

    check: CheckKind
    project: str = Field(min_length=1)
    lookback_minutes: int = Field(default=DEFAULT_LOOKBACK_MINUTES, ge=MIN_LOOKBACK_MINUTES)


def request_check(
    project: str, check: CheckKind, queue: CheckQueue, lookback_minutes: int | None = None
) -> dict[str, str]:
    """Queue a check for the monitor function; `Unavailable` (503) when the queue is unreachable."""
    message: dict[str, Any] = {"check": check, "project": project}
    if check == "timeliness":
        message["lookback_minutes"] = lookback_minutes or DEFAULT_LOOKBACK_MINUTES
    queue.send(message)
    return {"status": "queued"}


# -- timeliness ------------------------------------------------------------------------------------------
def check_timeliness(
    project: str,
    lookback_minutes: int,
    now: pendulum.DateTime,
    runs: StartedRuns,
    pipelines: PipelineCatalog,
    checks: CheckStore,
    alerting: Alerting,
) -> list[LateExecution]:
    """Record and alert every late execution that started within the lookback (once per execution)."""
    if lookback_minutes < MIN_LOOKBACK_MINUTES:
        raise ValidationFailed(f"lookback_minutes must be at least {MIN_LOOKBACK_MINUTES}.")
    settings = _SettingsCache(project, pipelines)
    recorded = []
    for run in runs.started_between(project, now.subtract(minutes=lookback_minutes), now):
        pipeline, pipeline_type = settings.of(run.pipeline_id)
        if pipeline is None:
            continue
        sla = checked_sla("timeliness", pipeline, pipeline_type)
        if sla is None:
            continue
        deadline = sla.deadline(run.start_date)
        if not is_late(run, deadline, now) or checks.has_timeliness_record(project, run.id):
            continue
        finished_at = run.end_date or now
        record = LateExecution(
            execution_id=run.id,
            pipeline_id=run.pipeline_id,
            start_date=run.start_date,
            deadline=deadline,
            sla=sla,
            execution_status="running" if run.end_date is None else "completed",
            end_date=run.end_date,
            seconds_late=int((finished_at - deadline).total_seconds()),
            recorded_at=now,
        )
        verb = "is still running" if run.end_date is None else "finished"
        alert = alerting.draft(
            project,
            "timeliness",
            "warning",
            f"Execution {run.id} of pipeline '{pipeline.name}' {verb} past its {sla.label} allowance "
            f"(deadline {timeutil.iso(deadline)}).",
            now,
            pipeline_id=run.pipeline_id,
            details=record.view(),
        )
        if checks.record_late_execution(project, record, alert):
            alerting.announce(alert)
            recorded.append(record)
    return recorded


# -- freshness -------------------------------------------------------------------------------------------
def check_freshness(
    project: str,
    now: pendulum.DateTime,
    pipelines: PipelineCatalog,
    checks: CheckStore,
    alerting: Alerting,
) -> list[StalePipeline]:
    """Record and alert every stale pipeline, once per (pipeline, last DML time)."""
    types = pipelines.types(project)
    recorded = []
    for pipeline in pipelines.all(project):
        pipeline_type = (
            types.get(pipeline.pipeline_type_id) if pipeline.pipeline_type_id is not None else None
        )
        sla = checked_sla("freshness", pipeline, pipeline_type)
        last_dml = pipeline.last_dml
        if sla is None or last_dml is None or not is_stale(last_dml, sla, now):
            continue
        if checks.has_freshness_record(project, pipeline.id, last_dml):
            continue
        record = StalePipeline(
            pipeline_id=pipeline.id,
            pipeline_name=pipeline.name,
            last_dml=last_dml,
            deadline=sla.deadline(last_dml),
            sla=sla,
            evaluated_at=now,
        )
        alert = alerting.draft(
            project,
            "freshness",
            "warning",
            f"Pipeline '{pipeline.name}' has not written its targets since {timeutil.iso(last_dml)}, "
            f"longer than its {sla.label} allowance.",
            now,
            pipeline_id=pipeline.id,
            details=record.view(),
        )
        if checks.record_stale_pipeline(project, record, alert):
            alerting.announce(alert)
            recorded.append(record)
    return recorded


def freshness_report(
    project: str, now: pendulum.DateTime, pipelines: PipelineCatalog
) -> list[dict[str, Any]]:
    """Per pipeline: last refresh, allowance and whether it is fresh now (mute flags silence alerts,
    not this report). Without an allowance a pipeline counts as fresh; with one and no refresh yet,
    as not fresh."""
    types = pipelines.types(project)
    report = []
    for pipeline in sorted(pipelines.all(project), key=lambda p: p.id):
        pipeline_type = (
            types.get(pipeline.pipeline_type_id) if pipeline.pipeline_type_id is not None else None
        )
        sla = sla_of("freshness", pipeline, pipeline_type)
        last = pipeline.last_dml
        if sla is None:
            fresh = True
        elif last is None:
            fresh = False
        else:
            fresh = not is_stale(last, sla, now)
        report.append(
            {
                "pipeline_id": pipeline.id,
                "pipeline_name": pipeline.name,
                "last_refresh_at": timeutil.iso(last),
                "freshness_threshold": sla.label if sla else None,
                "is_fresh": fresh,
                "mute_freshness_check": is_muted("freshness", pipeline, pipeline_type),
            }
        )
    return report


class _SettingsCache:
    """Each pipeline and type read once per check run."""

    def __init__(self, project: str, pipelines: PipelineCatalog):
        self.project = project
        self.pipelines = pipelines
        self._pipelines: dict[int, WatchedPipeline | None] = {}
        self._types: dict[int, WatchedPipelineType | None] = {}

    def of(self, pipeline_id: int) -> tuple[WatchedPipeline | None, WatchedPipelineType | None]:
        if pipeline_id not in self._pipelines:
            self._pipelines[pipeline_id] = self.pipelines.get(self.project, pipeline_id)
        pipeline = self._pipelines[pipeline_id]
        if pipeline is None or pipeline.pipeline_type_id is None:
            return pipeline, None
        type_id = pipeline.pipeline_type_id
        if type_id not in self._types:
            self._types[type_id] = self.pipelines.get_type(self.project, type_id)
        return pipeline, self._types[type_id]


# -- run queue monitor -------------------------------------------------------------------------------------
def queue_severity(total_pending: int) -> str | None:
    if total_pending >= QUEUE_CRITICAL_AT:
        return "critical"
    if total_pending >= QUEUE_WARNING_AT:
        return "warning"
    return None


def monitor_queue(
    projects: list[str], queue: QueueReader, alerting: Alerting, now: pendulum.DateTime
) -> dict[str, Any]:
    """Report the run queue's depth; 50+ pending raises a warning and 100+ a critical alert in each
    project, at most one per severity and project per clock hour (the queue is polled every few
    minutes; one alert per hour is enough to page someone)."""
    try:
        depth = queue.depth()
    except Unavailable as exc:
        return {"status": "error", "detail": exc.detail}
    severity = queue_severity(depth.total_pending)
    if severity is not None:
        for project in projects:
            alert = alerting.draft(
                project,
                "queue",
                severity,
                f"The run queue holds {depth.total_pending} pending runs ({depth.visible} waiting, "
                f"{depth.in_flight} in flight, {depth.delayed} delayed).",
                now,
                details={
                    "total_pending": depth.total_pending,
                    "visible": depth.visible,
                    "in_flight": depth.in_flight,
                    "delayed": depth.delayed,
                    "warning_at": QUEUE_WARNING_AT,
                    "critical_at": QUEUE_CRITICAL_AT,
                },
            )
            alerting.raise_alert(
                alert,
                once_key=f"queue#{severity}#{now.format('YYYY-MM-DDTHH')}",
                once_for=2 * QUEUE_ALERT_EVERY,
            )
    return {
        "status": "success",
        "total_pending": depth.total_pending,
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "delayed": depth.delayed,
    }
