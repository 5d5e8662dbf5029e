"""Every route declares its response model, the OpenAPI of each area documents it, and what the
routes answer in a walk through every area is what their models declare: no key a model does not
name (a model that lags behind its view would document less than the route answers)."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, get_args, get_origin

import boto3
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match

from sluice.auth.principal import Principal, Role
from sluice.edge.responses import OpenAnswer
from tests.apigw import ROOT, LambdaContext, invoke, load_area

ADMIN = Principal("acme", Role.admin, "user:ad")
AREAS = ("platform", "pipelines", "lineage", "runs", "monitor")
NODES = [
    {"id": "raw", "nodeType": "source", "config": {"kind": "inline", "rows": [{"id": 1, "amount": 5}]}},
    {"id": "clean", "nodeType": "transform", "config": {"sql": "select * from raw where amount > 0"}},
    {
        "id": "out",
        "nodeType": "target",
        "config": {"kind": "dataset", "name": "clean_orders", "mode": "overwrite"},
    },
]
EDGES = [{"source": "raw", "target": "clean"}, {"source": "clean", "target": "out"}]
NO_BODY = {204}


def undeclared(annotation: Any, value: Any, where: str = "") -> list[str]:
    """Paths of keys in `value` that the annotation (a response model, list or dict of one) does
    not declare; values under an `Any` are not looked into."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return []
        found: list[str] = []
        if issubclass(annotation, OpenAnswer):
            return found
        by_alias = {f.alias or name: f for name, f in annotation.model_fields.items()}
        for key, item in value.items():
            field = by_alias.get(key)
            if field is None:
                found.append(f"{where}.{key}")
            else:
                found += undeclared(field.annotation, item, f"{where}.{key}")
        return found
    if origin is list and isinstance(value, list):
        (inner,) = get_args(annotation)
        return [p for i, item in enumerate(value) for p in undeclared(inner, item, f"{where}[{i}]")]
    if origin is dict and isinstance(value, dict):
        inner = get_args(annotation)[1]
        return [p for key, item in value.items() for p in undeclared(inner, item, f"{where}[{key}]")]
    return [p for arg in get_args(annotation) for p in undeclared(arg, value, where)] if origin else []


def api_routes(area: str) -> list[APIRoute]:
    """The area's routes (the app keeps each included router whole, its routes inside it)."""

    def flat(routes: list[Any]) -> list[APIRoute]:
        found = []
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):
                found += flat(route.original_router.routes)
        return found

    return flat(load_area(area).app.routes)


def route_of(area: str, method: str, path: str) -> APIRoute:
    for route in api_routes(area):
        if method in route.methods:
            match, _ = route.matches({"type": "http", "path": path, "root_path": "", "method": method})
            if match == Match.FULL:
                return route
    raise AssertionError(f"no route {method} {path} in {area}")


