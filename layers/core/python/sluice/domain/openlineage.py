"""OpenLineage in: RunEvents (spec 2-0-2) become Watcher executions, addresses and lineage.

The mapping (docs/sdk.md, "OpenLineage"):
- the job `namespace` + `name` is a Watcher pipeline named `<namespace>/<name>` (lowercased, as
  Watcher stores names), of the pipeline type `<namespace>`;
- START (and RUNNING, OTHER for a run not seen yet) starts an execution at `eventTime`; COMPLETE ends
  it successfully, FAIL and ABORT end it failed, computed by Watcher's own `report_end`/`apply_end`
  (so duration, throughput, watermarks, target times and anomaly detection follow as for
  `/end_pipeline_execution`). An end with no START seen starts the execution 1 ms before it;
- the `parent` run facet names the parent run: its execution (started when first named) is the
  parent of this one (Watcher's `parent_id` / `child_executions`);
- inputs and outputs are addresses named `<namespace>/<name>`, and the job's lineage is replaced by
  inputs x outputs (`/address_lineage`); a `columnLineage` facet is kept on the output address's
  `address_metadata.column_lineage` as `{column: [{dataset, field}]}`;
- `outputStatistics.rowCount` of the outputs, summed, is the execution's `total_rows` and `inserts`
  (so anomaly detection and freshness apply to it).
A batch is applied in bulk (docs/sdk.md, "How a batch is applied"): its events, in time order, are
grouped by run and each run's final state computed in memory, then each run's execution, its run
mapping and its events' keys are written together in transactions of up to 100 items. Each event
is applied once (runId + eventType + eventTime): the keys of those that create or end an execution
are kept on its mapping, the others claimed on their own, all conditionally in the same
transaction; a transaction another request made stale is re-planned from a fresh read, so two
requests on one new run end with one execution.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import pendulum
from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from sluice import timeutil
from sluice.domain.events import EXECUTION_ENDED, EventPublisher, publish_all
from sluice.domain.executions import (
    EndExecution,
    EndReport,
    PipelineAdvance,
    Run,
    WatchedPipeline,
    apply_end,
    report_end,
)
from sluice.domain.lineage import LineageService
from sluice.domain.registry import AddressLineageRequest, PipelineUpsert, Registry
from sluice.domain.status import RunStatus
from sluice.errors import Conflict, PayloadTooLarge, Unavailable, ValidationFailed

logger = Logger(service="sluice")

SPEC_VERSION = "2-0-2"
MAX_BATCH_EVENTS = 1000
MAX_NAME_CHARS = 150  # Watcher's names
MAX_PRODUCER_CHARS = 1000  # as kept in execution_metadata, which Watcher bounds at 64 KB
ADDRESS_TYPE = "openlineage_dataset"
ADDRESS_GROUP = "openlineage"
ENDING = {"COMPLETE": True, "FAIL": False, "ABORT": False}
WORKERS = 8  # the batch's pipelines (and addresses) upserted side by side
PLAN_ATTEMPTS = 8  # plans of one batch when concurrent requests change what it read
MAX_CLAIMS_WITH_RUN = 40  # claims written in one run's transaction; more follow in their own
EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]


# -- the spec's RunEvent (2-0-2), as pydantic models ---------------------------------------------------
def _uri(value: str, name: str) -> str:
    if not urlparse(value).scheme:
        raise ValueError(f"{name} must be a URI (with a scheme, e.g. https://...)")
    return value


class LineageFacet(BaseModel):
    """BaseFacet: every facet names its producer and schema; its other keys are its content."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    producer: str = Field(alias="_producer")
    schema_url: str = Field(alias="_schemaURL")

    @field_validator("producer")
    @classmethod
    def _producer_uri(cls, value: str) -> str:
        return _uri(value, "_producer")

    @field_validator("schema_url")
    @classmethod
    def _schema_uri(cls, value: str) -> str:
        return _uri(value, "_schemaURL")


