"""Runs as each surface answers them: the Runs API's run with its node runs (seed 002), a run of a
pipeline definition by name (seed 001), a flow run and its details (seed 000), what a trigger
answers, log lines; and the progress they share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.status import RunStatus

if TYPE_CHECKING:
    from sluice.domain.flows import FlowGraph
    from sluice.domain.run_engine.record import NodeRunRecord, RunRecord

EXIT_STATUS = {RunStatus.success: 0, RunStatus.failed: 1, RunStatus.cancelled: 130}
QUEUED = "queued"  # seed 000's word for a pending run


def _run_ref(run_id: int) -> str:
    return ids.render("run", run_id)


def progress_of(run: RunRecord) -> dict[str, Any]:
    stage = "done" if run.finished else run.progress_stage or "queued"
    return {"stage": stage, "rows_processed": run.rows_processed}


def node_run_view(node_run: NodeRunRecord) -> dict[str, Any]:
    view = {
        "id": ids.render("nr", node_run.id),
        "node_id": node_run.node_id,
        "status": node_run.status.value,
        "row_count": node_run.row_count,
        "duration_ms": node_run.duration_ms,
        "started_at": node_run.started_at,
        "finished_at": node_run.finished_at,
        "error": node_run.error,
    }
    if node_run.reused_from is not None:
        view["reused_from"] = _run_ref(node_run.reused_from)
    return view


def node_run_views(node_runs: Iterable[NodeRunRecord]) -> list[dict[str, Any]]:
    """A run's node runs in plan order."""
    return [node_run_view(n) for n in sorted(node_runs, key=lambda n: (n.position, n.node_id))]


def runs_api_view(run: RunRecord, node_runs: list[NodeRunRecord] | None = None) -> dict[str, Any]:
    """A run on the Runs API (seed 002: `/api/runs/{id}`, `/api/pipelines/{id}/runs`), with its
    node runs when given."""
    view: dict[str, Any] = {
        "id": _run_ref(run.id),
        "pipeline_id": ids.render("pipeline", run.pipeline_id),
        "status": run.status.value,
        "started_at": timeutil.iso(run.execution.start_date),
        "finished_at": timeutil.iso(run.execution.end_date),
        "params": run.params,
        "full_refresh": run.full_refresh,
        "trigger": run.trigger,
        "resumed_from": _run_ref(run.resumed_from) if run.resumed_from else None,
        "error": run.error,
        "progress": progress_of(run),
        "rows_loaded": _int(run.execution.total_rows),
        # when the run last changed: the SDK's wait polls slower while it stays the same
        "updated_at": timeutil.iso(run.execution.updated_at or run.execution.created_at),
    }
    if node_runs is not None:
        view["node_runs"] = node_run_views(node_runs)
    return view


def triggered_view(run: RunRecord) -> dict[str, Any]:
    """What the Runs API's trigger answers (and an Idempotency-Key replay answers again)."""
    return {
        "id": _run_ref(run.id),
        "pipeline_id": ids.render("pipeline", run.pipeline_id),
        "status": run.status.value,
    }


def resumed_view(run: RunRecord) -> dict[str, Any]:
    """What a resume answers: the new run, and the failed run it resumes."""
    return {**triggered_view(run), "resumed_from": _run_ref(run.resumed_from or 0)}


def definition_run_view(run: RunRecord, pipeline_name: str) -> dict[str, Any]:
    """A run of a pipeline definition by name (seed 001: `/api/v1/pipelines/{name}/runs`)."""
    started, ended = run.execution.start_date, run.execution.end_date
    duration_ms = int((ended - started).total_seconds() * 1000) if ended is not None else None
    return {
        "id": _run_ref(run.id),
        "pipeline": pipeline_name,
        "status": run.status.value,
        "started_at": timeutil.iso(started),
        "finished_at": timeutil.iso(ended),
        "duration_ms": duration_ms,
        "rows_loaded": _int(run.execution.total_rows),
        "full_refresh": run.full_refresh,
        "error": run.error,
        "progress": progress_of(run),
    }


def dry_run_view(pipeline_name: str, nodes: dict[str, Any]) -> dict[str, Any]:
    """Seed 001's answer to `dry_run: true`: no run, the nodes' first rows."""
    failed = any(n["status"] == RunStatus.failed for n in nodes.values())
    return {
        "id": None,
        "pipeline": pipeline_name,
        "status": (RunStatus.failed if failed else RunStatus.success).value,
        "dry_run": True,
        "started_at": None,
        "progress": {"stage": "done", "rows_processed": 0},
        "nodes": nodes,
    }


