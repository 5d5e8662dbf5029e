"""Pipeline definitions over HTTP on moto: the pipelines area's Lambda handler driven with API Gateway
events; the table from template.yaml, EventBridge Scheduler from moto."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest

from sluice.auth.principal import Principal, Role
from tests.apigw import invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:ed")
VIEWER = Principal("acme", Role.viewer, "user:vi")
ADMIN = Principal("acme", Role.admin, "user:ad")
OTHER = Principal("globex", Role.admin, "user:other")
TARGET_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sluice-PipelineScheduleFunction"
ROLE_ARN = "arn:aws:iam::123456789012:role/sluice-SchedulerRole"

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
        "position": None,
    },
    {
        "id": "out",
        "nodeType": "target",
        "label": None,
        "config": {"kind": "dataset", "name": "out", "mode": "overwrite"},
        "position": None,
    },
]
EDGES = [
    {"source": "raw", "target": "clean", "label": None},
    {"source": "clean", "target": "out", "label": None},
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
        {"name": "clean", "type": "sql", "sql": "select * from raw where amount > 0", "inputs": ["raw"]}
    ],
    "destinations": [{"name": "out", "type": "dataset", "mode": "overwrite", "inputs": ["clean"]}],
}
YAML_BODY = """
name: user-analytics
version: 1.0
description: Daily user analytics
schedule: "0 */6 * * *"
sources:
  - name: raw
    type: inline
    rows:
      - {id: 1, amount: 5}
    label: Raw
    position: {x: 0, y: 0}
transforms:
  - name: clean
    type: sql
    sql: select * from raw where amount > 0
    inputs: [raw]
destinations:
  - name: out
    type: dataset
    mode: overwrite
    inputs: [clean]