class LineageDatasetFacet(LineageFacet):
    deleted: bool | None = Field(None, alias="_deleted")


class ParentRun(BaseModel):
    model_config = ConfigDict(extra="allow")
    runId: uuid.UUID  # noqa: N815 - the spec's field name


class ParentJob(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str
    name: str


class LineageRun(ParentRun):
    facets: dict[str, LineageFacet] = Field(default_factory=dict)


class LineageJob(ParentJob):
    facets: dict[str, LineageFacet] = Field(default_factory=dict)


class LineageDataset(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str
    name: str
    facets: dict[str, LineageDatasetFacet] = Field(default_factory=dict)


class InputDataset(LineageDataset):
    inputFacets: dict[str, LineageFacet] = Field(default_factory=dict)  # noqa: N815


class OutputDataset(LineageDataset):
    outputFacets: dict[str, LineageFacet] = Field(default_factory=dict)  # noqa: N815


class RunEvent(BaseModel):
    """OpenLineage's RunEvent, https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent."""

    model_config = ConfigDict(extra="allow")
    eventTime: str  # noqa: N815
    producer: str
    schemaURL: str  # noqa: N815
    eventType: EventType | None = None  # noqa: N815
    run: LineageRun
    job: LineageJob
    inputs: list[InputDataset] = Field(default_factory=list)
    outputs: list[OutputDataset] = Field(default_factory=list)

    @field_validator("eventTime")
    @classmethod
    def _event_time(cls, value: str) -> str:
        try:
            parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("eventTime must be an ISO 8601 date-time, e.g. 2026-12-03T10:00:00Z") from exc
        if parsed.tzinfo is None:
            raise ValueError("eventTime must carry its offset (Z or +hh:mm), as RFC 3339 date-times do")
        return value

    @field_validator("producer")
    @classmethod
    def _producer_uri(cls, value: str) -> str:
        return _uri(value, "producer")

    @field_validator("schemaURL")
    @classmethod
    def _schema_uri(cls, value: str) -> str:
        return _uri(value, "schemaURL")

    _instant: pendulum.DateTime | None = PrivateAttr(default=None)

    @property
    def instant(self) -> pendulum.DateTime:
        """eventTime as an instant, parsed once (a batch sorts, plans and ends by it)."""
        if self._instant is None:
            self._instant = timeutil.parse_instant(self.eventTime, "eventTime")
        return self._instant

    @property
    def kind(self) -> str:
        return self.eventType or "OTHER"


def parse_events(
    document: Any, validate: Callable[[type[BaseModel], Any, tuple], BaseModel]
) -> list[RunEvent]:
    """One event or a JSON array of them; over MAX_BATCH_EVENTS is PayloadTooLarge (413), checked
    before any event is read. `validate(model, data, loc)` raises the edge's 422 naming the field."""
    if isinstance(document, list):
        if len(document) > MAX_BATCH_EVENTS:
            raise PayloadTooLarge(
                f"A batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(document)}. "
                "Send it in smaller batches."
            )
        if not document:
            raise ValidationFailed("The batch is empty; send one RunEvent or a non-empty array of them.")
        return [validate(RunEvent, item, (index,)) for index, item in enumerate(document)]  # type: ignore[misc]
    return [validate(RunEvent, document, ())]  # type: ignore[list-item]


# -- what the ingest keeps -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MappedRun:
    """An OpenLineage run and the Watcher execution that stands for it."""

    execution_id: int
    pipeline_id: int
    start_date: pendulum.DateTime
    ended: bool = False
    events: frozenset[str] = frozenset()  # keys of the events that created or ended it


@dataclass
class RunChange:
    """What one batch writes for one OpenLineage run, all or nothing: the execution as it ends up
    (created, possibly already ended; or the end of one created before), its mapping, and the
    claims of the batch's events of this run. `run` None: claims only (events that change nothing)."""

    run_key: str  # the OpenLineage runId
    claims: list[str] = field(default_factory=list)  # keys of events that change nothing
    mapping_events: list[str] = field(default_factory=list)  # keys of those that create or end it
    run: Run | None = None
    created: bool = False
    seen_end_count: int = 0  # the end count read, for the end of an execution written before
    mapped: MappedRun | None = None
    advance: PipelineAdvance | None = None  # a successful end's effect on its pipeline
    ended_successfully: bool = False


class StaleBatch(Exception):  # noqa: N818 - a signal between store and ingest, never an answer
    """A write of the batch met a change made since its reads (a claim, a mapping, an end, a
    watermark): the `committed` changes were written; the rest must be planned again."""

    def __init__(self, committed: list[RunChange]):
        super().__init__(f"{len(committed)} changes committed before a conflict")
        self.committed = committed


class EventMarks(Protocol):
    """What the ingest reads and writes beside the registry: claims, mappings, executions."""

    def claimed(self, project: str, keys: list[str]) -> set[str]: ...
    def mapped_runs(self, project: str, run_ids: list[str]) -> dict[str, MappedRun]: ...
    def executions(self, project: str, execution_ids: list[int]) -> dict[int, Run]: ...
    def pipelines(self, project: str, pipeline_ids: list[int]) -> dict[int, WatchedPipeline]: ...
    def reserve_execution_ids(self, project: str, count: int) -> list[int]: ...
    def write(self, project: str, changes: list[RunChange], now: pendulum.DateTime) -> None:
        """The changes in order, in transactions; StaleBatch when a condition fails."""
        ...


def event_key(event: RunEvent) -> str:
    """The idempotency key of an event: its runId, eventType and eventTime (as sent)."""
    text = f"{event.run.runId}|{event.kind}|{event.eventTime}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def qualified(namespace: str, name: str, where: str) -> str:
    text = f"{namespace.strip()}/{name.strip()}".lower()
    if len(text) > MAX_NAME_CHARS:
        raise ValidationFailed(
            f"{where}: namespace + '/' + name is {len(text)} characters; Sluice names hold at most "
            f"{MAX_NAME_CHARS}."
        )
    return text


def _row_count(event: RunEvent) -> int | None:
    counts = []
    for output in event.outputs:
        stats = output.outputFacets.get("outputStatistics")
        rows = (stats.model_extra or {}).get("rowCount") if stats is not None else None
        if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0:
            counts.append(rows)
    return sum(counts) if counts else None


def _column_lineage(dataset: OutputDataset) -> dict[str, list[dict[str, str]]] | None:
    facet = dataset.facets.get("columnLineage")
    fields = (facet.model_extra or {}).get("fields") if facet is not None else None
    if not isinstance(fields, dict):
        return None
    lineage: dict[str, list[dict[str, str]]] = {}
    for column, spec in fields.items():
        inputs = spec.get("inputFields") if isinstance(spec, dict) else None
        lineage[str(column)] = [
            {"dataset": f"{i.get('namespace')}/{i.get('name')}".lower(), "field": str(i.get("field"))}
            for i in inputs or []
            if isinstance(i, dict) and i.get("namespace") and i.get("name") and i.get("field")
        ]
    return lineage


def _error_message(event: RunEvent) -> str | None:
    facet = event.run.facets.get("errorMessage")
    message = (facet.model_extra or {}).get("message") if facet is not None else None
    return str(message)[:2000] if message else None


@dataclass
class IngestResult:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "events": self.events,
        }


class OpenLineageIngest:
    """Applies a batch of RunEvents in bulk (see the module docstring): the batch's events are
    grouped by run and each run's final state is computed in memory (a START and a COMPLETE of one
    batch make one execution created already ended), then written with the run mapping and the
    events' claims in transactions of up to 100 items; ids come from one counter update per batch."""

    def __init__(
        self,
        registry: Registry,
        lineage: LineageService,
        publisher: EventPublisher,
        marks: EventMarks,
        clock: Callable[[], pendulum.DateTime] = timeutil.now,
        workers: int | None = None,
    ):
        self.workers = workers or WORKERS  # addresses upserted, lineage replaced, side by side
        self.registry = registry
        self.lineage = lineage
        self.publisher = publisher
        self.marks = marks
        self.clock = clock

    def ingest(self, project: str, events: list[RunEvent]) -> IngestResult:
        # Names, parents and datasets are checked for the whole batch first, so a bad one changes nothing.
        batch = _Batch()
        for index, event in enumerate(events):
            where = f"event {index}" if len(events) > 1 else "event"
            qualified(event.job.namespace, event.job.name, f"{where}: job")
            _parent_ref(event, where)
            batch.lineage_requests[id(event)] = lineage_request(event, where)
            for kind, datasets in (("inputs", event.inputs), ("outputs", event.outputs)):
                for position, dataset in enumerate(datasets):
                    qualified(dataset.namespace, dataset.name, f"{where}: {kind}[{position}]")
        keys = [event_key(e) for e in events]
        # In time order, so a START sent after its COMPLETE in one batch still comes first; the
        # first of equal keys is the one applied, the others are duplicates inside the batch.
        order = sorted(range(len(events)), key=lambda i: (events[i].instant, i))
        first: dict[str, int] = {}
        for index in order:
            first.setdefault(keys[index], index)
        run_keys = {str(e.run.runId) for e in events}
        run_keys |= {parent[0] for e in events if (parent := _parent_ref(e, "event"))}
        mapped = self.marks.mapped_runs(project, sorted(run_keys))
        # A claim is written only with or after its run's mapping (the store orders a run's claims
        # after its creation), so the events of runs no mapping names need no claim read: a new
        # run's events are new. A re-plan after a conflict reads every claim, trusting nothing.
        run_of = {key: str(events[index].run.runId) for key, index in first.items()}
        unmapped = {key for key, run_key in run_of.items() if run_key not in mapped}
        before = self._applied_before(project, [k for k in first if k not in unmapped], mapped)
        pending = [i for i in order if first[keys[i]] == i and keys[i] not in before]
        now = self.clock()
        # The jobs' pipelines side by side (the registry's get-or-create holds under concurrency).
        jobs = {qualified(e.job.namespace, e.job.name, "job"): e.job for e in (events[i] for i in pending)}
        if jobs:
            known = self.registry.known_pipelines(
                project, {n: _type_name(j.namespace) for n, j in jobs.items()}
            )
            batch.pipelines.update(known)
            jobs = {n: j for n, j in jobs.items() if n not in known}
        # Lineage is a replace (idempotent: a retried batch records it again), and recorded only
        # while the pipeline's load_lineage holds (Watcher's rule), so those are read at once.
        recording = [i for i in pending if batch.lineage_requests.get(id(events[i])) is not None]
        # New jobs with lineage to record: the lineage lease is taken before their pipelines are
        # created, so the closure update knows no lineage row names them, nor the addresses it creates.
        leased = bool(jobs and recording)
        with self.lineage.lineage_lease(project) if leased else contextlib.nullcontext():
            created: set[int] = set()
            if jobs:  # the new jobs' pipelines created together (a name taken meanwhile is upserted)
                bodies = [
                    PipelineUpsert(name=n, pipeline_type_name=_type_name(j.namespace))
                    for n, j in jobs.items()
                ]
                ids, created = self.registry.create_pipelines(project, bodies)
                batch.pipelines.update(ids)
            pipeline_of = {
                i: self._pipeline(project, events[i].job.namespace, events[i].job.name, batch)
                for i in recording
            }
            found = self.marks.pipelines(project, sorted(set(pipeline_of.values()))) if recording else {}
            requests = [
                request
                for index in recording
                if ((pipeline := found.get(pipeline_of[index])) is None or pipeline.load_lineage)
                and (request := self._lineage_of(events[index], pipeline_of[index], batch)) is not None
            ]
            self.lineage.record_many(project, requests, self.workers, created if leased else None)
        applied: set[str] = set()
        ended: list[Run] = []
        plan = _Plan()
        for _attempt in range(PLAN_ATTEMPTS):
            plan = self._plan(project, events, keys, pending, batch, mapped, now)
            try:
                self.marks.write(project, plan.changes, now)
            except StaleBatch as exc:
                # Another request changed what this plan read: keep what was committed, read again,
                # and plan what is left (a run the other request created is now mapped: its
                # execution is used, not a second one).
                done = exc.committed
                applied.update(k for change in done for k in (*change.claims, *change.mapping_events))
                ended += [c.run for c in done if c.ended_successfully and c.run is not None]
                committed_ids = {c.run.id for c in done if c.created and c.run is not None}
                batch.ids = [i for i in batch.ids if i not in committed_ids]
                left = [i for i in pending if keys[i] not in applied]
                mapped = self.marks.mapped_runs(project, sorted(run_keys))
                taken = self._applied_before(project, [keys[i] for i in left], mapped)
                pending = [i for i in left if keys[i] not in taken]
                continue
            applied.update(k for change in plan.changes for k in (*change.claims, *change.mapping_events))
            ended += [c.run for c in plan.changes if c.ended_successfully and c.run is not None]
            break
        else:
            raise Conflict(
                "The batch's runs kept changing while it was applied (concurrent requests); what was "
                "applied is kept: send the same batch again to apply the rest."
            )
        self._queue_anomaly_detection(project, ended)
        return self._result(events, keys, applied, plan)

    def _result(
        self, events: list[RunEvent], keys: list[str], applied: set[str], plan: _Plan
    ) -> IngestResult:
        result = IngestResult(received=len(events))
        counted: set[str] = set()
        for event, key in zip(events, keys, strict=True):
            outcome: dict[str, Any] = {
                "runId": str(event.run.runId),
                "eventType": event.kind,
                "eventTime": event.eventTime,
            }
            execution_id = plan.execution_ids.get(str(event.run.runId))
            if execution_id is not None:
                outcome["execution_id"] = execution_id
            if key in applied and key not in counted:
                counted.add(key)
                result.applied += 1
                outcome["status"] = "applied"
            else:
                result.duplicates += 1
                outcome["status"] = "duplicate"
            result.events.append(outcome)
        return result

    # -- the plan: every run's final state, in memory -------------------------------------------------
    def _plan(
        self,
        project: str,
        events: list[RunEvent],
        keys: list[str],
        pending: list[int],
        batch: _Batch,
        mapped: dict[str, MappedRun],
        now: pendulum.DateTime,
    ) -> _Plan:
        touched = {str(events[i].run.runId) for i in pending}
        touched |= {parent[0] for i in pending if (parent := _parent_ref(events[i], "event"))}
        stored = self.marks.executions(
            project, sorted({mapped[k].execution_id for k in touched if k in mapped})
        )
        needed = len(touched - set(mapped)) - len(batch.ids)
        if needed > 0:
            batch.ids += self.marks.reserve_execution_ids(project, needed)
        plan = _Plan(ids=list(batch.ids))
        plan.execution_ids = {k: m.execution_id for k, m in mapped.items()}
        for index in pending:
            event, key = events[index], keys[index]
            instant = event.instant
            run_key = str(event.run.runId)
            state = self._state(project, run_key, mapped, stored, plan)
            if state is None:
                parent_id, ancestors = self._parent(project, event, instant, mapped, stored, plan, batch, now)
                start = instant if event.kind not in ENDING else instant.subtract(microseconds=1000)
                pipeline_id = self._pipeline(project, event.job.namespace, event.job.name, batch)
                state = plan.create(run_key, pipeline_id, start, parent_id, ancestors, event.producer, now)
                state.effect.append(key)
            succeeded = ENDING.get(event.kind)
            if succeeded is not None and not state.ended and state.run is not None:
                state.end(event, succeeded, now)
                if key not in state.effect:
                    state.effect.append(key)
            elif key not in state.effect:
                state.other.append(key)
        plan.changes = self._changes(project, plan)
        return plan

    def _applied_before(self, project: str, candidates: list[str], mapped: dict[str, MappedRun]) -> set[str]:
        """The keys among `candidates` applied before: on a run's mapping (the events that created
        or ended it), or claimed on their own (those that changed nothing)."""
        on_mappings = {k for m in mapped.values() for k in m.events}
        rest = [k for k in candidates if k not in on_mappings]
        return (on_mappings & set(candidates)) | (self.marks.claimed(project, rest) if rest else set())

    def _state(
        self,
        project: str,
        run_key: str,
        mapped: dict[str, MappedRun],
        stored: dict[int, Run],
        plan: _Plan,
    ) -> _RunState | None:
        """The run's state in this plan; a mapped run read from the store, None for a new one."""
        if run_key in plan.states:
            return plan.states[run_key]
        known = mapped.get(run_key)
        if known is None:
            return None
        # An execution log cleanup deleted leaves its mapping: its events change nothing.
        run = stored.get(known.execution_id)
        state = _RunState(run_key, known, run, created=False, ended=known.ended or run is None)
        plan.states[run_key] = state
        return state

    def _parent(
        self,
        project: str,
        event: RunEvent,
        instant: pendulum.DateTime,
        mapped: dict[str, MappedRun],
        stored: dict[int, Run],
        plan: _Plan,
        batch: _Batch,
        now: pendulum.DateTime,
    ) -> tuple[int | None, tuple[int, ...]]:
        """The parent execution of a new run (started 1 ms before it when first named) and its ancestry."""
        parent = _parent_ref(event, "event")
        if parent is None:
            return None, ()
        parent_key, parent_namespace, parent_name = parent
        state = self._state(project, parent_key, mapped, stored, plan)
        if state is None:
            pipeline_id = self._pipeline(project, parent_namespace, parent_name, batch)
            start = instant.subtract(microseconds=1000)
            state = plan.create(parent_key, pipeline_id, start, None, (), None, now)
        if state.run is None:  # its execution was deleted: the run is recorded without a parent
            return None, ()
        return state.run.id, (state.run.id, *state.run.ancestors)

    def _changes(self, project: str, plan: _Plan) -> list[RunChange]:
        """The plan's writes, parents before their children (by depth) and grouped by pipeline (so
        the store's transactions of different pipelines can be written side by side). Each
        successful end carries its pipeline's advance: the running maximum of the batch's target
        times in this order, so the pipeline ends as the per-event path (in time order) leaves it."""
        ending = {s.run.pipeline_id for s in plan.states.values() if s.succeeded_now and s.run is not None}
        pipelines = self.marks.pipelines(project, sorted(ending)) if ending else {}

        def order(item: tuple[int, _RunState]) -> tuple[int, int, int]:
            position, state = item
            if state.run is None:
                return (0, 0, position)
            return (len(state.run.ancestors) if state.created else 0, state.run.pipeline_id, position)

        running: dict[int, dict[str, pendulum.DateTime]] = {}
        changes: list[RunChange] = []
        for _position, state in sorted(enumerate(plan.states.values()), key=order):
            run = state.run
            change = RunChange(
                state.run_key, claims=state.other[:MAX_CLAIMS_WITH_RUN], mapping_events=state.effect
            )
            rest = state.other[MAX_CLAIMS_WITH_RUN:]
            if run is not None and (state.created or state.ended_now):
                change.run = run
                change.created = state.created
                change.seen_end_count = state.seen_end_count
                known = state.mapped.events if state.mapped is not None else frozenset()
                change.mapped = MappedRun(
                    run.id,
                    run.pipeline_id,
                    run.start_date,
                    ended=state.ended,
                    events=known | set(state.effect),
                )
                pipeline = pipelines.get(run.pipeline_id)
                if state.succeeded_now and state.report is not None:
                    change.ended_successfully = True
                    if pipeline is not None:
                        times = running.setdefault(run.pipeline_id, {})
                        for name, moment in state.report.target_times().items():
                            times[name] = max(times[name], moment) if name in times else moment
                        change.advance = PipelineAdvance(
                            run.pipeline_id, pipeline.next_watermark, dict(times), pipeline.load_lineage
                        )
            if change.claims or change.run is not None:
                changes.append(change)
            for start in range(0, len(rest), MAX_CLAIMS_WITH_RUN):
                changes.append(RunChange(state.run_key, claims=rest[start : start + MAX_CLAIMS_WITH_RUN]))
        return changes

    def _queue_anomaly_detection(self, project: str, ended: list[Run]) -> None:
        """`execution.ended` for each successful end, as end_execution publishes it, 10 to a PutEvents."""
        details = [{"project": project, "pipeline_id": r.pipeline_id, "execution_id": r.id} for r in ended]
        try:
            publish_all(self.publisher, EXECUTION_ENDED, details)
        except Unavailable as exc:
            # The ends are recorded; only the asynchronous anomaly checks are lost. Say so loudly.
            logger.error(
                "execution.ended not published",
                extra={"execution_ids": [r.id for r in ended], "reason": exc.detail},
            )

    def _pipeline(self, project: str, namespace: str, name: str, batch: _Batch) -> int:
        qualified_name = qualified(namespace, name, "job")
        if qualified_name not in batch.pipelines:
            body = PipelineUpsert(name=qualified_name, pipeline_type_name=_type_name(namespace))
            batch.pipelines[qualified_name] = int(self.registry.upsert_pipeline(project, body)[0]["id"])
        return batch.pipelines[qualified_name]

    def _lineage_of(self, event: RunEvent, pipeline_id: int, batch: _Batch) -> AddressLineageRequest | None:
        """The event's `/address_lineage` request, None when the batch already has the same one."""
        planned = batch.lineage_requests.get(id(event))
        if planned is None:
            return None
        request = planned.model_copy(update={"pipeline_id": pipeline_id})
        signature = (
            pipeline_id,
            tuple(sorted(s.name for s in request.source_addresses)),
            tuple(sorted((t.name, repr(t.address_metadata)) for t in request.target_addresses)),
        )
        if signature in batch.lineage:
            return None
        batch.lineage.add(signature)
        return request


@dataclass
class _RunState:
    """One run as the plan leaves it: the execution (read, or new), and the events' claims."""

    run_key: str
    mapped: MappedRun | None
    run: Run | None
    created: bool
    ended: bool
    seen_end_count: int = 0
    ended_now: bool = False
    succeeded_now: bool = False
    report: EndReport | None = None
    effect: list[str] = field(default_factory=list)  # claims of events that create or end it
    other: list[str] = field(default_factory=list)  # claims of events that change nothing

    def __post_init__(self) -> None:
        if self.run is not None and not self.created:
            self.seen_end_count = self.run.end_count

    def end(self, event: RunEvent, succeeded: bool, now: pendulum.DateTime) -> None:
        """The end, as `/end_pipeline_execution` records it (report_end, apply_end)."""
        assert self.run is not None
        rows = _row_count(event)
        metadata: dict[str, Any] = {
            "openlineage": {
                "run_id": self.run_key,
                "event_type": event.kind,
                "producer": event.producer[:MAX_PRODUCER_CHARS],
            }
        }
        error = _error_message(event)
        if error:
            metadata["error"] = error
        # Watcher refuses an end at or before the start; producers with coarse clocks send both at once.
        end_date = max(event.instant, self.run.start_date.add(microseconds=1000))
        request = EndExecution(
            id=self.run.id,
            end_date=timeutil.iso(end_date),
            completed_successfully=succeeded,
            total_rows=rows,
            inserts=rows,
            execution_metadata=metadata,
        )
        self.report = report_end(self.run, request)
        self.run = apply_end(self.run, self.report, now)
        self.ended = self.ended_now = True
        self.succeeded_now = succeeded


@dataclass
class _Plan:
    ids: list[int] = field(default_factory=list)  # reserved execution ids not used yet
    states: dict[str, _RunState] = field(default_factory=dict)  # by runId, in creation order
    changes: list[RunChange] = field(default_factory=list)
    execution_ids: dict[str, int] = field(default_factory=dict)  # runId -> execution id

    def create(
        self,
        run_key: str,
        pipeline_id: int,
        start: pendulum.DateTime,
        parent_id: int | None,
        ancestors: tuple[int, ...],
        producer: str | None,
        now: pendulum.DateTime,
    ) -> _RunState:
        """A new execution, as start_execution records it (`running`, the start, the parent)."""
        metadata: dict[str, Any] = {"openlineage": {"run_id": run_key}}
        if producer is not None:
            metadata["openlineage"]["producer"] = producer[:MAX_PRODUCER_CHARS]
        run = Run(
            id=self.ids.pop(0),
            pipeline_id=pipeline_id,
            status=RunStatus.running.value,
            start_date=start,
            parent_id=parent_id,
            ancestors=ancestors,
            execution_metadata=metadata,
            created_at=now,
        )
        state = _RunState(run_key, None, run, created=True, ended=False)
        self.states[run_key] = state
        self.execution_ids[run_key] = run.id
        return state


def lineage_request(event: RunEvent, where: str = "event") -> AddressLineageRequest | None:
    """The `/address_lineage` request an event's datasets make (pipeline 0: set once it is known);
    None without datasets. What Watcher refuses (metadata over 64 KB, too many edges) is 422 here,
    before anything of the batch is written."""
    if not event.inputs and not event.outputs:
        return None

    def address(dataset: LineageDataset, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": qualified(dataset.namespace, dataset.name, f"{where}: dataset"),
            "address_type_name": ADDRESS_TYPE,
            "address_type_group_name": ADDRESS_GROUP,
        }
        if metadata is not None:
            body["address_metadata"] = metadata
        return body

    targets = []
    for output in event.outputs:
        columns = _column_lineage(output)
        targets.append(address(output, {"column_lineage": columns} if columns is not None else None))
    try:
        return AddressLineageRequest.model_validate(
            {
                "pipeline_id": 0,
                "source_addresses": [address(d) for d in event.inputs],
                "target_addresses": targets,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise ValidationFailed(f"{where}: its datasets cannot be recorded as lineage: {problems}") from exc


@dataclass
class _Batch:
    """What one request has already done: pipelines resolved, lineage recorded, ids reserved."""

    pipelines: dict[str, int] = field(default_factory=dict)
    lineage: set[tuple] = field(default_factory=set)
    lineage_requests: dict[int, AddressLineageRequest | None] = field(default_factory=dict)  # by id(event)
    ids: list[int] = field(default_factory=list)  # execution ids reserved and not committed


def _type_name(namespace: str) -> str:
    """The pipeline type of a job: its namespace."""
    return namespace.strip()[:MAX_NAME_CHARS] or "openlineage"


def _parent_ref(event: RunEvent, where: str) -> tuple[str, str, str] | None:
    """(runId, job namespace, job name) of the event's parent run facet, or None without one."""
    facet = event.run.facets.get("parent")
    if facet is None:
        return None
    extra = facet.model_extra or {}
    try:
        run = ParentRun.model_validate(extra.get("run"))
        job = ParentJob.model_validate(extra.get("job"))
    except ValueError as exc:
        raise ValidationFailed(
            f"{where}: run.facets.parent needs run.runId (a UUID) and job.namespace and job.name."
        ) from exc
    qualified(job.namespace, job.name, f"{where}: run.facets.parent.job")
    return str(run.runId), job.namespace, job.name
