"""Connectors, schemas and variables over HTTP through the local stack: CRUD, secrets kept out of
every response, log line and DynamoDB item (but present in Secrets Manager), deletes refused while
pipelines use an object, roles on every route, tenancy, bad input."""

from __future__ import annotations

import json
import secrets as random_secrets

import pytest

from tests.e2e.conftest import jwt_for, moto_client, table_dump


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


def table_items(stack) -> str:
    return table_dump(stack)


def project_secrets(stack, project: str) -> dict[str, dict]:
    """The project's secrets by name after `<prefix><project>/` (`connectors/3`, `variables/KEY`)."""
    client = moto_client(stack, "secretsmanager")
    found = {}
    for page in client.get_paginator("list_secrets").paginate():
        for entry in page["SecretList"]:
            prefix, _, rest = entry["Name"].partition(f"/{project}/")
            if rest:
                assert prefix.startswith("sluice/")  # the stack's SECRETS_PREFIX, sluice/<stage>/
                value = client.get_secret_value(SecretId=entry["Name"])["SecretString"]
                found[rest] = json.loads(value)
    return found


def pipeline_using(connector_id: str, schema_id: str, name: str) -> dict:
    """A seed-003 pipeline that names the connector and the schema."""
    return {
        "name": name,
        "connectorId": connector_id,
        "schemaId": schema_id,
        "nodes": [
            {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}},
            {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": f"{name}_out"}},
        ],
        "edges": [{"source": "src", "target": "out"}],
    }


def test_connector_crud_keeps_secrets_out_of_responses_logs_and_the_table(stack, project, editor, viewer):
    password = "pw-" + random_secrets.token_urlsafe(12)
    token = "tok-" + random_secrets.token_urlsafe(12)
    rotated = "rot-" + random_secrets.token_urlsafe(12)
    dsn_password = "dsn-" + random_secrets.token_urlsafe(12)
    seen: list[str] = []

    created = editor.post(
        "/api/v1/connectors",
        json={
            "name": "Warehouse",
            "type": "postgres",
            "config": {
                "host": "db.internal",
                "port": 5432,
                "user": "loader",
                "password": password,
                "options": {"sslmode": "require", "apiKey": token},
                "replica": f"postgresql://loader:{dsn_password}@replica.internal/sales",
            },
        },
    )
    assert created.status_code == 201, created.text
    seen.append(created.text)
    connector = created.json()["data"]
    assert connector["id"].startswith("connector-")
    assert connector["config"] == {
        "host": "db.internal",
        "port": 5432,
        "user": "loader",
        "password": "********",
        "options": {"sslmode": "require", "apiKey": "********"},
        "replica": "********",
    }
    number = connector["id"].split("-")[1]

    for path in (f"/api/v1/connectors/{connector['id']}", f"/api/v1/connectors/{number}"):
        fetched = viewer.get(path)
        assert fetched.status_code == 200 and fetched.json()["data"] == connector
        seen.append(fetched.text)
    listed = viewer.get("/api/v1/connectors")
    assert [c["id"] for c in listed.json()["data"]] == [connector["id"]]
    seen.append(listed.text)

    updated = editor.put(
        f"/api/v1/connectors/{connector['id']}",
        json={"config": {**connector["config"], "host": "db2.internal", "password": rotated}},
    )
    assert updated.status_code == 200, updated.text
    seen.append(updated.text)
    assert updated.json()["data"]["config"]["host"] == "db2.internal"
    assert updated.json()["data"]["config"]["password"] == "********"

    # Secrets Manager holds the values, one secret per connector, named by project and id
    stored = project_secrets(stack, project)
    assert list(stored) == [f"connectors/{number}"]
    assert stored[f"connectors/{number}"] == {
        "/password": rotated,
        "/options/apiKey": token,
        "/replica": f"postgresql://loader:{dsn_password}@replica.internal/sales",
    }
    # ...and nothing else does
    for value in (password, token, rotated, dsn_password):
        assert all(value not in text for text in seen)
        assert value not in table_items(stack)
        assert value not in "".join(stack.output)
    assert "arn:aws:secretsmanager" not in "".join(seen)

    assert editor.delete(f"/api/v1/connectors/{connector['id']}").status_code == 204
    assert viewer.get(f"/api/v1/connectors/{connector['id']}").status_code == 404
    assert project_secrets(stack, project) == {}
    assert (
        editor.post("/api/v1/connectors", json={"name": "warehouse", "type": "postgres"}).status_code == 201
    )


