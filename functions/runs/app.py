"""Runs area: Watcher's execution reports (start, end, one execution with its children)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from sluice import timeutil
from sluice.auth.principal import Principal
from sluice.domain.executions import (
    EndExecution,
    StartExecution,
    end_execution,
    get_execution,
    start_execution,
)
from sluice.edge.app import create_app, editor, json_body, lambda_handler, viewer
from sluice.events import EventBridgePublisher
from sluice.store.executions import RunRepository, WatchedPipelines
from sluice.store.table import Table

router = APIRouter()


@router.post("/start_pipeline_execution", status_code=201)
def post_start_pipeline_execution(
    caller: Principal = Depends(editor), body: StartExecution = Depends(json_body(StartExecution))
) -> dict:
    table = Table()
    run_id = start_execution(
        caller.project, body, RunRepository(table), WatchedPipelines(table), timeutil.now()
    )
    return {"id": run_id}


@router.post("/end_pipeline_execution", status_code=204)
def post_end_pipeline_execution(
    caller: Principal = Depends(editor), body: EndExecution = Depends(json_body(EndExecution))
) -> Response:
    table = Table()
    end_execution(
        caller.project,
        body,
        RunRepository(table),
        WatchedPipelines(table),
        EventBridgePublisher(),
        timeutil.now(),
    )
    return Response(status_code=204)


@router.get("/pipeline_execution/{pipeline_execution_id}")
def get_pipeline_execution(pipeline_execution_id: int, caller: Principal = Depends(viewer)) -> dict:
    return get_execution(caller.project, pipeline_execution_id, RunRepository(Table()))


app = create_app("runs", [router])
handler = lambda_handler(app, "runs")
