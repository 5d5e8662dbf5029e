"""Runs of a pipeline definition on `/api/v1/pipelines/{name}` (seed 001 by name, seed 003's
trigger by id or name): trigger (or dry-run), list, and read one with its node runs."""

from __future__ import annotations

from fastapi import Depends, Header, Query, Response
from runs_triggers import TriggerBody, checked_key, trigger_body

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain import ids
from sluice.domain.run_engine import MAX_RUN_PAGE_SIZE, RunEngine, RunRecord, TriggerSurface
from sluice.domain.views.runs import definition_run_view, dry_run_view
from sluice.edge.app import area_router, editor, viewer
from sluice.edge.responses.runs import DefinitionRunData, DefinitionRuns

router = area_router("/api/v1/pipelines/{name}")
Engine = Depends(composition.run_engine)
DEFINITION_RUNS_PAGE = 20


@router.post("/runs", status_code=202, response_model=DefinitionRunData)
def post_definition_runs(
    name: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(trigger_body),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    engine: RunEngine = Engine,
) -> dict:
    """Seed 001's trigger: `{name}` is the pipeline's name (or id); `dry_run: true` runs nothing."""
    record = engine.pipeline_by_ref(caller.project, name)
    if body.dry_run:
        response.status_code = 200
        nodes = engine.dry_run(caller.project, record, body.params, body.variables, body.full_refresh)
        return {"data": dry_run_view(record["name"], nodes)}

    def render(run: RunRecord) -> dict:
        return {"data": definition_run_view(run, record["name"])}

    key, surface = checked_key(idempotency_key), TriggerSurface.definition_runs
    view, created = engine.trigger(caller.project, record, body.run_request(), render, key, surface)
    response.status_code = 202 if created else 200
    return view


@router.post("/run", status_code=201, response_model=DefinitionRunData)
def post_definition_run(
    name: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(trigger_body),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    engine: RunEngine = Engine,
) -> dict:
    """Seed 003's trigger: `{name}` is the pipeline's id (`pipeline-<n>` or `<n>`) or its name."""
    record = engine.pipeline_by_ref(caller.project, name)
    pipeline_id = ids.render("pipeline", int(record["id"]))

    def render(run: RunRecord) -> dict:
        return {"data": {**definition_run_view(run, record["name"]), "pipeline_id": pipeline_id}}

    key, surface = checked_key(idempotency_key), TriggerSurface.definition_run
    view, created = engine.trigger(caller.project, record, body.run_request(), render, key, surface)
    response.status_code = 201 if created else 200
    return view


@router.get("/runs", response_model=DefinitionRuns)
def get_definition_runs(
    name: str,
    caller: Principal = Depends(viewer),
    page: int = Query(1, ge=1, le=10_000),
    per_page: int = Query(DEFINITION_RUNS_PAGE, ge=1, le=MAX_RUN_PAGE_SIZE),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_ref(caller.project, name)
    runs = engine.list_runs(caller.project, int(record["id"]), page, per_page)
    return {
        "data": [definition_run_view(r, record["name"]) for r in runs],
        "page": page,
        "per_page": per_page,
    }


@router.get("/runs/{run_id}", response_model=DefinitionRunData)
def get_definition_run(
    name: str, run_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    return {"data": engine.definition_run(caller.project, name, run_id)}
