"""Runs area: Watcher's execution reports (start, end, one execution with its children) and the
Runs API of seeds 001 and 002 (trigger, read, cancel, resume, logs, preview, profile, dry run)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sluice import composition, timeutil
from sluice.auth.principal import Principal
from sluice.domain import ids
from sluice.domain.events import EventPublisher
from sluice.domain.executions import (
    EndExecution,
    StartExecution,
    end_execution,
    get_execution,
    start_execution,
)
from sluice.domain.run_engine import (
    MAX_RUN_PAGE_SIZE,
    RUN_PAGE_SIZE,
    RunEngine,
    RunRequest,
    run_ref,
)
from sluice.domain.views.runs import definition_run_view, flow_run_view, flow_status, runs_api_view
from sluice.edge.app import create_app, editor, json_body, lambda_handler, viewer
from sluice.engine import Storage, read_logs, read_preview, read_profile
from sluice.errors import NotFound, ValidationFailed
from sluice.store.executions import RunRepository, WatchedPipelines

router = APIRouter()
Engine = Depends(composition.run_engine)
Runs = Depends(composition.run_repository)
Pipelines = Depends(composition.watched_pipelines)


@router.post("/start_pipeline_execution", status_code=201)
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


@router.get("/pipeline_execution/{pipeline_execution_id}")
def get_pipeline_execution(
    pipeline_execution_id: int, caller: Principal = Depends(viewer), runs: RunRepository = Runs
) -> dict:
    return get_execution(caller.project, pipeline_execution_id, runs)


# -- the Runs API (seeds 001, 002) ---------------------------------------------------------------
class TriggerBody(BaseModel):
    """Seed 002's trigger; seed 001's fields are accepted too (one trigger, two spellings)."""

    model_config = ConfigDict(extra="ignore")
    params: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    full_refresh: bool = False
    dry_run: bool = False
    # Sluice's addition (SPEC 4, scopes inside one pipeline): run `node` and its ancestors,
    # descendants, both, or only it; `full` without a node is the whole pipeline.
    scope: Literal["single", "upstream", "downstream", "full"] = "full"
    node: str | None = None


def _request(body: TriggerBody, trigger: str) -> RunRequest:
    return RunRequest(
        params=body.params,
        variables=body.variables,
        full_refresh=body.full_refresh,
        scope=body.scope,
        target_node=body.node,
        trigger=trigger,
    )


def _dry_run(engine: RunEngine, project: str, record: dict, body: TriggerBody) -> dict:
    return engine.dry_run(
        project,
        record,
        body.params,
        body.variables,
        composition.node_executor(),
        lambda: composition.resolve_variables(project),
        full_refresh=body.full_refresh,
    )


@router.post("/api/pipelines/{pipeline_id}/run", status_code=202)
def post_pipeline_run(
    pipeline_id: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(json_body(TriggerBody, empty_is_object=True)),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    view, created = engine.trigger(
        caller.project,
        record,
        _request(body, "api"),
        lambda item: {"id": run_ref(int(item["id"])), "pipeline_id": record_ref(record), "status": "pending"},
        _key(idempotency_key),
        surface="002",
    )
    response.status_code = 202 if created else 200
    return view


@router.get("/api/pipelines/{pipeline_id}/runs")
def get_pipeline_runs(
    pipeline_id: str,
    caller: Principal = Depends(viewer),
    page: int = Query(1, ge=1, le=10_000),
    per_page: int = Query(RUN_PAGE_SIZE, ge=1, le=MAX_RUN_PAGE_SIZE),
    engine: RunEngine = Engine,
) -> list[dict]:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    return [
        runs_api_view(item) for item in engine.list_runs(caller.project, int(record["id"]), page, per_page)
    ]


@router.post("/api/pipelines/{pipeline_id}/dry-run")
def post_dry_run(
    pipeline_id: str,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(json_body(TriggerBody, empty_is_object=True)),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    return _dry_run(engine, caller.project, record, body)


@router.get("/api/runs/{run_id}")
def get_run(run_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine) -> dict:
    return engine.get_run(caller.project, run_id)


@router.post("/api/runs/{run_id}/cancel")
def post_cancel(run_id: str, caller: Principal = Depends(editor), engine: RunEngine = Engine) -> dict:
    return engine.cancel(caller.project, run_id)


@router.post("/api/runs/{run_id}/resume", status_code=202)
def post_resume(run_id: str, caller: Principal = Depends(editor), engine: RunEngine = Engine) -> dict:
    def render(item: dict) -> dict:
        return {
            "id": run_ref(int(item["id"])),
            "pipeline_id": ids.render("pipeline", int(item["pipeline_id"])),
            "status": "pending",
            "resumed_from": run_ref(int(item["resumed_from"])),
        }

    return engine.resume(caller.project, run_id, render)


LEVELS = ("debug", "info", "warning", "error")


def _log_lines(
    engine: RunEngine, project: str, run_id: str, node_id: str | None, level: str | None
) -> tuple[int, list[dict]]:
    number, sources = engine.log_sources(project, run_id, node_id)
    storage = Storage.s3()
    lines: list[dict] = []
    for folder, node in sources:
        try:
            found = read_logs(storage, project, folder, node)
        except NotFound:
            continue
        lines += [
            {"run_id": run_ref(number), "node_id": node, **line}
            for line in found
            if level is None or line.get("level") == level
        ]
    lines.sort(key=lambda line: line.get("timestamp") or "")
    return number, lines


@router.get("/api/runs/{run_id}/logs")
def get_run_logs(
    run_id: str,
    caller: Principal = Depends(viewer),
    node_id: str | None = None,
    level: str | None = Query(None, pattern="^(debug|info|warning|error)$"),
    engine: RunEngine = Engine,
) -> list[dict]:
    return _log_lines(engine, caller.project, run_id, node_id, level)[1]


@router.get("/api/runs/{run_id}/logs/export")
def get_run_logs_export(
    run_id: str,
    request: Request,
    caller: Principal = Depends(viewer),
    node_id: str | None = None,
    level: str | None = Query(None, pattern="^(debug|info|warning|error)$"),
    format: str | None = Query(None, pattern="^(text|ndjson)$"),  # noqa: A002 - the query parameter's name
    engine: RunEngine = Engine,
) -> Response:
    number, lines = _log_lines(engine, caller.project, run_id, node_id, level)
    wanted = format or ("ndjson" if "ndjson" in (request.headers.get("accept") or "") else "text")
    if wanted == "ndjson":
        body = "".join(json.dumps(line) + "\n" for line in lines)
        media, suffix = "application/x-ndjson", "ndjson"
    else:
        body = "".join(
            f"{line.get('timestamp')} [{str(line.get('level')).upper()}] {line['node_id']}: {line.get('message')}\n"
            for line in lines
        )
        media, suffix = "text/plain; charset=utf-8", "log"
    disposition = f'attachment; filename="{run_ref(number)}-logs.{suffix}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/api/runs/{run_id}/nodes/{node_id}/preview")
def get_node_preview(
    run_id: str, node_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    folder = engine.node_artifact_run(caller.project, run_id, node_id)
    return read_preview(Storage.s3(), caller.project, folder, node_id)


@router.get("/api/runs/{run_id}/nodes/{node_id}/profile")
def get_node_profile(
    run_id: str, node_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    folder = engine.node_artifact_run(caller.project, run_id, node_id)
    return read_profile(Storage.s3(), caller.project, folder, node_id)


# -- seed 001: runs of a pipeline by name ----------------------------------------------------------
@router.post("/api/v1/pipelines/{name}/runs", status_code=202)
def post_v1_runs(
    name: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(json_body(TriggerBody, empty_is_object=True)),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_ref(caller.project, name)
    if body.dry_run:
        nodes = _dry_run(engine, caller.project, record, body)
        failed = any(n["status"] == "failed" for n in nodes.values())
        response.status_code = 200
        return {
            "data": {
                "id": None,
                "pipeline": record["name"],
                "status": "failed" if failed else "success",
                "dry_run": True,
                "started_at": None,
                "progress": {"stage": "done", "rows_processed": 0},
                "nodes": nodes,
            }
        }
    view, created = engine.trigger(
        caller.project,
        record,
        _request(body, "api"),
        lambda item: {"data": definition_run_view(item, record["name"])},
        _key(idempotency_key),
        surface="001",
    )
    response.status_code = 202 if created else 200
    return view


# -- seed 003: a run of a pipeline by id -----------------------------------------------------------
@router.post("/api/v1/pipelines/{name}/run", status_code=201)
def post_v1_run(
    name: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: TriggerBody = Depends(json_body(TriggerBody, empty_is_object=True)),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    engine: RunEngine = Engine,
) -> dict:
    """Seed 003's trigger: `{name}` is the pipeline's id (`pipeline-<n>` or `<n>`) or its name."""
    record = engine.pipeline_by_ref(caller.project, name)

    def render(item: dict) -> dict:
        return {"data": {**definition_run_view(item, record["name"]), "pipeline_id": record_ref(record)}}

    view, created = engine.trigger(
        caller.project, record, _request(body, "api"), render, _key(idempotency_key), surface="003"
    )
    response.status_code = 201 if created else 200
    return view


@router.get("/api/v1/pipelines/{name}/runs")
def get_v1_runs(
    name: str,
    caller: Principal = Depends(viewer),
    page: int = Query(1, ge=1, le=10_000),
    per_page: int = Query(20, ge=1, le=MAX_RUN_PAGE_SIZE),
    engine: RunEngine = Engine,
) -> dict:
    record = engine.pipeline_by_ref(caller.project, name)
    items = engine.list_runs(caller.project, int(record["id"]), page, per_page)
    return {
        "data": [definition_run_view(item, record["name"]) for item in items],
        "page": page,
        "per_page": per_page,
    }


@router.get("/api/v1/pipelines/{name}/runs/{run_id}")
def get_v1_run(
    name: str, run_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    record = engine.pipeline_by_ref(caller.project, name)
    item = engine.run_item(caller.project, run_id)
    if int(item["pipeline_id"]) != int(record["id"]):
        raise NotFound(f"Run {run_ref(int(item['id']))} is not a run of pipeline {record['name']}.")
    view = definition_run_view(item, record["name"])
    view["node_runs"] = engine.get_run(caller.project, run_id)["node_runs"]
    return {"data": view}


# -- seed 000: flow runs, run history and details ----------------------------------------------------
class FlowTarget(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["pipeline", "dataset", "recipe"]
    name: str = Field(min_length=1, max_length=255)


class FlowRunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    target: FlowTarget
    scope: Literal["single", "upstream", "downstream", "full"] = "single"


@router.post("/api/pipeline/run", status_code=202)
def post_flow_run(
    caller: Principal = Depends(editor),
    body: FlowRunBody = Depends(json_body(FlowRunBody)),
    engine: RunEngine = Engine,
) -> dict:
    flow = engine.project_flow(caller.project)
    return engine.trigger_flow(
        caller.project,
        flow,
        body.target.model_dump(),
        body.scope,
        lambda item: {
            "run_id": run_ref(int(item["id"])),
            "status": flow_status(item["status"]),
            "pipelines": [[flow.records[int(p)]["name"] for p in level] for level in item["flow"]["levels"]],
        },
    )


@router.get("/api/pipeline/runs")
def get_flow_runs(
    caller: Principal = Depends(viewer),
    status: str | None = Query(None, pattern="^(queued|pending|running|success|failed|cancelled)$"),
    recipe_type: str | None = Query(None, max_length=64),
    since: str | None = None,
    limit: int = Query(RUN_PAGE_SIZE, ge=1, le=MAX_RUN_PAGE_SIZE),
    engine: RunEngine = Engine,
) -> list[dict]:
    wanted = "pending" if status == "queued" else status
    bound = None if since is None else timeutil.sortable(timeutil.parse_instant(since, "since"))

    def keep(item: dict) -> bool:
        view_type = "pipeline" if item.get("origin") == "sluice" else "external"
        return (wanted is None or item.get("status") == wanted) and (
            recipe_type is None or recipe_type == view_type
        )

    items = engine.runs.recent(caller.project, bound, keep, limit)
    return [flow_run_view(item) for item in items]


@router.get("/api/pipeline/runs/{run_id}/details")
def get_flow_run_details(
    run_id: str, caller: Principal = Depends(viewer), engine: RunEngine = Engine
) -> dict:
    item = engine.run_item(caller.project, run_id)
    members = [item]
    children = engine.runs.children(caller.project, int(item["id"])) if item.get("flow") else []
    if item.get("flow"):
        members = children
    compiled, written, stdout = [], set(), []
    for member in members:
        number = int(member["id"])
        for node_run in sorted(
            engine.runs.node_runs(caller.project, number), key=lambda n: int(n.get("position", 0))
        ):
            if node_run.get("compiled_sql"):
                compiled.append(
                    {
                        "run_id": run_ref(number),
                        "node_id": node_run["node_id"],
                        "sql": node_run["compiled_sql"],
                    }
                )
            dataset = (node_run.get("written") or {}).get("dataset")
            if dataset and node_run.get("status") == "success":
                written.add(dataset)
        stdout += [
            f"{line.get('timestamp')} [{str(line.get('level')).upper()}] {line['node_id']}: {line.get('message')}"
            for line in _log_lines(engine, caller.project, str(number), None, None)[1]
        ]
    flow = engine.project_flow(caller.project) if written else None
    lineage = [
        {
            "dataset": name,
            "read_by": [
                {"pipeline_id": ids.render("pipeline", p), "name": flow.records[p]["name"]}
                for p in flow.readers_of(name)
            ]
            if flow
            else [],
        }
        for name in sorted(written)
    ]
    parameters = {
        "params": item.get("params") or {},
        "variables": item.get("variables") or {},
        "full_refresh": bool(item.get("full_refresh")),
        "scope": (item.get("flow") or {}).get("scope") or item.get("scope"),
        "target": (item.get("flow") or {}).get("target"),
        "node": item.get("target_node"),
    }
    return {
        **flow_run_view(item),
        "parameters": parameters,
        "compiled_sql": compiled,
        "stdout": "".join(line + "\n" for line in stdout),
        "downstream_lineage": lineage,
        "children": [flow_run_view(c) for c in children],
    }


def record_ref(record: dict) -> str:
    return ids.render("pipeline", int(record["id"]))


def _key(header: str | None) -> str | None:
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > 255:
        raise ValidationFailed("Idempotency-Key must be 1 to 255 characters.")
    return key


app = create_app("runs", [router])
handler = lambda_handler(app, "runs")
