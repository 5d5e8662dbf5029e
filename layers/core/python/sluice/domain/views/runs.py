"""Runs as each surface answers them: the Runs API's run with its node runs (seed 002), a run of a
pipeline definition by name (seed 001), a flow run (seed 000), and the progress they share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.status import FINISHED


def _run_ref(run_id: int) -> str:
    return ids.render("run", run_id)


def node_run_view(item: Mapping[str, Any]) -> dict[str, Any]:
    view = {
        "id": ids.render("nr", int(item["id"])),
        "node_id": item["node_id"],
        "status": item.get("status"),
        "row_count": _int(item.get("row_count")),
        "duration_ms": _int(item.get("duration_ms")),
        "started_at": item.get("started_at"),
        "finished_at": item.get("finished_at"),
        "error": item.get("error"),
    }
    if item.get("reused_from") is not None:
        view["reused_from"] = _run_ref(int(item["reused_from"]))
    return view


def progress_of(item: Mapping[str, Any]) -> dict[str, Any]:
    stage = item.get("progress_stage") or "queued"
    if item.get("status") in FINISHED:
        stage = "done"
    return {"stage": stage, "rows_processed": _int(item.get("rows_processed")) or 0}


def runs_api_view(
    item: Mapping[str, Any], node_runs: list[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """A run on the Runs API (seed 002: `/api/runs/{id}`, `/api/pipelines/{id}/runs`), with its
    node runs when given."""
    view: dict[str, Any] = {
        "id": _run_ref(int(item["id"])),
        "pipeline_id": ids.render("pipeline", int(item["pipeline_id"])),
        "status": item.get("status"),
        "started_at": item.get("start_date"),
        "finished_at": item.get("end_date"),
        "params": item.get("params") or {},
        "full_refresh": bool(item.get("full_refresh")),
        "trigger": item.get("trigger"),
        "resumed_from": _run_ref(int(item["resumed_from"])) if item.get("resumed_from") else None,
        "error": item.get("error"),
        "progress": progress_of(item),
        "rows_loaded": _int(item.get("total_rows")),
    }
    if node_runs is not None:
        ordered = sorted(node_runs, key=lambda n: (int(n.get("position", 0)), n["node_id"]))
        view["node_runs"] = [node_run_view(n) for n in ordered]
    return view


def definition_run_view(item: Mapping[str, Any], pipeline_name: str) -> dict[str, Any]:
    """A run of a pipeline definition by name (seed 001: `/api/v1/pipelines/{name}/runs`)."""
    started, ended = item.get("start_date"), item.get("end_date")
    duration_ms = None
    if started and ended:
        duration_ms = int(
            (timeutil.from_stored(ended) - timeutil.from_stored(started)).total_seconds() * 1000  # type: ignore[operator]
        )
    return {
        "id": _run_ref(int(item["id"])),
        "pipeline": pipeline_name,
        "status": item.get("status"),
        "started_at": started,
        "finished_at": ended,
        "duration_ms": duration_ms,
        "rows_loaded": _int(item.get("total_rows")),
        "full_refresh": bool(item.get("full_refresh")),
        "error": item.get("error"),
        "progress": progress_of(item),
    }


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


EXIT_STATUS = {"success": 0, "failed": 1, "cancelled": 130}


def flow_status(status: str | None) -> str | None:
    return "queued" if status == "pending" else status


def flow_run_view(item: dict) -> dict:
    """A run as seed 000 lists it (`queued` for pending)."""
    flow = item.get("flow") or {}
    target = flow.get("target") or {"type": "pipeline", "name": item.get("pipeline_name")}
    return {
        "run_id": _run_ref(int(item["id"])),
        "pipeline_id": ids.render("pipeline", int(item["pipeline_id"])),
        "pipeline": item.get("pipeline_name"),
        "status": flow_status(item.get("status")),
        "recipe_type": "pipeline" if item.get("origin") == "sluice" else "external",
        "target": target,
        "scope": flow.get("scope") or item.get("scope"),
        "trigger": item.get("trigger"),
        "parent_id": _run_ref(int(item["parent_id"])) if item.get("parent_id") else None,
        "created_at": item.get("created_at") or item.get("start_date"),
        "started_at": item.get("start_date"),
        "finished_at": item.get("end_date"),
        "updated_at": item.get("updated_at") or item.get("end_date") or item.get("start_date"),
        "rows_loaded": _int(item.get("total_rows")),
        "error": item.get("error"),
        "exit_status": EXIT_STATUS.get(str(item.get("status"))),
    }
