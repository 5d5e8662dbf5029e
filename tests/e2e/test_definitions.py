"""Pipeline definitions over HTTP through the local stack: both spellings, JSON and YAML, every 422,
pages and cursors, roles, revisions, deletion with run history, Watcher interplay, bad input."""

from __future__ import annotations

import copy
import json
import time

import pytest

from tests.e2e.conftest import eventually, jwt_for, moto_client

NODES = [
    {
        "id": "raw",
        "nodeType": "source",
        "label": "Raw",
        "config": {"kind": "inline", "rows": [{"id": 1, "amount": 5}]},
        "position": {"x": 0, "y": 0},
    },
    {
        "id": "clean",
        "nodeType": "transform",
        "label": None,
        "config": {"sql": "select * from raw where amount > 0"},
        "position": {"x": 150, "y": 0},
    },
    {
        "id": "big",
        "nodeType": "filter",
        "label": None,
        "config": {"condition": "amount > 1"},
        "position": None,
    },
    {
        "id": "out",
        "nodeType": "target",
        "label": "Out",
        "config": {"kind": "dataset", "name": "orders_clean", "mode": "overwrite"},
        "position": None,
    },
]
EDGES = [
    {"source": "raw", "target": "clean", "label": None},
    {"source": "clean", "target": "big", "label": "rows"},
    {"source": "big", "target": "out", "label": None},
]
SPELLED_001 = {
    "sources": [
        {
            "name": "raw",
            "type": "inline",
            "rows": [{"id": 1, "amount": 5}],
            "label": "Raw",
            "position": {"x": 0, "y": 0},
        }
    ],
    "transforms": [
        {
            "name": "clean",
            "type": "sql",
            "sql": "select * from raw where amount > 0",
            "inputs": ["raw"],
            "position": {"x": 150, "y": 0},
        },
        {
            "name": "big",
            "type": "filter",
            "condition": "amount > 1",
            "inputs": [{"name": "clean", "label": "rows"}],
        },
    ],
    "destinations": [
        {
            "name": "out",
            "type": "dataset",
            "mode": "overwrite",
            "dataset": "orders_clean",
            "inputs": ["big"],
            "label": "Out",
        }
    ],
}
YAML_BODY = """
name: {name}
version: "2.1"
description: Orders, cleaned
schedule: "15 */6 * * *"
sources:
  - name: raw
    type: inline
    rows: [{{id: 1, amount: 5}}]
    label: Raw
    position: {{x: 0, y: 0}}
transforms:
  - name: clean
    type: sql
    sql: select * from raw where amount > 0
    inputs: [raw]
    position: {{x: 150, y: 0}}
  - name: big
    type: filter
    condition: amount > 1
    inputs:
      - {{name: clean, label: rows}}
destinations:
  - name: out
    type: dataset
    mode: overwrite
    dataset: orders_clean
    inputs: [big]
    label: Out
"""
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
)
UNSTABLE = {"id", "name", "created_at", "updated_at", "createdAt", "updatedAt"}


@pytest.fixture
def project(project_admin):
    return project_admin[0]


@pytest.fixture
def editor(stack, project):
    with stack.client(jwt_for(project, "editor")) as client:
        yield client


@pytest.fixture
def viewer(stack, project):
    with stack.client(jwt_for(project, "viewer")) as client:
        yield client


@pytest.fixture
def admin(stack, project_admin):
    with stack.client(project_admin[1]) as client:
        yield client


def definition(name: str, **fields) -> dict:
    return {"name": name, "nodes": copy.deepcopy(NODES), "edges": copy.deepcopy(EDGES), **fields}


def create(client, name: str, **fields) -> dict:
    response = client.post("/api/v1/pipelines", json=definition(name, **fields))
    assert response.status_code == 201, response.text
    return response.json()["data"]


def stable(view: dict) -> dict:
    return {k: v for k, v in view.items() if k not in UNSTABLE}


def total(client) -> int:
    return client.get("/api/v1/pipelines").json()["meta"]["total"]


