"""OpenLineage in: RunEvents (spec 2-0-2) become Watcher executions, addresses and lineage.

The mapping (docs/sdk.md, "OpenLineage"):
- the job `namespace` + `name` is a Watcher pipeline named `<namespace>/<name>` (lowercased, as
  Watcher stores names), of the pipeline type `<namespace>`;
- START (and RUNNING, OTHER for a run not seen yet) starts an execution at `eventTime`; COMPLETE ends
  it successfully, FAIL and ABORT end it failed, through the same start/end use cases as
  `/start_pipeline_execution` and `/end_pipeline_execution` (so watermarks, target times and anomaly
  detection follow). An end with no START seen starts the execution 1 ms before it;
- the `parent` run facet names the parent run: its execution (started when first named) is the
  parent of this one (Watcher's `parent_id` / `child_executions`);
- inputs and outputs are addresses named `<namespace>/<name>`, and the job's lineage is replaced by
  inputs x outputs (`/address_lineage`); a `columnLineage` facet is kept on the output address's
  `address_metadata.column_lineage` as `{column: [{dataset, field}]}`;
- `outputStatistics.rowCount` of the outputs, summed, is the execution's `total_rows` and `inserts`
  (so anomaly detection and freshness apply to it).
Each event is applied once: its runId + eventType + eventTime is claimed before it is applied (a
conditional write), and released if applying it fails, so a retried batch applies what is left.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import pendulum
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice import timeutil
from sluice.domain.events import EventPublisher
from sluice.domain.executions import (
    EndExecution,
    PipelineDirectory,
    RunStore,
    StartExecution,
    end_execution,
    start_execution,
)
from sluice.domain.lineage import LineageService
from sluice.domain.registry import AddressLineageRequest, PipelineUpsert, Registry
from sluice.errors import PayloadTooLarge, ValidationFailed

SPEC_VERSION = "2-0-2"
MAX_BATCH_EVENTS = 1000
MAX_NAME_CHARS = 150  # Watcher's names
MAX_PRODUCER_CHARS = 1000  # as kept in execution_metadata, which Watcher bounds at 64 KB
ADDRESS_TYPE = "openlineage_dataset"
ADDRESS_GROUP = "openlineage"
ENDING = {"COMPLETE": True, "FAIL": False, "ABORT": False}
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

    @property
    def instant(self) -> pendulum.DateTime:
        return timeutil.parse_instant(self.eventTime, "eventTime")

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


class EventMarks(Protocol):
    """What the ingest stores beside the executions: events applied, and runs mapped."""

    def claim_events(self, project: str, keys: list[str]) -> set[str]:
        """Claim each key not claimed before (conditional writes); the keys this call claimed."""
        ...

    def release_event(self, project: str, key: str) -> None: ...
    def mapped_run(self, project: str, run_id: str) -> MappedRun | None: ...
    def mapped_runs(self, project: str, run_ids: list[str]) -> dict[str, MappedRun]: ...
    def map_run(self, project: str, run_id: str, mapped: MappedRun) -> MappedRun: ...
    def mark_ended(self, project: str, run_id: str) -> None: ...


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
    """Applies RunEvents to the project through Watcher's own use cases (see the module docstring)."""

    def __init__(
        self,
        registry: Registry,
        lineage: LineageService,
        runs: RunStore,
        pipelines: PipelineDirectory,
        publisher: EventPublisher,
        marks: EventMarks,
        clock: Callable[[], pendulum.DateTime] = timeutil.now,
    ):
        self.registry = registry
        self.lineage = lineage
        self.runs = runs
        self.pipelines = pipelines
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
        result = IngestResult(received=len(events))
        keys = [event_key(e) for e in events]
        # One conditional write per 100 events claims them; a key claimed before (now, or by an
        # earlier request) is a duplicate. Runs already mapped are read in batches too.
        claimed = self.marks.claim_events(project, list(dict.fromkeys(keys)))
        run_ids = {str(e.run.runId) for e in events}
        run_ids |= {parent[0] for e in events if (parent := _parent_ref(e, "event"))}
        batch.runs.update(self.marks.mapped_runs(project, sorted(run_ids)))
        directory = _CachedDirectory(self.pipelines)
        # In time order, so a START sent after its COMPLETE in one batch still comes first.
        order = sorted(range(len(events)), key=lambda i: (events[i].instant, i))
        outcomes: dict[int, dict[str, Any]] = {}
        for index in order:
            event, key = events[index], keys[index]
            outcome = {"runId": str(event.run.runId), "eventType": event.kind, "eventTime": event.eventTime}
            if key not in claimed or key in batch.applied:
                result.duplicates += 1
                mapped = batch.runs.get(str(event.run.runId))
                if mapped is not None:
                    outcome["execution_id"] = mapped.execution_id
                outcomes[index] = {**outcome, "status": "duplicate"}
                continue
            batch.applied.add(key)
            try:
                execution_id = self._apply(project, event, batch, directory)
            except BaseException:
                # This event and those not reached yet are released, so a retry applies them.
                unapplied = {keys[i] for i in order if i not in outcomes} - (batch.applied - {key})
                for later in unapplied & claimed:
                    self.marks.release_event(project, later)
                raise
            result.applied += 1
            outcomes[index] = {**outcome, "status": "applied", "execution_id": execution_id}
        result.events = [outcomes[i] for i in range(len(events))]
        return result

    # -- one event ------------------------------------------------------------------------------------
    def _apply(self, project: str, event: RunEvent, batch: _Batch, directory: PipelineDirectory) -> int:
        pipeline_id = self._pipeline(project, event.job.namespace, event.job.name, batch)
        instant = event.instant
        run = self._run(project, str(event.run.runId), pipeline_id, event, instant, batch, directory)
        self._record_lineage(project, pipeline_id, event, batch)
        succeeded = ENDING.get(event.kind)
        if succeeded is not None and not run.ended:
            rows = _row_count(event)
            metadata: dict[str, Any] = {
                "openlineage": {
                    "run_id": str(event.run.runId),
                    "event_type": event.kind,
                    "producer": event.producer[:MAX_PRODUCER_CHARS],
                }
            }
            error = _error_message(event)
            if error:
                metadata["error"] = error
            # Watcher refuses an end at or before the start; producers with coarse clocks send both at once.
            end_date = max(instant, run.start_date.add(microseconds=1000))
            end_execution(
                project,
                EndExecution(
                    id=run.execution_id,
                    end_date=timeutil.iso(end_date),
                    completed_successfully=succeeded,
                    total_rows=rows,
                    inserts=rows,
                    execution_metadata=metadata,
                ),
                self.runs,
                directory,
                self.publisher,
                self.clock(),
            )
            self.marks.mark_ended(project, str(event.run.runId))
            batch.runs[str(event.run.runId)] = MappedRun(
                run.execution_id, run.pipeline_id, run.start_date, ended=True
            )
        return run.execution_id

    def _pipeline(self, project: str, namespace: str, name: str, batch: _Batch) -> int:
        qualified_name = qualified(namespace, name, "job")
        if qualified_name not in batch.pipelines:
            body = PipelineUpsert(
                name=qualified_name, pipeline_type_name=namespace.strip()[:MAX_NAME_CHARS] or "openlineage"
            )
            batch.pipelines[qualified_name] = int(self.registry.upsert_pipeline(project, body)[0]["id"])
        return batch.pipelines[qualified_name]

    def _run(
        self,
        project: str,
        run_id: str,
        pipeline_id: int,
        event: RunEvent,
        instant: pendulum.DateTime,
        batch: _Batch,
        directory: PipelineDirectory,
    ) -> MappedRun:
        known = batch.runs.get(run_id)
        if known is not None:
            return known
        parent_id = self._parent(project, event, instant, batch, directory)
        start = instant if event.kind not in ENDING else instant.subtract(microseconds=1000)
        mapped = self._start(project, run_id, pipeline_id, start, parent_id, event, directory)
        batch.runs[run_id] = mapped
        return mapped

    def _parent(
        self,
        project: str,
        event: RunEvent,
        instant: pendulum.DateTime,
        batch: _Batch,
        directory: PipelineDirectory,
    ) -> int | None:
        parent = _parent_ref(event, "event")
        if parent is None:
            return None
        parent_key, parent_namespace, parent_name = parent
        known = batch.runs.get(parent_key)
        if known is None:
            pipeline_id = self._pipeline(project, parent_namespace, parent_name, batch)
            start = instant.subtract(microseconds=1000)
            known = self._start(project, parent_key, pipeline_id, start, None, None, directory)
        batch.runs[parent_key] = known
        return known.execution_id

    def _start(
        self,
        project: str,
        run_id: str,
        pipeline_id: int,
        start: pendulum.DateTime,
        parent_id: int | None,
        event: RunEvent | None,
        directory: PipelineDirectory,
    ) -> MappedRun:
        metadata = {"openlineage": {"run_id": run_id}}
        if event is not None:
            metadata["openlineage"]["producer"] = event.producer[:MAX_PRODUCER_CHARS]
        execution_id = start_execution(
            project,
            StartExecution(
                pipeline_id=pipeline_id,
                start_date=timeutil.iso(start),
                parent_id=parent_id,
                execution_metadata=metadata,
            ),
            self.runs,
            directory,
            self.clock(),
        )
        # Another request may have mapped the run meanwhile: the first mapping wins, and this
        # execution stays as a started, never ended duplicate (docs/sdk.md says so).
        return self.marks.map_run(project, run_id, MappedRun(execution_id, pipeline_id, start))

    def _record_lineage(self, project: str, pipeline_id: int, event: RunEvent, batch: _Batch) -> None:
        planned = batch.lineage_requests.get(id(event))
        if planned is None:
            return
        request = planned.model_copy(update={"pipeline_id": pipeline_id})
        signature = (
            pipeline_id,
            tuple(sorted(s.name for s in request.source_addresses)),
            tuple(sorted((t.name, repr(t.address_metadata)) for t in request.target_addresses)),
        )
        if signature in batch.lineage:
            return
        self.lineage.record_address_lineage(project, request)
        batch.lineage.add(signature)


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
    """What one request has already done: pipelines and runs resolved, lineage recorded."""

    pipelines: dict[str, int] = field(default_factory=dict)
    runs: dict[str, MappedRun] = field(default_factory=dict)
    lineage: set[tuple] = field(default_factory=set)
    applied: set[str] = field(default_factory=set)
    lineage_requests: dict[int, AddressLineageRequest | None] = field(default_factory=dict)  # by id(event)


class _CachedDirectory:
    """The pipeline directory read once per pipeline in a request (start and end both read it):
    an ingest of 1,000 events of 50 jobs reads 50 pipelines, not 2,000. What the pipeline's
    watermark advance writes is not re-read within the request; OpenLineage sends no watermarks."""

    def __init__(self, directory: PipelineDirectory):
        self.directory = directory
        self._seen: dict[tuple[str, int], Any] = {}

    def get(self, project: str, pipeline_id: int) -> Any:
        key = (project, pipeline_id)
        if key not in self._seen:
            self._seen[key] = self.directory.get(project, pipeline_id)
        return self._seen[key]


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