def test_names_are_unique_per_project_without_regard_to_case(editor):
    assert editor.post("/api/v1/connectors", json={"name": "S3 Raw", "type": "s3"}).status_code == 201
    taken = editor.post("/api/v1/connectors", json={"name": "s3 raw", "type": "s3"})
    assert taken.status_code == 409 and "already taken" in taken.json()["detail"]
    assert (
        editor.post(
            "/api/v1/schemas", json={"name": "Orders", "columns": [{"name": "id", "type": "int"}]}
        ).status_code
        == 201
    )
    taken = editor.post(
        "/api/v1/schemas", json={"name": "ORDERS", "columns": [{"name": "id", "type": "int"}]}
    )
    assert taken.status_code == 409


def test_deleting_a_connector_or_schema_that_pipelines_use_is_409(stack, project, editor):
    connector = editor.post(
        "/api/v1/connectors", json={"name": "api", "type": "http", "config": {"token": "t-123456789"}}
    ).json()["data"]
    schema = editor.post(
        "/api/v1/schemas", json={"name": "events", "columns": [{"name": "id", "type": "bigint"}]}
    ).json()["data"]
    pipelines = []
    for name in ("first", "second"):
        created = editor.post("/api/v1/pipelines", json=pipeline_using(connector["id"], schema["id"], name))
        assert created.status_code == 201, created.text
        pipelines.append(created.json()["data"])
    assert pipelines[0]["connector"] == {"id": connector["id"], "name": "api", "type": "http"}
    assert pipelines[0]["schema"] == {"id": schema["id"], "name": "events", "displayName": "events"}

    refused = editor.delete(f"/api/v1/connectors/{connector['id']}")
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"connector {connector['id']} is used by 2 pipelines")
    assert editor.get(f"/api/v1/connectors/{connector['id']}").json()["data"]["pipelineCount"] == 2
    assert len(project_secrets(stack, project)) == 1  # the refused delete kept the secret

    assert editor.delete("/api/v1/pipelines", params={"id": pipelines[0]["id"]}).status_code == 204
    refused = editor.delete(f"/api/v1/schemas/{schema['id']}")
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"schema {schema['id']} is used by 1 pipeline;")

    assert editor.delete("/api/v1/pipelines", params={"id": pipelines[1]["id"]}).status_code == 204
    assert editor.delete(f"/api/v1/connectors/{connector['id']}").status_code == 204
    assert editor.delete(f"/api/v1/schemas/{schema['id']}").status_code == 204
    assert project_secrets(stack, project) == {}


def test_schema_crud(editor, viewer):
    created = editor.post(
        "/api/v1/schemas",
        json={
            "name": "orders",
            "displayName": "Orders",
            "columns": [
                {"name": "id", "type": "BIGINT", "nullable": False},
                {"name": "amount", "type": "DECIMAL(18,2)", "description": "EUR"},
                {"name": "tags", "type": "VARCHAR[]"},
            ],
        },
    )
    assert created.status_code == 201, created.text
    schema = created.json()["data"]
    assert schema["id"].startswith("schema-") and schema["displayName"] == "Orders"
    assert [(c["name"], c["type"], c["nullable"]) for c in schema["columns"]] == [
        ("id", "bigint", False),
        ("amount", "DECIMAL(18,2)", True),
        ("tags", "VARCHAR[]", True),
    ]
    assert viewer.get(f"/api/v1/schemas/{schema['id']}").json()["data"] == schema
    assert viewer.get(f"/api/v1/schemas/{schema['id'].split('-')[1]}").json()["data"] == schema
    updated = editor.put(
        f"/api/v1/schemas/{schema['id']}", json={"displayName": "All orders", "name": "orders_v2"}
    )
    assert updated.status_code == 200
    assert (updated.json()["data"]["name"], updated.json()["data"]["displayName"]) == (
        "orders_v2",
        "All orders",
    )
    assert [s["name"] for s in viewer.get("/api/v1/schemas").json()["data"]] == ["orders_v2"]
    assert editor.delete(f"/api/v1/schemas/{schema['id']}").status_code == 204
    assert viewer.get("/api/v1/schemas").json() == {"data": []}


