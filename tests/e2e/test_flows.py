"""Flows (seed 000 `/api/flow/*`, issue 14) end to end through the gateway: visual recipes compiled
to SQL and read back, column lineage, previews on samples of real datasets, roles and tenancy."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.conftest import eventually, jwt_for, moto_client

FINISHED = ("success", "failed", "cancelled")
ORDERS = [
    {"id": 1, "customer_id": 10, "amount": 150.0, "status": "paid"},
    {"id": 2, "customer_id": 11, "amount": 50.0, "status": "open"},
    {"id": 3, "customer_id": 10, "amount": 300.0, "status": "paid"},
]
CUSTOMERS = [{"id": 10, "name": "ada"}, {"id": 11, "name": "bob"}]
JOIN = {
    "recipe_type": "join",
    "inputs": ["orders", "customers"],
    "join_type": "left",
    "on": [{"left": "customer_id", "right": "id"}],
    "columns": [
        {"input": "orders", "column": "id", "alias": "order_id"},
        {"input": "customers", "column": "name"},
    ],
}
GROUP_BY = {
    "recipe_type": "group_by",
    "inputs": ["orders"],
    "keys": ["status"],
    "aggregations": [
        {"column": "amount", "function": "sum", "alias": "total"},
        {"column": "*", "function": "count", "alias": "n"},
    ],
}
PREPARE = {
    "recipe_type": "prepare",
    "inputs": ["orders"],
    "steps": [
        {"type": "filter", "condition": "amount > 100"},
        {"type": "derive", "column": "tax", "expression": "amount * 0.2"},
        {"type": "select", "columns": ["id", "tax"]},
    ],
}


@pytest.fixture
def editor(stack, project_admin):
    project, key = project_admin
    client = stack.client(key)
    client.project = project
    yield client
    client.close()


def write_dataset(client, name: str, rows: list[dict]) -> None:
    """A real dataset of the project: a pipeline writes it, as Sluice writes every dataset."""
    created = client.post(
        "/api/v1/pipelines",
        json={
            "name": f"write-{name}-{secrets.token_hex(3)}",
            "nodes": [
                {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": rows}},
                {
                    "id": "out",
                    "nodeType": "target",
                    "config": {"kind": "dataset", "name": name, "mode": "overwrite"},
                },
            ],
            "edges": [{"source": "src", "target": "out"}],
        },
    )
    assert created.status_code == 201, created.text
    run = client.post(f"/api/pipelines/{created.json()['data']['id']}/run", json={})
    assert run.status_code == 202, run.text

    def done():
        found = client.get(f"/api/runs/{run.json()['id']}").json()
        return found if found.get("status") in FINISHED else None

    assert eventually(done, timeout=60, interval=0.2)["status"] == "success"


@pytest.fixture
def with_datasets(editor):
    write_dataset(editor, "orders", ORDERS)
    write_dataset(editor, "customers", CUSTOMERS)
    return editor


def one_line(sql: str) -> str:
    return " ".join(sql.split())


def test_generate_then_parse_round_trips_every_recipe_type(editor):
    stack_config = {"recipe_type": "stack", "inputs": ["jan", "feb"], "mode": "union", "columns": ["id"]}
    for config in (PREPARE, JOIN, GROUP_BY, stack_config):
        generated = editor.post("/api/flow/generate-sql", json=config)
        assert generated.status_code == 200, generated.text
        body = generated.json()
        assert body["inputs"] == config["inputs"]
        for name in config["inputs"]:
            assert "{{ ref('" + name + "') }}" in body["sql"]
        parsed = editor.post("/api/flow/parse-to-visual", json={"sql": body["sql"]})
        assert parsed.status_code == 200, parsed.text
        assert parsed.json() == config
    # The documented body may also come wrapped as {config}
    wrapped = editor.post("/api/flow/generate-sql", json={"config": GROUP_BY})
    assert wrapped.status_code == 200
    assert wrapped.json()["output_columns"] == ["status", "total", "n"]


def test_output_columns_come_from_the_datasets_when_sluice_wrote_them(with_datasets):
    client = with_datasets
    config = {
        "recipe_type": "prepare",
        "inputs": ["orders"],
        "steps": [{"type": "drop", "columns": ["status"]}],
    }
    unknown = client.post("/api/flow/generate-sql", json={**config, "inputs": ["never_written"]})
    assert unknown.json()["output_columns"] is None
    known = client.post("/api/flow/generate-sql", json=config).json()
    assert known["output_columns"] == ["id", "customer_id", "amount"]
    # A join on a column the dataset does not have is refused, naming it
    bad = client.post("/api/flow/generate-sql", json={**JOIN, "on": [{"left": "nope", "right": "id"}]})
    assert bad.status_code == 422
    assert "nope not among the columns" in bad.json()["detail"]


def test_sql_that_fits_no_pattern_is_null_and_sql_that_does_not_parse_is_422(editor):
    windowed = (
        "SELECT id, SUM(x) OVER (PARTITION BY a) AS s, SUM(x) OVER (PARTITION BY b) AS t FROM {{ ref('m') }}"
    )
    answer = editor.post("/api/flow/parse-to-visual", json={"sql": windowed})
    assert answer.status_code == 200
    assert answer.json() is None
    broken = editor.post("/api/flow/parse-to-visual", json={"sql": "SELECT FROM WHERE ("})
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("The SQL does not parse: ")
    hand_written = (
        "SELECT status, SUM(amount) AS total, COUNT(*) AS n FROM {{ ref('orders') }} GROUP BY status"
    )
    assert editor.post("/api/flow/parse-to-visual", json={"sql": hand_written}).json() == GROUP_BY


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"recipe_type": "pivot", "inputs": ["m"]}, "recipe_type must be one of"),
        (
            {"recipe_type": "prepare", "inputs": ["m"], "steps": [{"type": "explode"}]},
            "steps[0].type must be one of",
        ),
        (
            {
                "recipe_type": "group_by",
                "inputs": ["m"],
                "keys": ["a"],
                "aggregations": [{"column": "b", "function": "median"}],
            },
            "function must be one of",
        ),
        (
            {"recipe_type": "prepare", "inputs": ["m"], "steps": [{"type": "filter", "condition": "a >"}]},
            "does not parse",
        ),
        (
            {
                "recipe_type": "join",
                "inputs": ["a", "b"],
                "join_type": "cross",
                "on": [{"left": "x", "right": "y"}],
            },
            "join_type must be one of",
        ),
    ],
)
def test_bad_configs_are_422_with_a_sentence(editor, body, needle):
    for path in ("/api/flow/generate-sql", "/api/flow/preview-sql"):
        answer = editor.post(path, json=body)
        assert answer.status_code == 422, answer.text
        assert needle in answer.json()["detail"]
    lineage = editor.post("/api/flow/visual-lineage", json={"model_name": "m2", "config": body})
    assert lineage.status_code == 422


def edges_of(answer: dict) -> set[tuple]:
    return {
        (
            e["source"]["model"],
            e["source"]["column"],
            e["target"]["column"],
            e["transformation"]["type"],
            e["transformation"]["subtype"],
        )
        for e in answer["edges"]
    }


def test_lineage_of_a_join_and_a_group_by(editor):
    joined = editor.post("/api/flow/visual-lineage", json={"model_name": "order_names", "config": JOIN})
    assert joined.status_code == 200, joined.text
    body = joined.json()
    assert body["output_columns"] == ["order_id", "name"]
    assert {e["target"]["model"] for e in body["edges"]} == {"order_names"}
    assert edges_of(body) == {
        ("orders", "id", "order_id", "DIRECT", "IDENTITY"),
        ("customers", "name", "name", "DIRECT", "IDENTITY"),
        ("orders", "customer_id", "order_id", "INDIRECT", "JOIN"),
        ("orders", "customer_id", "name", "INDIRECT", "JOIN"),
        ("customers", "id", "order_id", "INDIRECT", "JOIN"),
        ("customers", "id", "name", "INDIRECT", "JOIN"),
    }
    grouped = editor.post(
        "/api/flow/visual-lineage", json={"model_name": "by_status", "config": GROUP_BY}
    ).json()
    assert edges_of(grouped) == {
        ("orders", "status", "status", "DIRECT", "IDENTITY"),
        ("orders", "amount", "total", "DIRECT", "AGGREGATION"),
        *{("orders", "status", target, "INDIRECT", "GROUP_BY") for target in ("status", "total", "n")},
    }
    prepared = editor.post("/api/flow/visual-lineage", json={"model_name": "taxed", "config": PREPARE}).json()
    assert ("orders", "amount", "tax", "DIRECT", "TRANSFORMATION") in edges_of(prepared)
    assert ("orders", "amount", "id", "INDIRECT", "FILTER") in edges_of(prepared)
    unsafe = editor.post("/api/flow/visual-lineage", json={"model_name": "../etc", "config": JOIN})
    assert unsafe.status_code == 422
    assert "not a safe identifier" in unsafe.json()["detail"]


def bucket_keys(stack, project: str) -> list[str]:
    s3 = moto_client(stack, "s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "data" in b["Name"].lower())
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"projects/{project}/")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_preview_runs_on_a_sample_and_persists_nothing(stack, with_datasets):
    client = with_datasets
    runs_before = client.get("/api/pipeline/runs").json()
    keys_before = bucket_keys(stack, client.project)
    answer = client.post("/api/flow/preview-sql", json=JOIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == ["order_id", "name"]
    assert sorted(body["rows"], key=lambda r: r["order_id"]) == [
        {"order_id": 1, "name": "ada"},
        {"order_id": 2, "name": "bob"},
        {"order_id": 3, "name": "ada"},
    ]
    grouped = client.post("/api/flow/preview-sql", json=GROUP_BY).json()
    assert sorted(grouped["rows"], key=lambda r: r["status"]) == [
        {"status": "open", "total": 50.0, "n": 1},
        {"status": "paid", "total": 450.0, "n": 2},
    ]
    # Nothing written: no object, no run
    assert bucket_keys(stack, client.project) == keys_before
    assert client.get("/api/pipeline/runs").json() == runs_before
    # SQL that fails on the sample: 422 with DuckDB's message
    failing = {
        "recipe_type": "prepare",
        "inputs": ["orders"],
        "steps": [{"type": "derive", "column": "x", "expression": "CAST(status AS INT)"}],
    }
    refused = client.post("/api/flow/preview-sql", json=failing)
    assert refused.status_code == 422
    assert "fails on a sample of its inputs" in refused.json()["detail"]
    assert "Conversion Error" in refused.json()["detail"] or "Could not convert" in refused.json()["detail"]
    # A SQL recipe previews too: one SELECT reading datasets by ref()
    by_sql = client.post(
        "/api/flow/preview-sql",
        json={
            "sql": "SELECT o.id, c.name FROM {{ ref('orders') }} o JOIN {{ ref('customers') }} c ON o.customer_id = c.id WHERE o.amount > 100"
        },
    )
    assert by_sql.status_code == 200, by_sql.text
    assert sorted(r["id"] for r in by_sql.json()["rows"]) == [1, 3]
    for sql, needle in [
        ("SELECT * FROM orders", "does not name by ref()"),
        ("DELETE FROM {{ ref('orders') }}", "fails on a sample"),
        ("SELECT * FROM read_csv('/etc/passwd')", "fails on a sample"),
        ("SELECT * FROM {{ ref('never_written') }}", "not a dataset of this project"),
    ]:
        refused = client.post("/api/flow/preview-sql", json={"sql": sql})
        assert refused.status_code == 422, (sql, refused.text)
        assert needle in refused.json()["detail"], (sql, refused.json())
    assert bucket_keys(stack, client.project) == keys_before
    missing = client.post("/api/flow/preview-sql", json={**GROUP_BY, "inputs": ["never_written"]})
    assert missing.status_code == 422
    assert "not a dataset of this project" in missing.json()["detail"]


def test_another_project_sees_none_of_the_datasets(stack, with_datasets):
    other = stack.client(jwt_for("other-" + secrets.token_hex(3), "editor"))
    # Its "orders" was never written: no columns known, and no preview
    assert other.post("/api/flow/generate-sql", json=GROUP_BY).json()["output_columns"] == [
        "status",
        "total",
        "n",
    ]
    assert (
        other.post(
            "/api/flow/generate-sql",
            json={
                "recipe_type": "prepare",
                "inputs": ["orders"],
                "steps": [{"type": "drop", "columns": ["status"]}],
            },
        ).json()["output_columns"]
        is None
    )
    assert other.post("/api/flow/preview-sql", json=GROUP_BY).status_code == 422


def test_auth_is_required_and_viewers_may_compile(stack, project_admin):
    project, _ = project_admin
    anonymous = stack.client()
    for path in (
        "/api/flow/generate-sql",
        "/api/flow/parse-to-visual",
        "/api/flow/visual-lineage",
        "/api/flow/preview-sql",
    ):
        assert anonymous.post(path, json={}).status_code == 401
    viewer = stack.client(jwt_for(project, "viewer"))
    assert viewer.post("/api/flow/generate-sql", json=GROUP_BY).status_code == 200


# -- saved recipes ------------------------------------------------------------------------------
def flow_run(client, target: dict, scope: str) -> tuple[dict, dict]:
    triggered = client.post("/api/pipeline/run", json={"target": target, "scope": scope})
    assert triggered.status_code == 202, triggered.text
    run_id = triggered.json()["run_id"]

    def done():
        details = client.get(f"/api/pipeline/runs/{run_id}/details").json()
        return details if details["status"] in FINISHED else None

    return triggered.json(), eventually(done, timeout=120, interval=0.2)


def read_object(stack, project: str, suffix: str) -> str:
    s3 = moto_client(stack, "s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "data" in b["Name"].lower())
    return s3.get_object(Bucket=bucket, Key=f"projects/{project}/models/{suffix}")["Body"].read().decode()


def test_generate_save_get_and_run_a_recipe_by_scope(stack, with_datasets):
    client = with_datasets
    generated = client.post("/api/flow/generate-sql", json=GROUP_BY).json()
    saved = client.post(
        "/api/flow/save-recipe-steps", json={"model_name": "orders_by_status", "config": GROUP_BY}
    )
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["sql"] == generated["sql"]
    assert body["config"] == GROUP_BY
    assert body["revision"] == 1 and body["zone_id"] is None
    assert body["output_columns"] == ["status", "total", "n"]
    fetched = client.get("/api/flow/recipe/orders_by_status")
    assert fetched.status_code == 200
    assert {k: fetched.json()[k] for k in ("model_name", "config", "sql", "zone_id")} == {
        "model_name": "orders_by_status",
        "config": GROUP_BY,
        "sql": generated["sql"],
        "zone_id": None,
    }
    # The dbt model file and its YAML sidecar are in the project's folder of the data bucket
    assert read_object(stack, client.project, "orders_by_status.sql") == generated["sql"]
    sidecar = read_object(stack, client.project, "orders_by_status.yml")
    assert "recipe_config:" in sidecar and "group_by" in sidecar

    # A second save is revision 2; both revisions are kept
    changed = {
        **GROUP_BY,
        "aggregations": [*GROUP_BY["aggregations"], {"column": "amount", "function": "max", "alias": "top"}],
    }
    again = client.post(
        "/api/flow/save-recipe-steps", json={"model_name": "orders_by_status", "config": changed}
    )
    assert again.status_code == 200 and again.json()["revision"] == 2
    revisions = client.get("/api/flow/recipe/orders_by_status/revisions").json()["data"]
    assert [r["revision"] for r in revisions] == [2, 1]
    assert revisions[1]["config"] == GROUP_BY
    first = client.get("/api/flow/recipe/orders_by_status/revisions", params={"limit": 1}).json()
    assert [r["revision"] for r in first["data"]] == [2] and first["next_cursor"]
    rest = client.get(
        "/api/flow/recipe/orders_by_status/revisions", params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert [r["revision"] for r in rest["data"]] == [1]

    # A SQL recipe downstream of it, reading it by ref()
    busy = client.post(
        "/api/flow/save-recipe-steps",
        json={"model_name": "busy", "sql": "SELECT status, n FROM {{ ref('orders_by_status') }} WHERE n > 1"},
    )
    assert busy.status_code == 201, busy.text
    assert busy.json()["inputs"] == ["orders_by_status"]
    assert busy.json()["config"] is None  # a SQL recipe (SPEC 8), though parse-to-visual could read it

    # Run the first recipe and everything downstream of it: both recipes, in order
    triggered, details = flow_run(client, {"type": "recipe", "name": "orders_by_status"}, "downstream")
    assert triggered["pipelines"] == [["recipe.orders_by_status"], ["recipe.busy"]]
    assert details["status"] == "success", details
    preview = client.post(
        "/api/flow/preview-sql",
        json={"recipe_type": "prepare", "inputs": ["busy"], "steps": []},
    ).json()
    assert preview["rows"] == [{"status": "paid", "n": 2}]
    # Upstream of `busy`: the pipeline writing orders, then both recipes
    triggered, details = flow_run(client, {"type": "recipe", "name": "busy"}, "upstream")
    assert len(triggered["pipelines"]) == 3 and triggered["pipelines"][1:] == [
        ["recipe.orders_by_status"],
        ["recipe.busy"],
    ]
    assert details["status"] == "success"


def test_recipe_bad_input_writes_nothing(stack, editor):
    cases = [
        ({"model_name": "../x", "config": GROUP_BY}, 422, "not a safe identifier"),
        ({"model_name": "bad sql", "sql": "SELECT 1"}, 422, "not a safe identifier"),
        ({"model_name": "m1", "sql": "SELECT FROM WHERE ("}, 422, "does not parse"),
        ({"model_name": "m1", "config": {"recipe_type": "pivot", "inputs": ["a"]}}, 422, "recipe_type"),
        ({"model_name": "m1"}, 422, "exactly one of config"),
        ({"model_name": "orders", "config": GROUP_BY}, 422, "its own output"),
    ]
    for body, status, needle in cases:
        answer = editor.post("/api/flow/save-recipe-steps", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert needle in str(answer.json()["detail"])
    assert editor.get("/api/flow/recipe/m1").status_code == 404
    # A pipeline made by hand under a recipe's pipeline name is never taken over
    hand_made = editor.post(
        "/api/v1/pipelines",
        json={
            "name": "recipe.handmade",
            "nodes": [{"id": "s", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}],
            "edges": [],
        },
    )
    assert hand_made.status_code == 201, hand_made.text
    taken = editor.post("/api/flow/save-recipe-steps", json={"model_name": "handmade", "config": GROUP_BY})
    assert taken.status_code == 409 and "no recipe keeps it" in taken.json()["detail"]
    assert editor.get("/api/flow/recipe/handmade").status_code == 404
    assert not [k for k in bucket_keys(stack, editor.project) if "/models/" in k]
    assert [p["name"] for p in editor.get("/api/v1/pipelines").json()["data"]] == ["recipe.handmade"]


# -- zones --------------------------------------------------------------------------------------
def test_zone_lifecycle_and_deleting_a_zone_unassigns_its_models(with_datasets):
    client = with_datasets
    assert (
        client.post(
            "/api/flow/save-recipe-steps", json={"model_name": "by_status", "config": GROUP_BY}
        ).status_code
        == 201
    )
    created = client.post("/api/flow/zones", json={"name": "Sales", "color": "#1f77b4"})
    assert created.status_code == 201, created.text
    zone = created.json()
    assert zone["name"] == "Sales" and zone["color"] == "#1f77b4" and zone["id"].startswith("zone-")
    renamed = client.patch(f"/api/flow/zones/{zone['id']}", json={"name": "Revenue"})
    assert (
        renamed.status_code == 200
        and renamed.json()["name"] == "Revenue"
        and renamed.json()["color"] == "#1f77b4"
    )
    recolored = client.put(f"/api/flow/zones/{zone['id']}", json={"color": "green"})
    assert recolored.json()["color"] == "green"

    for model in ("by_status", "orders"):  # a recipe and a dataset
        assigned = client.post("/api/flow/zones/assign", json={"model_name": model, "zone_id": zone["id"]})
        assert assigned.status_code == 200, assigned.text
    assert client.get("/api/flow/recipe/by_status").json()["zone_id"] == zone["id"]
    listed = client.get("/api/flow/zones").json()["data"]
    assert [(z["name"], z["model_count"]) for z in listed] == [("Revenue", 2)]

    assert client.delete(f"/api/flow/zones/{zone['id']}").status_code == 204
    assert client.get("/api/flow/recipe/by_status").json()["zone_id"] is None
    assert client.get("/api/flow/zones").json()["data"] == []
    assert client.patch(f"/api/flow/zones/{zone['id']}", json={"name": "x"}).status_code == 404
    assert client.delete(f"/api/flow/zones/{zone['id']}").status_code == 404

    # Bad input
    assert (
        client.post(
            "/api/flow/zones/assign", json={"model_name": "by_status", "zone_id": zone["id"]}
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/flow/zones/assign", json={"model_name": "nothing_here", "zone_id": None}
        ).status_code
        == 404
    )
    assert client.post("/api/flow/zones", json={"name": "", "color": "red"}).status_code == 422
    assert client.post("/api/flow/zones", json={"name": "x", "color": "url(javascript:1)"}).status_code == 422
    assert client.patch("/api/flow/zones/zone-abc", json={"name": "x"}).status_code == 422


def test_auto_assign_proposes_and_changes_nothing(with_datasets):
    client = with_datasets
    client.post("/api/flow/save-recipe-steps", json={"model_name": "by_status", "config": GROUP_BY})
    client.post("/api/flow/save-recipe-steps", json={"model_name": "order_names", "config": JOIN})
    raw = client.post("/api/flow/zones", json={"name": "Raw inputs", "color": "#999999"}).json()
    zones_before = client.get("/api/flow/zones").json()
    answer = client.post("/api/flow/zones/auto-assign")
    assert answer.status_code == 200, answer.text
    proposals = {p["model_name"]: p for p in answer.json()["proposals"]}
    # Raw inputs together, into the existing zone of that name
    for model in ("orders", "customers"):
        assert proposals[model]["zone_id"] == raw["id"]
        assert "raw input" in proposals[model]["reason"]
    # Models clustered by the connector their raw inputs come through
    for model in ("by_status", "order_names"):
        assert proposals[model]["zone_name"] == "From inline sources"
        assert "zone_id" not in proposals[model]
        assert "inline" in proposals[model]["reason"]
    # Nothing changed
    assert client.get("/api/flow/zones").json() == zones_before
    assert client.get("/api/flow/recipe/by_status").json()["zone_id"] is None


def test_zones_and_recipes_are_invisible_to_another_project_and_viewers_cannot_create(stack, with_datasets):
    client = with_datasets
    client.post("/api/flow/save-recipe-steps", json={"model_name": "by_status", "config": GROUP_BY})
    zone = client.post("/api/flow/zones", json={"name": "Mine"}).json()
    other = stack.client(jwt_for("other-" + secrets.token_hex(3), "admin"))
    assert other.get("/api/flow/recipe/by_status").status_code == 404
    assert other.get("/api/flow/zones").json()["data"] == []
    assert other.patch(f"/api/flow/zones/{zone['id']}", json={"name": "theirs"}).status_code == 404
    assert other.delete(f"/api/flow/zones/{zone['id']}").status_code == 404
    assert (
        other.post("/api/flow/zones/assign", json={"model_name": "by_status", "zone_id": None}).status_code
        == 404
    )
    assert (
        other.post("/api/pipeline/run", json={"target": {"type": "recipe", "name": "by_status"}}).status_code
        == 404
    )
    assert client.get("/api/flow/zones").json()["data"][0]["name"] == "Mine"

    viewer = stack.client(jwt_for(client.project, "viewer"))
    assert viewer.get("/api/flow/recipe/by_status").status_code == 200
    assert viewer.get("/api/flow/zones").status_code == 200
    for method, path, body in [
        ("POST", "/api/flow/save-recipe-steps", {"model_name": "v", "config": GROUP_BY}),
        ("POST", "/api/flow/zones", {"name": "v"}),
        ("PATCH", f"/api/flow/zones/{zone['id']}", {"name": "v"}),
        ("DELETE", f"/api/flow/zones/{zone['id']}", None),
        ("POST", "/api/flow/zones/assign", {"model_name": "by_status", "zone_id": zone["id"]}),
        ("POST", "/api/flow/zones/auto-assign", None),
    ]:
        answer = viewer.request(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    assert viewer.get("/api/flow/recipe/v").status_code == 404
    assert [z["name"] for z in client.get("/api/flow/zones").json()["data"]] == ["Mine"]


# -- AI recipes ---------------------------------------------------------------------------------
DOCS = [
    {"id": 1, "text": "The cat sat on the mat."},
    {"id": 2, "text": "A kitten was sitting on the rug."},
    {"id": 3, "text": "Quarterly revenue grew by ten percent."},
    {"id": 4, "text": "Sales went up 10% this quarter."},
    {"id": 5, "text": "How do I reset my password?"},
]


def run_ai_recipe(client, recipe_id: str) -> dict:
    started = client.post(f"/api/flow/ai-recipes/{recipe_id}/run")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    def finished():
        runs = client.get(f"/api/flow/ai-recipes/{recipe_id}/runs").json()["data"]
        mine = [r for r in runs if r["id"] == run_id]
        return mine[0] if mine and mine[0]["status"] in FINISHED else None

    return eventually(finished, timeout=120, interval=0.2)


def test_embed_recipe_writes_vectors_and_rag_search_answers_the_top_k(editor):
    write_dataset(editor, "docs", DOCS)
    body = {
        "model_name": "docs_embedded",
        "recipe_type": "embed",
        "inputs": ["docs"],
        "run_config": {"text_column": "text"},
    }
    created = editor.post("/api/flow/ai-recipes", json=body)
    assert created.status_code == 201, created.text
    recipe = created.json()
    assert recipe["id"].startswith("ai-recipe-") and recipe["recipe_type"] == "embed"
    # Idempotent on (project, model_name, recipe_type): the same recipe, nothing new
    again = editor.post("/api/flow/ai-recipes", json={**body, "run_config": {"text_column": "id"}})
    assert again.status_code == 200 and again.json() == recipe
    assert len(editor.get("/api/flow/ai-recipes").json()["data"]) == 1

    run = run_ai_recipe(editor, recipe["id"])
    assert run["status"] == "success", run
    embedded = editor.post(
        "/api/flow/preview-sql", json={"recipe_type": "prepare", "inputs": ["docs_embedded"], "steps": []}
    )
    assert embedded.status_code == 200, embedded.text
    rows = embedded.json()["rows"]
    assert [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == [1, 2, 3, 4, 5]
    assert all(len(r["embedding"]) == 256 and all(isinstance(x, float) for x in r["embedding"]) for r in rows)

    search = editor.post(
        "/api/flow/ai-recipes",
        json={
            "model_name": "sales_answers",
            "recipe_type": "rag_search",
            "inputs": ["docs_embedded"],
            "run_config": {"query": "did sales grow this quarter", "top_k": 2},
        },
    ).json()
    assert run_ai_recipe(editor, search["id"])["status"] == "success"
    found = editor.post(
        "/api/flow/preview-sql",
        json={
            "recipe_type": "prepare",
            "inputs": ["sales_answers"],
            "steps": [{"type": "select", "columns": ["id", "score"]}],
        },
    ).json()
    assert sorted(r["id"] for r in found["rows"]) == [3, 4]

    nodes = editor.get("/api/flow/ai-nodes", params={"recipe_type": "rag_search"}).json()["data"]
    assert [(n["model_name"], n["recipe_type"]) for n in nodes] == [("sales_answers", "rag_search")]
    assert len(editor.get("/api/flow/ai-nodes").json()["data"]) == 2

    # Update, then delete
    updated = editor.patch(
        f"/api/flow/ai-recipes/{search['id']}", json={"run_config": {"query": "kittens", "top_k": 1}}
    )
    assert updated.status_code == 200 and updated.json()["run_config"]["top_k"] == 1
    assert editor.delete(f"/api/flow/ai-recipes/{search['id']}").status_code == 204
    assert editor.get(f"/api/flow/ai-recipes/{search['id']}").status_code == 404
    assert editor.get(f"/api/flow/ai-recipes/{search['id']}/runs").status_code == 404


def test_text_recipes_fail_locally_with_the_reason(editor):
    write_dataset(editor, "notes", DOCS[:2])
    recipe = editor.post(
        "/api/flow/ai-recipes",
        json={
            "model_name": "notes_summary",
            "recipe_type": "llm_enrich",
            "inputs": ["notes"],
            "run_config": {"prompt": "Summarise: {text}"},
        },
    ).json()
    run = run_ai_recipe(editor, recipe["id"])
    assert run["status"] == "failed"
    details = editor.get(f"/api/runs/{run['id']}").json()
    assert "no package on the registries ships text-generation weights" in str(details)


def test_ai_recipe_bad_input_roles_and_tenancy(stack, editor):
    bad = [
        ({"model_name": "x", "recipe_type": "classify", "inputs": ["d"]}, "recipe_type must be one of"),
        (
            {"model_name": "x", "recipe_type": "embed", "inputs": ["d"], "run_config": {}},
            "run_config.text_column",
        ),
        (
            {
                "model_name": "x",
                "recipe_type": "rag_search",
                "inputs": ["d"],
                "run_config": {"query": "q", "top_k": 0},
            },
            "top_k",
        ),
        (
            {
                "model_name": "x",
                "recipe_type": "agent",
                "inputs": ["d"],
                "run_config": {"instructions": "i", "tools": ["sql"]},
            },
            "no tools",
        ),
        (
            {
                "model_name": "x y",
                "recipe_type": "embed",
                "inputs": ["d"],
                "run_config": {"text_column": "t"},
            },
            "safe identifier",
        ),
        (
            {"model_name": "x", "recipe_type": "embed", "inputs": [], "run_config": {"text_column": "t"}},
            "exactly one dataset",
        ),
    ]
    for body, needle in bad:
        answer = editor.post("/api/flow/ai-recipes", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert needle in str(answer.json()["detail"])
    assert editor.get("/api/flow/ai-recipes").json()["data"] == []
    assert editor.get("/api/flow/ai-nodes", params={"recipe_type": "nope"}).status_code == 422

    recipe = editor.post(
        "/api/flow/ai-recipes",
        json={"model_name": "e", "recipe_type": "embed", "inputs": ["d"], "run_config": {"text_column": "t"}},
    ).json()
    viewer = stack.client(jwt_for(editor.project, "viewer"))
    assert viewer.get(f"/api/flow/ai-recipes/{recipe['id']}").status_code == 200
    assert (
        viewer.post(
            "/api/flow/ai-recipes",
            json={
                "model_name": "v",
                "recipe_type": "embed",
                "inputs": ["d"],
                "run_config": {"text_column": "t"},
            },
        ).status_code
        == 403
    )
    assert viewer.post(f"/api/flow/ai-recipes/{recipe['id']}/run").status_code == 403
    assert viewer.delete(f"/api/flow/ai-recipes/{recipe['id']}").status_code == 403
    other = stack.client(jwt_for("other-" + secrets.token_hex(3), "admin"))
    assert other.get(f"/api/flow/ai-recipes/{recipe['id']}").status_code == 404
    assert other.post(f"/api/flow/ai-recipes/{recipe['id']}/run").status_code == 404
    assert other.get("/api/flow/ai-nodes").json()["data"] == []
