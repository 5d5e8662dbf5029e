"""Pipelines jobs outside HTTP: a pipeline's EventBridge Scheduler schedule firing.

Until the run engine triggers a run here, a firing is recorded under the pipeline (once per
scheduled minute) and moves its `next_run_at`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from sluice.domain.lineage import LineageService
from sluice.domain.pipelines import PipelineDefinitions
from sluice.domain.registry import Registry
from sluice.schedules_port import configured_schedules
from sluice.store.executions import RunRepository
from sluice.store.lineage import LineageRepository
from sluice.store.pipelines import PipelineDefinitionRepository, StaleDefinition
from sluice.store.registry import (
    AddressRepository,
    AddressTypeRepository,
    PipelineRepository,
    PipelineTypeRepository,
)
from sluice.store.table import Table

logger = Logger(service="pipelines")


def _definitions(table: Table) -> PipelineDefinitions:
    registry = Registry(
        PipelineRepository(table),
        PipelineTypeRepository(table),
        AddressRepository(table),
        AddressTypeRepository(table),
    )
    return PipelineDefinitions(
        PipelineDefinitionRepository(table),
        RunRepository(table),
        configured_schedules(),
        LineageService(LineageRepository(table), registry),
        stale=StaleDefinition,
    )


@logger.inject_lambda_context
def on_schedule_fired(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Target of every pipeline schedule; the event is the schedule's Input
    `{"project", "pipeline_id", "scheduled_time"}`."""
    try:
        project, pipeline_id = str(event["project"]), int(event["pipeline_id"])
    except (KeyError, TypeError, ValueError):
        logger.error("schedule firing without project and pipeline_id", extra={"event": event})
        return {"recorded": False, "reason": "malformed event"}
    result = _definitions(Table()).fire_schedule(project, pipeline_id, event.get("scheduled_time"))
    logger.info("pipeline schedule fired", extra={"project": project, "pipeline_id": pipeline_id, **result})
    return result
