"""The run engine's use cases: trigger, dispatch, plan, step, execute a node, finish, reconcile,
and the Runs API reads and actions (cancel, resume, logs, preview, profile, dry run).

A Sluice run is an execution (SPEC 1): the same run item, counter and end fields as Watcher's,
with the engine's attributes beside them (revision, params, variables, plan, progress, error).
Every collaborator is a port passed in, so unit tests give fakes and the Lambdas give AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pendulum
from aws_lambda_powertools import Logger

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.events import EXECUTION_ENDED, EventPublisher
from sluice.domain.executions import (
    ConcurrentEnd,
    EndReport,
    PipelineAdvance,
    Run,
    apply_end,
    run_from_stored,
)
from sluice.domain.flows import FlowGraph
from sluice.domain.graph import Graph
from sluice.domain.run_engine.errors import (
    FlowChildStarted,
    NodeFailed,
    NotPending,
    SlotsFull,
    TriggerReplayed,
)
from sluice.domain.runs import levels, plan_run, select_scope
from sluice.domain.views.runs import runs_api_view
from sluice.errors import Conflict, InvalidRequest, NotFound, SluiceError, Unavailable, ValidationFailed

DEFAULT_PARALLELISM = 4
FINISH_ATTEMPTS = 10
RUN_PAGE_SIZE = 50
MAX_RUN_PAGE_SIZE = 100
FINISHED = ("success", "failed", "cancelled")
# The reconciler sends a pending run's message again once it was last sent this long ago: the
# message may be lost (a failed send, a restarted local stack, the dead-letter queue after 1000
# receives). A queued run is dispatched within seconds, a full project's head is retried every 2 s.
STALE_PENDING_SECONDS = 5 * 60
# A flow level's children are started by the request or hand-over that moved the parent there
# (Lambdas of 120 s at most); a pipeline of the level with no child run after this long never will.
FLOW_START_GRACE_SECONDS = 3 * 60
# A run holds its slot just before the dispatcher (30 s at most) starts its execution, so a missing
# execution is only taken for a dead one after this long.
EXECUTION_START_GRACE_SECONDS = 60
STAGE_OF_NODE = {"source": "extract", "transform": "transform", "filter": "transform", "target": "load"}


class RevisionGraphs:
    """Graphs of pipeline revisions, which never change once written: every node of a run reads its
    run's revision, so a container keeps the latest few instead of reading and parsing the item
    once per node."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._graphs: OrderedDict[tuple[str, int, int], Graph] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> Graph | None:
        with self._lock:
            graph = self._graphs.get(key)
            if graph is not None:
                self._graphs.move_to_end(key)
            return graph

    def put(self, key: tuple[str, int, int], graph: Graph) -> None:
        with self._lock:
            self._graphs[key] = graph
            self._graphs.move_to_end(key)
            while len(self._graphs) > self.size:
                self._graphs.popitem(last=False)


logger = Logger(service="sluice")


# -- ports ------------------------------------------------------------------------------------------
class RunItems(Protocol):
    def next_run_id(self, project: str) -> int: ...
    def create(
        self, project: str, run: Run, engine: dict[str, Any], claim: dict[str, Any] | None = None
    ) -> None: ...
    def trigger_claim(self, project: str, key: str) -> dict[str, Any] | None: ...
    def get(self, project: str, run_id: int) -> dict[str, Any] | None: ...
    def node_runs(self, project: str, run_id: int) -> list[dict[str, Any]]: ...
    def node_run(self, project: str, run_id: int, node_id: str) -> dict[str, Any] | None: ...
    def active(self, project: str) -> list[int]: ...
    def pipeline_run_ids(self, project: str, pipeline_id: int, offset: int, limit: int) -> list[int]: ...
    def get_many(self, project: str, run_ids: list[int]) -> list[dict[str, Any]]: ...
    def store_plan(
        self, project: str, run_id: int, plan: dict, node_runs: list[dict], watermark: Any
    ) -> bool: ...
    def allocate_node_run_ids(self, project: str, count: int) -> list[int]: ...
    def update_node_run(
        self, project: str, run_id: int, node_id: str, changes: dict[str, Any], only_if: tuple[str, ...] = ()
    ) -> bool: ...
    def add_progress(self, project: str, run_id: int, stage: str, rows: int) -> None: ...
    def note_error(self, project: str, run_id: int, error: str) -> None: ...
    def end(
        self,
        project: str,
        ended: Run,
        seen_end_count: int,
        from_statuses: tuple[str, ...],
        extra: dict[str, Any],
        advance: PipelineAdvance | None,
        watermark_candidate: Any = None,
    ) -> None: ...
    def forget_active(self, project: str, run_id: int) -> None: ...
    def requeue(self, project: str, run_id: int, seen_queued_at: str | None, now: str) -> int | None: ...
    def children(self, project: str, run_id: int) -> list[dict[str, Any]]: ...
    def start_flow_level(self, project: str, parent_id: int, level: int, count: int) -> bool: ...
    def flow_child_done(
        self, project: str, parent_id: int, level: int, pipeline_id: int, succeeded: bool
    ) -> dict[str, Any] | None: ...


class Definitions(Protocol):
    def get(self, project: str, pipeline_id: int) -> dict[str, Any] | None: ...
    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None: ...
    def revision(self, project: str, pipeline_id: int, number: int) -> dict[str, Any] | None: ...
    def all(self, project: str) -> list[dict[str, Any]]: ...


class Slots(Protocol):
    def claim_slot(self, project: str, run_id: int, execution_name: str) -> None: ...
    def release_slot(self, project: str, run_id: int, back_to_pending: bool = False) -> bool: ...
    def request_cancel(self, project: str, run_id: int) -> str: ...
    def has_free_slot(self, project: str) -> bool: ...


class RunQueue(Protocol):
    def send(self, project: str, run_id: int, resend: int = 0) -> None:
        """Queue the run; `resend` numbers the reconciler's re-sends (0: the trigger's send)."""
        ...