def test_variables_crud_with_a_secret_one(stack, project, editor, viewer):
    secret_value = "sv-" + random_secrets.token_urlsafe(12)
    created = editor.put(
        "/api/v1/variables/API_HOST", json={"value": "api.example.com", "description": "host"}
    )
    assert created.status_code == 201
    assert created.json()["data"]["value"] == "api.example.com"
    replaced = editor.put("/api/v1/variables/API_HOST", json={"value": "api2.example.com"})
    assert replaced.status_code == 200 and replaced.json()["data"]["description"] == "host"
    assert editor.put("/api/v1/variables/RETRIES", json={"value": 3}).json()["data"]["value"] == "3"

    secret = editor.put("/api/v1/variables/API_TOKEN", json={"value": secret_value, "secret": True})
    assert secret.status_code == 201 and secret.json()["data"]["value"] == "********"
    texts = [
        secret.text,
        viewer.get("/api/v1/variables/API_TOKEN").text,
        viewer.get("/api/v1/variables").text,
    ]
    assert [v["key"] for v in viewer.get("/api/v1/variables").json()["data"]] == [
        "API_HOST",
        "API_TOKEN",
        "RETRIES",
    ]
    assert all(secret_value not in text for text in texts)
    assert secret_value not in table_items(stack) and secret_value not in "".join(stack.output)
    assert project_secrets(stack, project) == {"variables/API_TOKEN": {"value": secret_value}}

    page = viewer.get("/api/v1/variables", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["pagination"]["hasMore"] is True
    rest = viewer.get("/api/v1/variables", params={"limit": 2, "cursor": page["pagination"]["cursor"]}).json()
    assert [v["key"] for v in rest["data"]] == ["RETRIES"] and rest["pagination"]["hasMore"] is False

    assert editor.delete("/api/v1/variables/API_TOKEN").status_code == 204
    assert project_secrets(stack, project) == {}
    assert viewer.get("/api/v1/variables/API_TOKEN").status_code == 404
    assert editor.delete("/api/v1/variables/API_TOKEN").status_code == 404


WRITES = [
    ("POST", "/api/v1/connectors", {"name": "c", "type": "s3"}),
    ("PUT", "/api/v1/connectors/connector-1", {"type": "s3"}),
    ("DELETE", "/api/v1/connectors/connector-1", None),
    ("POST", "/api/v1/schemas", {"name": "s", "columns": [{"name": "a", "type": "int"}]}),
    ("PUT", "/api/v1/schemas/schema-1", {"displayName": "x"}),
    ("DELETE", "/api/v1/schemas/schema-1", None),
    ("PUT", "/api/v1/variables/KEY", {"value": "v"}),
    ("DELETE", "/api/v1/variables/KEY", None),
]
READS = [
    "/api/v1/connectors",
    "/api/v1/connectors/connector-1",
    "/api/v1/schemas",
    "/api/v1/schemas/schema-1",
    "/api/v1/variables",
    "/api/v1/variables/KEY",
]


@pytest.mark.parametrize("method, path, body", WRITES)
def test_viewers_cannot_write(viewer, method, path, body):
    response = viewer.request(method, path, json=body)
    assert response.status_code == 403 and "editor role" in response.json()["detail"]


@pytest.mark.parametrize("role", ["editor", "admin"])
@pytest.mark.parametrize("method, path, body", WRITES)
def test_editors_and_admins_may_write(stack, role, method, path, body):
    project = "roles-" + random_secrets.token_hex(4)  # ids start at 1 in a new project
    with stack.client(jwt_for(project, role)) as writer:
        # Given one of each object, so that every write route has something to act on
        assert writer.post("/api/v1/connectors", json={"name": "c0", "type": "s3"}).status_code == 201
        schema = {"name": "s0", "columns": [{"name": "a", "type": "int"}]}
        assert writer.post("/api/v1/schemas", json=schema).status_code == 201
        assert writer.put("/api/v1/variables/KEY", json={"value": "v0"}).status_code == 201
        response = writer.request(method, path, json=body)
        assert response.status_code in (200, 201, 204), response.text


@pytest.mark.parametrize("path", READS)
def test_reads_need_credentials_and_viewers_may_read(stack, viewer, path):
    with stack.client() as anonymous:
        assert anonymous.get(path).status_code == 401
    with stack.client("df_key_" + "x" * 40) as unknown_key:
        assert unknown_key.get(path).status_code == 401
    assert viewer.get(path).status_code in (200, 404)


def test_another_project_sees_and_changes_nothing(stack, editor):
    connector = editor.post("/api/v1/connectors", json={"name": "mine", "type": "s3"}).json()["data"]
    schema = editor.post(
        "/api/v1/schemas", json={"name": "mine", "columns": [{"name": "a", "type": "int"}]}
    ).json()["data"]
    editor.put("/api/v1/variables/MINE", json={"value": "v"})
    with stack.client(jwt_for("other-" + random_secrets.token_hex(4), "admin")) as other:
        assert other.get(f"/api/v1/connectors/{connector['id']}").status_code == 404
        assert other.put(f"/api/v1/connectors/{connector['id']}", json={"type": "x"}).status_code == 404
        assert other.delete(f"/api/v1/connectors/{connector['id']}").status_code == 404
        assert other.get(f"/api/v1/schemas/{schema['id']}").status_code == 404
        assert other.delete(f"/api/v1/schemas/{schema['id']}").status_code == 404
        assert other.get("/api/v1/variables/MINE").status_code == 404
        assert other.delete("/api/v1/variables/MINE").status_code == 404
        for path in ("/api/v1/connectors", "/api/v1/schemas", "/api/v1/variables"):
            assert other.get(path).json() == {"data": []}
        assert other.post("/api/v1/connectors", json={"name": "mine", "type": "s3"}).status_code == 201
    assert editor.get(f"/api/v1/connectors/{connector['id']}").json()["data"]["type"] == "s3"
    assert editor.get("/api/v1/variables/MINE").status_code == 200


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/api/v1/connectors", {"type": "s3"}, 422),
        ("POST", "/api/v1/connectors", {"name": "a/b", "type": "s3"}, 422),
        ("POST", "/api/v1/connectors", {"name": "tab\there", "type": "s3"}, 422),
        ("POST", "/api/v1/connectors", {"name": "c", "type": "s3", "config": "x"}, 422),
        ("POST", "/api/v1/connectors", {"name": "c", "type": "s3", "config": {"password": "********"}}, 422),
        ("POST", "/api/v1/connectors", {"name": "c", "type": "s3", "config": {"$secret": "/x"}}, 422),
        ("POST", "/api/v1/connectors", {"name": "c", "type": "s3", "config": {"blob": "x" * 70_000}}, 422),
        ("GET", "/api/v1/connectors/schema-1", None, 422),
        ("GET", "/api/v1/connectors/connector-999999", None, 404),
        ("GET", "/api/v1/connectors?limit=0", None, 422),
        ("GET", "/api/v1/connectors?limit=101", None, 422),
        ("GET", "/api/v1/connectors?cursor=not-a-cursor", None, 422),
        ("POST", "/api/v1/schemas", {"name": "s", "columns": []}, 422),
        ("POST", "/api/v1/schemas", {"name": "s", "columns": [{"name": "a", "type": "varchar)--"}]}, 422),
        ("POST", "/api/v1/schemas", {"name": "s", "columns": [{"name": "a", "type": "int"}] * 2}, 422),
        ("PUT", "/api/v1/schemas/schema-999999", {"displayName": "x"}, 404),
        ("PUT", "/api/v1/variables/9LIVES", {"value": "x"}, 422),
        ("PUT", "/api/v1/variables/has-dash", {"value": "x"}, 422),
        ("PUT", "/api/v1/variables/OK", {"value": None}, 422),
        ("PUT", "/api/v1/variables/OK", {"value": ["a"]}, 422),
        ("PUT", "/api/v1/variables/OK", {"value": "********"}, 422),
        ("GET", "/api/v1/variables/NOPE", None, 404),
    ],
)
def test_bad_input_is_refused_with_a_detail(stack, editor, method, path, body, status):
    before = table_items(stack)
    response = editor.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    if status == 422 and method != "GET":
        assert _tenant_items(table_items(stack)) == _tenant_items(before)


def test_a_body_that_is_not_json_is_422(editor):
    response = editor.post(
        "/api/v1/connectors", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "not valid JSON" in json.dumps(response.json()["detail"])


def _tenant_items(dump: str) -> list:
    return sorted(json.dumps(i, sort_keys=True) for i in json.loads(dump))
