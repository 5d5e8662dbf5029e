"""Connectors, schemas and variables through the pipelines area's handler on moto (DynamoDB and
Secrets Manager): secrets kept apart, masked, resolved; conditional deletes; nothing half-written."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import boto3
import pytest

from sluice.auth.principal import Principal, Role
from sluice.composition import resolve_connector_config, resolve_variables
from sluice.domain.variables import substitute_variables
from sluice.domain.views.catalog import connector_view, schema_view
from sluice.errors import Conflict, Unavailable
from sluice.store import keys
from sluice.store.catalog import ConnectorRepository, Lease, SchemaRepository
from sluice.store.secrets import SecretStore
from sluice.store.table import Table
from tests.apigw import invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:ed")
VIEWER = Principal("acme", Role.viewer, "user:vi")
OTHER = Principal("globex", Role.admin, "user:other")
PASSWORD = "hunter2-Pa55word"
TOKEN = "tok_live_0123456789"


@pytest.fixture
def api(table):
    return load_area("pipelines").handler


def scan(table: Table) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=table.name)["Items"]


def secrets() -> dict[str, dict]:
    client = boto3.client("secretsmanager")
    names = [s["Name"] for s in client.list_secrets()["SecretList"]]
    return {name: json.loads(client.get_secret_value(SecretId=name)["SecretString"]) for name in names}


def add_references(table: Table, project: str, key: tuple[str, str], count: int) -> None:
    """What a pipeline write does to the connector or schema it names."""
    table.update(*key, add={"ref_count": count})


def connector_body(**fields: Any) -> dict:
    return {
        "name": "Warehouse",
        "type": "postgres",
        "config": {
            "host": "db.internal",
            "port": 5432,
            "user": "loader",
            "password": PASSWORD,
            "auth": {"token": TOKEN},
        },
        **fields,
    }


# -- connectors ------------------------------------------------------------------------------------------
def test_connector_secrets_go_to_secrets_manager_and_never_into_the_table(api, table):
    status, body = invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    assert status == 201
    connector = body["data"]
    assert connector["id"] == "connector-1"
    assert connector["config"] == {
        "host": "db.internal",
        "port": 5432,
        "user": "loader",
        "password": "********",
        "auth": {"token": "********"},
    }
    everything = json.dumps(scan(table))
    assert PASSWORD not in everything and TOKEN not in everything
    assert secrets() == {"sluice/dev/acme/connectors/1": {"/password": PASSWORD, "/auth/token": TOKEN}}
    for path in ("/api/v1/connectors/connector-1", "/api/v1/connectors/1"):
        status, fetched = invoke(api, "GET", path, principal=VIEWER)
        assert (status, fetched["data"]) == (200, connector)
    status, listed = invoke(api, "GET", "/api/v1/connectors", principal=VIEWER)
    assert (status, listed) == (200, {"data": [connector]})
    assert "arn:" not in json.dumps(listed) and "sluice/dev" not in json.dumps(listed)
    assert resolve_connector_config("acme", "connector-1")["password"] == PASSWORD
    assert connector_view(ConnectorRepository(table).record("acme", 1)) == connector


def test_put_replaces_config_and_a_mask_given_back_keeps_the_stored_secret(api):
    invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    status, body = invoke(
        api,
        "PUT",
        "/api/v1/connectors/connector-1",
        {
            "config": {"host": "db2", "password": "********", "auth": {"token": "new-token"}},
            "name": "Warehouse 2",
        },
        EDITOR,
    )
    assert status == 200
    assert body["data"]["config"] == {"host": "db2", "password": "********", "auth": {"token": "********"}}
    assert body["data"]["name"] == "Warehouse 2" and body["data"]["updated_at"] >= body["data"]["created_at"]
    assert resolve_connector_config("acme", 1) == {
        "host": "db2",
        "password": PASSWORD,
        "auth": {"token": "new-token"},
    }
    # the old name is free again, the new one taken
    assert invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)[0] == 201
    assert invoke(api, "POST", "/api/v1/connectors", connector_body(name="WAREHOUSE 2"), EDITOR)[0] == 409


def test_put_without_secrets_deletes_the_secret_and_secret_fields_move_values_in(api):
    invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    status, body = invoke(
        api, "PUT", "/api/v1/connectors/1", {"config": {"host": "h", "pin": "1234"}}, EDITOR
    )
    assert status == 200 and body["data"]["config"] == {"host": "h", "pin": "1234"}
    assert secrets() == {}
    status, body = invoke(api, "PUT", "/api/v1/connectors/1", {"secretFields": ["pin"]}, EDITOR)
    assert status == 200
    assert body["data"]["config"] == {"host": "h", "pin": "********"} and body["data"]["secretFields"] == [
        "pin"
    ]
    assert secrets() == {"sluice/dev/acme/connectors/1": {"/pin": "1234"}}
    # dropping it from secretFields does not reveal it: the mask keeps it secret
    status, body = invoke(api, "PUT", "/api/v1/connectors/1", {"secretFields": []}, EDITOR)
    assert body["data"]["config"]["pin"] == "********"
    assert resolve_connector_config("acme", 1) == {"host": "h", "pin": "1234"}


def test_a_mask_where_nothing_is_stored_is_refused_and_writes_nothing(api, table, writes):
    status, body = invoke(
        api, "POST", "/api/v1/connectors", connector_body(config={"password": "********"}), EDITOR
    )
    assert status == 422 and "no secret is stored there" in body["detail"]
    assert sum(writes.values()) == 0 and secrets() == {}
    invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    writes.clear()
    status, body = invoke(api, "PUT", "/api/v1/connectors/1", {"config": {"api_key": "********"}}, EDITOR)
    assert status == 422 and "config.api_key is '********'" in body["detail"]
    assert sum(writes.values()) == 0


def test_delete_refused_while_pipelines_use_it_then_removes_item_claim_and_secret(api, table):
    invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    add_references(table, "acme", keys.connector("acme", 1), 2)
    status, body = invoke(api, "DELETE", "/api/v1/connectors/connector-1", principal=EDITOR)
    assert status == 409 and body["detail"].startswith("connector connector-1 is used by 2 pipelines")
    assert invoke(api, "GET", "/api/v1/connectors/1", principal=VIEWER)[1]["data"]["pipelineCount"] == 2
    assert len(secrets()) == 1
    add_references(table, "acme", keys.connector("acme", 1), -2)
    assert invoke(api, "DELETE", "/api/v1/connectors/connector-1", principal=EDITOR)[0] == 204
    assert invoke(api, "GET", "/api/v1/connectors/1", principal=VIEWER)[0] == 404
    assert invoke(api, "DELETE", "/api/v1/connectors/1", principal=EDITOR)[0] == 404
    assert secrets() == {}
    assert invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)[0] == 201  # name free
    kinds = Counter(i.get("kind", {}).get("S") for i in scan(table))
    assert kinds == Counter({"connector": 1, "name_claim": 1, None: 1})  # + the id counter; no lease left


def test_a_failed_item_write_deletes_the_secret_it_created(api, table, monkeypatch):
    # Given another request that claims the name between the check and the write
    invoke(api, "POST", "/api/v1/connectors", connector_body(config={"host": "h"}), EDITOR)
    monkeypatch.setattr(ConnectorRepository, "find_by_name", lambda *_args: None)
    status, body = invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    assert status == 409 and "already taken" in body["detail"]
    assert secrets() == {}
    assert [c["id"] for c in invoke(api, "GET", "/api/v1/connectors", principal=VIEWER)[1]["data"]] == [
        "connector-1"
    ]


def test_a_failed_update_deletes_the_secret_it_created_and_keeps_the_old_config(api, monkeypatch):
    # Given a connector without secrets, and an item write that fails after the secret is written
    invoke(api, "POST", "/api/v1/connectors", connector_body(config={"host": "h"}), EDITOR)

    def lost_race(*_args: Any) -> None:
        raise Conflict("Connector connector-1 was changed by another request meanwhile; retry.")

    monkeypatch.setattr(ConnectorRepository, "change", lost_race)
    status, _ = invoke(
        api, "PUT", "/api/v1/connectors/1", {"config": {"host": "h2", "password": "x"}}, EDITOR
    )
    assert status == 409
    assert secrets() == {}
    assert resolve_connector_config("acme", 1) == {"host": "h"}


def test_a_failed_variable_write_deletes_the_secret_it_created(api, monkeypatch):
    from sluice.store.catalog import VariableRepository

    def lost_race(*_args: Any) -> None:
        raise Conflict("Variable 'K' was changed by another request meanwhile; retry.")

    monkeypatch.setattr(VariableRepository, "put", lost_race)
    status, _ = invoke(api, "PUT", "/api/v1/variables/K", {"value": "v", "secret": True}, EDITOR)
    assert status == 409 and secrets() == {}


def test_secret_store_down_answers_503_and_writes_no_item(api, table, monkeypatch):
    def down(*_args: Any) -> None:
        raise Unavailable("The secret store could not write a secret (ServiceUnavailable); retry shortly.")

    monkeypatch.setattr(SecretStore, "write", down)
    status, body = invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    assert status == 503 and "secret store" in body["detail"]
    assert invoke(api, "GET", "/api/v1/connectors", principal=VIEWER)[1] == {"data": []}


@pytest.mark.parametrize(
    "body",
    [
        {"type": "postgres"},
        {"name": "x", "config": {}},
        {"name": "a/b", "type": "postgres"},
        {"name": "x", "type": "postgres", "config": []},
        {"name": "x", "type": "postgres", "config": {"$secret": "/a"}},
        {"name": "x", "type": "postgres", "secretFields": [""]},
        ["not", "an", "object"],
    ],
)
def test_bad_connector_bodies_answer_422_and_write_nothing(api, writes, body):
    status, answer = invoke(api, "POST", "/api/v1/connectors", body, EDITOR)
    assert status == 422 and answer["detail"]
    assert sum(writes.values()) == 0


def test_bad_ids_and_unknown_connectors(api):
    assert invoke(api, "GET", "/api/v1/connectors/schema-1", principal=VIEWER)[0] == 422
    assert invoke(api, "GET", "/api/v1/connectors/abc", principal=VIEWER)[0] == 422
    status, body = invoke(api, "GET", "/api/v1/connectors/connector-9", principal=VIEWER)
    assert (status, body) == (404, {"detail": "Connector connector-9 not found."})
    assert invoke(api, "PUT", "/api/v1/connectors/9", {"type": "mysql"}, EDITOR)[0] == 404
    assert invoke(api, "DELETE", "/api/v1/connectors/9", principal=EDITOR)[0] == 404


def test_list_pages_walk_every_connector_once(api):
    for n in range(5):
        invoke(api, "POST", "/api/v1/connectors", connector_body(name=f"c{n}", config={}), EDITOR)
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = invoke(api, "GET", "/api/v1/connectors", principal=VIEWER, query=query)
        assert status == 200 and len(page["data"]) <= 2
        seen += [c["name"] for c in page["data"]]
        cursor = page["pagination"]["cursor"]
        assert page["pagination"]["hasMore"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == ["c0", "c1", "c2", "c3", "c4"]
    assert invoke(api, "GET", "/api/v1/connectors", principal=VIEWER, query={"limit": "101"})[0] == 422
    assert invoke(api, "GET", "/api/v1/connectors", principal=VIEWER, query={"cursor": "garbage"})[0] == 422


def test_another_projects_cursor_is_refused(api):
    for n in range(3):
        invoke(api, "POST", "/api/v1/connectors", connector_body(name=f"c{n}", config={}), EDITOR)
    cursor = invoke(api, "GET", "/api/v1/connectors", principal=VIEWER, query={"limit": "1"})[1][
        "pagination"
    ]["cursor"]
    status, _ = invoke(api, "GET", "/api/v1/connectors", principal=OTHER, query={"cursor": cursor})
    assert status == 422


def test_other_projects_see_nothing_and_may_reuse_names(api):
    invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    assert invoke(api, "GET", "/api/v1/connectors/1", principal=OTHER)[0] == 404
    assert invoke(api, "PUT", "/api/v1/connectors/1", {"type": "x"}, OTHER)[0] == 404
    assert invoke(api, "DELETE", "/api/v1/connectors/1", principal=OTHER)[0] == 404
    assert invoke(api, "GET", "/api/v1/connectors", principal=OTHER)[1] == {"data": []}
    assert invoke(api, "POST", "/api/v1/connectors", connector_body(), OTHER)[0] == 201
    assert len(secrets()) == 2


def test_concurrent_updates_of_one_connector_leave_item_and_secret_agreeing(api, atomic_writes):
    invoke(api, "POST", "/api/v1/connectors", connector_body(), EDITOR)
    results: list[int] = []

    def update(n: int) -> None:
        body = {"config": {"host": f"h{n}", "password": f"pw-{n}"}}
        results.append(invoke(api, "PUT", "/api/v1/connectors/1", body, EDITOR)[0])

    threads = [threading.Thread(target=update, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) <= {200, 409} and 200 in results
    resolved = resolve_connector_config("acme", 1)
    assert resolved["password"] == f"pw-{resolved['host'][1:]}"


def test_a_held_lease_makes_a_change_wait_then_give_up(table):
    now = [1000.0]
    lease = Lease(table, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    with (
        lease.hold("acme", "connector", "1", "Connector connector-1"),
        pytest.raises(Conflict, match="being changed by another request"),
        lease.hold("acme", "connector", "1", "Connector connector-1"),
    ):
        pass
    with lease.hold("acme", "connector", "1", "Connector connector-1"):  # released, free again
        pass


# -- schemas ------------------------------------------------------------------------------------------------
SCHEMA = {
    "name": "orders",
    "displayName": "Orders",
    "columns": [
        {"name": "id", "type": "bigint", "nullable": False},
        {"name": "amount", "type": "DECIMAL(18,2)", "description": "in EUR"},
    ],
}


def test_schema_crud(api, table):
    status, body = invoke(api, "POST", "/api/v1/schemas", SCHEMA, EDITOR)
    assert status == 201
    schema = body["data"]
    assert schema["id"] == "schema-1" and schema["displayName"] == "Orders"
    assert schema["columns"] == [
        {"name": "id", "type": "bigint", "nullable": False, "description": None},
        {"name": "amount", "type": "DECIMAL(18,2)", "nullable": True, "description": "in EUR"},
    ]
    assert invoke(api, "GET", "/api/v1/schemas/1", principal=VIEWER)[1]["data"] == schema
    assert schema_view(SchemaRepository(table).record("acme", 1)) == schema
    assert invoke(api, "POST", "/api/v1/schemas", {**SCHEMA, "name": "ORDERS"}, EDITOR)[0] == 409
    status, body = invoke(
        api, "PUT", "/api/v1/schemas/schema-1", {"columns": [{"name": "id", "type": "integer"}]}, EDITOR
    )
    assert status == 200 and [c["type"] for c in body["data"]["columns"]] == ["integer"]
    assert body["data"]["displayName"] == "Orders"
    assert (
        invoke(api, "GET", "/api/v1/schemas", principal=VIEWER)[1]["data"][0]["columns"][0]["type"]
        == "integer"
    )
    add_references(table, "acme", keys.schema("acme", 1), 1)
    status, body = invoke(api, "DELETE", "/api/v1/schemas/1", principal=EDITOR)
    assert status == 409 and body["detail"].startswith("schema schema-1 is used by 1 pipeline;")
    add_references(table, "acme", keys.schema("acme", 1), -1)
    assert invoke(api, "DELETE", "/api/v1/schemas/1", principal=EDITOR)[0] == 204
    assert invoke(api, "GET", "/api/v1/schemas/1", principal=VIEWER)[0] == 404


def test_schema_rename_onto_a_taken_name_is_409_and_changes_nothing(api):
    invoke(api, "POST", "/api/v1/schemas", SCHEMA, EDITOR)
    invoke(api, "POST", "/api/v1/schemas", {**SCHEMA, "name": "customers"}, EDITOR)
    status, body = invoke(api, "PUT", "/api/v1/schemas/2", {"name": "Orders", "displayName": "X"}, EDITOR)
    assert status == 409 and "already taken" in body["detail"]
    assert invoke(api, "GET", "/api/v1/schemas/2", principal=VIEWER)[1]["data"]["displayName"] == "Orders"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "s", "columns": []},
        {"name": "s", "columns": [{"name": "a", "type": "no_such_type"}]},
        {"name": "s", "columns": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]},
        {"name": "s"},
        {"name": "s", "columns": "id int"},
    ],
)
def test_bad_schema_bodies_answer_422_and_write_nothing(api, writes, body):
    status, answer = invoke(api, "POST", "/api/v1/schemas", body, EDITOR)
    assert status == 422 and answer["detail"]
    assert sum(writes.values()) == 0


# -- variables --------------------------------------------------------------------------------------------
def test_variables_put_creates_then_replaces_and_secret_values_stay_in_secrets_manager(api, table):
    status, body = invoke(api, "PUT", "/api/v1/variables/DB_HOST", {"value": "db.internal"}, EDITOR)
    assert status == 201
    assert body["data"] == {
        "key": "DB_HOST",
        "value": "db.internal",
        "secret": False,
        "description": None,
        "created_at": body["data"]["created_at"],
        "updated_at": body["data"]["updated_at"],
    }
    status, body = invoke(
        api, "PUT", "/api/v1/variables/DB_HOST", {"value": 5432, "description": "port"}, EDITOR
    )
    assert (status, body["data"]["value"], body["data"]["description"]) == (200, "5432", "port")
    status, body = invoke(
        api, "PUT", "/api/v1/variables/DB_PASSWORD", {"value": PASSWORD, "secret": True}, EDITOR
    )
    assert status == 201 and body["data"]["value"] == "********" and body["data"]["secret"] is True
    assert PASSWORD not in json.dumps(scan(table))
    assert secrets() == {"sluice/dev/acme/variables/DB_PASSWORD": {"value": PASSWORD}}
    # a new value without `secret` stays secret; the mask given back keeps the value
    invoke(api, "PUT", "/api/v1/variables/DB_PASSWORD", {"value": "rotated"}, EDITOR)
    invoke(api, "PUT", "/api/v1/variables/DB_PASSWORD", {"value": "********", "description": "d"}, EDITOR)
    assert resolve_variables("acme") == {"DB_HOST": "5432", "DB_PASSWORD": "rotated"}
    status, listed = invoke(api, "GET", "/api/v1/variables", principal=VIEWER)
    assert [(v["key"], v["value"]) for v in listed["data"]] == [
        ("DB_HOST", "5432"),
        ("DB_PASSWORD", "********"),
    ]
    assert "rotated" not in json.dumps(listed)
    # made plain: the value moves back to the table and the secret is deleted
    status, body = invoke(
        api, "PUT", "/api/v1/variables/DB_PASSWORD", {"value": "plain", "secret": False}, EDITOR
    )
    assert status == 200 and body["data"]["value"] == "plain" and secrets() == {}


def test_secret_variable_delete_deletes_its_secret_and_substitution_uses_real_values(api):
    invoke(api, "PUT", "/api/v1/variables/TOKEN", {"value": TOKEN, "secret": True}, EDITOR)
    invoke(api, "PUT", "/api/v1/variables/HOST", {"value": "api.example.com"}, EDITOR)
    config = {"url": "https://${var.HOST}/v1", "headers": {"Authorization": "Bearer ${var.TOKEN}"}}
    resolved = substitute_variables(config, resolve_variables("acme"), {"HOST": "staging.example.com"})
    assert resolved == {
        "url": "https://staging.example.com/v1",
        "headers": {"Authorization": f"Bearer {TOKEN}"},
    }
    assert invoke(api, "DELETE", "/api/v1/variables/TOKEN", principal=EDITOR)[0] == 204
    assert secrets() == {}
    assert invoke(api, "GET", "/api/v1/variables/TOKEN", principal=VIEWER)[0] == 404
    assert invoke(api, "DELETE", "/api/v1/variables/TOKEN", principal=EDITOR)[0] == 404
    # re-created at once under the same key
    assert invoke(api, "PUT", "/api/v1/variables/TOKEN", {"value": "again", "secret": True}, EDITOR)[0] == 201
    assert resolve_variables("acme")["TOKEN"] == "again"


def test_variable_mask_is_refused_where_nothing_secret_is_stored(api, writes):
    status, body = invoke(api, "PUT", "/api/v1/variables/X", {"value": "********"}, EDITOR)
    assert status == 422 and "mask of a secret value" in body["detail"]
    assert sum(writes.values()) == 0


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/variables/1BAD", {"value": "x"}),
        ("/api/v1/variables/bad-key", {"value": "x"}),
        ("/api/v1/variables/" + "K" * 129, {"value": "x"}),
        ("/api/v1/variables/OK", {"value": None}),
        ("/api/v1/variables/OK", {"value": {"a": 1}}),
        ("/api/v1/variables/OK", {"value": "x", "secret": "yes"}),
        ("/api/v1/variables/OK", {"description": "no value"}),
    ],
)
def test_bad_variables_answer_422_and_write_nothing(api, writes, path, body):
    status, answer = invoke(api, "PUT", path, body, EDITOR)
    assert status == 422 and answer["detail"]
    assert sum(writes.values()) == 0


def test_variables_are_per_project(api):
    invoke(api, "PUT", "/api/v1/variables/K", {"value": "mine"}, EDITOR)
    assert invoke(api, "GET", "/api/v1/variables/K", principal=OTHER)[0] == 404
    assert invoke(api, "GET", "/api/v1/variables", principal=OTHER)[1] == {"data": []}
    assert invoke(api, "PUT", "/api/v1/variables/K", {"value": "theirs"}, OTHER)[0] == 201
    assert resolve_variables("acme") == {"K": "mine"}


# -- roles --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/v1/connectors", {"name": "c", "type": "t"}),
        ("PUT", "/api/v1/connectors/1", {"type": "t"}),
        ("DELETE", "/api/v1/connectors/1", None),
        ("POST", "/api/v1/schemas", SCHEMA),
        ("PUT", "/api/v1/schemas/1", {"displayName": "x"}),
        ("DELETE", "/api/v1/schemas/1", None),
        ("PUT", "/api/v1/variables/K", {"value": "v"}),
        ("DELETE", "/api/v1/variables/K", None),
    ],
)
def test_viewers_cannot_write(api, writes, method, path, body):
    status, answer = invoke(api, method, path, body, VIEWER)
    assert status == 403 and "editor role" in answer["detail"]
    assert sum(writes.values()) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/connectors",
        "/api/v1/connectors/1",
        "/api/v1/schemas",
        "/api/v1/schemas/1",
        "/api/v1/variables",
        "/api/v1/variables/K",
    ],
)
def test_reads_need_credentials(api, path):
    assert invoke(api, "GET", path)[0] == 401
    assert invoke(api, "GET", path, principal=VIEWER)[0] in (200, 404)
