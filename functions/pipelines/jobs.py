"""Pipelines jobs outside HTTP: a pipeline's EventBridge Scheduler schedule firing.

A firing is recorded under the pipeline (once per scheduled minute), moves its `next_run_at` and
triggers a run; the scheduled minute is the run's idempotency key, so a repeated delivery starts
no second run.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from sluice import composition
from sluice.errors import SluiceError

logger = Logger(service="pipelines")


@logger.inject_lambda_context
def on_schedule_fired(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Target of every pipeline schedule; the event is the schedule's Input
    `{"project", "pipeline_id", "scheduled_time"}`."""
    try:
        project, pipeline_id = str(event["project"]), int(event["pipeline_id"])
    except (KeyError, TypeError, ValueError):
        logger.error("schedule firing without project and pipeline_id", extra={"event": event})
        return {"recorded": False, "reason": "malformed event"}
    result = composition.pipeline_definitions().fire_schedule(
        project, pipeline_id, event.get("scheduled_time")
    )
    if result.get("scheduled_at"):
        try:
            result["run_id"] = _trigger_run(project, pipeline_id, result["scheduled_at"])
        except SluiceError as exc:  # no nodes, or the queue is down: the firing stays recorded
            logger.warning(
                "scheduled run not started", extra={"pipeline_id": pipeline_id, "reason": exc.detail}
            )
            result["run_error"] = exc.detail
    logger.info("pipeline schedule fired", extra={"project": project, "pipeline_id": pipeline_id, **result})
    return result


def _trigger_run(project: str, pipeline_id: int, scheduled_at: str) -> str | None:
    from sluice.domain.run_engine import RunRequest, TriggerSurface, run_ref

    engine = composition.run_engine()
    record = engine.definitions.get(project, pipeline_id)
    if record is None:
        return None
    view, _ = engine.trigger(
        project,
        record,
        RunRequest(params={"scheduled_at": scheduled_at}, trigger="schedule"),
        lambda run: {"id": run_ref(run.id)},
        idempotency_key=f"schedule:{pipeline_id}:{scheduled_at}",
        surface=TriggerSurface.schedule,
    )
    return view["id"]
