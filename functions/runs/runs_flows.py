"""Flow runs (seed 000): run a target (a pipeline, or the writer of a dataset) with the pipelines a
scope selects in the project's flow graph; the project's run history and one run's details."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.run_engine import MAX_RUN_PAGE_SIZE, RUN_PAGE_SIZE, RunEngine, RunRecord
from sluice.domain.views.runs import flow_run_view, flow_triggered_view
from sluice.edge.app import area_router, editor, json_body, viewer
from sluice.edge.responses.runs import FlowRun, FlowRunDetails, FlowTriggered

router = area_router("/api/pipeline")
Engine = Depends(composition.run_engine)


class FlowTarget(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["pipeline", "dataset", "recipe"]
    name: str = Field(min_length=1, max_length=255)


class FlowRunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    target: FlowTarget
    scope: Literal["single", "upstream", "downstream", "full"] = "single"


@router.post("/run", status_code=202, response_model=FlowTriggered)
def post_flow_run(
    caller: Principal = Depends(editor),
    body: FlowRunBody = Depends(json_body(FlowRunBody)),
    engine: RunEngine = Engine,
) -> dict:
    flow = engine.project_flow(caller.project)

    def render(run: RunRecord) -> dict:
        return flow_triggered_view(run, flow)

    return engine.trigger_flow(caller.project, flow, body.target.model_dump(), body.scope, render)


@router.get("/runs", response_model=list[FlowRun])
def get_flow_runs(
    caller: Principal = Depends(viewer),
    status: str | None = Query(None, pattern="^(queued|pending|running|success|failed|cancelled)$"),
    recipe_type: str | None = Query(None, max_length=64),
    since: str | None = None,
    limit: int = Query(RUN_PAGE_SIZE, ge=1, le=MAX_RUN_PAGE_SIZE),
    engine: RunEngine = Engine,
) -> list[dict]:
    runs = engine.recent_runs(caller.project, status, recipe_type, since, limit)
    return [flow_run_view(run) for run in runs]


@router.get("/runs/{run_id}/details", response_model=FlowRunDetails)
def get_flow_run_details(
    run_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    return engine.details(caller.project, run_id)