@dataclass
class Reconciliation:
    """What one reconciler pass did in a project."""

    finished: int = 0  # runs ended: their execution died, or a pending run's cancel was lost
    requeued: int = 0  # pending runs whose message was sent again
    flows: int = 0  # flow parents moved on: children counted or started, the level advanced or ended
    errors: int = 0  # runs that could not be reconciled (logged; the next pass tries again)


class LineageRecorder(Protocol):
    def record(self, project: str, pipeline_id: int, sources: list[str], targets: list[str]) -> None: ...


class NodeExecutor(Protocol):
    """The engine: runs one node (dict shape of sluice.engine.NodeRun) and returns NodeResult."""

    def run(
        self, project: str, artifact_run: str, node: dict, inputs: dict[str, str], options: dict
    ) -> Any: ...
    def dry_run(
        self, project: str, nodes: list[tuple[dict, list[str]]], options: dict
    ) -> list[tuple[str, Any]]: ...


# -- requests ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRequest:
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    scope: str = "full"
    target_node: str | None = None
    trigger: str = "api"
    resumed_from: int | None = None
    parent_id: int | None = None  # a flow run's child (seed 000): its parent run
    flow_level: int | None = None  # and the level of the flow it belongs to

    def fingerprint(self, surface: str, pipeline_id: int) -> str:
        body = {
            "surface": surface,
            "pipeline": pipeline_id,
            "params": self.params,
            "variables": self.variables,
            "full_refresh": self.full_refresh,
            "scope": self.scope,
            "target": self.target_node,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def run_ref(run_id: int) -> str:
    return ids.render("run", run_id)


def artifact_run(run_id: int) -> str:
    """The run's folder name under projects/<p>/runs/ (the engine's `run_id`)."""
    return run_ref(run_id)


def execution_name(project: str, run_id: int) -> str:
    """Step Functions names allow [A-Za-z0-9-_] and 80 characters; the run id keeps it unique."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in project)
    suffix = f"-{run_id}"
    return safe[: 80 - len(suffix)] + suffix


def adjacency(graph: Graph) -> dict[str, list[str]]:
    return {node.id: [e.source for e in graph.inputs_of(node.id)] for node in graph.nodes}


# -- the engine ------------------------------------------------------------------------------------
class RunEngine:
    def __init__(
        self,
        runs: RunItems,
        definitions: Definitions,
        slots: Slots,
        queue: RunQueue | None = None,
        publisher: EventPublisher | None = None,
        lineage: LineageRecorder | None = None,
        clock: Callable[[], pendulum.DateTime] = timeutil.now,
        graphs: RevisionGraphs | None = None,
    ):
        self.runs = runs
        self.definitions = definitions
        self.slots = slots
        self.queue = queue
        self.publisher = publisher
        self.lineage = lineage
        self._clock = clock
        # Shared by the engines of one table (the composition root keeps one per table); else fresh.
        self.graphs = graphs if graphs is not None else RevisionGraphs()

    # -- locating ---------------------------------------------------------------------------------
    def pipeline_by_id(self, project: str, ref: str | int) -> dict[str, Any]:
        try:
            number = ids.parse("pipeline", ref)
        except ValidationFailed:
            raise NotFound(f"Pipeline '{ref}' not found.") from None
        record = self.definitions.get(project, number)
        if record is None:
            raise NotFound(f"Pipeline {ids.render('pipeline', number)} not found.")
        return record

    def pipeline_by_name(self, project: str, name: str) -> dict[str, Any]:
        record = self.definitions.find_by_name(project, name)
        if record is None:
            raise NotFound(f"Pipeline '{name}' not found.")
        return record

    def pipeline_by_ref(self, project: str, ref: str) -> dict[str, Any]:
        """By name first (seed 001), else by id (seed 003: `pipeline-<n>` or `<n>`)."""
        record = self.definitions.find_by_name(project, ref)
        return record if record is not None else self.pipeline_by_id(project, ref)

    def run_item(self, project: str, ref: str | int) -> dict[str, Any]:
        try:
            number = ids.parse("run", ref)
        except ValidationFailed:
            raise NotFound(f"Run '{ref}' not found.") from None
        item = self.runs.get(project, number)
        if item is None:
            raise NotFound(f"Run {run_ref(number)} not found.")
        return item

    def graph_of(self, project: str, pipeline_id: int, revision: int | None) -> Graph:
        if revision:
            cached = self.graphs.get((project, pipeline_id, int(revision)))
            if cached is not None:
                return cached
            found = self.definitions.revision(project, pipeline_id, int(revision))
            if found is not None:
                graph = Graph.from_document(found["graph"])
                self.graphs.put((project, pipeline_id, int(revision)), graph)
                return graph
        record = self.definitions.get(project, pipeline_id)
        if record is None:
            raise NotFound(f"Pipeline {ids.render('pipeline', pipeline_id)} no longer exists.")
        return Graph.from_document(record.get("graph"))

    # -- trigger ----------------------------------------------------------------------------------
    def trigger(
        self,
        project: str,
        record: dict[str, Any],
        request: RunRequest,
        render: Callable[[dict[str, Any]], dict[str, Any]],
        idempotency_key: str | None = None,
        surface: str = "002",
    ) -> tuple[dict[str, Any], bool]:
        """Write the run pending and queue it; (rendered response, created). With an
        Idempotency-Key already used for the same request, the first response and False."""
        pipeline_id = int(record["id"])
        if idempotency_key is not None:
            fingerprint = request.fingerprint(surface, pipeline_id)
            replayed = self._replay(project, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed, False
        status = record.get("status") or "active"
        if status == "paused":
            raise Conflict(
                f"Pipeline {record['name']} is paused; set its status to active before running it."
            )
        graph = Graph.from_document(record.get("graph"))
        if graph.empty:
            raise InvalidRequest(f"Pipeline {record['name']} has no nodes to run.")
        select_scope(adjacency(graph), request.target_node, request.scope)
        now = self._clock()
        run_id = self.runs.next_run_id(project)
        run = Run(
            id=run_id,
            pipeline_id=pipeline_id,
            status="pending",
            start_date=now,
            parent_id=request.parent_id,
            ancestors=() if request.parent_id is None else (request.parent_id,),
            origin="sluice",
            created_at=now,
        )
        engine = {
            "revision": int(record.get("revision") or 0),
            "pipeline_name": record["name"],
            "params": request.params,
            "variables": {k: v for k, v in request.variables.items()},
            "full_refresh": request.full_refresh,
            "scope": request.scope,
            "target_node": request.target_node,
            "trigger": request.trigger,
            "resumed_from": request.resumed_from,
            "flow_parent": request.parent_id,
            "flow_level": request.flow_level,
            "progress_stage": "queued",
            "rows_processed": 0,
            "queued_at": timeutil.iso(now),
        }
        item = {**_stored(run), **engine}
        response = render(item)
        claim = None
        if idempotency_key is not None:
            claim = {"key": idempotency_key, "request_hash": fingerprint, "response": response}
        try:
            self.runs.create(project, run, {k: v for k, v in engine.items() if v is not None}, claim)
        except TriggerReplayed as replay:
            return self._check_replay(replay.claim, fingerprint, idempotency_key or ""), False
        try:
            if self.queue is None:
                raise Unavailable("no run queue is configured")
            self.queue.send(project, run_id)
        except Exception as exc:  # noqa: BLE001 - any queue failure leaves the run unqueued
            logger.exception("run not queued", extra={"project": project, "run_id": run_id})
            self.finish(project, run_id, "failed", error="The run could not be queued; trigger it again.")
            raise Unavailable("The run could not be queued; trigger it again in a moment.") from exc
        return response, True

    def _replay(self, project: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        claim = self.runs.trigger_claim(project, key)
        return None if claim is None else self._check_replay(claim, fingerprint, key)

    @staticmethod
    def _check_replay(claim: dict[str, Any], fingerprint: str, key: str) -> dict[str, Any]:
        if claim.get("request_hash") != fingerprint:
            raise Conflict(
                f"Idempotency-Key '{key}' was already used for a different run request; use a new key."
            )
        return claim["response"]

    # -- dispatch (the run queue's consumer) ------------------------------------------------------
    def dispatch(self, project: str, run_id: int, start: Callable[[str], None]) -> str:
        """'dropped' (not pending any more), 'full' (slots taken; retry later), 'started'."""
        item = self.runs.get(project, run_id)
        if item is None or item.get("status") != "pending":
            return "dropped"
        if item.get("cancel_requested"):
            self.finish(project, run_id, "cancelled", only_pending=True)
            return "dropped"
        name = execution_name(project, run_id)
        try:
            self.slots.claim_slot(project, run_id, name)
        except SlotsFull:
            return "full"
        except NotPending:
            return "dropped"
        try:
            start(name)
        except Exception:
            self.slots.release_slot(project, run_id, back_to_pending=True)
            raise
        return "started"

    # -- the state machine's tasks ----------------------------------------------------------------
    def plan(self, project: str, run_id: int) -> dict[str, Any]:
        item = self._require_run(project, run_id)
        if item.get("plan"):
            return {"project": project, "run_id": run_id, "level": 0}
        pipeline_id = int(item["pipeline_id"])
        graph = self.graph_of(project, pipeline_id, item.get("revision"))
        edges = adjacency(graph)
        reusable: dict[str, dict[str, Any]] = {}
        scope, target = item.get("scope") or "full", item.get("target_node")
        if item.get("resumed_from"):
            reusable = self._reusable(project, int(item["resumed_from"]), graph)
        elif target:
            # The target's inputs come from the pipeline's latest outputs of those nodes.
            chosen = select_scope(edges, target, scope)
            latest = self._latest_outputs(project, pipeline_id, run_id)
            reusable = {node: nr for node, nr in latest.items() if node not in chosen}
        try:
            plan = plan_run(
                edges,
                target,
                scope,
                {node: str(nr["id"]) for node, nr in reusable.items()},
            )
        except ValidationFailed as exc:
            raise InvalidRequest(f"The run cannot be planned: {exc.detail}") from exc
        record = self.definitions.get(project, pipeline_id) or {}
        parallelism = int((record.get("execution_config") or {}).get("parallelism") or DEFAULT_PARALLELISM)
        planned = set(plan.nodes)
        needed = {p for node in plan.nodes for p in edges[node] if p not in planned}
        reused = sorted((set(plan.reused) | needed) & set(reusable))
        ordered = plan.nodes + reused
        numbers = self.runs.allocate_node_run_ids(project, len(ordered))
        node_runs = []
        for position, (node_id, number) in enumerate(zip(ordered, numbers, strict=True)):
            node = graph.node(node_id)
            entry: dict[str, Any] = {
                "id": number,
                "node_id": node_id,
                "node_type": node.node_type if node else None,
                "position": position,
                "status": "pending",
            }
            if node_id in reusable and node_id not in planned:
                old = reusable[node_id]
                entry.update(
                    status="reused",
                    reused_from=int(old.get("reused_from") or old["run_id"]),
                    artifact_run=old.get("artifact_run"),
                    output=old.get("output"),
                    row_count=old.get("row_count"),
                    columns=old.get("columns"),
                )
            node_runs.append(entry)
        stored_plan = {"levels": plan.levels, "reused": reused, "parallelism": parallelism}
        self.runs.store_plan(project, run_id, stored_plan, node_runs, record.get("watermark"))
        return {"project": project, "run_id": run_id, "level": 0}

    def _reusable(self, project: str, old_run_id: int, graph: Graph) -> dict[str, dict[str, Any]]:
        """Node runs of the resumed run whose outputs still hold: they succeeded (or were reused),
        and neither the node nor anything upstream of it changed since."""
        old = self.runs.get(project, old_run_id)
        if old is None:
            return {}
        old_graph = self.graph_of(project, int(old["pipeline_id"]), old.get("revision"))
        succeeded = {
            nr["node_id"]: nr
            for nr in self.runs.node_runs(project, old_run_id)
            if nr.get("status") in ("success", "reused") and nr.get("output")
        }
        unchanged: dict[str, bool] = {}

        def holds(node_id: str) -> bool:
            if node_id not in unchanged:
                now, then = graph.node(node_id), old_graph.node(node_id)
                same = (
                    node_id in succeeded
                    and now is not None
                    and then is not None
                    and (now.node_type, now.config) == (then.node_type, then.config)
                    and sorted(e.source for e in graph.inputs_of(node_id))
                    == sorted(e.source for e in old_graph.inputs_of(node_id))
                )
                unchanged[node_id] = same and all(holds(e.source) for e in graph.inputs_of(node_id))
            return unchanged[node_id]

        return {node_id: nr for node_id, nr in succeeded.items() if holds(node_id)}

    def _latest_outputs(self, project: str, pipeline_id: int, exclude: int) -> dict[str, dict[str, Any]]:
        """Each node's output from the pipeline's most recent runs that produced one (newest wins)."""
        found: dict[str, dict[str, Any]] = {}
        for run_id in self.runs.pipeline_run_ids(project, pipeline_id, 0, 20):
            if run_id == exclude:
                continue
            for nr in self.runs.node_runs(project, run_id):
                if nr.get("status") in ("success", "reused") and nr.get("output"):
                    found.setdefault(nr["node_id"], nr)
        return found

    def next_step(self, project: str, run_id: int, level: int) -> dict[str, Any]:
        item = self._require_run(project, run_id)
        plan = item.get("plan") or {}
        planned: list[list[str]] = plan.get("levels") or []
        base = {"project": project, "run_id": run_id, "nodes": [], "parallelism": 1}
        if item.get("cancel_requested"):
            return {**base, "level": level, "action": "cancel"}
        if level >= len(planned):
            return {**base, "level": level, "action": "finish"}
        return {
            **base,
            "level": level + 1,
            "action": "run",
            "nodes": list(planned[level]),
            "parallelism": max(1, int(plan.get("parallelism") or DEFAULT_PARALLELISM)),
        }

    def execute(
        self,
        project: str,
        run_id: int,
        node_id: str,
        executor: NodeExecutor,
        variables: Callable[[], Mapping[str, str]],
    ) -> dict[str, Any]:
        """Run one node of the run. A failed node is recorded and re-raised (NodeFailed), which
        fails the level's Map and so the run; a node of a run being cancelled does not start."""
        item = self._require_run(project, run_id)
        current = self.runs.node_run(project, run_id, node_id)
        if current is None:
            raise NodeFailed(f"node '{node_id}' is not in the plan of {run_ref(run_id)}")
        if current.get("status") == "success":
            return {
                "node_id": node_id,
                "status": "success",
                "row_count": _int_or_none(current.get("row_count")),
            }
        if item.get("cancel_requested"):
            self.runs.update_node_run(project, run_id, node_id, {"status": "cancelled"}, only_if=("pending",))
            return {"node_id": node_id, "status": "cancelled"}
        graph = self.graph_of(project, int(item["pipeline_id"]), item.get("revision"))
        node = graph.node(node_id)
        started = timeutil.iso(self._clock())
        self.runs.update_node_run(
            project,
            run_id,
            node_id,
            {"status": "running", "started_at": started},
            only_if=("pending", "running"),
        )
        try:
            if node is None:
                raise NodeFailed(
                    f"node '{node_id}' is not in revision {item.get('revision')} of the pipeline"
                )
            inputs = {}
            for edge in graph.inputs_of(node_id):
                upstream = self.runs.node_run(project, run_id, edge.source)
                if not upstream or not upstream.get("output"):
                    raise NodeFailed(f"input '{edge.source}' of node '{node_id}' has no output in this run")
                inputs[edge.source] = upstream["output"]
            config = _substituted(node.config, variables, item.get("variables") or {}, node_id)
            options = {
                "full_refresh": bool(item.get("full_refresh")),
                "params": item.get("params") or {},
                "watermark": item.get("watermark"),
            }
            spec = {"id": node.id, "nodeType": node.node_type, "config": config, "label": node.label}
            result = executor.run(project, artifact_run(run_id), spec, inputs, options)
        except NodeFailed as failed:
            self._record_failure(project, run_id, node_id, failed, started)
            raise
        written = result.written.to_dict() if result.written else None
        self.runs.update_node_run(
            project,
            run_id,
            node_id,
            {
                "status": "success",
                "row_count": result.row_count,
                "duration_ms": result.duration_ms,
                "started_at": result.started_at,
                "finished_at": result.finished_at,
                "output": result.output.key,
                "artifact_run": artifact_run(run_id),
                "compiled_sql": result.compiled_sql,
                "written": written,
                "watermark": None if result.watermark is None else str(result.watermark),
                "incremental": bool(node.config.get("watermark_column")) and not item.get("full_refresh"),
                "datasets_read": list(result.datasets_read),
                "columns": [c.to_dict() for c in result.columns],
            },
        )
        self.runs.add_progress(
            project, run_id, STAGE_OF_NODE.get(node.node_type, "transform"), result.row_count
        )
        return {"node_id": node_id, "status": "success", "row_count": result.row_count}

    def _record_failure(
        self, project: str, run_id: int, node_id: str, failed: Any, started: str | None
    ) -> None:
        self.runs.update_node_run(
            project,
            run_id,
            node_id,
            {
                "status": "failed",
                "error": failed.detail,
                "started_at": failed.started_at or started,
                "finished_at": failed.finished_at or timeutil.iso(self._clock()),
                "duration_ms": failed.duration_ms or 0,
                "compiled_sql": failed.compiled_sql,
                "artifact_run": artifact_run(run_id),
            },
        )
        self.runs.note_error(project, run_id, f"node '{node_id}' failed: {failed.detail}")

    def finish(
        self,
        project: str,
        run_id: int,
        outcome: str,
        error: Any = None,
        only_pending: bool = False,
    ) -> dict[str, Any]:
        """End the run (idempotent): Watcher's metrics from what its targets wrote, the pipeline's
        watermark and target times moved on success, node runs left over closed, the slot given
        back, execution.ended published and lineage recorded on success."""
        status = {"success": "success", "failed": "failed", "cancelled": "cancelled"}.get(outcome, "failed")
        for attempt in range(FINISH_ATTEMPTS):
            item = self.runs.get(project, run_id)
            if item is None:
                return {"project": project, "run_id": run_id, "status": "gone"}
            if item.get("status") in FINISHED:
                self.slots.release_slot(project, run_id)
                self.runs.forget_active(project, run_id)
                # A retried finish repeats a hand-over its first attempt may have lost (counted once).
                self._hand_over(project, item, item["status"] == "success")
                return {"project": project, "run_id": run_id, "status": item["status"]}
            if only_pending and item.get("status") != "pending":
                return {"project": project, "run_id": run_id, "status": item.get("status")}
            node_runs = self.runs.node_runs(project, run_id)
            if status == "success" and any(n.get("status") == "failed" for n in node_runs):
                status = "failed"
            message = None
            if status == "failed":
                message = item.get("error") or _error_text(error) or "The run failed."
            ended, advance, candidate = self._ended(item, node_runs, status)
            # Node runs first, so a reader who sees the run finished sees no node left pending.
            leftover = "cancelled" if status == "cancelled" else "skipped"
            for node_run in node_runs:
                if node_run.get("status") == "pending":
                    self.runs.update_node_run(
                        project, run_id, node_run["node_id"], {"status": leftover}, ("pending",)
                    )
            extra = {"error": message, "next_watermark": candidate, "progress_stage": "done"}
            try:
                self.runs.end(
                    project,
                    ended,
                    int(item.get("end_count") or 0),
                    ("pending",) if only_pending else ("pending", "running"),
                    extra,
                    advance,
                    candidate,
                )
            except ConcurrentEnd:
                time.sleep(0.02 * (attempt + 1))
                continue
            break
        else:
            raise Conflict(f"Run {run_ref(run_id)} kept changing while it was being finished.")
        self.slots.release_slot(project, run_id)
        if status == "success" and not item.get("flow"):
            self._after_success(project, ended, node_runs)
        self._hand_over(project, item, status == "success")
        return {"project": project, "run_id": run_id, "status": status}

    def _hand_over(self, project: str, item: dict[str, Any], succeeded: bool) -> None:
        """A flow child's end, told to its parent."""
        if item.get("flow_parent") is not None:
            self._flow_child_finished(
                project,
                int(item["flow_parent"]),
                int(item.get("flow_level") or 0),
                int(item["pipeline_id"]),
                succeeded,
            )

    def _ended(
        self, item: dict[str, Any], node_runs: list[dict[str, Any]], status: str
    ) -> tuple[Run, PipelineAdvance | None, str | None]:
        run = run_from_stored(item)
        now = self._clock()
        end = now if now > run.start_date else run.start_date.add(microseconds=1)
        written = [n["written"] for n in node_runs if n.get("status") == "success" and n.get("written")]
        total = sum(int(w.get("rows_written") or 0) for w in written)
        inserts = sum(int(w.get("inserts") or 0) for w in written)
        updates = sum(int(w.get("updates") or 0) for w in written)
        duration = int((end - run.start_date).total_seconds())
        throughput = round(total / duration, 4) if duration > 0 else 0.0
        report = EndReport(
            end_date=end,
            completed_successfully=status == "success",
            duration_seconds=duration,
            throughput=throughput,
            total_rows=total,
            inserts=inserts,
            updates=updates,
            soft_deletes=0,
            execution_metadata=run.execution_metadata,
        )
        ended = replace(apply_end(run, report, now), status=status)
        candidate = next(
            (
                n.get("watermark")
                for n in sorted(node_runs, key=lambda n: int(n.get("position", 0)))
                if n.get("status") == "success" and n.get("incremental") and n.get("watermark") is not None
            ),
            None,
        )
        advance = None
        if status == "success" and not item.get("flow"):  # a flow's parent moves no pipeline
            advance = PipelineAdvance(run.pipeline_id, candidate, report.target_times())
        return ended, advance, candidate

    def _after_success(self, project: str, ended: Run, node_runs: list[dict[str, Any]]) -> None:
        if self.publisher is not None:
            try:
                self.publisher.publish(
                    EXECUTION_ENDED,
                    {"project": project, "pipeline_id": ended.pipeline_id, "execution_id": ended.id},
                )
            except Unavailable as exc:
                logger.error(
                    "execution.ended not published", extra={"run_id": ended.id, "reason": exc.detail}
                )
        ran = [n for n in node_runs if n.get("status") == "success"]
        targets = sorted({n["written"]["dataset"] for n in ran if (n.get("written") or {}).get("dataset")})
        sources = sorted({name for n in ran for name in n.get("datasets_read") or []})
        if self.lineage is not None and (targets or sources):  # a reader alone records its reads
            try:
                self.lineage.record(project, ended.pipeline_id, sources, targets)
            except SluiceError as exc:
                logger.warning("run lineage not recorded", extra={"run_id": ended.id, "reason": exc.detail})

    # -- reconciling what a dead Lambda or a lost message left behind ----------------------------
    def reconcile(self, project: str, execution_status: Callable[[str], str | None]) -> Reconciliation:
        """One pass over the project's active index, so that no run stays pending or running for
        ever: a running run whose execution is no longer RUNNING ends failed; a pending run whose
        message was sent STALE_PENDING_SECONDS ago is sent again while the project has a free slot;
        a flow parent whose hand-over was lost is moved on as the hand-over would have; finished
        runs left in the index are forgotten. Every step is conditional, so a pass racing the
        normal path, or another pass, changes nothing twice."""
        report = Reconciliation()
        now = self._clock()
        free_slot: bool | None = None  # read once, and only when a stale pending run needs it
        for run_id in self.runs.active(project):
            try:
                item = self.runs.get(project, run_id)
                if item is None:
                    self.runs.forget_active(project, run_id)
                    continue
                status = item.get("status")
                if status in FINISHED:
                    self.slots.release_slot(project, run_id)
                    self.runs.forget_active(project, run_id)
                elif item.get("flow"):
                    if status == "running" and self._reconcile_flow(project, item, now):
                        report.flows += 1
                elif status == "pending":
                    if not _older_than(
                        item.get("queued_at") or item.get("created_at"), now, STALE_PENDING_SECONDS
                    ):
                        continue
                    if item.get("cancel_requested"):
                        # The cancel that ends a pending run at once died before it did.
                        self.finish(project, run_id, "cancelled", only_pending=True)
                        report.finished += 1
                        continue
                    if free_slot is None:
                        free_slot = self.slots.has_free_slot(project)
                    # While every slot is taken the dispatcher could not start it anyway, and a
                    # waiting run's message is most likely still queued: no pile of duplicates.
                    if free_slot and self._requeue(project, item, now):
                        report.requeued += 1
                elif status == "running" and item.get("execution_name"):
                    state = execution_status(item["execution_name"])
                    if state is None or state == "RUNNING":
                        continue
                    if state == "MISSING" and not _older_than(
                        item.get("running_at"), now, EXECUTION_START_GRACE_SECONDS
                    ):
                        continue  # the dispatcher took the slot and is about to start it
                    self.finish(
                        project,
                        run_id,
                        "failed",
                        error=f"The run's state machine execution ended {state} before the run was finished.",
                    )
                    report.finished += 1
            except Exception:  # noqa: BLE001 - one run's trouble must not stop the others
                logger.exception("run not reconciled", extra={"project": project, "run_id": run_id})
                report.errors += 1
        return report

    def _requeue(self, project: str, item: dict[str, Any], now: pendulum.DateTime) -> bool:
        """Send a stale pending run's message again, once per staleness: the conditional move of
        its `queued_at` decides which of two racing reconcilers sends. A duplicate of a message
        still queued is harmless: the dispatcher drops a run that is no longer pending."""
        if self.queue is None:
            logger.warning("no run queue to re-send a pending run to", extra={"run_id": item["id"]})
            return False
        run_id = int(item["id"])
        resend = self.runs.requeue(project, run_id, item.get("queued_at"), timeutil.iso(now))
        if resend is None:
            return False
        self.queue.send(project, run_id, resend=resend)
        logger.info("pending run sent again", extra={"project": project, "run_id": run_id, "resend": resend})
        return True

    def _reconcile_flow(self, project: str, parent: dict[str, Any], now: pendulum.DateTime) -> bool:
        """Move on a flow parent whose hand-over was lost, as the hand-over would have: start the
        level's pipelines that never got a child run (after FLOW_START_GRACE_SECONDS; counted as
        not succeeded instead once a cancel was asked), count the ended children the parent was
        never told about once no child of the level is live, and advance a level whose last
        child was counted but whose advance died. True when it did any of that."""
        parent_id, level = int(parent["id"]), int(parent.get("flow_level") or 0)
        planned = _flow_levels(parent)
        members = planned[level] if level < len(planned) else []
        counted = {int(p) for p in parent.get("flow_counted") or ()}
        children: dict[int, dict[str, Any]] = {}
        for child in self.runs.children(project, parent_id):
            if int(child.get("flow_level") or 0) == level:
                children[int(child["pipeline_id"])] = child
        live = any(c.get("status") not in FINISHED for c in children.values())
        missing = [m for m in members if m not in counted and m not in children]
        ended = [m for m in members if m not in counted and m in children and not live]
        changed = False
        started_at = (
            parent.get("flow_level_started_at") or parent.get("updated_at") or parent.get("created_at")
        )
        if missing and _older_than(started_at, now, FLOW_START_GRACE_SECONDS):
            logger.warning("flow children never started", extra={"run_id": parent_id, "pipelines": missing})
            if parent.get("cancel_requested"):
                for member in missing:
                    self._flow_child_finished(project, parent_id, level, member, False)
            else:
                self._start_flow_children(project, parent_id, level, missing)
            changed = True
        for member in ended:
            logger.warning(
                "flow hand-over lost", extra={"run_id": parent_id, "child": children[member]["id"]}
            )
            self._flow_child_finished(
                project, parent_id, level, member, children[member].get("status") == "success"
            )
            changed = True
        if not changed and int(parent.get("flow_remaining") or 0) > 0:
            return False
        current = self.runs.get(project, parent_id)
        if (
            current is not None
            and current.get("status") == "running"
            and int(current.get("flow_level") or 0) == level
            and int(current.get("flow_remaining") or 0) <= 0
        ):
            # Every child of the level was counted, yet the level neither moved on nor ended.
            self._advance_flow(project, current)
            changed = True
        return changed

    # -- Runs API ---------------------------------------------------------------------------------
    def get_run(self, project: str, ref: str | int) -> dict[str, Any]:
        item = self.run_item(project, ref)
        return runs_api_view(item, self.runs.node_runs(project, int(item["id"])))

    def list_runs(self, project: str, pipeline_id: int, page: int, per_page: int) -> list[dict[str, Any]]:
        run_ids = self.runs.pipeline_run_ids(project, pipeline_id, (page - 1) * per_page, per_page)
        return self.runs.get_many(project, run_ids)

    def cancel(self, project: str, ref: str | int) -> dict[str, Any]:
        item = self.run_item(project, ref)
        run_id = int(item["id"])
        before = self.slots.request_cancel(project, run_id)
        if not before:
            current = self.runs.get(project, run_id) or item
            raise Conflict(
                f"Run {run_ref(run_id)} is {current.get('status')}; only pending or running runs can be cancelled."
            )
        if before == "pending":
            self.finish(project, run_id, "cancelled", only_pending=True)
        if item.get("flow"):
            for child in self.runs.children(project, run_id):
                if child.get("status") not in FINISHED:
                    with contextlib.suppress(Conflict):
                        self.cancel(project, int(child["id"]))
        return {"status": "cancelled"}

    def resume(
        self, project: str, ref: str | int, render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict:
        item = self.run_item(project, ref)
        if item.get("status") != "failed":
            raise Conflict(
                f"Run {run_ref(int(item['id']))} is {item.get('status')}; only failed runs can be resumed."
            )
        record = self.definitions.get(project, int(item["pipeline_id"]))
        if record is None:
            raise NotFound(f"The pipeline of run {run_ref(int(item['id']))} no longer exists.")
        request = RunRequest(
            params=item.get("params") or {},
            variables=item.get("variables") or {},
            full_refresh=bool(item.get("full_refresh")),
            scope=item.get("scope") or "full",
            target_node=item.get("target_node"),
            trigger="resume",
            resumed_from=int(item["id"]),
        )
        response, _ = self.trigger(project, record, request, render)
        return response

    def node_artifact_run(self, project: str, ref: str | int, node_id: str) -> str:
        """The run folder holding a node's artifacts (a reused node's are in an earlier run's)."""
        item = self.run_item(project, ref)
        run_id = int(item["id"])
        node_run = self.runs.node_run(project, run_id, node_id)
        if (
            node_run is None
            or node_run.get("status") not in ("success", "reused")
            or not node_run.get("artifact_run")
        ):
            state = "is not in this run" if node_run is None else f"did not run ({node_run.get('status')})"
            raise NotFound(f"Node '{node_id}' of run {run_ref(run_id)} {state}; it has no output.")
        return str(node_run["artifact_run"])

    def log_sources(
        self, project: str, ref: str | int, node_id: str | None
    ) -> tuple[int, list[tuple[str, str]]]:
        """(run id, [(artifact run, node id)]) of the node runs that executed in this run."""
        item = self.run_item(project, ref)
        run_id = int(item["id"])
        node_runs = sorted(self.runs.node_runs(project, run_id), key=lambda n: int(n.get("position", 0)))
        ran = [
            (str(n.get("artifact_run") or artifact_run(run_id)), n["node_id"])
            for n in node_runs
            if n.get("status") in ("success", "failed") and (node_id is None or n["node_id"] == node_id)
        ]
        return run_id, ran

    def dry_run(
        self,
        project: str,
        record: dict[str, Any],
        params: dict[str, Any],
        variables: Mapping[str, Any],
        executor: NodeExecutor,
        resolved: Callable[[], Mapping[str, str]],
        full_refresh: bool = False,
    ) -> dict[str, Any]:
        """Every node on its first 10 rows, in topological order, in a scratch folder dropped at
        the end: no run, no node run, no object written. A failed node's descendants are skipped."""
        graph = Graph.from_document(record.get("graph"))
        if graph.empty:
            raise InvalidRequest(f"Pipeline {record['name']} has no nodes to run.")
        try:
            order = [n for level in levels(adjacency(graph)) for n in level]
        except ValidationFailed as exc:
            raise InvalidRequest(f"The pipeline cannot be run: {exc.detail}") from exc
        results: dict[str, Any] = {}
        blocked: set[str] = set()
        nodes = []
        for node_id in order:
            node = graph.node(node_id)
            assert node is not None
            upstream = [e.source for e in graph.inputs_of(node_id)]
            entry = {"node_id": node_id, "name": node.label or node_id}
            if any(u in blocked for u in upstream):
                blocked.add(node_id)
                results[node_id] = {**entry, "status": "skipped", "columns": [], "rows": []}
                continue
            try:
                config = _substituted(node.config, resolved, variables, node_id)
            except NodeFailed as failed:
                blocked.add(node_id)
                results[node_id] = {
                    **entry,
                    "status": "failed",
                    "error": failed.detail,
                    "columns": [],
                    "rows": [],
                }
                continue
            nodes.append(
                (
                    node_id,
                    entry,
                    {"id": node.id, "nodeType": node.node_type, "config": config, "label": node.label},
                    upstream,
                )
            )
        options = {"params": params, "full_refresh": full_refresh, "dry_run": True}
        entries = {n[0]: n[1] for n in nodes}
        for node_id, outcome in executor.dry_run(project, [(n[2], n[3]) for n in nodes], options):
            base = entries[node_id]
            if isinstance(outcome, NodeFailed):
                results[node_id] = {
                    **base,
                    "status": "failed",
                    "error": outcome.detail,
                    "columns": [],
                    "rows": [],
                }
            elif outcome is None:
                results[node_id] = {**base, "status": "skipped", "columns": [], "rows": []}
            else:
                results[node_id] = {
                    **base,
                    "status": "success",
                    "columns": [c.name for c in outcome.columns],
                    "rows": outcome.preview.get("rows", [])[:10],
                    "row_count": outcome.row_count,
                }
        return {node_id: results[node_id] for node_id in order if node_id in results}

    # -- flow runs (seed 000) -----------------------------------------------------------------------
    def project_flow(self, project: str) -> FlowGraph:
        """The project's flow graph (seed 000) over all its pipelines, read page by page (Queries)."""
        return FlowGraph.of(self.definitions.all(project))

    def flow_target(self, flow: FlowGraph, project: str, target_type: str, name: str) -> int:
        """The pipeline a seed 000 target names: a pipeline by name, or the writer of a dataset."""
        if target_type == "pipeline":
            return int(self.pipeline_by_name(project, name)["id"])
        if target_type == "dataset":
            writers = flow.writers_of(name)
            if not writers:
                raise NotFound(f"No pipeline writes a dataset named '{name}'.")
            if len(writers) > 1:
                names = ", ".join(sorted(flow.records[w]["name"] for w in writers))
                raise InvalidRequest(
                    f"Dataset '{name}' is written by several pipelines ({names}); target one of them by name."
                )
            return writers[0]
        raise NotFound(f"There is no saved recipe named '{name}'; recipes cannot be run yet.")

    def trigger_flow(
        self,
        project: str,
        flow: FlowGraph,
        target: dict[str, str],
        scope: str,
        render: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """A parent run (never executed itself) over the pipelines the scope selects in the flow
        graph; the first level's children are triggered now, each next level once the previous
        one has succeeded (see _flow_child_finished)."""
        pipeline_id = self.flow_target(flow, project, target["type"], target["name"])
        planned = flow.plan(pipeline_id, scope)
        for level in planned:
            for member in level:
                record = flow.records[member]
                if (record.get("status") or "active") == "paused":
                    raise Conflict(
                        f"Pipeline {record['name']} of this flow is paused; set its status to active before running it."
                    )
                if Graph.from_document(record.get("graph")).empty:
                    raise InvalidRequest(f"Pipeline {record['name']} of this flow has no nodes to run.")
        now = self._clock()
        run_id = self.runs.next_run_id(project)
        run = Run(
            id=run_id,
            pipeline_id=pipeline_id,
            status="running",
            start_date=now,
            origin="sluice",
            created_at=now,
        )
        engine = {
            "pipeline_name": flow.records[pipeline_id]["name"],
            "trigger": "flow",
            "scope": scope,
            "flow": {"target": dict(target), "scope": scope, "levels": planned},
            "flow_level": 0,
            "flow_remaining": len(planned[0]),
            "flow_level_started_at": timeutil.iso(now),
            "progress_stage": "running",
            "rows_processed": 0,
        }
        self.runs.create(project, run, engine)
        self._start_flow_children(project, run_id, 0, planned[0])
        return render({**_stored(run), **engine})

    def _start_flow_children(self, project: str, parent_id: int, level: int, members: list[int]) -> None:
        for member in members:
            record = self.definitions.get(project, int(member))
            try:
                if record is None:
                    raise NotFound(f"Pipeline {ids.render('pipeline', int(member))} no longer exists.")
                request = RunRequest(trigger="flow", parent_id=parent_id, flow_level=level)
                self.trigger(project, record, request, lambda item: {})
            except FlowChildStarted:
                continue  # the hand-over or the reconciler started it first
            except Unavailable:
                continue  # the child was written and finished failed: it was counted then
            except SluiceError as exc:
                logger.warning(
                    "flow child not started",
                    extra={"run_id": parent_id, "pipeline_id": member, "reason": exc.detail},
                )
                self._flow_child_finished(project, parent_id, level, int(member), False)

    def _flow_child_finished(
        self, project: str, parent_id: int, level: int, pipeline_id: int, succeeded: bool
    ) -> None:
        """Count a finished child (once: a repeated count of the same pipeline is ignored); the
        last child of a level ends the parent or starts the next level (see _advance_flow)."""
        try:
            parent = self.runs.flow_child_done(project, parent_id, level, pipeline_id, succeeded)
            if parent is not None:
                self._advance_flow(project, parent)
        except SluiceError as exc:
            logger.error("flow not advanced", extra={"run_id": parent_id, "reason": exc.detail})

    def _advance_flow(self, project: str, parent: dict[str, Any]) -> None:
        """With no child of its level left to count, end the parent (failed if any child of the
        level did not succeed, cancelled if asked) or start the next level. Idempotent: ending is,
        and only one caller moves the level (start_flow_level is conditional)."""
        if int(parent.get("flow_remaining") or 0) > 0:
            return
        parent_id, level = int(parent["id"]), int(parent.get("flow_level") or 0)
        planned = _flow_levels(parent)
        if parent.get("cancel_requested"):
            self.finish(project, parent_id, "cancelled")
        elif parent.get("flow_failed"):
            failed = [
                f"{c.get('pipeline_name')} ({run_ref(int(c['id']))} {c.get('status')})"
                for c in self.runs.children(project, parent_id)
                if c.get("status") in ("failed", "cancelled")
            ]
            self.finish(
                project,
                parent_id,
                "failed",
                error="Not every pipeline of the flow succeeded: "
                + (", ".join(failed) or "a pipeline could not be started")
                + "; the pipelines after them did not run.",
            )
        elif level + 1 >= len(planned):
            self.finish(project, parent_id, "success")
        elif self.runs.start_flow_level(project, parent_id, level + 1, len(planned[level + 1])):
            self._start_flow_children(project, parent_id, level + 1, planned[level + 1])

    def _require_run(self, project: str, run_id: int) -> dict[str, Any]:
        item = self.runs.get(project, run_id)
        if item is None:
            raise NotFound(f"Run {run_ref(run_id)} not found.")
        return item


def _flow_levels(parent: Mapping[str, Any]) -> list[list[int]]:
    """A flow parent's plan: pipeline ids, level by level."""
    return [[int(p) for p in level] for level in (parent.get("flow") or {}).get("levels") or []]


def _older_than(stamp: str | None, now: pendulum.DateTime, seconds: int) -> bool:
    """Whether a stored time is at least `seconds` before `now` (no time at all counts as old)."""
    moment = timeutil.from_stored(stamp)
    return moment is None or (now - moment).total_seconds() >= seconds


def _stored(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "status": run.status,
        "start_date": timeutil.iso(run.start_date),
        "end_date": None,
        "total_rows": None,
    }


def _substituted(
    config: Mapping[str, Any],
    resolved: Callable[[], Mapping[str, str]],
    overrides: Mapping[str, Any],
    node_id: str,
) -> dict[str, Any]:
    """The node's config with `${var.KEY}` filled in (the project's variables are read only when the
    config refers to one); an unknown key fails the node with the sentence naming it."""
    from sluice.domain.variables import substitute_variables

    if "${var." not in json.dumps(config):
        return dict(config)
    try:
        return substitute_variables(dict(config), resolved(), overrides, where=f"node '{node_id}'")
    except ValidationFailed as exc:
        raise NodeFailed(exc.detail) from exc


def _error_text(error: Any) -> str | None:
    """The sentence inside a Step Functions Catch result ({Error, Cause}); Cause is Lambda's JSON."""
    if error is None:
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping):
        cause = error.get("Cause")
        if isinstance(cause, str):
            try:
                parsed = json.loads(cause)
            except ValueError:
                return cause
            if isinstance(parsed, Mapping) and parsed.get("errorMessage"):
                return str(parsed["errorMessage"])
            return cause
        if error.get("Error"):
            return str(error["Error"])
    return None


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None
