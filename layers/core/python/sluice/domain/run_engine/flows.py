"""Flow runs (seed 000): a parent run, never executed itself, over the pipelines a scope selects in
the project's flow graph; each level's pipelines run as child runs, the next level once every
child of the previous one succeeded.

A child's finish counts it on its parent once (RunItems.flow_child_done is conditional); whoever
counts the last child of a level ends the parent or moves it on (RunItems.start_flow_level is
conditional too), so a hand-over repeated by a retried FinishRun or by the reconciler changes
nothing twice (docs/architecture.md, "Flow runs' hand-over").
"""

from __future__ import annotations

from typing import Any

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.executions import Run
from sluice.domain.flows import FlowGraph, recipe_pipeline_name
from sluice.domain.graph import Graph
from sluice.domain.run_engine.core import EngineCore, logger
from sluice.domain.run_engine.errors import FlowChildStarted
from sluice.domain.run_engine.record import RunRecord, run_ref
from sluice.domain.run_engine.trigger import Render, RunRequest, stored_start
from sluice.domain.status import DEFAULT_PIPELINE_STATUS, PipelineStatus, RunStatus
from sluice.errors import Conflict, InvalidRequest, NotFound, SluiceError, Unavailable


class FlowRuns(EngineCore):
    def project_flow(self, project: str) -> FlowGraph:
        """The project's flow graph over all its pipelines, read page by page (Queries)."""
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
        record = self.definitions.find_by_name(project, recipe_pipeline_name(name))
        if record is None:
            raise NotFound(
                f"There is no saved recipe named '{name}'; save it with /api/flow/save-recipe-steps."
            )
        return int(record["id"])

    def trigger_flow(
        self, project: str, flow: FlowGraph, target: dict[str, str], scope: str, render: Render
    ) -> dict[str, Any]:
        """Write the parent running and trigger the first level's children; each next level starts
        once the previous one has succeeded (see _flow_child_finished)."""
        pipeline_id = self.flow_target(flow, project, target["type"], target["name"])
        planned = flow.plan(pipeline_id, scope)
        for level in planned:
            for member in level:
                record = flow.records[member]
                if (record.get("status") or DEFAULT_PIPELINE_STATUS) == PipelineStatus.paused:
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
            status=RunStatus.running.value,
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
        return render(RunRecord.from_stored({**stored_start(run), **engine}))

    def _start_flow_children(self, project: str, parent_id: int, level: int, members: list[int]) -> None:
        for member in members:
            record = self.definitions.get(project, int(member))
            try:
                if record is None:
                    raise NotFound(f"Pipeline {ids.render('pipeline', int(member))} no longer exists.")
                request = RunRequest(trigger="flow", parent_id=parent_id, flow_level=level)
                self.trigger(project, record, request, lambda run: {})
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

    def _advance_flow(self, project: str, parent: RunRecord) -> None:
        """With no child of its level left to count, end the parent (failed if any child of the
        level did not succeed, cancelled if asked) or start the next level. Idempotent: ending is,
        and only one caller moves the level (start_flow_level is conditional)."""
        flow = parent.flow
        if flow is None or flow.remaining > 0:
            return
        if parent.cancel_requested:
            self.finish(project, parent.id, RunStatus.cancelled)
        elif flow.failed:
            failed = [
                f"{c.pipeline_name} ({run_ref(c.id)} {c.status.value})"
                for c in self.runs.children(project, parent.id)
                if c.status in (RunStatus.failed, RunStatus.cancelled)
            ]
            self.finish(
                project,
                parent.id,
                RunStatus.failed,
                error="Not every pipeline of the flow succeeded: "
                + (", ".join(failed) or "a pipeline could not be started")
                + "; the pipelines after them did not run.",
            )
        elif flow.last_level:
            self.finish(project, parent.id, RunStatus.success)
        else:
            following = flow.levels[flow.level + 1]
            if self.runs.start_flow_level(project, parent.id, flow.level + 1, len(following)):
                self._start_flow_children(project, parent.id, flow.level + 1, following)
