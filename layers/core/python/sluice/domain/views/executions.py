"""Watcher's execution object (seed 004): `GET /pipeline_execution/{id}` with its children."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice import timeutil

if TYPE_CHECKING:
    from sluice.domain.executions import Run


def watcher_view(run: Run, children: list[Run]) -> dict[str, Any]:
    """Seed 004's execution object; children are listed one level deep, each with no children."""
    return {
        "id": run.id,
        "parent_id": run.parent_id,
        "pipeline_id": run.pipeline_id,
        "start_date": timeutil.iso(run.start_date),
        "end_date": timeutil.iso(run.end_date),
        "duration_seconds": run.duration_seconds,
        "completed_successfully": run.completed_successfully,
        "inserts": run.inserts,
        "updates": run.updates,
        "soft_deletes": run.soft_deletes,
        "total_rows": run.total_rows,
        "watermark": run.watermark,
        "next_watermark": run.next_watermark,
        "execution_metadata": run.execution_metadata,
        "anomaly_flags": dict(run.anomaly_flags) or None,
        "throughput": float(run.throughput) if run.throughput is not None else None,
        "child_executions": [watcher_view(child, []) for child in children],
    }