class Walk:
    """Calls routes as the gateway would and checks each answer against its route's model."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, area: str, method: str, path: str, body: Any = None, expect: int = 200, **kw: Any):
        status, answer = invoke(load_area(area).handler, method, path, body, ADMIN, **kw)
        assert status == expect, (method, path, status, answer)
        route = route_of(area, method, path)
        self.seen.add((area, route.path))
        if status not in NO_BODY and route.response_model is not None:
            assert undeclared(route.response_model, answer) == [], (method, path)
        return answer


def load_runs_tasks():
    name = "sluice_response_models_runs_tasks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "runs" / "tasks.py")
        assert spec and spec.loader
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.fixture
def walk(table, monkeypatch):
    sqs = boto3.client("sqs")
    run_queue = sqs.create_queue(QueueName="runs.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    check_queue = sqs.create_queue(QueueName="checks")["QueueUrl"]
    boto3.client("s3").create_bucket(Bucket="sluice-data")
    boto3.client("events").create_event_bus(Name="sluice-test")
    monkeypatch.setenv("RUN_QUEUE_URL", run_queue)
    monkeypatch.setenv("CHECK_QUEUE_URL", check_queue)
    monkeypatch.setenv("DATA_BUCKET", "sluice-data")
    monkeypatch.setenv("EVENT_BUS_NAME", "sluice-test")
    return Walk()


def run_to_the_end(project: str, run_id: int) -> None:
    """The Run state machine's tasks, in-process: plan, each level's nodes, finish."""
    tasks, context = load_runs_tasks(), LambdaContext()
    event = {"project": project, "run_id": run_id}
    tasks.plan_run(event, context)
    step = tasks.next_step({**event, "level": 0}, context)
    while step["action"] == "run":
        for node in step["nodes"]:
            tasks.execute_node({**event, "node_id": node}, context)
        step = tasks.next_step({**event, "level": step["level"]}, context)
    tasks.finish_run({**event, "outcome": "success"}, context)


def test_every_json_route_declares_a_response_model_that_its_openapi_documents():
    for area in AREAS:
        documented = load_area(area).app.openapi()["paths"]
        for route in api_routes(area):
            if route.status_code in NO_BODY:
                continue
            if route.path == "/api/runs/{run_id}/logs/export":  # a file download, not JSON
                continue
            assert route.response_model is not None, (area, route.path)
            for method in route.methods:
                answer = documented[route.path][method.lower()]["responses"][str(route.status_code or 200)]
                schema = answer["content"]["application/json"]["schema"]
                assert schema.get("$ref") or schema.get("items") or schema.get("additionalProperties"), (
                    area,
                    route.path,
                    schema,
                )


def test_a_walk_through_every_area_answers_only_what_the_models_declare(walk):
    # platform
    walk("platform", "GET", "/")
    walk("platform", "GET", "/health")
    walk("platform", "POST", "/api/v1/api-keys", {"name": "ci", "role": "editor"}, 201)
    walk("platform", "GET", "/api/v1/api-keys")
    walk("platform", "PATCH", "/api/system/settings", {"max_concurrent_runs": 3})
    walk("platform", "GET", "/api/system/settings")

    # Watcher's registry and lineage
    walk(
        "pipelines",
        "POST",
        "/pipeline_type",
        {"name": "etl", "freshness_number": 1, "freshness_datepart": "day"},
        201,
    )
    walk(
        "pipelines",
        "POST",
        "/pipeline",
        {"name": "loader", "pipeline_type_name": "etl", "next_watermark": "5"},
        201,
    )
    walk("pipelines", "GET", "/pipeline")
    walk("pipelines", "GET", "/pipeline/1")
    walk("pipelines", "PATCH", "/pipeline", {"id": 1, "timeliness_number": 2, "timeliness_datepart": "hour"})
    walk("pipelines", "GET", "/pipeline_type")
    walk("pipelines", "GET", "/pipeline_type/1")
    walk("pipelines", "PATCH", "/pipeline_type", {"id": 1, "mute_freshness_check": True})
    address = {"name": "db.public.orders", "address_type_name": "table", "address_type_group_name": "pg"}
    walk("lineage", "POST", "/address", address, 201)
    walk("lineage", "GET", "/address")
    walk("lineage", "GET", "/address/1")
    walk("lineage", "PATCH", "/address", {"id": 1, "primary_key": "id"})
    walk("lineage", "GET", "/address_type")
    walk("lineage", "GET", "/address_type/1")
    walk("lineage", "PATCH", "/address_type", {"id": 1, "group_name": "postgres"})
    target = {**address, "name": "db.public.totals"}
    lineage = {"pipeline_id": 1, "source_addresses": [address], "target_addresses": [target]}
    walk("lineage", "POST", "/address_lineage", lineage, 201)
    walk("lineage", "GET", "/address_lineage/1")

    # executions and monitoring
    walk(
        "runs",
        "POST",
        "/start_pipeline_execution",
        {"pipeline_id": 1, "start_date": "2024-01-15T06:00:00Z"},
        201,
    )
    end = {
        "id": 1,
        "end_date": "2024-01-15T06:10:00Z",
        "completed_successfully": True,
        "total_rows": 9,
        "inserts": 9,
    }
    walk("runs", "POST", "/end_pipeline_execution", end, 204)
    walk("runs", "GET", "/pipeline_execution/1")
    rule = {"pipeline_id": 1, "metric_field": "total_rows", "z_threshold": 2, "lookback_days": 30}
    walk("monitor", "POST", "/anomaly_detection_rule", rule, 201)
    walk("monitor", "GET", "/anomaly_detection_rule")
    walk("monitor", "GET", "/anomaly_detection_rule/1")
    walk("monitor", "PATCH", "/anomaly_detection_rule", {"id": 1, "active": False})
    walk("monitor", "POST", "/timeliness", raw_body="")
    walk("monitor", "POST", "/freshness")
    walk("monitor", "GET", "/api/pipeline/freshness")
    walk("monitor", "POST", "/log_cleanup", {"retention_days": 365})
    walk("monitor", "POST", "/celery/monitor-queue")

    # the catalog and pipeline definitions
    connector = {"name": "warehouse", "type": "postgres", "config": {"host": "h", "password": "p4ss"}}
    walk("pipelines", "POST", "/api/v1/connectors", connector, 201)
    walk("pipelines", "GET", "/api/v1/connectors", query={"limit": "5"})
    walk("pipelines", "GET", "/api/v1/connectors/connector-1")
    walk("pipelines", "PUT", "/api/v1/connectors/connector-1", {"type": "postgresql"})
    schema = {"name": "orders", "columns": [{"name": "id", "type": "bigint", "nullable": False}]}
    walk("pipelines", "POST", "/api/v1/schemas", schema, 201)
    walk("pipelines", "GET", "/api/v1/schemas")
    walk("pipelines", "GET", "/api/v1/schemas/schema-1")
    walk("pipelines", "PUT", "/api/v1/schemas/schema-1", {"displayName": "Orders"})
    walk("pipelines", "PUT", "/api/v1/variables/REGION", {"value": "eu", "description": "where"}, 201)
    walk("pipelines", "PUT", "/api/v1/variables/TOKEN", {"value": "t0k", "secret": True}, 201)
    walk("pipelines", "GET", "/api/v1/variables", query={"limit": "1"})
    walk("pipelines", "GET", "/api/v1/variables/TOKEN")
    definition = {
        "name": "orders",
        "nodes": NODES,
        "edges": EDGES,
        "connectorId": "connector-1",
        "schemaId": "schema-1",
        "schedule": "0 6 * * *",
        "executionConfig": {"parallelism": 2, "mode": "full_refresh"},
    }
    created = walk("pipelines", "POST", "/api/v1/pipelines", definition, 201)["data"]
    reader = {
        "name": "reader",
        "nodes": [
            {"id": "in", "nodeType": "source", "config": {"kind": "dataset", "name": "clean_orders"}},
            {
                "id": "sink",
                "nodeType": "target",
                "config": {"kind": "dataset", "name": "report", "mode": "append"},
            },
        ],
        "edges": [{"source": "in", "target": "sink"}],
    }
    walk("pipelines", "POST", "/api/v1/pipelines", reader, 201)
    walk("pipelines", "GET", "/api/v1/pipelines")
    walk("pipelines", "GET", "/api/v1/pipelines", query={"limit": "1"})
    walk("pipelines", "GET", "/api/v1/pipelines/orders")
    walk(
        "pipelines",
        "PUT",
        "/api/v1/pipelines/orders",
        {"description": "daily", "nodes": NODES[:2], "edges": EDGES[:1]},
    )
    walk("pipelines", "PUT", "/api/v1/pipelines", {"id": created["id"], "nodes": NODES, "edges": EDGES})
    walk("pipelines", "GET", "/api/v1/pipelines/orders/revisions")
    walk("pipelines", "GET", "/api/v1/pipelines/orders/revisions/2")

    # runs: triggered on each surface, run through the state machine's tasks, read back
    run = walk("runs", "POST", f"/api/pipelines/{created['id']}/run", {"params": {"day": 1}}, 202)
    number = int(run["id"].removeprefix("run-"))
    run_to_the_end("acme", number)
    walk("runs", "GET", f"/api/pipelines/{created['id']}/runs")
    walk("runs", "GET", f"/api/runs/{run['id']}")
    walk("runs", "GET", f"/api/runs/{run['id']}/logs")
    walk("runs", "GET", f"/api/runs/{run['id']}/nodes/clean/preview")
    walk("runs", "GET", f"/api/runs/{run['id']}/nodes/clean/profile")
    walk("runs", "POST", f"/api/pipelines/{created['id']}/dry-run")
    walk("runs", "POST", "/api/v1/pipelines/orders/runs", {"dry_run": True})
    pending = walk("runs", "POST", "/api/v1/pipelines/orders/runs", {}, 202)["data"]
    walk("runs", "POST", f"/api/v1/pipelines/{created['id']}/run", {}, 201)
    walk("runs", "GET", "/api/v1/pipelines/orders/runs")
    walk("runs", "GET", f"/api/v1/pipelines/orders/runs/{run['id']}")
    walk("runs", "POST", f"/api/runs/{pending['id']}/cancel")
    failed = walk("runs", "POST", f"/api/pipelines/{created['id']}/run", {}, 202)
    tasks = load_runs_tasks()
    tasks.finish_run(
        {"project": "acme", "run_id": int(failed["id"][4:]), "outcome": "failed"}, LambdaContext()
    )
    walk("runs", "POST", f"/api/runs/{failed['id']}/resume", expect=202)
    flow = walk(
        "runs",
        "POST",
        "/api/pipeline/run",
        {"target": {"type": "dataset", "name": "clean_orders"}, "scope": "downstream"},
        202,
    )
    walk("runs", "GET", "/api/pipeline/runs")
    walk("runs", "GET", f"/api/pipeline/runs/{run['id']}/details")
    walk("runs", "GET", f"/api/pipeline/runs/{flow['run_id']}/details")
    walk("lineage", "GET", "/api/lineage")

    # the platform of seed 002 (issue 12)
    backfill = {"start_date": "2024-01-01", "end_date": "2024-01-03", "dry_run": True}
    walk("runs", "POST", f"/api/pipelines/{created['id']}/backfill", backfill)
    walk("platform", "GET", "/api/runs/calendar", query={"days": "7"})
    walk("platform", "GET", "/api/dashboard")
    walk("platform", "GET", "/api/search", query={"q": "orders"})
    walk("platform", "GET", "/api/system/info")
    walk("platform", "POST", "/api/system/purge", {"days": 30})
    walk("platform", "GET", "/api/scheduler/status")

    # every route with a body was walked
    for area in AREAS:
        for route in api_routes(area):
            if route.response_model is not None:
                assert (area, route.path) in walk.seen, (area, route.path)