# -- spellings and formats -------------------------------------------------------------------------
def test_the_same_pipeline_created_in_each_spelling_reads_back_in_both(editor, viewer):
    from_003 = create(editor, "orders-003")
    response = editor.post("/api/v1/pipelines", json={"name": "orders-001", **SPELLED_001})
    assert response.status_code == 201, response.text
    from_001 = response.json()["data"]
    for name in ("orders-003", "ORDERS-001"):
        data = viewer.get(f"/api/v1/pipelines/{name}").json()["data"]
        assert data["nodes"] == NODES and data["edges"] == EDGES
        assert {k: data[k] for k in SPELLED_001} == SPELLED_001
    assert stable(from_003) == stable(from_001)


def test_yaml_and_json_bodies_give_the_same_record(editor):
    for content_type in ("application/yaml", "text/yaml"):
        response = editor.post(
            "/api/v1/pipelines",
            content=YAML_BODY.format(name=f"yaml-{content_type.split('/')[0]}"),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 201, response.text
    from_yaml = response.json()["data"]
    from_json = editor.post(
        "/api/v1/pipelines",
        json={
            "name": "json",
            "version": "2.1",
            "description": "Orders, cleaned",
            "schedule": "15 */6 * * *",
            **SPELLED_001,
        },
    ).json()["data"]
    assert stable(from_yaml) == stable(from_json)
    assert from_yaml["schedule"] == "15 */6 * * *" and from_yaml["next_run_at"].endswith(":15:00Z")

    # The update takes YAML too.
    changed = editor.put(
        "/api/v1/pipelines/json",
        content="description: |\n  Orders,\n  cleaned twice\nstatus: paused\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["description"] == "Orders,\ncleaned twice\n"
    assert changed.json()["data"]["status"] == "paused" and changed.json()["data"]["next_run_at"] is None


# -- every 422, and bad input writes nothing -----------------------------------------------------------
REFUSED = [
    ({"sources": SPELLED_001["sources"]}, "not both"),
    (
        {"nodes": [{**NODES[0], "nodeType": "join"}], "edges": []},
        "Node 'raw': nodeType 'join' is not one Sluice can run",
    ),
    ({"nodes": [{**NODES[0], "config": {"kind": "ftp"}}], "edges": []}, "source kind 'ftp'"),
    ({"edges": [*EDGES, {"source": "out", "target": "ghost"}]}, "'ghost' is not a node"),
    ({"edges": [*EDGES, {"source": "out", "target": "clean"}]}, "is on a cycle"),
    ({"edges": EDGES[:2]}, "Node 'out': a target needs an input"),
    ({"edges": [EDGES[0], EDGES[2]]}, "Node 'big': a filter needs exactly one input; it has 0"),
    (
        {"nodes": [NODES[0], {**NODES[1], "config": {"sql": "select from where"}}, NODES[2], NODES[3]]},
        "does not parse as duckdb SQL",
    ),
    (
        {"nodes": [NODES[0], {**NODES[1], "config": {"sql": "select * from customers"}}, NODES[2], NODES[3]]},
        "reads customers, which is not one of its upstream nodes",
    ),
    (
        {
            "nodes": [
                NODES[0],
                {**NODES[1], "config": {"sql": "select * from raw", "dialect": "cobol"}},
                NODES[2],
                NODES[3],
            ]
        },
        "is not a SQL dialect",
    ),
    ({"schedule": "every six hours"}, "must have five fields"),
    ({"schedule": "0 0 31 2 *"}, "never fires"),
    ({"schedule": "0 9 1 * MON"}, "restricts both day-of-month and day-of-week"),
    ({"name": "team/orders"}, "no slashes or control characters"),
    ({"name": "bell\u0007"}, "no slashes or control characters"),
    ({"name": "x" * 151}, "1-150 characters"),
    ({"name": "pipeline-3"}, "looks like a pipeline id"),
    ({"connectorId": "connector-404"}, "connectorId connector-404 does not exist."),
    ({"schemaId": "schema-404"}, "schemaId schema-404 does not exist."),
]


@pytest.mark.parametrize("changes, expected", REFUSED)
def test_every_refused_definition_is_422_with_its_reason_and_writes_nothing(editor, changes, expected):
    response = editor.post("/api/v1/pipelines", json={**definition("refused"), **changes})
    assert response.status_code == 422 and expected in response.json()["detail"], response.text
    assert total(editor) == 0


def test_bad_input_is_refused_quickly_and_writes_nothing(editor):
    cases = [
        (b"\x00\x01 neither", "application/json", "not"),
        ("<pipeline name='x'/>", "application/xml", "not valid JSON"),
        ("name: [never closed\nversion: 1\n", "application/yaml", "line 2"),
        ("name: ok\n\tversion: 1\n", "text/yaml", "not valid YAML"),
        (BILLION_LAUGHS, "application/yaml", "anchors and aliases"),
    ]
    for raw, content_type, expected in cases:
        started = time.perf_counter()
        response = editor.post("/api/v1/pipelines", content=raw, headers={"Content-Type": content_type})
        assert response.status_code == 422 and expected in json.dumps(response.json()), response.text
        assert time.perf_counter() - started < 2

    huge = editor.post("/api/v1/pipelines", json=definition("huge", description="d" * 1_000_000))
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"] == ["body", "description"]

    many = [
        {"id": f"n{i}", "nodeType": "source", "config": {"kind": "inline", "rows": []}} for i in range(10_000)
    ]
    response = editor.post("/api/v1/pipelines", json={"name": "many", "nodes": many})
    assert response.status_code == 422
    assert response.json()["detail"] == "A pipeline has at most 500 nodes; this one has 10000."

    assert total(editor) == 0
    assert create(editor, "first")["id"] == "pipeline-1"  # no id was used up by refused input


def test_limits_are_inclusive(editor):
    nodes = [
        {"id": f"n{i}", "nodeType": "source", "config": {"kind": "inline", "rows": []}} for i in range(500)
    ]
    response = editor.post(
        "/api/v1/pipelines", json={"name": "five-hundred", "description": "d" * 4000, "nodes": nodes}
    )
    assert response.status_code == 201, response.text
    assert len(editor.get("/api/v1/pipelines/five-hundred").json()["data"]["sources"]) == 500


def test_a_taken_name_is_409_across_surfaces_and_case(editor):
    create(editor, "Orders")
    assert editor.post("/pipeline", json={"name": "Events", "pipeline_type_name": "etl"}).status_code == 201
    for name in ("orders", "EVENTS"):
        response = editor.post("/api/v1/pipelines", json=definition(name))
        assert response.status_code == 409 and "already taken" in response.json()["detail"]


def test_updates_refuse_what_creates_refuse(editor):
    view = create(editor, "target")
    cases = [
        ({"id": view["id"], "edges": EDGES}, "edges need nodes"),
        ({"id": view["id"], "nodes": [NODES[3]]}, "a target needs an input"),
        ({"id": view["id"], "name": "a/b"}, "no slashes"),
        ({"id": view["id"], "schedule": "61 * * * *"}, "outside 0-59"),
    ]
    for sent, expected in cases:
        response = editor.put("/api/v1/pipelines", json=sent)
        assert response.status_code == 422 and expected in response.json()["detail"], response.text
    assert editor.put("/api/v1/pipelines", json={"description": "no id"}).status_code == 422
    assert editor.put("/api/v1/pipelines", json={"id": "pipeline-999", "description": "x"}).status_code == 404
    assert editor.get("/api/v1/pipelines/target").json()["data"]["revision"] == 1


# -- lists ------------------------------------------------------------------------------------------
def test_page_and_per_page_and_their_limits(editor, viewer):
    for i in range(5):
        create(editor, f"p{i}", status="draft" if i == 4 else "active")
    page = viewer.get("/api/v1/pipelines", params={"page": 2, "per_page": 2}).json()
    assert [p["name"] for p in page["data"]] == ["p2", "p3"] and page["meta"] == {
        "total": 5,
        "page": 2,
        "per_page": 2,
    }
    default = viewer.get("/api/v1/pipelines").json()
    assert default["meta"] == {"total": 5, "page": 1, "per_page": 20} and len(default["data"]) == 5
    drafts = viewer.get("/api/v1/pipelines", params={"status": "draft"}).json()
    assert [p["name"] for p in drafts["data"]] == ["p4"] and drafts["meta"]["total"] == 1
    assert len(viewer.get("/api/v1/pipelines", params={"per_page": 100}).json()["data"]) == 5
    for params in (
        {"per_page": 101},
        {"per_page": 0},
        {"page": 0},
        {"page": "two"},
        {"limit": 101},
        {"status": "done"},
    ):
        assert viewer.get("/api/v1/pipelines", params=params).status_code == 422, params


def test_cursor_pages_walked_while_pipelines_are_inserted_have_no_duplicate_and_no_gap(editor, viewer):
    for i in range(6):
        create(editor, f"walk-{i}")
    seen, cursor, inserted = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = viewer.get("/api/v1/pipelines", params=params).json()
        assert set(page) == {"data", "pagination", "meta"}
        seen += [p["name"] for p in page["data"]]
        if inserted < 3:
            create(editor, f"new-{inserted}")
            inserted += 1
        if not page["pagination"]["hasMore"]:
            break
        cursor = page["pagination"]["cursor"]
    assert seen == [f"walk-{i}" for i in range(6)] + [f"new-{i}" for i in range(3)]
    assert len(seen) == len(set(seen)) and page["pagination"]["total"] == 9
    assert viewer.get("/api/v1/pipelines", params={"cursor": "garbage!"}).status_code == 422


# -- roles ---------------------------------------------------------------------------------------------
def test_viewer_editor_and_admin_on_each_route(stack, project, editor, viewer, admin):
    view = create(editor, "roles")
    pid = view["id"]
    reads = [
        "/api/v1/pipelines",
        "/api/v1/pipelines/roles",
        f"/api/v1/pipelines/{pid}/revisions",
        "/api/v1/pipelines/roles/revisions/1",
    ]
    for path in reads:
        for client in (viewer, editor, admin):
            assert client.get(path).status_code == 200, path
    with stack.client() as anonymous:
        assert anonymous.get(reads[0]).status_code == 401
        assert anonymous.post("/api/v1/pipelines", content="{bad").status_code == 401
    with stack.client(jwt_for(project, "viewer", ttl=-60)) as expired:
        assert expired.get(reads[1]).status_code == 401

    def writes(client, suffix: str) -> list:
        return [
            client.post("/api/v1/pipelines", json=definition(f"made-{suffix}")),
            client.put("/api/v1/pipelines", json={"id": pid, "description": suffix}),
            client.put("/api/v1/pipelines/roles", json={"version": suffix}),
        ]

    assert [r.status_code for r in writes(viewer, "v")] == [403, 403, 403]
    assert "editor" in viewer.delete("/api/v1/pipelines/roles").json()["detail"]
    assert viewer.delete("/api/v1/pipelines", params={"id": pid}).status_code == 403
    assert [r.status_code for r in writes(editor, "e")] == [201, 200, 200]
    assert [r.status_code for r in writes(admin, "a")] == [201, 200, 200]
    assert editor.delete("/api/v1/pipelines/made-e").status_code == 204
    assert admin.delete("/api/v1/pipelines", params={"id": pid}).status_code == 204
    other = stack.client(jwt_for("someone-else", "admin"))
    assert other.get("/api/v1/pipelines/made-a").status_code == 404
    other.close()


# -- revisions -----------------------------------------------------------------------------------------
def test_revisions_after_three_edits(stack, project, editor, viewer):
    view = create(editor, "revised")
    for index, who in enumerate(("amy", "bob", "cy"), 1):
        nodes = copy.deepcopy(NODES)
        nodes[1]["config"]["sql"] = f"select * from raw where amount > {index}"
        with stack.client(jwt_for(project, "editor", sub=who)) as author:
            response = author.put(f"/api/v1/pipelines/{view['id']}", json={"nodes": nodes, "edges": EDGES})
            assert response.status_code == 200 and response.json()["data"]["revision"] == index + 1
    editor.put("/api/v1/pipelines/revised", json={"description": "not a revision"})
    listed = viewer.get("/api/v1/pipelines/revised/revisions").json()
    assert [r["revision"] for r in listed["data"]] == [4, 3, 2, 1]
    assert [r["author"] for r in listed["data"]] == ["cy", "bob", "amy", "user-editor"]
    assert listed["meta"]["current"] == 4
    third = viewer.get("/api/v1/pipelines/revised/revisions/3").json()["data"]
    assert third["nodes"][1]["config"]["sql"].endswith("> 2") and third["transforms"][0]["sql"].endswith(
        "> 2"
    )
    assert viewer.get("/api/v1/pipelines/revised/revisions/5").status_code == 404


# -- delete with run history ---------------------------------------------------------------------------
def test_deleting_a_pipeline_removes_its_runs(editor, viewer):
    view = create(editor, "short-lived", schedule="0 4 * * *")
    number = int(view["id"].split("-")[1])
    parent = editor.post("/start_pipeline_execution", json={"pipeline_id": number}).json()["id"]
    child = editor.post(
        "/start_pipeline_execution", json={"pipeline_id": number, "parent_id": parent}
    ).json()["id"]
    ended = editor.post(
        "/start_pipeline_execution", json={"pipeline_id": number, "start_date": "2026-01-01T00:00:00Z"}
    ).json()["id"]
    editor.post(
        "/end_pipeline_execution",
        json={
            "id": ended,
            "end_date": "2026-01-01T00:01:00Z",
            "completed_successfully": True,
            "total_rows": 3,
        },
    )
    data = viewer.get("/api/v1/pipelines/short-lived").json()["data"]
    assert data["last_run"]["id"] in (f"run-{parent}", f"run-{child}") and data["lastRunStatus"] == "running"
    for run_id in (parent, child, ended):
        assert viewer.get(f"/pipeline_execution/{run_id}").status_code == 200

    assert editor.delete("/api/v1/pipelines", params={"id": view["id"]}).status_code == 204
    for run_id in (parent, child, ended):
        assert viewer.get(f"/pipeline_execution/{run_id}").status_code == 404
    assert viewer.get("/api/v1/pipelines/short-lived").status_code == 404
    assert viewer.get(f"/pipeline/{number}").status_code == 404
    assert editor.delete("/api/v1/pipelines/short-lived").status_code == 404
    assert total(viewer) == 0
    assert create(editor, "short-lived")["revision"] == 1


# -- Watcher's surface ---------------------------------------------------------------------------------
def test_watcher_and_definition_pipelines_are_one_registry(editor, viewer):
    watcher = editor.post("/pipeline", json={"name": "Billing Sync", "pipeline_type_name": "etl"}).json()
    seen = viewer.get("/api/v1/pipelines/billing sync").json()["data"]
    assert seen["id"] == f"pipeline-{watcher['id']}" and seen["status"] == "active" and seen["nodes"] == []
    assert viewer.get(f"/api/v1/pipelines/{watcher['id']}").json()["data"]["name"] == "billing sync"

    defined = create(editor, "User-Analytics")
    number = int(defined["id"].split("-")[1])
    fetched = viewer.get(f"/pipeline/{number}").json()
    assert fetched["name"] == "User-Analytics" and fetched["active"] is True
    upserted = editor.post("/pipeline", json={"name": "user-analytics", "pipeline_type_name": "etl"})
    assert upserted.status_code == 200 and upserted.json()["id"] == number
    names = {p["name"] for p in viewer.get("/pipeline").json()}
    assert names == {"billing sync", "User-Analytics"}
    assert total(viewer) == 2


# -- schedules ---------------------------------------------------------------------------------------
def test_a_schedule_is_an_eventbridge_schedule_that_follows_the_pipeline(stack, project, editor):
    scheduler = moto_client(stack, "scheduler")
    view = create(editor, "nightly", schedule="30 2 * * 1-5")
    name = f"sluice-{project}-{view['id'].split('-')[1]}"
    saved = scheduler.get_schedule(Name=name)
    assert (
        saved["ScheduleExpression"] == "cron(30 2 ? * MON,TUE,WED,THU,FRI *)" and saved["State"] == "ENABLED"
    )
    assert json.loads(saved["Target"]["Input"])["project"] == project
    editor.put("/api/v1/pipelines/nightly", json={"status": "paused"})
    assert scheduler.get_schedule(Name=name)["State"] == "DISABLED"
    editor.delete("/api/v1/pipelines/nightly")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)


def test_the_local_scheduler_fires_a_pipeline_schedule_and_the_firing_is_recorded(stack, project, editor):
    view = create(editor, "every-minute", schedule="* * * * *")
    number = int(view["id"].split("-")[1])
    dynamodb = moto_client(stack, "dynamodb")
    table = next(t for t in dynamodb.list_tables()["TableNames"] if "Table" in t or "table" in t)
    partition = f"P#{project}#PL#{number:012d}#FIRINGS"

    def firings() -> list:
        return dynamodb.query(
            TableName=table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": partition}},
        )["Items"]

    fired = eventually(firings, timeout=75, interval=1)
    assert fired[0]["scheduled_at"]["S"].endswith(":00.000000Z")
