"""Watcher's execution reports (seed 004): start, end, and one execution with its children."""

from __future__ import annotations

from fastapi import Depends, Response

from sluice import composition, timeutil
from sluice.auth.principal import Principal
from sluice.domain.events import EventPublisher
from sluice.domain.executions import (
    EndExecution,
    StartExecution,
    end_execution,
    get_execution,
    start_execution,
)
from sluice.edge.app import area_router, editor, json_body, viewer
from sluice.edge.responses.monitoring import Execution, ExecutionStarted
from sluice.store.executions import RunRepository, WatchedPipelines

router = area_router()
Runs = Depends(composition.run_repository)
Pipelines = Depends(composition.watched_pipelines)


@router.post("/start_pipeline_execution", status_code=201, response_model=ExecutionStarted)
def post_start_pipeline_execution(
    caller: Principal = Depends(editor),
    body: StartExecution = Depends(json_body(StartExecution)),
    runs: RunRepository = Runs,
    pipelines: WatchedPipelines = Pipelines,
) -> dict:
    return {"id": start_execution(caller.project, body, runs, pipelines, timeutil.now())}


@router.post("/end_pipeline_execution", status_code=204)
def post_end_pipeline_execution(
    caller: Principal = Depends(editor),
    body: EndExecution = Depends(json_body(EndExecution)),
    runs: RunRepository = Runs,
    pipelines: WatchedPipelines = Pipelines,
    publisher: EventPublisher = Depends(composition.event_publisher),
) -> Response:
    end_execution(caller.project, body, runs, pipelines, publisher, timeutil.now())
    return Response(status_code=204)


@router.get("/pipeline_execution/{pipeline_execution_id}", response_model=Execution)
def get_pipeline_execution(
    pipeline_execution_id: int, caller: Principal = Depends(viewer), runs: RunRepository = Runs
) -> dict:
    return get_execution(caller.project, pipeline_execution_id, runs)
