"""The Run state machine's tasks (statemachines/run.asl.json): PlanRun stores the plan once,
NextStep hands out the next level of nodes (or says cancel or finish), ExecuteNode runs one node.

A failed node is recorded and re-raised as NodeFailed, which fails the level's Map and so the run
(FinishFailed); a node of a run whose cancel was asked never starts.
"""

from __future__ import annotations

import json
from typing import Any

from sluice import timeutil
from sluice.domain.graph import Graph
from sluice.domain.live import LOG_LINES, NODE_STATUS
from sluice.domain.run_engine.core import EngineCore, adjacency, logger
from sluice.domain.run_engine.dry_run import substituted
from sluice.domain.run_engine.errors import NodeFailed
from sluice.domain.run_engine.record import (
    DEFAULT_PARALLELISM,
    NodeRunRecord,
    RunRecord,
    artifact_run,
    run_ref,
)
from sluice.domain.runs import plan_run, select_scope
from sluice.domain.status import NodeStatus
from sluice.errors import InvalidRequest, Unavailable, ValidationFailed

STAGE_OF_NODE = {"source": "extract", "transform": "transform", "filter": "transform", "target": "load"}
LATEST_RUNS_READ = 20  # a scoped run takes its other inputs from the newest of this many runs


class StateMachineTasks(EngineCore):
    def plan(self, project: str, run_id: int) -> dict[str, Any]:
        """Store the run's plan and create its node runs, once (a retried PlanRun keeps the first)."""
        run = self._require_run(project, run_id)
        if run.plan is not None:
            return {"project": project, "run_id": run_id, "level": 0}
        graph = self.graph_of(project, run.pipeline_id, run.revision)
        edges = adjacency(graph)
        reusable: dict[str, NodeRunRecord] = {}
        scope, target = run.scope or "full", run.target_node
        if run.resumed_from:
            reusable = self._reusable(project, run.resumed_from, graph)
        elif target:
            # The target's inputs come from the pipeline's latest outputs of those nodes.
            chosen = select_scope(edges, target, scope)
            latest = self._latest_outputs(project, run.pipeline_id, run_id)
            reusable = {node: nr for node, nr in latest.items() if node not in chosen}
        try:
            plan = plan_run(edges, target, scope, {node: str(nr.id) for node, nr in reusable.items()})
        except ValidationFailed as exc:
            raise InvalidRequest(f"The run cannot be planned: {exc.detail}") from exc
        record = self.definitions.get(project, run.pipeline_id) or {}
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
                "status": NodeStatus.pending.value,
            }
            if node_id in reusable and node_id not in planned:
                old = reusable[node_id]
                entry.update(
                    status=NodeStatus.reused.value,
                    reused_from=old.reused_from or old.run_id,
                    artifact_run=old.artifact_run,
                    output=old.output,
                    row_count=old.row_count,
                    columns=old.columns,
                )
            node_runs.append(entry)
        stored_plan = {"levels": plan.levels, "reused": reused, "parallelism": parallelism}
        self.runs.store_plan(project, run_id, stored_plan, node_runs, record.get("watermark"))
        return {"project": project, "run_id": run_id, "level": 0}

    def _reusable(self, project: str, old_run_id: int, graph: Graph) -> dict[str, NodeRunRecord]:
        """Node runs of the resumed run whose outputs still hold: they succeeded (or were reused),
        and neither the node nor anything upstream of it changed since."""
        old = self.runs.get(project, old_run_id)
        if old is None:
            return {}
        old_graph = self.graph_of(project, old.pipeline_id, old.revision)
        succeeded = {nr.node_id: nr for nr in self.runs.node_runs(project, old_run_id) if nr.has_output}
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

    def _latest_outputs(self, project: str, pipeline_id: int, exclude: int) -> dict[str, NodeRunRecord]:
        """Each node's output from the pipeline's most recent runs that produced one (newest wins)."""
        found: dict[str, NodeRunRecord] = {}
        for run_id in self.runs.pipeline_run_ids(project, pipeline_id, 0, LATEST_RUNS_READ):
            if run_id == exclude:
                continue
            for nr in self.runs.node_runs(project, run_id):
                if nr.has_output:
                    found.setdefault(nr.node_id, nr)
        return found

    def next_step(self, project: str, run_id: int, level: int) -> dict[str, Any]:
        run = self._require_run(project, run_id)
        planned = run.plan.levels if run.plan else []
        base = {"project": project, "run_id": run_id, "nodes": [], "parallelism": 1}
        if run.cancel_requested:
            return {**base, "level": level, "action": "cancel"}
        if level >= len(planned):
            return {**base, "level": level, "action": "finish"}
        return {
            **base,
            "level": level + 1,
            "action": "run",
            "nodes": list(planned[level]),
            "parallelism": run.plan.parallelism if run.plan else DEFAULT_PARALLELISM,
        }

    def execute(self, project: str, run_id: int, node_id: str) -> dict[str, Any]:
        """Run one node of the run. A failed node is recorded and re-raised (NodeFailed), which
        fails the level's Map and so the run; a node of a run being cancelled does not start."""
        run = self._require_run(project, run_id)
        current = self.runs.node_run(project, run_id, node_id)
        if current is None:
            raise NodeFailed(f"node '{node_id}' is not in the plan of {run_ref(run_id)}")
        if current.status == NodeStatus.success:
            return {"node_id": node_id, "status": NodeStatus.success.value, "row_count": current.row_count}
        if run.cancel_requested:
            self.runs.update_node_run(
                project,
                run_id,
                node_id,
                {"status": NodeStatus.cancelled.value},
                only_if=(NodeStatus.pending,),
            )
            return {"node_id": node_id, "status": NodeStatus.cancelled.value}
        if self.executor is None:
            raise Unavailable("No node engine is configured to execute nodes.")
        graph = self.graph_of(project, run.pipeline_id, run.revision)
        node = graph.node(node_id)
        started = timeutil.iso(self._clock())
        self.runs.update_node_run(
            project,
            run_id,
            node_id,
            {"status": NodeStatus.running.value, "started_at": started},
            only_if=(NodeStatus.pending, NodeStatus.running),
        )
        self._tell_node(project, run, node_id, NodeStatus.running.value)
        try:
            if node is None:
                raise NodeFailed(f"node '{node_id}' is not in revision {run.revision} of the pipeline")
            inputs = {}
            for edge in graph.inputs_of(node_id):
                upstream = self.runs.node_run(project, run_id, edge.source)
                if not upstream or not upstream.output:
                    raise NodeFailed(f"input '{edge.source}' of node '{node_id}' has no output in this run")
                inputs[edge.source] = upstream.output
            config = substituted(node.config, lambda: self._variables_of(project), run.variables, node_id)
            options = {
                "full_refresh": run.full_refresh,
                "params": run.params,
                "watermark": run.execution.watermark,
            }
            spec = {"id": node.id, "nodeType": node.node_type, "config": config, "label": node.label}
            result = self.executor.run(project, artifact_run(run_id), spec, inputs, options)
        except NodeFailed as failed:
            self._record_failure(project, run_id, node_id, failed, started)
            self._tell_node(project, run, node_id, NodeStatus.failed.value, error=failed.detail)
            raise
        self.runs.update_node_run(
            project,
            run_id,
            node_id,
            {
                "status": NodeStatus.success.value,
                "row_count": result.row_count,
                "duration_ms": result.duration_ms,
                "started_at": result.started_at,
                "finished_at": result.finished_at,
                "output": result.output.key,
                "artifact_run": artifact_run(run_id),
                "compiled_sql": result.compiled_sql,
                "written": result.written.to_dict() if result.written else None,
                "watermark": None if result.watermark is None else str(result.watermark),
                "incremental": bool(node.config.get("watermark_column")) and not run.full_refresh,
                "datasets_read": list(result.datasets_read),
                "columns": [c.to_dict() for c in result.columns],
            },
        )
        self.runs.add_progress(
            project, run_id, STAGE_OF_NODE.get(node.node_type, "transform"), result.row_count
        )
        self._check_quality(project, run_id, run.pipeline_id, result)
        self._count_bytes(project, run, node_id, result)
        self._tell_node(
            project,
            run,
            node_id,
            NodeStatus.success.value,
            row_count=result.row_count,
            duration_ms=result.duration_ms,
            finished_at=result.finished_at,
        )
        lines = [line.to_dict() for line in getattr(result, "logs", None) or [] if hasattr(line, "to_dict")]
        if lines:
            self._tell(project, LOG_LINES, {"run_id": run_ref(run.id), "node_id": node_id, "lines": lines})
        return {"node_id": node_id, "status": NodeStatus.success.value, "row_count": result.row_count}

    def _check_quality(self, project: str, run_id: int, pipeline_id: int, result: Any) -> None:
        """A target that wrote a Sluice dataset: its rules, on the rows this run wrote. A check
        that cannot run is logged and never fails the node (the data is already written)."""
        written = result.written
        if self.quality is None or written is None or written.kind != "dataset" or not written.persisted:
            return
        try:
            self.quality.after_write(
                project,
                run_id,
                pipeline_id,
                written.dataset,
                result.output.key,
                [c.name for c in result.columns],
                written.rows_written,
            )
        except Exception:  # noqa: BLE001 - quality checks must not fail a run that wrote its data
            logger.exception(
                "data-quality check failed", extra={"run_id": run_id, "dataset": written.dataset}
            )

    def _record_failure(
        self, project: str, run_id: int, node_id: str, failed: NodeFailed, started: str | None
    ) -> None:
        self.runs.update_node_run(
            project,
            run_id,
            node_id,
            {
                "status": NodeStatus.failed.value,
                "error": failed.detail,
                "started_at": failed.started_at or started,
                "finished_at": failed.finished_at or timeutil.iso(self._clock()),
                "duration_ms": failed.duration_ms or 0,
                "compiled_sql": failed.compiled_sql,
                "artifact_run": artifact_run(run_id),
            },
        )
        self.runs.note_error(project, run_id, f"node '{node_id}' failed: {failed.detail}")

    def _count_bytes(self, project: str, run: RunRecord, node_id: str, result: Any) -> None:
        """What a finished node run stores (its item and its objects) goes on the project's byte
        counter (system info's `db_size`); a failure to count never fails the node."""
        counting = getattr(self.runs, "add_bytes", None)
        if counting is None:
            return
        try:
            summary = result.summary() if hasattr(result, "summary") else {}
            size = len(json.dumps(summary, default=str).encode())  # about the node run item's size
            measure = getattr(self.artifacts, "node_bytes", None)
            if measure is not None:
                size += int(measure(project, artifact_run(run.id), node_id))
            counting(project, run.id, run.day, size)
        except Exception:  # noqa: BLE001 - counting is bookkeeping, the node already succeeded
            logger.warning("node run bytes not counted", extra={"run_id": run.id, "node_id": node_id})

    def _tell_node(self, project: str, run: RunRecord, node_id: str, status: str, **extra: Any) -> None:
        self._tell(
            project,
            NODE_STATUS,
            {"run_id": run_ref(run.id), "node_id": node_id, "status": status, **extra},
        )