# -- seed 000: flow runs ---------------------------------------------------------------------------
def flow_status(status: RunStatus) -> str:
    return QUEUED if status == RunStatus.pending else status.value


def recipe_type(run: RunRecord) -> str:
    """`pipeline` for every run Sluice started, `external` for executions reported to Watcher."""
    return "pipeline" if run.started_by_sluice else "external"


def flow_run_view(run: RunRecord) -> dict[str, Any]:
    """A run as seed 000 lists it (`queued` for pending)."""
    execution = run.execution
    flow = run.flow
    return {
        "run_id": _run_ref(run.id),
        "pipeline_id": ids.render("pipeline", run.pipeline_id),
        "pipeline": run.pipeline_name,
        "status": flow_status(run.status),
        "recipe_type": recipe_type(run),
        "target": (flow.target if flow and flow.target else None)
        or {"type": "pipeline", "name": run.pipeline_name},
        "scope": (flow.scope if flow else None) or run.scope,
        "trigger": run.trigger,
        "parent_id": _run_ref(int(execution.parent_id)) if execution.parent_id else None,
        "created_at": timeutil.iso(execution.created_at or execution.start_date),
        "started_at": timeutil.iso(execution.start_date),
        "finished_at": timeutil.iso(execution.end_date),
        "updated_at": timeutil.iso(execution.updated_at or execution.end_date or execution.start_date),
        "rows_loaded": _int(execution.total_rows),
        "error": run.error,
        "exit_status": EXIT_STATUS.get(run.status),
    }


def flow_triggered_view(run: RunRecord, flow: FlowGraph) -> dict[str, Any]:
    """What a flow trigger answers: the parent run and the pipelines of each level, by name."""
    levels = run.flow.levels if run.flow else []
    return {
        "run_id": _run_ref(run.id),
        "status": flow_status(run.status),
        "pipelines": [[flow.records[p]["name"] for p in level] for level in levels],
    }


def run_details_view(
    run: RunRecord,
    children: list[RunRecord],
    node_runs: list[tuple[int, NodeRunRecord]],
    log_lines: list[dict[str, Any]],
    written: set[str],
    flow: FlowGraph | None,
) -> dict[str, Any]:
    """A run's details: how it was asked for, what each node compiled (run id, node run), what
    they printed, the datasets they wrote with the pipelines that read each, its children."""
    parameters = {
        "params": run.params,
        "variables": run.variables,
        "full_refresh": run.full_refresh,
        "scope": (run.flow.scope if run.flow else None) or run.scope,
        "target": run.flow.target if run.flow else None,
        "node": run.target_node,
    }
    compiled = [
        {"run_id": _run_ref(run_id), "node_id": n.node_id, "sql": n.compiled_sql}
        for run_id, n in node_runs
        if n.compiled_sql
    ]
    lineage = [
        {
            "dataset": name,
            "read_by": [
                {"pipeline_id": ids.render("pipeline", p), "name": flow.records[p]["name"]}
                for p in flow.readers_of(name)
            ]
            if flow
            else [],
        }
        for name in sorted(written)
    ]
    return {
        **flow_run_view(run),
        "parameters": parameters,
        "compiled_sql": compiled,
        "stdout": "".join(log_text(line) + "\n" for line in log_lines),
        "downstream_lineage": lineage,
        "children": [flow_run_view(c) for c in children],
    }


# -- log lines -------------------------------------------------------------------------------------
def log_line_view(run_id: int, node_id: str, line: dict[str, Any]) -> dict[str, Any]:
    """A node run's log line, as the Runs API lists it."""
    return {"run_id": _run_ref(run_id), "node_id": node_id, **line}


def log_text(line: dict[str, Any]) -> str:
    """A log line as text (the export's `text` form, a run's details' stdout)."""
    level = str(line.get("level")).upper()
    return f"{line.get('timestamp')} [{level}] {line['node_id']}: {line.get('message')}"


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def log_export(run_id: int, lines: list[dict[str, Any]], form: str) -> tuple[str, str, str]:
    """A run's log lines as a download: (body, media type, file name), `ndjson` or `text`."""
    if form == "ndjson":
        body = "".join(json.dumps(line) + "\n" for line in lines)
        media, suffix = "application/x-ndjson", "ndjson"
    else:
        body = "".join(log_text(line) + "\n" for line in lines)
        media, suffix = "text/plain; charset=utf-8", "log"
    return body, media, f"{_run_ref(run_id)}-logs.{suffix}"
