"""What every concern of the run engine shares: its ports, its clock, the revision-graph cache, the
lookups of pipelines and runs, and the one place a run's execution slot is given back.

Each concern (trigger.py, dispatch.py, tasks.py, finish.py, reconcile.py, flows.py, reads.py,
dry_run.py) is a mixin over this core; engine.py joins them into the `RunEngine` facade.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import pendulum
from aws_lambda_powertools import Logger

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.events import EventPublisher
from sluice.domain.graph import Graph
from sluice.domain.run_engine.ports import (
    Definitions,
    LineageRecorder,
    NodeExecutor,
    QualityChecks,
    RunArtifacts,
    RunItems,
    RunQueue,
    Slots,
    VariableResolver,
)
from sluice.domain.run_engine.record import RunRecord, run_ref
from sluice.errors import NotFound, ValidationFailed

logger = Logger(service="sluice")


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


def adjacency(graph: Graph) -> dict[str, list[str]]:
    """Node id -> the ids of its upstream nodes."""
    return {node.id: [e.source for e in graph.inputs_of(node.id)] for node in graph.nodes}


class EngineCore:
    """The ports and the lookups every concern uses."""

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
        executor: NodeExecutor | None = None,
        variables: VariableResolver | None = None,
        artifacts: RunArtifacts | None = None,
        quality: QualityChecks | None = None,
        backfills: Any = None,
        dated_runs: Any = None,
    ):
        self.runs = runs
        self.definitions = definitions
        self.slots = slots
        self.queue = queue
        self.publisher = publisher
        self.lineage = lineage
        self.executor = executor
        self.variables = variables
        self.artifacts = artifacts
        self.quality = quality
        self.backfills = backfills  # the Backfill state machine (backfill.py's BackfillMachine)
        self.dated_runs = dated_runs  # a pipeline's latest run per params.date (backfill.py's DatedRuns)
        self._clock = clock
        # Shared by the engines of one table (the composition root keeps one per table); else fresh.
        self.graphs = graphs if graphs is not None else RevisionGraphs()

    # -- pipelines ------------------------------------------------------------------------------
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

    def graph_of(self, project: str, pipeline_id: int, revision: int | None) -> Graph:
        """The graph of a run's revision (cached: revisions never change), else the current one."""
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

    # -- runs -----------------------------------------------------------------------------------
    def run_item(self, project: str, ref: str | int) -> RunRecord:
        """The run a caller names (`run-<n>` or `<n>`); NotFound for anything else."""
        try:
            number = ids.parse("run", ref)
        except ValidationFailed:
            raise NotFound(f"Run '{ref}' not found.") from None
        return self._require_run(project, number)

    def _require_run(self, project: str, run_id: int) -> RunRecord:
        found = self.runs.get(project, run_id)
        if found is None:
            raise NotFound(f"Run {run_ref(run_id)} not found.")
        return found

    def _variables_of(self, project: str) -> Mapping[str, str]:
        """The project's variables with their real values (none without a resolver)."""
        return self.variables(project) if self.variables is not None else {}

    def _tell(self, project: str, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish a live event (domain/live.py: run.status, node.status, log) for the project's
        WebSocket clients; best effort, a run never fails for it."""
        if self.publisher is None:
            return
        try:
            self.publisher.publish(
                detail_type, {"project": project, "at": timeutil.iso(self._clock()), **detail}
            )
        except Exception:  # noqa: BLE001 - live events are a view of the run, not part of it
            logger.warning("live event not published", extra={"type": detail_type, **detail})

    def _tell_status(self, project: str, run_id: int, pipeline_id: int, status: str) -> None:
        from sluice.domain.live import RUN_STATUS

        self._tell(
            project,
            RUN_STATUS,
            {
                "run_id": run_ref(run_id),
                "pipeline_id": ids.render("pipeline", pipeline_id),
                "status": str(status),
            },
        )

    def _give_back_slot(
        self, project: str, run_id: int, *, back_to_pending: bool = False, day: str | None = None
    ) -> None:
        """The run's execution slot goes back to the project, if it holds one: after its end (and
        again on every repeated finish or reconciler pass; the `slot_held` mark makes it happen
        once), or, with `back_to_pending`, when its execution could not be started."""
        if day is None:
            self.slots.release_slot(project, run_id, back_to_pending=back_to_pending)
        else:  # back to pending: its day counter moves back too
            self.slots.release_slot(project, run_id, back_to_pending=back_to_pending, day=day)
