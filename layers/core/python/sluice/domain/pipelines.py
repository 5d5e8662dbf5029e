"""Pipeline definitions (SPEC 3): seeds 001's and 003's surfaces over the one pipeline record.

`PipelineDefinitions` holds the use cases (create, read, list by page or cursor, update, delete
with all run history, revisions, schedule firings) over ports passed in. The request bodies are
definition_requests.py's; the one rendering of a pipeline on `/api/v1/*` is
views/definitions.py's `definition_view`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any, Protocol

import pendulum
from aws_lambda_powertools import Logger

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.definition_requests import DefinitionRequest, checked_name
from sluice.domain.executions import Run
from sluice.domain.graph import Graph
from sluice.domain.schedules import check_schedule, parse_cron
from sluice.domain.status import DEFAULT_PIPELINE_STATUS, PipelineStatus
from sluice.domain.views.definitions import definition_view, revision_summary
from sluice.errors import Conflict, NameTaken, NotFound, SluiceError, Unavailable, ValidationFailed

DEFAULT_STATUS = DEFAULT_PIPELINE_STATUS.value
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
REVISIONS_PAGE_SIZE = 50
UPDATE_ATTEMPTS = 4
RUN_BATCH = 100
DELETE_BUDGET_SECONDS = 20.0  # API Gateway stops waiting at 29 s; a longer history takes repeats
KIND = "pipeline"

logger = Logger(service="sluice")


# -- ports --------------------------------------------------------------------------------------
class StaleDefinition(Exception):
    """The pipeline changed between the read and the write (DefinitionStore.update): read it
    again and re-plan."""


class DefinitionStore(Protocol):
    """sluice.store.pipelines.PipelineDefinitionRepository; records carry `graph` as a document."""

    def get(self, project: str, pipeline_id: int) -> dict[str, Any] | None: ...
    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None: ...
    def page(
        self, project: str, status: str | None, after_id: int | None, limit: int
    ) -> list[dict[str, Any]]: ...
    def id_at(self, project: str, status: str | None, offset: int) -> int | None: ...
    def count(self, project: str, status: str | None) -> int: ...
    def references(
        self, project: str, records: list[dict[str, Any]]
    ) -> dict[tuple[str, int], dict[str, Any]]: ...
    def exists(self, project: str, kind: str, number: int) -> bool: ...
    def last_runs(self, project: str, pipeline_ids: list[int]) -> dict[int, Run]: ...
    def runs(self, project: str, run_ids: list[int]) -> list[Run]: ...
    def run_index_page(
        self, project: str, pipeline_id: int, limit: int
    ) -> list[tuple[int, tuple[str, str]]]: ...
    def revisions(
        self, project: str, pipeline_id: int, limit: int, before: int | None
    ) -> list[dict[str, Any]]: ...
    def revision(self, project: str, pipeline_id: int, number: int) -> dict[str, Any] | None: ...
    def check_graph_size(self, document: dict[str, Any]) -> None: ...
    def next_id(self, project: str) -> int: ...
    def create(
        self, project: str, pipeline_id: int, attributes: dict[str, Any], revision: dict[str, Any]
    ) -> dict[str, Any]: ...
    def update(
        self, project: str, current: dict[str, Any], changes: dict[str, Any], revision: dict[str, Any] | None
    ) -> dict[str, Any]: ...
    def delete(self, project: str, pipeline_id: int) -> dict[str, Any]: ...
    def delete_revisions_and_firings(self, project: str, pipeline_id: int, limit: int) -> int: ...
    def delete_keys(self, item_keys: list[tuple[str, str]]) -> int: ...
    def delete_checks_of(self, project: str, pipeline_id: int) -> int: ...
    def record_firing(
        self, project: str, pipeline: dict[str, Any], scheduled: str, next_run_at: str, now: str
    ) -> bool: ...


class RunPurger(Protocol):
    """sluice.store.executions.RunRepository: deletes runs with their closure rows and results."""

    def purge_runs(self, project: str, runs: list[Run]) -> dict[str, int]: ...


class Schedules(Protocol):
    """A pipeline's schedule in EventBridge Scheduler (sluice.adapters.schedules)."""

    def put(self, project: str, pipeline_id: int, cron: str, enabled: bool) -> None: ...
    def remove(self, project: str, pipeline_id: int) -> None: ...


class LineageEdges(Protocol):
    """sluice.domain.lineage.LineageService."""

    def forget_pipeline(self, project: str, pipeline_id: int) -> None: ...


