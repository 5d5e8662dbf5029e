"""The Runs API (seed 002, SPEC 4): trigger a pipeline by id, list its runs, dry-run it; read,
cancel and resume a run; its node runs' logs (and their export), output previews and profiles."""

from __future__ import annotations

from fastapi import Depends, Header, Query, Request, Response
from runs_triggers import TriggerBody, checked_key, trigger_body

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.run_engine import MAX_RUN_PAGE_SIZE, RUN_PAGE_SIZE, RunEngine
from sluice.domain.views.runs import log_export, resumed_view, runs_api_view, triggered_view
from sluice.edge.app import area_router, editor, viewer
from sluice.edge.responses.runs import (
    Cancelled,
    DryRunNode,
    LogLine,
    NodePreview,
    NodeProfile,
    Resumed,
    Run,
    Triggered,
)

router = area_router()
Engine = Depends(composition.run_engine)
LEVEL = "^(debug|info|warning|error)$"


@router.post("/api/pipelines/{pipeline_id}/run", status_code=202, response_model=Triggered)
def post_pipeline_run(
    pipeline_id: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(trigger_body),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    view, created = engine.trigger(
        caller.project, record, body.run_request(), triggered_view, checked_key(idempotency_key)
    )
    response.status_code = 202 if created else 200
    return view


@router.get("/api/pipelines/{pipeline_id}/runs", response_model=list[Run])
def get_pipeline_runs(
    pipeline_id: str,
    caller: Principal = Depends(viewer),
    page: int = Query(1, ge=1, le=10_000),
    per_page: int = Query(RUN_PAGE_SIZE, ge=1, le=MAX_RUN_PAGE_SIZE),
    engine: RunEngine = Engine,
) -> list[dict]:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    return [runs_api_view(run) for run in engine.list_runs(caller.project, int(record["id"]), page, per_page)]


@router.post("/api/pipelines/{pipeline_id}/dry-run", response_model=dict[str, DryRunNode])
def post_dry_run(
    pipeline_id: str,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(trigger_body),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    return engine.dry_run(caller.project, record, body.params, body.variables, body.full_refresh)


@router.get("/api/runs/{run_id}", response_model=Run)
def get_run(run_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine) -> dict:
    return engine.get_run(caller.project, run_id)


@router.post("/api/runs/{run_id}/cancel", response_model=Cancelled)
def post_cancel(run_id: str, caller: Principal = Depends(editor), engine: RunEngine = Engine) -> dict:
    return engine.cancel(caller.project, run_id)


@router.post("/api/runs/{run_id}/resume", status_code=202, response_model=Resumed)
def post_resume(run_id: str, caller: Principal = Depends(editor), engine: RunEngine = Engine) -> dict:
    return engine.resume(caller.project, run_id, resumed_view)


@router.get("/api/runs/{run_id}/logs", response_model=list[LogLine])
def get_run_logs(
    run_id: str,
    caller: Principal = Depends(viewer),
    node_id: str | None = None,
    level: str | None = Query(None, pattern=LEVEL),
    engine: RunEngine = Engine,
) -> list[dict]:
    return engine.log_lines(caller.project, run_id, node_id, level)[1]


@router.get("/api/runs/{run_id}/logs/export")
def get_run_logs_export(
    run_id: str,
    request: Request,
    caller: Principal = Depends(viewer),
    node_id: str | None = None,
    level: str | None = Query(None, pattern=LEVEL),
    format: str | None = Query(None, pattern="^(text|ndjson)$"),  # noqa: A002 - the query parameter's name
    engine: RunEngine = Engine,
) -> Response:
    number, lines = engine.log_lines(caller.project, run_id, node_id, level)
    wanted = format or ("ndjson" if "ndjson" in (request.headers.get("accept") or "") else "text")
    body, media, filename = log_export(number, lines, wanted)
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get("/api/runs/{run_id}/nodes/{node_id}/preview", response_model=NodePreview)
def get_node_preview(
    run_id: str, node_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    return engine.node_preview(caller.project, run_id, node_id)


@router.get("/api/runs/{run_id}/nodes/{node_id}/profile", response_model=NodeProfile)
def get_node_profile(
    run_id: str, node_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    return engine.node_profile(caller.project, run_id, node_id)
