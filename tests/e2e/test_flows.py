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
