"""A pipeline definition as `/api/v1/pipelines` answers it (SPEC 3): both seeds' fields, both
graph spellings, Watcher's fields; seed 001's `last_run`; revision summaries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pendulum

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.executions import Run
from sluice.domain.graph import Graph
from sluice.domain.schedules import parse_cron
from sluice.domain.status import DEFAULT_PIPELINE_STATUS, PipelineStatus
from sluice.domain.views.catalog import connector_reference, schema_reference
from sluice.domain.views.registry import pipeline_view
from sluice.errors import ValidationFailed


def last_run_view(run: Run | None) -> dict[str, Any] | None:
    """Seed 001's `last_run`; rows_loaded is what the run's targets wrote (an external run's total_rows)."""
    if run is None:
        return None
    duration_ms = None
    if run.end_date is not None:
        duration_ms = int(round((run.end_date - run.start_date).total_seconds() * 1000))
    return {
        "id": ids.render("run", run.id),
        "status": run.status,
        "started_at": timeutil.iso(run.start_date),
        "duration_ms": duration_ms,
        "rows_loaded": run.total_rows,
    }


def next_run_at(record: dict[str, Any], now: pendulum.DateTime) -> str | None:
    """When an active pipeline's schedule fires next: what the last firing stored, or from now on."""
    schedule = record.get("schedule")
    if not schedule or (record.get("status") or DEFAULT_PIPELINE_STATUS) != PipelineStatus.active:
        return None
    stored = timeutil.from_stored(record.get("next_run_at")) if record.get("next_run_at") else None
    if stored is not None and stored > now:
        return timeutil.iso(stored)
    try:
        return timeutil.iso(parse_cron(schedule).next_after(now))
    except ValidationFailed:
        return None


def definition_view(
    record: dict[str, Any],
    last_run: Run | None,
    references: dict[tuple[str, int], dict[str, Any]],
    now: pendulum.DateTime,
) -> dict[str, Any]:
    """A pipeline on /api/v1: SPEC 3's fields, both graph spellings, and Watcher's fields."""
    pipeline_id = int(record["id"])
    graph = Graph.from_document(record.get("graph"))
    connector_id, schema_id = record.get("connector_id"), record.get("schema_id")
    config = record.get("execution_config") or {}
    watcher = {k: v for k, v in pipeline_view(record).items() if k not in ("id", "name")}
    last = last_run_view(last_run)
    return {
        "id": ids.render("pipeline", pipeline_id),
        "name": record["name"],
        "description": record.get("description"),
        "version": record.get("version"),
        "status": record.get("status") or DEFAULT_PIPELINE_STATUS.value,
        "schedule": record.get("schedule"),
        "next_run_at": next_run_at(record, now),
        "last_run": last,
        "lastRunAt": last["started_at"] if last else None,
        "lastRunStatus": last["status"] if last else None,
        **graph.both_spellings(),
        "connectorId": ids.render("connector", connector_id) if connector_id is not None else None,
        "schemaId": ids.render("schema", schema_id) if schema_id is not None else None,
        "connector": _reference(references, "connector", connector_id, connector_reference),
        "schema": _reference(references, "schema", schema_id, schema_reference),
        "executionConfig": {
            "batchSize": config.get("batchSize"),
            "parallelism": config.get("parallelism"),
            "partitioning": config.get("partitioning"),
            "mode": config.get("mode"),
        },
        "revision": record.get("revision"),
        "createdAt": record.get("created_at"),
        "updatedAt": record.get("updated_at"),
        **watcher,
    }


def revision_summary(revision: dict[str, Any]) -> dict[str, Any]:
    return {
        "revision": revision["revision"],
        "author": revision["author"],
        "created_at": revision["created_at"],
        "node_count": revision["node_count"],
        "edge_count": revision["edge_count"],
    }


def _reference(
    found: dict[tuple[str, int], dict[str, Any]],
    kind: str,
    number: int | None,
    render: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any] | None:
    record = found.get((kind, number)) if number is not None else None
    return render(record) if record is not None else None