def encode_cursor(pipeline_id: int) -> str:
    return base64.urlsafe_b64encode(f"pipeline:{pipeline_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        kind, _, number = text.partition(":")
        if kind != "pipeline" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("cursor is not a cursor this API returned for this list.") from exc


# -- use cases -----------------------------------------------------------------------------------
class PipelineDefinitions:
    def __init__(
        self,
        store: DefinitionStore,
        runs: RunPurger,
        schedules: Schedules,
        lineage: LineageEdges,
        clock: Callable[[], pendulum.DateTime] = timeutil.now,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.runs = runs
        self.schedules = schedules
        self.lineage = lineage
        self._clock = clock
        self._monotonic = monotonic

    # -- reads ------------------------------------------------------------------------------------
    def get(self, project: str, ref: str | int) -> dict[str, Any]:
        return self._views(project, [self._locate(project, ref)])[0]

    def list_pages(self, project: str, status: str | None, page: int, per_page: int) -> dict[str, Any]:
        """Seed 001: page numbers; `total` comes from the project's counts, not from the items."""
        total = self.store.count(project, status)
        offset = (page - 1) * per_page
        records: list[dict[str, Any]] = []
        after = self.store.id_at(project, status, offset) if offset else None
        if offset == 0 or after is not None:
            records = self.store.page(project, status, after, per_page)
        return {
            "data": self._views(project, records),
            "meta": {"total": total, "page": page, "per_page": per_page},
        }

    def list_cursor(self, project: str, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """Seed 003: keyset pages by id, so pipelines created meanwhile never shift a page."""
        after = decode_cursor(cursor) if cursor else None
        records = self.store.page(project, status, after, limit + 1)
        has_more = len(records) > limit
        records = records[:limit]
        total = self.store.count(project, status)
        next_cursor = encode_cursor(int(records[-1]["id"])) if has_more else None
        return {
            "data": self._views(project, records),
            "pagination": {"total": total, "hasMore": has_more, "limit": limit, "cursor": next_cursor},
            "meta": {"total": total, "page": None, "per_page": limit},
        }

    def revisions(self, project: str, ref: str | int, limit: int, before: int | None) -> dict[str, Any]:
        record = self._locate(project, ref)
        found = self.store.revisions(project, int(record["id"]), limit, before)
        return {
            "data": [revision_summary(r) for r in found],
            "meta": {"pipeline": ids.render(KIND, int(record["id"])), "current": record.get("revision")},
        }

    def revision(self, project: str, ref: str | int, number: int) -> dict[str, Any]:
        record = self._locate(project, ref)
        found = self.store.revision(project, int(record["id"]), number)
        if found is None:
            raise NotFound(f"Pipeline {record['name']} has no revision {number}.")
        return {
            **revision_summary(found),
            "pipeline": ids.render(KIND, int(record["id"])),
            **Graph.from_document(found["graph"]).both_spellings(),
        }

    # -- create -----------------------------------------------------------------------------------
    def create(self, project: str, request: DefinitionRequest, author: str) -> dict[str, Any]:
        """201: the pipeline and its revision 1. Everything is checked before anything is written."""
        name = checked_name(request.name)
        graph = request.graph() or Graph()
        status = request.status or DEFAULT_STATUS
        now = self._clock()
        schedule = self._schedule(request.schedule) if request.schedule is not None else None
        references = self._references(project, request)
        document = graph.to_document()
        self.store.check_graph_size(document)
        if self.store.find_by_name(project, name) is not None:
            raise NameTaken(f"Pipeline name '{name}' is already taken in this project.")
        stamp = timeutil.iso(now)
        attributes: dict[str, Any] = {
            "name": name,
            "description": request.description,
            "version": request.version,
            "status": status,
            "schedule": schedule,
            "next_run_at": timeutil.iso(parse_cron(schedule).next_after(now)) if schedule else None,
            "graph": document,
            "revision": 1,
            "execution_config": request.execution_config.stored() if request.execution_config else None,
            "created_at": stamp,
            "updated_at": stamp,
            **references,
        }
        pipeline_id = self.store.next_id(project)
        if schedule:
            self.schedules.put(project, pipeline_id, schedule, enabled=status == PipelineStatus.active)
        try:
            record = self.store.create(
                project,
                pipeline_id,
                {k: v for k, v in attributes.items() if v is not None},
                {"revision": 1, "author": author, "created_at": stamp, "graph": document},
            )
        except SluiceError:
            if schedule:
                self._forget_schedule(project, pipeline_id)
            raise
        return self._views(project, [record])[0]

    # -- update -----------------------------------------------------------------------------------
    def update(self, project: str, ref: str | int, request: DefinitionRequest, author: str) -> dict[str, Any]:
        """Apply the fields sent; a graph given in either spelling replaces the graph wholly and,
        when it differs, becomes the next revision."""
        for field in ("name", "status"):
            if request.sent(field) and getattr(request, field) is None:
                raise ValidationFailed(f"{field} may not be null.")
        new_name = checked_name(request.name) if request.name is not None else None
        graph = request.graph()
        schedule = self._schedule(request.schedule) if request.schedule is not None else None
        references = self._references(project, request)
        if graph is not None:
            self.store.check_graph_size(graph.to_document())
        record = self._locate(project, ref)
        for _attempt in range(UPDATE_ATTEMPTS):
            changes, revision = self._plan_update(
                record, request, new_name, graph, schedule, references, author
            )
            if not changes:
                break
            if "name" in changes and not _same_name(changes["name"], record["name"]):
                holder = self.store.find_by_name(project, changes["name"])
                if holder is not None and int(holder["id"]) != int(record["id"]):
                    raise NameTaken(f"Pipeline name '{changes['name']}' is already taken in this project.")
            try:
                record = self.store.update(project, record, changes, revision)
                break
            except StaleDefinition:
                record = self._require(project, int(record["id"]))
        else:
            raise Conflict(f"Pipeline {record['name']} was changed by another request meanwhile; retry.")
        if request.sent("schedule") or request.sent("status"):
            self._sync_schedule(project, record)
        return self._views(project, [record])[0]

    def _plan_update(
        self,
        record: dict[str, Any],
        request: DefinitionRequest,
        new_name: str | None,
        graph: Graph | None,
        schedule: str | None,
        references: dict[str, int],
        author: str,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        now = self._clock()
        wanted: dict[str, Any] = {}
        if new_name is not None:
            wanted["name"] = new_name
        for field in ("description", "version", "status"):
            if request.sent(field):
                wanted[field] = getattr(request, field)
        if request.sent("schedule"):
            wanted["schedule"] = schedule
        for field in ("connector_id", "schema_id"):
            if request.sent(field):
                wanted[field] = references.get(field)
        if request.sent("execution_config"):
            config = request.execution_config
            wanted["execution_config"] = config.stored() if config else None
        current = {**record, "status": record.get("status") or DEFAULT_STATUS}
        changes = {k: v for k, v in wanted.items() if current.get(k) != v}
        revision = None
        if graph is not None:
            document = graph.to_document()
            if document != Graph.from_document(record.get("graph")).to_document():
                number = int(record.get("revision") or 0) + 1
                changes["graph"] = document
                changes["revision"] = number
                revision = {
                    "revision": number,
                    "author": author,
                    "created_at": timeutil.iso(now),
                    "graph": document,
                }
        if "schedule" in changes or "status" in changes:
            schedule_after = changes["schedule"] if "schedule" in changes else record.get("schedule")
            changes["next_run_at"] = (
                timeutil.iso(parse_cron(schedule_after).next_after(now)) if schedule_after else None
            )
        if changes:
            changes["updated_at"] = timeutil.iso(now)
        return changes, revision

    # -- delete -----------------------------------------------------------------------------------
    def delete(self, project: str, ref: str | int) -> None:
        """The definition and everything kept about it: runs (with their closure rows, anomaly
        results and timeliness records), revisions, firings, checks, lineage edges, schedule.

        History goes first and the definition last, so a delete cut short (a very long history)
        leaves the pipeline in place and repeating the DELETE finishes it.
        """
        record = self._locate(project, ref)
        pipeline_id = int(record["id"])
        deadline = self._monotonic() + DELETE_BUDGET_SECONDS
        self._purge_runs(project, pipeline_id, deadline)
        while self.store.delete_revisions_and_firings(project, pipeline_id, 500):
            self._within(deadline, record)
        self.store.delete_checks_of(project, pipeline_id)
        self.lineage.forget_pipeline(project, pipeline_id)
        self.store.delete(project, pipeline_id)
        self._forget_schedule(project, pipeline_id)
        # A run that started while the history was deleted is caught here; none can start after the
        # definition is gone (starting a run reads its pipeline first).
        self._purge_runs(project, pipeline_id, None)

    def _purge_runs(self, project: str, pipeline_id: int, deadline: float | None) -> None:
        previous: list[tuple[int, tuple[str, str]]] = []
        while batch := self.store.run_index_page(project, pipeline_id, RUN_BATCH):
            if batch == previous:
                raise Conflict(f"Runs of pipeline {pipeline_id} could not be deleted; retry.")
            if deadline is not None and self._monotonic() > deadline:
                raise Unavailable(
                    f"Pipeline {ids.render(KIND, pipeline_id)} has a long run history; part of it was "
                    "deleted. Repeat the DELETE to continue."
                )
            runs = self.store.runs(project, [run_id for run_id, _ in batch])
            self.runs.purge_runs(project, runs)
            found = {run.id for run in runs}
            orphans = [key for run_id, key in batch if run_id not in found]  # run already gone
            if orphans:
                self.store.delete_keys(orphans)
            previous = batch

    def _within(self, deadline: float, record: dict[str, Any]) -> None:
        if self._monotonic() > deadline:
            raise Unavailable(
                f"Pipeline {record['name']} has a long history; part of it was deleted. "
                "Repeat the DELETE to continue."
            )

    # -- schedule firings -------------------------------------------------------------------------
    def fire_schedule(self, project: str, pipeline_id: int, scheduled_time: Any) -> dict[str, Any]:
        """An EventBridge Scheduler firing: recorded (once per scheduled minute), next_run_at moved.
        A paused or deleted pipeline's firing is ignored (a deleted one's schedule is removed)."""
        now = self._clock()
        record = self.store.get(project, pipeline_id)
        if record is None:
            self._forget_schedule(project, pipeline_id)
            return {"recorded": False, "reason": "pipeline does not exist"}
        status = record.get("status") or DEFAULT_STATUS
        if status != PipelineStatus.active or not record.get("schedule"):
            return {
                "recorded": False,
                "reason": f"pipeline is {status}" if status != PipelineStatus.active else "no schedule",
            }
        scheduled = _scheduled_minute(scheduled_time, now)
        following = parse_cron(record["schedule"]).next_after(max(scheduled, now))
        recorded = self.store.record_firing(
            project, record, timeutil.sortable(scheduled), timeutil.iso(following), timeutil.iso(now)
        )
        return {
            "recorded": recorded,
            "scheduled_at": timeutil.iso(scheduled),
            "next_run_at": timeutil.iso(following),
            "revision": record.get("revision"),
        }

    # -- helpers ----------------------------------------------------------------------------------
    def _locate(self, project: str, ref: str | int) -> dict[str, Any]:
        """By name (any letter case), else by id (`pipeline-3` or `3`)."""
        if isinstance(ref, str):
            record = self.store.find_by_name(project, ref)
            if record is not None:
                return record
        try:
            number = ids.parse(KIND, ref)
        except ValidationFailed:
            raise NotFound(f"Pipeline '{ref}' not found.") from None
        return self._require(project, number)

    def _require(self, project: str, pipeline_id: int) -> dict[str, Any]:
        record = self.store.get(project, pipeline_id)
        if record is None:
            raise NotFound(f"Pipeline {ids.render(KIND, pipeline_id)} not found.")
        return record

    def locate_by_id(self, project: str, value: Any) -> str | int:
        """The `id` of seed 003's PUT body or DELETE query: `pipeline-3` or 3 (422 otherwise)."""
        if value is None or value == "":
            raise ValidationFailed("id is required: the pipeline's id (pipeline-<n> or <n>).")
        return ids.parse(KIND, value)

    def _schedule(self, expression: str) -> str:
        expression = " ".join(expression.split())
        check_schedule(expression)
        return expression

    def _references(self, project: str, request: DefinitionRequest) -> dict[str, int]:
        """connectorId/schemaId as stored ids, each checked to exist (the write re-checks it)."""
        found: dict[str, int] = {}
        for field, label, kind in (
            ("connector_id", "connectorId", "connector"),
            ("schema_id", "schemaId", "schema"),
        ):
            value = getattr(request, field)
            if value is None:
                continue
            try:
                number = ids.parse(kind, value)
            except ValidationFailed:
                raise ValidationFailed(f"{label} '{value}' is not a {kind} id ({kind}-<n>).") from None
            if not self.store.exists(project, kind, number):
                raise ValidationFailed(f"{label} {ids.render(kind, number)} does not exist.")
            found[field] = number
        return found

    def _sync_schedule(self, project: str, record: dict[str, Any]) -> None:
        """Make EventBridge hold what the record says (a repeated PUT repairs a failed sync)."""
        pipeline_id = int(record["id"])
        if record.get("schedule"):
            status = record.get("status") or DEFAULT_STATUS
            self.schedules.put(
                project, pipeline_id, record["schedule"], enabled=status == PipelineStatus.active
            )
        else:
            self.schedules.remove(project, pipeline_id)

    def _forget_schedule(self, project: str, pipeline_id: int) -> None:
        try:
            self.schedules.remove(project, pipeline_id)
        except Unavailable as exc:
            # A leftover schedule is harmless: its firings find no pipeline and remove it then.
            logger.error("schedule not removed", extra={"pipeline_id": pipeline_id, "reason": exc.detail})

    def _views(self, project: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not records:
            return []
        now = self._clock()
        references = self.store.references(project, records)
        last_runs = self.store.last_runs(project, [int(r["id"]) for r in records])
        return [definition_view(r, last_runs.get(int(r["id"])), references, now) for r in records]


def _same_name(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _scheduled_minute(value: Any, now: pendulum.DateTime) -> pendulum.DateTime:
    """EventBridge Scheduler's `<aws.scheduler.scheduled-time>`; when absent or unfilled, now."""
    if isinstance(value, str) and value and not value.startswith("<"):
        try:
            return timeutil.parse_instant(value, "scheduled_time").replace(second=0, microsecond=0)
        except ValidationFailed:
            pass
    return now.replace(second=0, microsecond=0)