"""


@pytest.fixture
def pipelines(table, monkeypatch):
    monkeypatch.setenv("PIPELINE_SCHEDULE_TARGET_ARN", TARGET_ARN)
    monkeypatch.setenv("SCHEDULER_ROLE_ARN", ROLE_ARN)
    return load_area("pipelines").handler


@pytest.fixture
def runs(table):
    return load_area("runs").handler


def body(name: str = "user-analytics", **fields: Any) -> dict:
    return {"name": name, "nodes": copy.deepcopy(NODES), "edges": copy.deepcopy(EDGES), **fields}


def create(handler, name: str = "user-analytics", principal: Principal = EDITOR, **fields: Any) -> dict:
    status, created = invoke(handler, "POST", "/api/v1/pipelines", body(name, **fields), principal)
    assert status == 201, created
    return created["data"]


def scan(table) -> list[dict]:
    """Every item (tests may scan; the code never does)."""
    from sluice.store.table import deserialize

    client = boto3.client("dynamodb")
    items, start = [], None
    while True:
        page = client.scan(TableName=table.name, **({"ExclusiveStartKey": start} if start else {}))
        items += [deserialize(i) for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def counts(table, project: str = "acme") -> dict:
    return table.get(f"P#{project}", "STATS#pipelines") or {}


# -- create and read in both spellings ---------------------------------------------------------------
def test_a_pipeline_created_in_either_spelling_reads_back_in_both(pipelines):
    from_003 = create(pipelines, "graph-003")
    status, created = invoke(
        pipelines, "POST", "/api/v1/pipelines", {"name": "graph-001", **SPELLED_001}, EDITOR
    )
    assert status == 201
    from_001 = created["data"]
    for view in (from_003, from_001):
        assert view["nodes"] == NODES and view["edges"] == EDGES
        assert {k: view[k] for k in SPELLED_001} == SPELLED_001
    status, fetched = invoke(pipelines, "GET", "/api/v1/pipelines/GRAPH-001", None, VIEWER)
    assert status == 200 and fetched["data"]["nodes"] == NODES
    assert fetched["data"]["id"] == from_001["id"] and from_001["id"].startswith("pipeline-")


def test_yaml_and_json_bodies_make_the_same_record(pipelines):
    status, from_yaml = invoke(
        pipelines,
        "POST",
        "/api/v1/pipelines",
        None,
        EDITOR,
        raw_body=YAML_BODY,
        headers={"content-type": "application/yaml"},
    )
    assert status == 201, from_yaml
    json_body = {
        "name": "user-analytics-json",
        "version": "1.0",
        "description": "Daily user analytics",
        "schedule": "0 */6 * * *",
        **SPELLED_001,
    }
    status, from_json = invoke(pipelines, "POST", "/api/v1/pipelines", json_body, EDITOR)
    assert status == 201
    differing = {"id", "name", "created_at", "updated_at", "createdAt", "updatedAt"}
    strip = lambda view: {k: v for k, v in view.items() if k not in differing}  # noqa: E731
    assert strip(from_yaml["data"]) == strip(from_json["data"])
    assert from_yaml["data"]["version"] == "1.0" and from_yaml["data"]["next_run_at"].endswith(":00:00Z")


def test_the_item_carries_every_field_of_both_seeds_and_watchers(pipelines):
    view = create(
        pipelines,
        executionConfig={"batchSize": 500, "parallelism": 4, "partitioning": "day", "mode": "incremental"},
    )
    assert view["status"] == "active" and view["revision"] == 1 and view["last_run"] is None
    assert view["executionConfig"] == {
        "batchSize": 500,
        "parallelism": 4,
        "partitioning": "day",
        "mode": "incremental",
    }
    for field in (
        "lastRunAt",
        "lastRunStatus",
        "connector",
        "schema",
        "next_run_at",
        "pipeline_type_id",
        "watermark",
        "load_lineage",
        "active",
        "created_at",
        "updatedAt",
    ):
        assert field in view


# -- connectors and schemas ------------------------------------------------------------------------
def test_connector_and_schema_references_are_rendered_and_counted(pipelines, table):
    status, connector = invoke(
        pipelines,
        "POST",
        "/api/v1/connectors",
        {"name": "warehouse", "type": "postgres", "config": {"host": "db"}},
        EDITOR,
    )
    assert status == 201, connector
    status, schema = invoke(
        pipelines,
        "POST",
        "/api/v1/schemas",
        {"name": "orders", "displayName": "Orders", "columns": [{"name": "id", "type": "integer"}]},
        EDITOR,
    )
    assert status == 201, schema
    connector_id, schema_id = connector["data"]["id"], schema["data"]["id"]
    view = create(pipelines, connectorId=connector_id, schemaId=int(schema_id.split("-")[1]))
    assert view["connectorId"] == connector_id and view["schemaId"] == schema_id
    assert view["connector"] == {"id": connector_id, "name": "warehouse", "type": "postgres"}
    assert view["schema"] == {"id": schema_id, "name": "orders", "displayName": "Orders"}

    status, refused = invoke(pipelines, "DELETE", f"/api/v1/connectors/{connector_id}", None, EDITOR)
    assert status == 409, refused

    status, updated = invoke(
        pipelines, "PUT", "/api/v1/pipelines", {"id": view["id"], "connectorId": None}, EDITOR
    )
    assert status == 200 and updated["data"]["connector"] is None
    assert invoke(pipelines, "DELETE", f"/api/v1/connectors/{connector_id}", None, EDITOR)[0] == 204
    assert invoke(pipelines, "DELETE", f"/api/v1/pipelines/{view['id']}", None, EDITOR)[0] == 204
    assert invoke(pipelines, "DELETE", f"/api/v1/schemas/{schema_id}", None, EDITOR)[0] == 204


def test_an_unknown_connector_or_schema_is_422_and_writes_nothing(pipelines, writes):
    status, detail = invoke(pipelines, "POST", "/api/v1/pipelines", body(connectorId="connector-7"), EDITOR)
    assert (status, detail) == (422, {"detail": "connectorId connector-7 does not exist."})
    status, detail = invoke(pipelines, "POST", "/api/v1/pipelines", body(schemaId="schema-9"), EDITOR)
    assert (status, detail) == (422, {"detail": "schemaId schema-9 does not exist."})
    assert invoke(pipelines, "POST", "/api/v1/pipelines", body(connectorId="pipeline-1"), EDITOR)[0] == 422
    assert sum(writes.values()) == 0


# -- refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sent, expected",
    [
        ({"nodes": NODES, "edges": EDGES, "sources": SPELLED_001["sources"]}, "not both"),
        (
            {"nodes": [{**NODES[0], "nodeType": "join"}], "edges": []},
            "Node 'raw': nodeType 'join' is not one Sluice can run",
        ),
        (
            {"nodes": NODES, "edges": [*EDGES, {"source": "clean", "target": "ghost"}]},
            "'ghost' is not a node",
        ),
        ({"nodes": NODES, "edges": [*EDGES, {"source": "out", "target": "clean"}]}, "is on a cycle"),
        ({"nodes": NODES, "edges": EDGES[:1]}, "Node 'out': a target needs an input"),
        (
            {
                "nodes": [NODES[0], {**NODES[1], "config": {"sql": "select * from raw where"}}, NODES[2]],
                "edges": EDGES,
            },
            "does not parse as duckdb SQL",
        ),
        (
            {
                "nodes": [NODES[0], {**NODES[1], "config": {"sql": "select * from users"}}, NODES[2]],
                "edges": EDGES,
            },
            "reads users, which is not one of its upstream nodes",
        ),
        (
            {
                "nodes": [
                    {"id": f"n{i}", "nodeType": "source", "config": {"kind": "inline", "rows": []}}
                    for i in range(10_000)
                ]
            },
            "at most 500 nodes; this one has 10000",
        ),
        ({"schedule": "every day"}, "must have five fields"),
        ({"schedule": "0 0 1 * MON"}, "restricts both day-of-month and day-of-week"),
        ({"name": "a/b"}, "no slashes or control characters"),
        ({"name": "tab\there"}, "no slashes or control characters"),
        ({"name": "pipeline-12"}, "looks like a pipeline id"),
        ({"name": None}, "name is required"),
    ],
)
def test_a_definition_that_cannot_be_accepted_is_422_with_a_sentence_and_writes_nothing(
    pipelines, writes, sent, expected
):
    status, answer = invoke(pipelines, "POST", "/api/v1/pipelines", {**body(), **sent}, EDITOR)
    assert status == 422 and expected in answer["detail"], answer
    assert sum(writes.values()) == 0


@pytest.mark.parametrize(
    "sent, field",
    [
        ({"description": "x" * 1_000_001}, "description"),
        ({"status": "running"}, "status"),
        ({"executionConfig": {"batchSize": 0}}, "executionConfig"),
        ({"executionConfig": {"parallelism": True}}, "executionConfig"),
        ({"executionConfig": {"mode": "streaming"}}, "executionConfig"),
        ({"nodes": "all of them"}, "nodes"),
        ({"version": ["1"]}, "version"),
    ],
)
def test_fields_of_the_wrong_type_or_size_are_422_in_fastapis_form(pipelines, writes, sent, field):
    status, answer = invoke(pipelines, "POST", "/api/v1/pipelines", {**body(), **sent}, EDITOR)
    assert status == 422 and answer["detail"][0]["loc"][:2] == ["body", field], answer
    assert sum(writes.values()) == 0


@pytest.mark.parametrize(
    "raw, content_type, expected",
    [
        ("name: [unclosed\n", "text/yaml", "not valid YAML at line 2"),
        ("a: &x [1]\nb: *x\n", "application/yaml", "anchors and aliases"),
        ("<pipeline/>", "application/xml", "not valid JSON"),
        ("[1, 2]", "application/json", "must be an object"),
        ("- just\n- a list\n", "text/yaml", "must be an object"),
    ],
)
def test_bodies_that_are_neither_json_nor_yaml_objects_are_422(
    pipelines, writes, raw, content_type, expected
):
    status, answer = invoke(
        pipelines,
        "POST",
        "/api/v1/pipelines",
        None,
        EDITOR,
        raw_body=raw,
        headers={"content-type": content_type},
    )
    assert status == 422 and expected in answer["detail"], answer
    assert sum(writes.values()) == 0


def test_a_taken_name_is_409_whatever_its_case_and_surface(pipelines, writes):
    create(pipelines, "Orders")
    status, _ = invoke(pipelines, "POST", "/pipeline", {"name": "events", "pipeline_type_name": "t"}, EDITOR)
    assert status == 201
    writes.clear()
    for name in ("orders", "ORDERS ", "Events"):
        status, answer = invoke(pipelines, "POST", "/api/v1/pipelines", body(name), EDITOR)
        assert status == 409 and "already taken" in answer["detail"]
    assert sum(writes.values()) == 0


# -- roles, authentication, tenancy --------------------------------------------------------------------
def test_roles_per_route(pipelines):
    view = create(pipelines)
    name = view["name"]
    reads = [
        ("GET", "/api/v1/pipelines", None),
        ("GET", f"/api/v1/pipelines/{name}", None),
        ("GET", f"/api/v1/pipelines/{name}/revisions", None),
        ("GET", f"/api/v1/pipelines/{name}/revisions/1", None),
    ]
    for method, path, sent in reads:
        assert invoke(pipelines, method, path, sent, VIEWER)[0] == 200
        assert invoke(pipelines, method, path, sent, None)[0] == 401
    writes = [
        ("POST", "/api/v1/pipelines", body("another")),
        ("PUT", "/api/v1/pipelines", {"id": view["id"], "description": "x"}),
        ("PUT", f"/api/v1/pipelines/{name}", {"description": "y"}),
        ("DELETE", f"/api/v1/pipelines/{name}", None),
    ]
    for method, path, sent in writes:
        status, answer = invoke(pipelines, method, path, sent, VIEWER)
        assert status == 403 and "editor" in answer["detail"]
        assert invoke(pipelines, method, path, sent, None)[0] == 401
    status, _ = invoke(pipelines, "DELETE", "/api/v1/pipelines", None, VIEWER, query={"id": view["id"]})
    assert status == 403
    for method, path, sent in writes[1:3]:
        assert invoke(pipelines, method, path, sent, ADMIN)[0] == 200
    assert invoke(pipelines, "POST", "/api/v1/pipelines", body("by-admin"), ADMIN)[0] == 201
    assert invoke(pipelines, "DELETE", "/api/v1/pipelines", None, EDITOR, query={"id": view["id"]})[0] == 204


def test_authentication_is_checked_before_the_body(pipelines):
    status, _ = invoke(pipelines, "POST", "/api/v1/pipelines", None, None, raw_body="{broken")
    assert status == 401
    status, _ = invoke(pipelines, "POST", "/api/v1/pipelines", None, VIEWER, raw_body="{broken")
    assert status == 403


def test_another_projects_pipeline_is_404(pipelines):
    view = create(pipelines)
    for method, path in (
        ("GET", f"/api/v1/pipelines/{view['name']}"),
        ("GET", f"/api/v1/pipelines/{view['id']}"),
        ("DELETE", f"/api/v1/pipelines/{view['id']}"),
    ):
        assert invoke(pipelines, method, path, None, OTHER)[0] == 404
    assert (
        invoke(pipelines, "PUT", "/api/v1/pipelines", {"id": view["id"], "description": "x"}, OTHER)[0] == 404
    )
    assert invoke(pipelines, "GET", "/api/v1/pipelines", None, OTHER)[1]["meta"]["total"] == 0


# -- lists ---------------------------------------------------------------------------------------------
def test_page_and_per_page_with_totals_from_the_counts(pipelines, table):
    for i in range(7):
        create(pipelines, f"p{i}", status="paused" if i % 3 == 0 else "active")
    status, page = invoke(
        pipelines, "GET", "/api/v1/pipelines", None, VIEWER, query={"page": "2", "per_page": "3"}
    )
    assert status == 200 and [p["name"] for p in page["data"]] == ["p3", "p4", "p5"]
    assert page["meta"] == {"total": 7, "page": 2, "per_page": 3} and "pagination" not in page
    status, paused = invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER, query={"status": "paused"})
    assert [p["name"] for p in paused["data"]] == ["p0", "p3", "p6"] and paused["meta"]["total"] == 3
    status, second = invoke(
        pipelines,
        "GET",
        "/api/v1/pipelines",
        None,
        VIEWER,
        query={"status": "paused", "page": "2", "per_page": "2"},
    )
    assert [p["name"] for p in second["data"]] == ["p6"]
    status, beyond = invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER, query={"page": "9"})
    assert beyond == {"data": [], "meta": {"total": 7, "page": 9, "per_page": 20}}
    assert {k: counts(table).get(k) for k in ("total", "active", "paused")} == {
        "total": 7,
        "active": 4,
        "paused": 3,
    }


@pytest.mark.parametrize(
    "query",
    [
        {"per_page": "101"},
        {"per_page": "0"},
        {"page": "0"},
        {"limit": "101"},
        {"limit": "abc"},
        {"status": "running"},
        {"page": "1", "limit": "5"},
        {"cursor": "not-a-cursor"},
    ],
)
def test_list_parameters_out_of_range_are_422(pipelines, query):
    assert invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER, query=query)[0] == 422


def test_cursor_pages_walked_while_pipelines_are_added_have_no_duplicate_and_no_gap(pipelines):
    for i in range(5):
        create(pipelines, f"first-{i}")
    seen: list[str] = []
    cursor = None
    added = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER, query=query)
        assert status == 200 and page["pagination"]["limit"] == 2 and "meta" in page
        seen += [p["name"] for p in page["data"]]
        if added < 3:
            create(pipelines, f"later-{added}")
            added += 1
        if not page["pagination"]["hasMore"]:
            break
        cursor = page["pagination"]["cursor"]
    assert seen == [f"first-{i}" for i in range(5)] + [f"later-{i}" for i in range(3)]
    assert page["pagination"]["total"] == 8 and page["pagination"]["cursor"] is None


# -- updates and revisions ----------------------------------------------------------------------------
def test_three_edits_of_the_graph_make_revisions_two_to_four_with_their_authors(pipelines):
    view = create(pipelines)
    authors = [Principal("acme", Role.editor, f"user:{n}") for n in ("amy", "bob", "cy")]
    for index, author in enumerate(authors, 1):
        nodes = copy.deepcopy(NODES)
        nodes[1]["config"]["sql"] = f"select * from raw where amount > {index}"
        status, updated = invoke(
            pipelines, "PUT", f"/api/v1/pipelines/{view['name']}", {"nodes": nodes, "edges": EDGES}, author
        )
        assert status == 200 and updated["data"]["revision"] == index + 1
    # A change that is not the graph or its code is not a revision.
    status, updated = invoke(
        pipelines, "PUT", "/api/v1/pipelines", {"id": view["id"], "description": "d"}, EDITOR
    )
    assert updated["data"]["revision"] == 4
    status, listed = invoke(pipelines, "GET", f"/api/v1/pipelines/{view['name']}/revisions", None, VIEWER)
    assert [r["revision"] for r in listed["data"]] == [4, 3, 2, 1]
    assert [r["author"] for r in listed["data"]] == ["user:cy", "user:bob", "user:amy", "user:ed"]
    assert all(r["created_at"].endswith("Z") and r["node_count"] == 3 for r in listed["data"])
    status, older = invoke(
        pipelines,
        "GET",
        f"/api/v1/pipelines/{view['id']}/revisions",
        None,
        VIEWER,
        query={"limit": "2", "before": "3"},
    )
    assert [r["revision"] for r in older["data"]] == [2, 1]
    status, second = invoke(pipelines, "GET", f"/api/v1/pipelines/{view['name']}/revisions/2", None, VIEWER)
    assert status == 200 and second["data"]["nodes"][1]["config"]["sql"].endswith("> 1")
    assert second["data"]["transforms"][0]["sql"].endswith("> 1")
    assert invoke(pipelines, "GET", f"/api/v1/pipelines/{view['name']}/revisions/9", None, VIEWER)[0] == 404
    assert invoke(pipelines, "GET", f"/api/v1/pipelines/{view['name']}/revisions/x", None, VIEWER)[0] == 422


def test_nodes_replace_nodes_and_edges_wholly_and_edges_need_nodes(pipelines, writes):
    view = create(pipelines)
    only_source = [NODES[0]]
    status, updated = invoke(
        pipelines, "PUT", "/api/v1/pipelines", {"id": view["id"], "nodes": only_source}, EDITOR
    )
    assert status == 200 and updated["data"]["nodes"] == only_source and updated["data"]["edges"] == []
    writes.clear()
    status, answer = invoke(pipelines, "PUT", "/api/v1/pipelines", {"id": view["id"], "edges": EDGES}, EDITOR)
    assert status == 422 and "edges need nodes" in answer["detail"]
    assert sum(writes.values()) == 0


def test_put_by_id_needs_an_id_and_finds_unknown_ids_404(pipelines):
    assert invoke(pipelines, "PUT", "/api/v1/pipelines", {"description": "x"}, EDITOR)[0] == 422
    assert (
        invoke(pipelines, "PUT", "/api/v1/pipelines", {"id": "pipeline-99", "description": "x"}, EDITOR)[0]
        == 404
    )
    assert (
        invoke(pipelines, "PUT", "/api/v1/pipelines", {"id": "orders", "description": "x"}, EDITOR)[0] == 422
    )
    assert invoke(pipelines, "DELETE", "/api/v1/pipelines", None, EDITOR)[0] == 422
    assert invoke(pipelines, "DELETE", "/api/v1/pipelines", None, EDITOR, query={"id": "99"})[0] == 404


def test_rename_status_change_and_null_clearing(pipelines, table):
    create(pipelines, "taken")
    view = create(pipelines, "mine", description="d", schedule="0 1 * * *")
    status, answer = invoke(pipelines, "PUT", "/api/v1/pipelines/mine", {"name": "TAKEN"}, EDITOR)
    assert status == 409
    status, renamed = invoke(
        pipelines,
        "PUT",
        "/api/v1/pipelines/MINE",
        {"name": "Mine v2", "status": "paused", "description": None, "schedule": None},
        EDITOR,
    )
    assert status == 200, renamed
    data = renamed["data"]
    assert (data["name"], data["status"], data["description"], data["schedule"], data["next_run_at"]) == (
        "Mine v2",
        "paused",
        None,
        None,
        None,
    )
    assert invoke(pipelines, "GET", "/api/v1/pipelines/mine", None, VIEWER)[0] == 404
    assert invoke(pipelines, "GET", "/api/v1/pipelines/mine v2", None, VIEWER)[1]["data"]["id"] == view["id"]
    assert create(pipelines, "mine")["name"] == "mine"  # the old name is free again
    assert {k: counts(table)[k] for k in ("total", "active", "paused")} == {
        "total": 3,
        "active": 2,
        "paused": 1,
    }
    for field in ("name", "status"):
        assert invoke(pipelines, "PUT", "/api/v1/pipelines/taken", {field: None}, EDITOR)[0] == 422


# -- Watcher's surface and this one are one registry ------------------------------------------------------
def test_watcher_pipelines_and_definitions_are_the_same_records(pipelines, table):
    status, watcher = invoke(
        pipelines, "POST", "/pipeline", {"name": "Billing Sync", "pipeline_type_name": "etl"}, EDITOR
    )
    assert status == 201
    status, seen = invoke(pipelines, "GET", "/api/v1/pipelines/billing sync", None, VIEWER)
    assert status == 200 and seen["data"]["id"] == f"pipeline-{watcher['id']}"
    assert (
        seen["data"]["status"] == "active"
        and seen["data"]["nodes"] == []
        and seen["data"]["revision"] is None
    )
    listed = invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER)[1]
    assert listed["meta"]["total"] == 1 and listed["data"][0]["name"] == "billing sync"
    assert (
        invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER, query={"status": "active"})[1]["meta"][
            "total"
        ]
        == 1
    )

    status, updated = invoke(
        pipelines, "PUT", f"/api/v1/pipelines/{seen['data']['id']}", {"nodes": NODES, "edges": EDGES}, EDITOR
    )
    assert status == 200 and updated["data"]["revision"] == 1
    assert updated["data"]["pipeline_type_id"] == seen["data"]["pipeline_type_id"] is not None

    view = create(pipelines, "User-Analytics")
    number = int(view["id"].split("-")[1])
    status, fetched = invoke(pipelines, "GET", f"/pipeline/{number}", None, VIEWER)
    assert status == 200 and fetched["name"] == "User-Analytics" and fetched["active"] is True
    status, upserted = invoke(
        pipelines, "POST", "/pipeline", {"name": "user-analytics", "pipeline_type_name": "etl"}, EDITOR
    )
    assert status == 200 and upserted["id"] == number
    again = invoke(pipelines, "GET", "/api/v1/pipelines/user-analytics", None, VIEWER)[1]["data"]
    assert (
        again["name"] == "User-Analytics"
        and again["nodes"] == NODES
        and again["pipeline_type_id"] is not None
    )


# -- delete: the definition and all its history -----------------------------------------------------------
def test_deleting_a_pipeline_removes_its_runs_revisions_and_everything_about_it(pipelines, runs, table):
    keep = create(pipelines, "keep")
    view = create(pipelines, "doomed", schedule="0 3 * * *")
    number = int(view["id"].split("-")[1])
    invoke(pipelines, "PUT", "/api/v1/pipelines/doomed", {"nodes": NODES[:1]}, EDITOR)
    started = []
    for day in range(1, 4):
        status, run = invoke(
            runs,
            "POST",
            "/start_pipeline_execution",
            {"pipeline_id": number, "start_date": f"2026-01-0{day}T00:00:00Z"},
            EDITOR,
        )
        assert status == 201
        started.append(run["id"])
    status, child = invoke(
        runs, "POST", "/start_pipeline_execution", {"pipeline_id": number, "parent_id": started[0]}, EDITOR
    )
    started.append(child["id"])
    invoke(
        runs,
        "POST",
        "/end_pipeline_execution",
        {
            "id": started[1],
            "end_date": "2026-01-02T00:05:00Z",
            "completed_successfully": True,
            "total_rows": 10,
        },
        EDITOR,
    )
    keep_run = invoke(
        runs, "POST", "/start_pipeline_execution", {"pipeline_id": int(keep["id"].split("-")[1])}, EDITOR
    )[1]["id"]

    fetched = invoke(pipelines, "GET", "/api/v1/pipelines/doomed", None, VIEWER)[1]["data"]
    assert fetched["last_run"]["id"] == f"run-{child['id']}" and fetched["lastRunStatus"] == "running"

    scheduler = boto3.client("scheduler")
    assert scheduler.get_schedule(Name=f"sluice-acme-{number}")["ScheduleExpression"] == "cron(0 3 * * ? *)"

    status, _ = invoke(pipelines, "DELETE", "/api/v1/pipelines/DOOMED", None, EDITOR)
    assert status == 204
    for run_id in started:
        assert invoke(runs, "GET", f"/pipeline_execution/{run_id}", None, VIEWER)[0] == 404
    assert invoke(runs, "GET", f"/pipeline_execution/{keep_run}", None, VIEWER)[0] == 200
    assert invoke(pipelines, "GET", "/api/v1/pipelines/doomed", None, VIEWER)[0] == 404
    assert invoke(pipelines, "GET", f"/pipeline/{number}", None, VIEWER)[0] == 404
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=f"sluice-acme-{number}")

    padded = f"{number:012d}"
    leftovers = [
        (i["PK"], i["SK"])
        for i in scan(table)
        if padded in i["PK"]
        and i["PK"].startswith("P#acme")
        or any(f"#RUN#{r:012d}" in i["PK"] for r in started)
        or i.get("pipeline_id") == number
        or i.get("owner_id") == number
        and i.get("owner_kind") == "pipeline"
    ]
    assert leftovers == []
    assert {k: counts(table)[k] for k in ("total", "active")} == {"total": 1, "active": 1}
    assert create(pipelines, "doomed")["revision"] == 1  # the name is free, no revision left behind
    assert invoke(pipelines, "DELETE", "/api/v1/pipelines/ghost", None, EDITOR)[0] == 404


def test_log_cleanup_also_removes_runs_from_their_pipelines_run_index(pipelines, runs, table):
    from sluice.store.executions import RunRepository

    view = create(pipelines)
    number = int(view["id"].split("-")[1])
    run_id = invoke(
        runs,
        "POST",
        "/start_pipeline_execution",
        {"pipeline_id": number, "start_date": "2020-01-01T00:00:00Z"},
        EDITOR,
    )[1]["id"]
    repository = RunRepository(table)
    repository.purge_runs("acme", [repository.get("acme", run_id)])
    assert table.query(f"P#acme#PL#{number:012d}#RUNS").items == []
    assert (
        invoke(pipelines, "GET", f"/api/v1/pipelines/{view['id']}", None, VIEWER)[1]["data"]["last_run"]
        is None
    )


def test_last_run_is_seed_001s_object(pipelines, runs):
    view = create(pipelines)
    number = int(view["id"].split("-")[1])
    run_id = invoke(
        runs,
        "POST",
        "/start_pipeline_execution",
        {"pipeline_id": number, "start_date": "2026-02-15T06:00:00Z"},
        EDITOR,
    )[1]["id"]
    invoke(
        runs,
        "POST",
        "/end_pipeline_execution",
        {
            "id": run_id,
            "end_date": "2026-02-15T06:00:04.700Z",
            "completed_successfully": True,
            "total_rows": 892,
        },
        EDITOR,
    )
    data = invoke(pipelines, "GET", "/api/v1/pipelines", None, VIEWER)[1]["data"][0]
    assert data["last_run"] == {
        "id": f"run-{run_id}",
        "status": "success",
        "started_at": "2026-02-15T06:00:00Z",
        "duration_ms": 4700,
        "rows_loaded": 892,
    }
    assert (data["lastRunAt"], data["lastRunStatus"]) == ("2026-02-15T06:00:00Z", "success")


# -- schedules -------------------------------------------------------------------------------------------
def test_a_schedule_is_an_eventbridge_schedule_enabled_only_while_active(pipelines):
    scheduler = boto3.client("scheduler")
    view = create(pipelines, schedule="30 9 * * 1-5")
    name = f"sluice-acme-{view['id'].split('-')[1]}"
    saved = scheduler.get_schedule(Name=name)
    assert saved["ScheduleExpression"] == "cron(30 9 ? * MON,TUE,WED,THU,FRI *)"
    assert saved["State"] == "ENABLED" and saved["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert saved["Target"]["Arn"] == TARGET_ARN and saved["Target"]["RoleArn"] == ROLE_ARN
    assert '"pipeline_id": ' + view["id"].split("-")[1] in saved["Target"]["Input"]

    invoke(pipelines, "PUT", f"/api/v1/pipelines/{view['id']}", {"status": "paused"}, EDITOR)
    assert scheduler.get_schedule(Name=name)["State"] == "DISABLED"
    invoke(
        pipelines,
        "PUT",
        f"/api/v1/pipelines/{view['id']}",
        {"status": "active", "schedule": "0 * * * *"},
        EDITOR,
    )
    saved = scheduler.get_schedule(Name=name)
    assert (saved["State"], saved["ScheduleExpression"]) == ("ENABLED", "cron(0 * * * ? *)")
    invoke(pipelines, "PUT", f"/api/v1/pipelines/{view['id']}", {"schedule": None}, EDITOR)
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)


def test_a_firing_is_recorded_once_and_moves_next_run_at(pipelines, table):
    import pendulum

    jobs = _jobs()
    view = create(pipelines, schedule="0 */6 * * *")
    number = int(view["id"].split("-")[1])
    result = jobs.on_schedule_fired(
        {"project": "acme", "pipeline_id": number, "scheduled_time": "2026-03-01T06:00:00Z"}, _context()
    )
    assert result["recorded"] is True and result["scheduled_at"] == "2026-03-01T06:00:00Z"
    assert pendulum.parse(result["next_run_at"]) > pendulum.now("UTC")
    again = jobs.on_schedule_fired(
        {"project": "acme", "pipeline_id": number, "scheduled_time": "2026-03-01T06:00:00Z"}, _context()
    )
    assert again["recorded"] is False
    firings = table.query(f"P#acme#PL#{number:012d}#FIRINGS").items
    assert [f["scheduled_at"] for f in firings] == ["2026-03-01T06:00:00.000000Z"] and firings[0][
        "expires_at"
    ] > 0

    invoke(pipelines, "PUT", f"/api/v1/pipelines/{view['id']}", {"status": "paused"}, EDITOR)
    paused = jobs.on_schedule_fired(
        {"project": "acme", "pipeline_id": number, "scheduled_time": "<aws.scheduler.scheduled-time>"},
        _context(),
    )
    assert paused == {"recorded": False, "reason": "pipeline is paused"}
    invoke(pipelines, "DELETE", f"/api/v1/pipelines/{view['id']}", None, EDITOR)
    gone = jobs.on_schedule_fired({"project": "acme", "pipeline_id": number}, _context())
    assert gone == {"recorded": False, "reason": "pipeline does not exist"}
    assert jobs.on_schedule_fired({"nothing": True}, _context())["recorded"] is False


def test_a_firing_for_a_deleted_pipeline_removes_its_leftover_schedule(pipelines):
    from sluice.adapters.schedules import EventBridgeSchedules

    EventBridgeSchedules(TARGET_ARN, ROLE_ARN).put("acme", 77, "0 * * * *", enabled=True)
    assert _jobs().on_schedule_fired({"project": "acme", "pipeline_id": 77}, _context())["recorded"] is False
    scheduler = boto3.client("scheduler")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name="sluice-acme-77")


def _jobs():
    import importlib.util
    import sys

    from tests.apigw import ROOT

    name = "sluice_function_pipelines_jobs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "pipelines" / "jobs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _context():
    from tests.apigw import LambdaContext

    return LambdaContext()
