"""The Runs API's reads: a run with its node runs, a pipeline's runs, the project's recent runs, a
node's log lines, output preview and profile (through the RunArtifacts port), and a run's details
(seed 000: parameters, compiled SQL, stdout, the datasets it wrote and who reads them)."""

from __future__ import annotations

from typing import Any

from sluice import timeutil
from sluice.domain.run_engine.core import EngineCore
from sluice.domain.run_engine.ports import RunArtifacts
from sluice.domain.run_engine.record import NodeRunRecord, RunRecord, artifact_run, run_ref
from sluice.domain.status import EXECUTED, HAS_OUTPUT, RunStatus
from sluice.domain.views.runs import (
    definition_run_view,
    log_line_view,
    node_run_views,
    recipe_type,
    run_details_view,
    runs_api_view,
)
from sluice.errors import NotFound, Unavailable

RUN_PAGE_SIZE = 50
MAX_RUN_PAGE_SIZE = 100


class RunReads(EngineCore):
    def get_run(self, project: str, ref: str | int) -> dict[str, Any]:
        run = self.run_item(project, ref)
        return runs_api_view(run, self.runs.node_runs(project, run.id))

    def list_runs(self, project: str, pipeline_id: int, page: int, per_page: int) -> list[RunRecord]:
        """A page of the pipeline's runs, newest start first."""
        run_ids = self.runs.pipeline_run_ids(project, pipeline_id, (page - 1) * per_page, per_page)
        return self.runs.get_many(project, run_ids)

    def definition_run(self, project: str, pipeline_ref: str, ref: str | int) -> dict[str, Any]:
        """A run of the pipeline `pipeline_ref` names, with its node runs (seed 001)."""
        record = self.pipeline_by_ref(project, pipeline_ref)
        run = self.run_item(project, ref)
        if run.pipeline_id != int(record["id"]):
            raise NotFound(f"Run {run_ref(run.id)} is not a run of pipeline {record['name']}.")
        view = definition_run_view(run, record["name"])
        view["node_runs"] = node_run_views(self.runs.node_runs(project, run.id))
        return view

    def recent_runs(
        self, project: str, status: str | None, kind: str | None, since: str | None, limit: int
    ) -> list[RunRecord]:
        """The project's runs newest first, of one status (seed 000's `queued` is pending) and one
        recipe type, started after `since` (ISO 8601)."""
        wanted = RunStatus.pending if status == "queued" else status
        bound = None if since is None else timeutil.sortable(timeutil.parse_instant(since, "since"))

        def keep(run: RunRecord) -> bool:
            return (wanted is None or run.status == wanted) and (kind is None or kind == recipe_type(run))

        return self.runs.recent(project, bound, keep, limit)

    # -- what the node runs left in the data bucket ----------------------------------------------
    def log_lines(
        self, project: str, ref: str | int, node_id: str | None, level: str | None
    ) -> tuple[int, list[dict[str, Any]]]:
        """(run id, its node runs' log lines in time order), of one node and one level if given."""
        run = self.run_item(project, ref)
        return run.id, self._log_lines(project, run.id, node_id, level)

    def node_preview(self, project: str, ref: str | int, node_id: str) -> dict[str, Any]:
        return self._artifacts().preview(project, self._artifact_run_of(project, ref, node_id), node_id)

    def node_profile(self, project: str, ref: str | int, node_id: str) -> dict[str, Any]:
        return self._artifacts().profile(project, self._artifact_run_of(project, ref, node_id), node_id)

    def details(self, project: str, ref: str | int) -> dict[str, Any]:
        """A run (a flow parent with its children) with what its node runs compiled, printed and
        wrote; the flow graph is read only when a dataset was written, to name its readers."""
        run = self.run_item(project, ref)
        # A backfill parent lists its children (one per date) but runs no node of its own.
        has_children = run.flow is not None or run.backfill is not None
        children = self.runs.children(project, run.id) if has_children else []
        members = children if run.flow is not None else [run]
        node_runs: list[tuple[int, NodeRunRecord]] = []
        stdout: list[dict[str, Any]] = []
        for member in members:
            ordered = sorted(self.runs.node_runs(project, member.id), key=lambda n: n.position)
            node_runs += [(member.id, node_run) for node_run in ordered]
            stdout += self._log_lines(project, member.id, None, None)
        written = {n.dataset_written for _, n in node_runs if n.dataset_written}
        flow = self.project_flow(project) if written else None
        return run_details_view(run, children, node_runs, stdout, written, flow)

    def _log_lines(
        self, project: str, run_id: int, node_id: str | None, level: str | None
    ) -> list[dict[str, Any]]:
        artifacts = self._artifacts()
        lines: list[dict[str, Any]] = []
        for node_run in sorted(self.runs.node_runs(project, run_id), key=lambda n: n.position):
            if node_run.status not in EXECUTED or (node_id is not None and node_run.node_id != node_id):
                continue
            folder = node_run.artifact_run or artifact_run(run_id)
            try:
                found = artifacts.logs(project, folder, node_run.node_id)
            except NotFound:
                continue
            lines += [
                log_line_view(run_id, node_run.node_id, line)
                for line in found
                if level is None or line.get("level") == level
            ]
        lines.sort(key=lambda line: line.get("timestamp") or "")
        return lines

    def _artifact_run_of(self, project: str, ref: str | int, node_id: str) -> str:
        """The run folder holding a node's artifacts (a reused node's are in an earlier run's)."""
        run = self.run_item(project, ref)
        node_run = self.runs.node_run(project, run.id, node_id)
        if node_run is None or node_run.status not in HAS_OUTPUT or not node_run.artifact_run:
            state = "is not in this run" if node_run is None else f"did not run ({node_run.status.value})"
            raise NotFound(f"Node '{node_id}' of run {run_ref(run.id)} {state}; it has no output.")
        return node_run.artifact_run

    def _artifacts(self) -> RunArtifacts:
        if self.artifacts is None:
            raise Unavailable("No reader of run artifacts is configured.")
        return self.artifacts
