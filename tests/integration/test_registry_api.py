"""Watcher's registry over HTTP: the pipelines and lineage areas driven through their Lambda
handlers with API Gateway HTTP API v2 events, on moto."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sluice.auth.principal import Principal, Role
from tests.apigw import invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:ed")
VIEWER = Principal("acme", Role.viewer, "user:vi")
OTHER = Principal("globex", Role.admin, "user:other")


@pytest.fixture
def pipelines(table):
    return load_area("pipelines").handler


@pytest.fixture
def lineage(table):
    return load_area("lineage").handler


def pipeline_body(**fields: Any) -> dict:
    return {"name": "my data pipeline", "pipeline_type_name": "extraction", **fields}


def address(name: str, group: str = "database", type_name: str = "postgres") -> dict:
    return {"name": name, "address_type_name": type_name, "address_type_group_name": group}


# -- POST /pipeline ---------------------------------------------------------------------------------
def test_post_pipeline_creates_then_finds(pipelines):
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)
    assert (status, body) == (201, {"id": 1, "active": True, "load_lineage": True, "watermark": None})
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(name="My Data Pipeline "), EDITOR)
    assert (status, body["id"]) == (200, 1)


def test_post_pipeline_seed_example_stores_every_field(pipelines):
    request = {
        "name": "my data pipeline",
        "pipeline_type_name": "extraction",
        "next_watermark": "2024-01-02T00:00:00Z",
        "pipeline_metadata": {"description": "Daily data extraction pipeline"},
        "freshness_number": 24,
        "freshness_datepart": "hour",
        "timeliness_number": 2,
        "timeliness_datepart": "hour",
    }
    assert invoke(pipelines, "POST", "/pipeline", request, EDITOR)[0] == 201
    status, pipeline = invoke(pipelines, "GET", "/pipeline/1", principal=VIEWER)
    assert status == 200
    assert pipeline["next_watermark"] == "2024-01-02T00:00:00Z"
    assert pipeline["pipeline_metadata"] == {"description": "Daily data extraction pipeline"}
    assert (pipeline["freshness_number"], pipeline["freshness_datepart"]) == (24, "hour")
    assert (pipeline["timeliness_number"], pipeline["timeliness_datepart"]) == (2, "hour")
    assert pipeline["created_at"].endswith("Z") and pipeline["updated_at"] is None
    status, types = invoke(pipelines, "GET", "/pipeline_type", principal=VIEWER)
    assert [t["name"] for t in types] == ["extraction"]
    assert pipeline["pipeline_type_id"] == types[0]["id"]


def test_post_existing_pipeline_updates_given_fields_and_reports_the_stored_watermark(pipelines):
    invoke(
        pipelines, "POST", "/pipeline", pipeline_body(freshness_number=1, freshness_datepart="day"), EDITOR
    )
    invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "watermark": "2024-01-01"}, EDITOR)
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(next_watermark=10), EDITOR)
    assert (status, body["watermark"]) == (200, "2024-01-01")
    pipeline = invoke(pipelines, "GET", "/pipeline/1", principal=VIEWER)[1]
    assert pipeline["next_watermark"] == "10"  # stored as a string
    assert pipeline["freshness_number"] == 1  # absent fields stay
    assert invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)[1]["watermark"] is None


def test_post_pipeline_finds_a_name_given_in_another_case(pipelines, table):
    from sluice.store.registry import PipelineRepository

    PipelineRepository(table).create("acme", {"name": "User-Analytics", "pipeline_type_id": 1})
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(name="user-analytics"), EDITOR)
    assert (status, body["id"]) == (200, 1)


def test_load_lineage_and_active_given_on_post_are_applied(pipelines):
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(load_lineage=False), EDITOR)
    assert (status, body["load_lineage"]) == (201, False)
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(active=False), EDITOR)
    assert (status, body["active"], body["load_lineage"]) == (200, False, False)


def test_concurrent_posts_of_one_pipeline_name_end_with_one_pipeline(pipelines, atomic_writes):
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def post() -> None:
        barrier.wait()
        statuses.append(invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)[0])

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [201]
    listed = invoke(pipelines, "GET", "/pipeline", principal=VIEWER)[1]
    assert len(listed) == 1
    assert len(invoke(pipelines, "GET", "/pipeline_type", principal=VIEWER)[1]) == 1


# -- GET /pipeline ----------------------------------------------------------------------------------
def test_get_pipelines_lists_every_field_of_the_seed(pipelines):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(name="a"), EDITOR)
    invoke(pipelines, "POST", "/pipeline", pipeline_body(name="b", pipeline_type_name="load"), EDITOR)
    status, listed = invoke(pipelines, "GET", "/pipeline", principal=VIEWER)
    assert status == 200
    assert [p["name"] for p in listed] == ["a", "b"]
    assert set(listed[0]) == {
        "id",
        "name",
        "pipeline_type_id",
        "watermark",
        "next_watermark",
        "pipeline_metadata",
        "last_target_insert",
        "last_target_update",
        "last_target_soft_delete",
        "freshness_number",
        "freshness_datepart",
        "mute_freshness_check",
        "timeliness_number",
        "timeliness_datepart",
        "mute_timeliness_check",
        "load_lineage",
        "active",
        "created_at",
        "updated_at",
    }


def test_get_pipeline_of_unknown_or_malformed_id(pipelines):
    assert invoke(pipelines, "GET", "/pipeline/999", principal=VIEWER) == (
        404,
        {"detail": "Pipeline 999 not found."},
    )
    assert invoke(pipelines, "GET", "/pipeline/abc", principal=VIEWER)[0] == 422
    assert invoke(pipelines, "GET", "/pipeline/1.5", principal=VIEWER)[0] == 422
    assert invoke(pipelines, "GET", "/pipeline/-1", principal=VIEWER)[0] == 404


# -- PATCH /pipeline --------------------------------------------------------------------------------
def test_patch_pipeline_by_id_and_by_name(pipelines):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)
    status, body = invoke(
        pipelines,
        "PATCH",
        "/pipeline",
        {
            "id": 1,
            "name": "Updated Pipeline Name",
            "mute_freshness_check": True,
            "pipeline_metadata": {"Env": "Prod"},
        },
        EDITOR,
    )
    assert status == 200
    assert (body["name"], body["mute_freshness_check"]) == ("updated pipeline name", True)
    assert body["pipeline_metadata"] == {"Env": "Prod"}
    assert body["updated_at"].endswith("Z")
    status, body = invoke(
        pipelines, "PATCH", "/pipeline", {"name": "UPDATED pipeline name", "load_lineage": False}, EDITOR
    )
    assert (status, body["id"], body["load_lineage"]) == (200, 1, False)


def test_patch_pipeline_type_id_must_exist(pipelines, writes):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)
    invoke(pipelines, "POST", "/pipeline_type", {"name": "other"}, EDITOR)
    assert (
        invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "pipeline_type_id": 2}, EDITOR)[1][
            "pipeline_type_id"
        ]
        == 2
    )
    writes.clear()
    status, body = invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "pipeline_type_id": 50}, EDITOR)
    assert (status, body["detail"]) == (404, "Pipeline type 50 not found.")
    assert not writes


def test_patch_pipeline_errors(pipelines, writes):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(name="a"), EDITOR)
    invoke(pipelines, "POST", "/pipeline", pipeline_body(name="b"), EDITOR)
    writes.clear()
    assert invoke(pipelines, "PATCH", "/pipeline", {"active": False}, EDITOR)[0] == 422
    assert invoke(pipelines, "PATCH", "/pipeline", {"id": 77, "active": False}, EDITOR)[0] == 404
    assert invoke(pipelines, "PATCH", "/pipeline", {"name": "zzz", "active": False}, EDITOR)[0] == 404
    status, body = invoke(pipelines, "PATCH", "/pipeline", {"id": 2, "name": "A", "active": False}, EDITOR)
    assert status == 409 and "already taken" in body["detail"]
    assert invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "freshness_number": 5}, EDITOR)[0] == 422
    assert invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "timeliness_datepart": "day"}, EDITOR)[0] == 422
    assert invoke(pipelines, "PATCH", "/pipeline", {"id": "one"}, EDITOR)[0] == 422
    assert invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "active": None}, EDITOR)[0] == 422
    assert writes["TransactWriteItems"] == 1 and sum(writes.values()) == 1  # only the refused rename tried
    assert invoke(pipelines, "GET", "/pipeline/2", principal=VIEWER)[1]["active"] is True


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    ["{not json", "", "[1, 2]", '"text"', "null", '{"name": NaN, "pipeline_type_name": "t"}', "\xff"],
)
def test_malformed_bodies_are_422_and_write_nothing(pipelines, writes, raw):
    status, body = invoke(pipelines, "POST", "/pipeline", principal=EDITOR, raw_body=raw)
    assert status == 422 and body["detail"]
    assert not writes


@pytest.mark.parametrize(
    "fields",
    [
        {"name": 5},
        {"name": ""},
        {"name": "n" * 151},
        {"pipeline_type_name": "t" * 151},
        {"pipeline_type_name": None},
        {"next_watermark": "w" * 51},
        {"next_watermark": {"a": 1}},
        {"pipeline_metadata": "not an object"},
        {"freshness_number": -1, "freshness_datepart": "hour"},
        {"freshness_number": "many", "freshness_datepart": "hour"},
        {"freshness_number": 1, "freshness_datepart": "decade"},
        {"freshness_number": 24},
        {"timeliness_datepart": "hour"},
        {"load_lineage": "sometimes"},
    ],
)
def test_invalid_pipeline_fields_are_422_and_write_nothing(pipelines, writes, fields):
    status, body = invoke(pipelines, "POST", "/pipeline", pipeline_body(**fields), EDITOR)
    assert status == 422, body
    assert isinstance(body["detail"], list) and body["detail"][0]["msg"]
    assert not writes


def test_unknown_fields_are_ignored(pipelines):
    status, _ = invoke(pipelines, "POST", "/pipeline", pipeline_body(colour="blue", id=99), EDITOR)
    assert status == 201
    assert "colour" not in invoke(pipelines, "GET", "/pipeline/1", principal=VIEWER)[1]


def test_strings_are_lowercased_but_watermarks_and_metadata_keep_case(pipelines):
    body = pipeline_body(name=" Loud NAME ", next_watermark="AbC", pipeline_metadata={"Key": "Value"})
    invoke(pipelines, "POST", "/pipeline", body, EDITOR)
    pipeline = invoke(pipelines, "GET", "/pipeline/1", principal=VIEWER)[1]
    assert (pipeline["name"], pipeline["next_watermark"]) == ("loud name", "AbC")
    assert pipeline["pipeline_metadata"] == {"Key": "Value"}


# -- auth and tenancy -------------------------------------------------------------------------------------
def test_no_principal_is_401_even_with_a_malformed_body(pipelines, lineage, writes):
    assert invoke(pipelines, "GET", "/pipeline")[0] == 401
    assert invoke(pipelines, "POST", "/pipeline", raw_body="{oops")[0] == 401
    assert invoke(lineage, "GET", "/address")[0] == 401
    assert invoke(lineage, "POST", "/address_lineage", {"pipeline_id": 1})[0] == 401
    assert not writes


def test_a_viewer_reads_but_cannot_write(pipelines, lineage, writes):
    assert invoke(pipelines, "GET", "/pipeline", principal=VIEWER) == (200, [])
    for handler, method, path in [
        (pipelines, "POST", "/pipeline"),
        (pipelines, "PATCH", "/pipeline"),
        (pipelines, "POST", "/pipeline_type"),
        (pipelines, "PATCH", "/pipeline_type"),
        (lineage, "POST", "/address"),
        (lineage, "PATCH", "/address"),
        (lineage, "POST", "/address_type"),
        (lineage, "PATCH", "/address_type"),
        (lineage, "POST", "/address_lineage"),
    ]:
        status, body = invoke(handler, method, path, pipeline_body(), VIEWER)
        assert status == 403, (method, path)
        assert "editor" in body["detail"]
    assert not writes


def test_another_project_cannot_see_or_change_a_pipeline(pipelines, lineage):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)
    assert invoke(pipelines, "GET", "/pipeline/1", principal=OTHER)[0] == 404
    assert invoke(pipelines, "GET", "/pipeline", principal=OTHER) == (200, [])
    assert invoke(pipelines, "PATCH", "/pipeline", {"id": 1, "active": False}, OTHER)[0] == 404
    assert invoke(pipelines, "GET", "/pipeline_type/1", principal=OTHER)[0] == 404
    status, body = invoke(
        lineage,
        "POST",
        "/address_lineage",
        {"pipeline_id": 1, "source_addresses": [address("a")], "target_addresses": [address("b")]},
        OTHER,
    )
    assert (status, body["lineage_relationships_created"]) == (200, 0)
    # the same name in the other project is a new pipeline of its own
    assert invoke(pipelines, "POST", "/pipeline", pipeline_body(), OTHER)[0] == 201
    assert invoke(pipelines, "GET", "/pipeline/1", principal=EDITOR)[1]["active"] is True


# -- /pipeline_type ---------------------------------------------------------------------------------
def test_pipeline_type_endpoints(pipelines):
    request = {
        "name": "Extraction",
        "freshness_number": 24,
        "freshness_datepart": "hour",
        "mute_freshness_check": False,
        "timeliness_number": 2,
        "timeliness_datepart": "hour",
        "mute_timeliness_check": False,
    }
    assert invoke(pipelines, "POST", "/pipeline_type", request, EDITOR) == (201, {"id": 1})
    assert invoke(pipelines, "POST", "/pipeline_type", {**request, "freshness_number": 1}, EDITOR) == (
        200,
        {"id": 1},
    )
    status, found = invoke(pipelines, "GET", "/pipeline_type/1", principal=VIEWER)
    assert status == 200
    assert found["name"] == "extraction" and found["freshness_number"] == 24  # POST changed nothing
    assert set(found) == {
        "id",
        "name",
        "freshness_number",
        "freshness_datepart",
        "mute_freshness_check",
        "timeliness_number",
        "timeliness_datepart",
        "mute_timeliness_check",
        "created_at",
        "updated_at",
    }
    status, patched = invoke(
        pipelines, "PATCH", "/pipeline_type", {"name": "extraction", "mute_timeliness_check": True}, EDITOR
    )
    assert (status, patched["mute_timeliness_check"]) == (200, True)
    invoke(pipelines, "POST", "/pipeline_type", {"name": "loading"}, EDITOR)
    assert invoke(pipelines, "PATCH", "/pipeline_type", {"id": 2, "name": "EXTRACTION"}, EDITOR)[0] == 409
    assert invoke(pipelines, "PATCH", "/pipeline_type", {"id": 9, "name": "x"}, EDITOR)[0] == 404
    assert invoke(pipelines, "PATCH", "/pipeline_type", {"mute_freshness_check": True}, EDITOR)[0] == 422
    assert invoke(pipelines, "PATCH", "/pipeline_type", {"id": 1, "freshness_number": 2}, EDITOR)[0] == 422
    assert invoke(pipelines, "GET", "/pipeline_type/42", principal=VIEWER)[0] == 404
    assert invoke(pipelines, "GET", "/pipeline_type/x", principal=VIEWER)[0] == 422
    assert [t["name"] for t in invoke(pipelines, "GET", "/pipeline_type", principal=VIEWER)[1]] == [
        "extraction",
        "loading",
    ]


# -- /address_type and /address ---------------------------------------------------------------------
def test_address_type_endpoints(lineage):
    assert invoke(
        lineage, "POST", "/address_type", {"name": "Postgres", "group_name": "Database"}, EDITOR
    ) == (
        201,
        {"id": 1},
    )
    assert invoke(lineage, "POST", "/address_type", {"name": "postgres", "group_name": "files"}, EDITOR) == (
        200,
        {"id": 1},
    )
    status, found = invoke(lineage, "GET", "/address_type/1", principal=VIEWER)
    assert (status, found["name"], found["group_name"], found["updated_at"]) == (
        200,
        "postgres",
        "database",
        None,
    )
    status, patched = invoke(lineage, "PATCH", "/address_type", {"id": 1, "group_name": "warehouse"}, EDITOR)
    assert (status, patched["group_name"]) == (200, "warehouse")
    assert patched["updated_at"].endswith("Z")
    invoke(lineage, "POST", "/address_type", {"name": "mysql", "group_name": "database"}, EDITOR)
    assert invoke(lineage, "PATCH", "/address_type", {"id": 2, "name": "postgres"}, EDITOR)[0] == 409
    assert invoke(lineage, "PATCH", "/address_type", {"id": 3, "group_name": "x"}, EDITOR)[0] == 404
    assert invoke(lineage, "PATCH", "/address_type", {"group_name": "x"}, EDITOR)[0] == 422
    assert invoke(lineage, "POST", "/address_type", {"name": "x"}, EDITOR)[0] == 422
    assert invoke(lineage, "GET", "/address_type/3", principal=VIEWER)[0] == 404
    assert len(invoke(lineage, "GET", "/address_type", principal=VIEWER)[1]) == 2


def test_address_endpoints(lineage):
    request = {
        "name": "Source_DB.Source_Schema.Source_Table",
        "address_type_name": "postgres",
        "address_type_group_name": "database",
        "primary_key": "id",
        "address_metadata": {
            "external_dependencies": [{"type": "looker_dashboard", "name": "Sales Dashboard"}]
        },
    }
    assert invoke(lineage, "POST", "/address", request, EDITOR) == (201, {"id": 1})
    status, found = invoke(lineage, "GET", "/address/1", principal=VIEWER)
    assert status == 200
    assert found["name"] == "source_db.source_schema.source_table"
    assert (found["database_name"], found["schema_name"], found["table_name"]) == (
        "source_db",
        "source_schema",
        "source_table",
    )
    assert found["address_metadata"]["external_dependencies"][0]["name"] == "Sales Dashboard"
    assert set(found) == {
        "id",
        "name",
        "address_type_id",
        "database_name",
        "schema_name",
        "table_name",
        "primary_key",
        "address_metadata",
        "created_at",
        "updated_at",
    }
    # POST on the existing name: 200, given optional fields update
    assert invoke(lineage, "POST", "/address", {**request, "primary_key": "uuid"}, EDITOR) == (200, {"id": 1})
    assert invoke(lineage, "GET", "/address/1", principal=VIEWER)[1]["primary_key"] == "uuid"
    status, patched = invoke(
        lineage, "PATCH", "/address", {"id": 1, "name": "renamed", "table_name": None}, EDITOR
    )
    assert (status, patched["name"], patched["table_name"]) == (200, "renamed", None)
    assert invoke(lineage, "PATCH", "/address", {"id": 1, "address_type_id": 9}, EDITOR)[0] == 404
    assert invoke(lineage, "PATCH", "/address", {"id": 1, "schema_name": "s" * 51}, EDITOR)[0] == 422
    assert invoke(lineage, "PATCH", "/address", {"primary_key": "k"}, EDITOR)[0] == 422
    assert invoke(lineage, "PATCH", "/address", {"name": "missing", "primary_key": "k"}, EDITOR)[0] == 404
    invoke(lineage, "POST", "/address", {**request, "name": "second"}, EDITOR)
    assert invoke(lineage, "PATCH", "/address", {"id": 2, "name": "RENAMED"}, EDITOR)[0] == 409
    assert invoke(lineage, "GET", "/address/5", principal=VIEWER)[0] == 404
    assert invoke(lineage, "GET", "/address/x", principal=VIEWER)[0] == 422
    assert [a["id"] for a in invoke(lineage, "GET", "/address", principal=VIEWER)[1]] == [1, 2]
    assert invoke(lineage, "GET", "/address/1", principal=OTHER)[0] == 404


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"address_type_name": None},
        {"address_type_group_name": "g" * 151},
        {"database_name": "d" * 51},
        {"table_name": 7},
        {"address_metadata": [1]},
    ],
)
def test_invalid_addresses_are_422_and_write_nothing(lineage, writes, fields):
    status, _ = invoke(lineage, "POST", "/address", {**address("a.b.c"), **fields}, EDITOR)
    assert status == 422
    assert not writes


# -- /address_lineage ---------------------------------------------------------------------------------
def lineage_body(pipeline_id: int, sources: list[str], targets: list[str]) -> dict:
    return {
        "pipeline_id": pipeline_id,
        "source_addresses": [address(s) for s in sources],
        "target_addresses": [address(t) for t in targets],
    }


def test_address_lineage_is_recorded_and_read_both_ways(pipelines, lineage):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(name="extract"), EDITOR)
    invoke(pipelines, "POST", "/pipeline", pipeline_body(name="transform"), EDITOR)
    status, body = invoke(
        lineage,
        "POST",
        "/address_lineage",
        lineage_body(1, ["src.a.one", "src.a.two"], ["stage.a.t"]),
        EDITOR,
    )
    assert (status, body) == (
        201,
        {
            "pipeline_id": 1,
            "lineage_relationships_created": 2,
            "message": "Lineage relationships created for pipeline 1",
        },
    )
    invoke(lineage, "POST", "/address_lineage", lineage_body(2, ["stage.a.t"], ["mart.a.t"]), EDITOR)
    ids = {a["name"]: a["id"] for a in invoke(lineage, "GET", "/address", principal=VIEWER)[1]}
    status, mart = invoke(lineage, "GET", f"/address_lineage/{ids['mart.a.t']}", principal=VIEWER)
    assert status == 200
    assert mart == {
        "address_id": ids["mart.a.t"],
        "upstream": [
            {"address_id": ids["stage.a.t"], "name": "stage.a.t", "depth": 1},
            {"address_id": ids["src.a.one"], "name": "src.a.one", "depth": 2},
            {"address_id": ids["src.a.two"], "name": "src.a.two", "depth": 2},
        ],
        "downstream": [],
    }
    source = invoke(lineage, "GET", f"/address_lineage/{ids['src.a.one']}", principal=VIEWER)[1]
    assert [(d["name"], d["depth"]) for d in source["downstream"]] == [("stage.a.t", 1), ("mart.a.t", 2)]
    address_one = invoke(lineage, "GET", f"/address/{ids['src.a.one']}", principal=VIEWER)[1]
    assert (address_one["database_name"], address_one["table_name"]) == ("src", "one")


def test_address_lineage_replaces_the_pipelines_edges(pipelines, lineage):
    invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)
    invoke(lineage, "POST", "/address_lineage", lineage_body(1, ["a"], ["b"]), EDITOR)
    status, body = invoke(lineage, "POST", "/address_lineage", lineage_body(1, ["c"], ["b", "d"]), EDITOR)
    assert (status, body["lineage_relationships_created"]) == (201, 2)
    ids = {a["name"]: a["id"] for a in invoke(lineage, "GET", "/address", principal=VIEWER)[1]}
    upstream_of_b = invoke(lineage, "GET", f"/address_lineage/{ids['b']}", principal=VIEWER)[1]["upstream"]
    assert [u["name"] for u in upstream_of_b] == ["c"]
    assert invoke(lineage, "GET", f"/address_lineage/{ids['a']}", principal=VIEWER)[1]["downstream"] == []


def test_address_lineage_for_unknown_or_non_lineage_pipelines_records_nothing(pipelines, lineage, writes):
    status, body = invoke(lineage, "POST", "/address_lineage", lineage_body(42, ["a"], ["b"]), EDITOR)
    assert (status, body["pipeline_id"], body["lineage_relationships_created"]) == (200, 42, 0)
    assert body["message"]
    assert not writes
    invoke(pipelines, "POST", "/pipeline", pipeline_body(load_lineage=False), EDITOR)
    writes.clear()
    status, body = invoke(lineage, "POST", "/address_lineage", lineage_body(1, ["a"], ["b"]), EDITOR)
    assert (status, body["lineage_relationships_created"]) == (200, 0)
    assert "load_lineage" in body["message"]
    assert not writes
    assert invoke(lineage, "GET", "/address", principal=VIEWER) == (200, [])


def test_address_lineage_validation(lineage, writes):
    assert invoke(lineage, "POST", "/address_lineage", {"pipeline_id": 1}, EDITOR)[0] == 422
    assert (
        invoke(
            lineage, "POST", "/address_lineage", {**lineage_body(1, ["a"], ["b"]), "pipeline_id": "x"}, EDITOR
        )[0]
        == 422
    )
    bad = lineage_body(1, ["a"], ["b"])
    bad["source_addresses"][0]["name"] = ""
    assert invoke(lineage, "POST", "/address_lineage", bad, EDITOR)[0] == 422
    big = lineage_body(1, [f"s{i}" for i in range(101)], [f"t{i}" for i in range(101)])
    assert invoke(lineage, "POST", "/address_lineage", big, EDITOR)[0] == 422
    assert not writes


def test_address_lineage_of_an_unknown_address_is_404(lineage):
    assert invoke(lineage, "GET", "/address_lineage/9", principal=VIEWER)[0] == 404
    assert invoke(lineage, "GET", "/address_lineage/x", principal=VIEWER)[0] == 422


def test_a_busy_lineage_lease_answers_409_and_writes_nothing(pipelines, lineage, table, writes, monkeypatch):
    import time

    from sluice.domain import lineage as lineage_domain
    from sluice.store import keys

    monkeypatch.setattr(lineage_domain, "LOCK_WAIT_SECONDS", 0.2)
    invoke(pipelines, "POST", "/pipeline", pipeline_body(), EDITOR)
    pk, sk = keys.lineage_lock("acme")
    table.put({"PK": pk, "SK": sk, "owner": "another-request", "expires_at": int(time.time()) + 60})
    writes.clear()
    status, body = invoke(lineage, "POST", "/address_lineage", lineage_body(1, ["a"], ["b"]), EDITOR)
    assert status == 409 and "retry" in body["detail"]
    assert set(writes) == {"PutItem"}  # attempts to take the lease, nothing else
    assert invoke(lineage, "GET", "/address", principal=VIEWER) == (200, [])
