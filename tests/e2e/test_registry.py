"""Watcher's registry over HTTP through the local gateway: every endpoint, its errors, roles, tenancy."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import jwt_for


@pytest.fixture
def editor(stack, project_admin):
    project, _ = project_admin
    with stack.client(jwt_for(project, "editor")) as client:
        yield client


@pytest.fixture
def viewer(stack, project_admin):
    project, _ = project_admin
    with stack.client(jwt_for(project, "viewer")) as client:
        yield client


def test_pipeline_upsert_get_list_patch(editor):
    created = editor.post(
        "/pipeline",
        json={
            "name": "  Orders Daily ",
            "pipeline_type_name": "Extraction",
            "next_watermark": 10,
            "pipeline_metadata": {"Owner": "Data Team"},
            "freshness_number": 24,
            "freshness_datepart": "HOUR",
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body == {"id": body["id"], "active": True, "load_lineage": True, "watermark": None}

    again = editor.post(
        "/pipeline", json={"name": "ORDERS DAILY", "pipeline_type_name": "extraction", "next_watermark": "11"}
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]

    fetched = editor.get(f"/pipeline/{body['id']}").json()
    assert fetched["name"] == "orders daily"
    assert fetched["next_watermark"] == "11"
    assert fetched["pipeline_metadata"] == {"Owner": "Data Team"}
    assert (fetched["freshness_number"], fetched["freshness_datepart"]) == (24, "hour")
    assert fetched["created_at"].endswith("Z")

    types = editor.get("/pipeline_type").json()
    assert [t["name"] for t in types] == ["extraction"] and fetched["pipeline_type_id"] == types[0]["id"]

    patched = editor.patch(
        "/pipeline",
        json={
            "id": body["id"],
            "name": "Orders Hourly",
            "timeliness_number": 2,
            "timeliness_datepart": "hour",
        },
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "orders hourly" and patched.json()["updated_at"].endswith("Z")
    assert [p["name"] for p in editor.get("/pipeline").json()] == ["orders hourly"]


def test_pipeline_errors(editor):
    first = editor.post("/pipeline", json={"name": "a", "pipeline_type_name": "t"}).json()["id"]
    editor.post("/pipeline", json={"name": "b", "pipeline_type_name": "t"})
    cases = [
        (editor.get("/pipeline/999999"), 404),
        (editor.get("/pipeline/abc"), 422),
        (editor.patch("/pipeline", json={"id": 999999, "active": False}), 404),
        (editor.patch("/pipeline", json={"load_lineage": False}), 422),
        (editor.patch("/pipeline", json={"id": first, "name": "B"}), 409),
        (editor.patch("/pipeline", json={"id": first, "pipeline_type_id": 999999}), 404),
        (editor.post("/pipeline", json={"name": "x" * 151, "pipeline_type_name": "t"}), 422),
        (editor.post("/pipeline", json={"name": "c", "pipeline_type_name": "t", "freshness_number": 3}), 422),
        (
            editor.post(
                "/pipeline", json={"name": "c", "pipeline_type_name": "t", "timeliness_datepart": "day"}
            ),
            422,
        ),
        (
            editor.post(
                "/pipeline",
                json={
                    "name": "c",
                    "pipeline_type_name": "t",
                    "freshness_number": 0,
                    "freshness_datepart": "day",
                },
            ),
            422,
        ),
        (
            editor.post(
                "/pipeline",
                json={
                    "name": "c",
                    "pipeline_type_name": "t",
                    "freshness_number": 1,
                    "freshness_datepart": "fortnight",
                },
            ),
            422,
        ),
        (
            editor.post(
                "/pipeline", json={"name": "c", "pipeline_type_name": "t", "next_watermark": "x" * 51}
            ),
            422,
        ),
        (
            editor.post(
                "/pipeline",
                json={"name": "c", "pipeline_type_name": "t", "pipeline_metadata": "not an object"},
            ),
            422,
        ),
        (editor.post("/pipeline", json={"pipeline_type_name": "t"}), 422),
        (editor.post("/pipeline", content="{broken", headers={"Content-Type": "application/json"}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["detail"]
    assert sorted(p["name"] for p in editor.get("/pipeline").json()) == ["a", "b"]  # nothing half-written


def test_unknown_fields_are_ignored(editor):
    response = editor.post("/pipeline", json={"name": "z", "pipeline_type_name": "t", "colour": "blue"})
    assert response.status_code == 201


def test_pipeline_type_upsert_changes_nothing_on_existing(editor):
    created = editor.post(
        "/pipeline_type", json={"name": "Loading", "freshness_number": 1, "freshness_datepart": "day"}
    )
    assert created.status_code == 201
    again = editor.post(
        "/pipeline_type", json={"name": "loading", "freshness_number": 9, "freshness_datepart": "week"}
    )
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    fetched = editor.get(f"/pipeline_type/{created.json()['id']}").json()
    assert (fetched["freshness_number"], fetched["freshness_datepart"]) == (1, "day")
    patched = editor.patch("/pipeline_type", json={"name": "loading", "mute_timeliness_check": True})
    assert patched.status_code == 200 and patched.json()["mute_timeliness_check"] is True
    assert editor.get("/pipeline_type/999999").status_code == 404


def test_addresses_types_and_lineage(editor):
    pipeline = editor.post("/pipeline", json={"name": "etl", "pipeline_type_name": "t"}).json()["id"]
    address = editor.post(
        "/address",
        json={
            "name": "Src_DB.Public.Orders",
            "address_type_name": "Postgres",
            "address_type_group_name": "Database",
        },
    )
    assert address.status_code == 201
    fetched = editor.get(f"/address/{address.json()['id']}").json()
    assert (fetched["database_name"], fetched["schema_name"], fetched["table_name"]) == (
        "src_db",
        "public",
        "orders",
    )
    assert (
        editor.post(
            "/address",
            json={
                "name": "src_db.public.orders",
                "address_type_name": "postgres",
                "address_type_group_name": "database",
            },
        ).status_code
        == 200
    )
    assert [t["name"] for t in editor.get("/address_type").json()] == ["postgres"]

    lineage = editor.post(
        "/address_lineage",
        json={
            "pipeline_id": pipeline,
            "source_addresses": [
                {
                    "name": "src_db.public.orders",
                    "address_type_name": "postgres",
                    "address_type_group_name": "database",
                },
                {
                    "name": "src_db.public.customers",
                    "address_type_name": "postgres",
                    "address_type_group_name": "database",
                },
            ],
            "target_addresses": [
                {
                    "name": "dw.sales.orders",
                    "address_type_name": "snowflake",
                    "address_type_group_name": "database",
                }
            ],
        },
    )
    assert lineage.status_code == 201
    assert lineage.json() == {
        "pipeline_id": pipeline,
        "lineage_relationships_created": 2,
        "message": f"Lineage relationships created for pipeline {pipeline}",
    }
    second = editor.post("/pipeline", json={"name": "mart", "pipeline_type_name": "t"}).json()["id"]
    editor.post(
        "/address_lineage",
        json={
            "pipeline_id": second,
            "source_addresses": [
                {
                    "name": "dw.sales.orders",
                    "address_type_name": "snowflake",
                    "address_type_group_name": "database",
                }
            ],
            "target_addresses": [
                {
                    "name": "mart.sales.daily",
                    "address_type_name": "snowflake",
                    "address_type_group_name": "database",
                }
            ],
        },
    )
    by_name = {a["name"]: a["id"] for a in editor.get("/address").json()}
    mart = editor.get(f"/address_lineage/{by_name['mart.sales.daily']}").json()
    upstream = {u["name"]: u["depth"] for u in mart["upstream"]}
    assert upstream == {"dw.sales.orders": 1, "src_db.public.orders": 2, "src_db.public.customers": 2}
    source = editor.get(f"/address_lineage/{by_name['src_db.public.orders']}").json()
    assert {d["name"] for d in source["downstream"]} == {"dw.sales.orders", "mart.sales.daily"}

    editor.patch("/pipeline", json={"id": pipeline, "load_lineage": False})
    skipped = editor.post(
        "/address_lineage", json={"pipeline_id": pipeline, "source_addresses": [], "target_addresses": []}
    )
    assert skipped.status_code == 200 and skipped.json()["lineage_relationships_created"] == 0
    unknown = editor.post(
        "/address_lineage", json={"pipeline_id": 999999, "source_addresses": [], "target_addresses": []}
    )
    assert unknown.status_code == 200 and unknown.json()["lineage_relationships_created"] == 0

    assert (
        editor.patch(
            "/address", json={"id": by_name["dw.sales.orders"], "name": "mart.sales.daily"}
        ).status_code
        == 409
    )
    assert editor.patch("/address", json={"id": 999999, "table_name": "x"}).status_code == 404
    assert (
        editor.patch("/address_type", json={"name": "snowflake", "group_name": "warehouse"}).json()[
            "group_name"
        ]
        == "warehouse"
    )
    assert editor.get("/address/999999").status_code == 404
    assert editor.get("/address_type/999999").status_code == 404


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/pipeline", {"name": "v", "pipeline_type_name": "t"}),
        ("PATCH", "/pipeline", {"name": "v", "active": False}),
        ("POST", "/pipeline_type", {"name": "v"}),
        ("PATCH", "/pipeline_type", {"name": "v"}),
        ("POST", "/address", {"name": "v", "address_type_name": "t", "address_type_group_name": "g"}),
        ("PATCH", "/address", {"name": "v"}),
        ("POST", "/address_type", {"name": "v", "group_name": "g"}),
        ("PATCH", "/address_type", {"name": "v"}),
        ("POST", "/address_lineage", {"pipeline_id": 1, "source_addresses": [], "target_addresses": []}),
    ],
)
def test_viewers_read_but_cannot_write(viewer, method, path, body):
    response = viewer.request(method, path, json=body)
    assert response.status_code == 403
    assert "editor role" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/pipeline",
        "/pipeline/1",
        "/pipeline_type",
        "/pipeline_type/1",
        "/address",
        "/address/1",
        "/address_type",
        "/address_type/1",
        "/address_lineage/1",
    ],
)
def test_every_read_needs_credentials(stack, viewer, path):
    with stack.client() as anonymous:
        assert anonymous.get(path).status_code == 401
    assert viewer.get(path).status_code in (200, 404)


def test_a_project_cannot_read_or_change_another_projects_pipeline(stack, editor):
    mine = editor.post("/pipeline", json={"name": "secret-pipeline", "pipeline_type_name": "t"}).json()["id"]
    with stack.client(jwt_for("someone-else-" + str(mine), "admin")) as other:
        assert other.get(f"/pipeline/{mine}").status_code == 404
        assert other.patch("/pipeline", json={"id": mine, "load_lineage": False}).status_code == 404
        assert all(p["name"] != "secret-pipeline" for p in other.get("/pipeline").json())
        # the same name is free in another project
        assert (
            other.post("/pipeline", json={"name": "secret-pipeline", "pipeline_type_name": "t"}).status_code
            == 201
        )
    assert editor.get(f"/pipeline/{mine}").json()["load_lineage"] is True
