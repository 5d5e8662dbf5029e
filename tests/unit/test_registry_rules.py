"""Watcher's registry rules, without AWS: request normalisation and the use cases on fakes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from sluice.domain.registry import (
    AddressLineageRequest,
    AddressPatch,
    AddressTypeUpsert,
    AddressUpsert,
    PipelinePatch,
    PipelineTypePatch,
    PipelineTypeUpsert,
    PipelineUpsert,
    Registry,
    parts_of_dotted_name,
    pipeline_view,
)
from sluice.errors import NameTaken, NotFound


class MemoryStore:
    """An in-memory NamedStore with the same contract as the DynamoDB repositories."""

    def __init__(self, label: str):
        self.label = label
        self.items: dict[tuple[str, int], dict[str, Any]] = {}
        self.names: dict[tuple[str, str], int] = {}
        self.counter: dict[str, int] = {}
        self.writes = 0
        self.batches = 0  # create_many calls
        self.steal_next_create: dict[str, Any] | None = None  # simulate a concurrent creator

    def get(self, project: str, object_id: int) -> dict | None:
        found = self.items.get((project, object_id))
        return copy.deepcopy(found) if found else None

    def get_many(self, project: str, object_ids: set[int], consistent: bool = False) -> dict[int, dict]:
        return {i: self.get(project, i) for i in object_ids if (project, i) in self.items}

    def list(self, project: str) -> list[dict]:
        return [copy.deepcopy(v) for (p, _), v in sorted(self.items.items()) if p == project]

    def find_by_name(self, project: str, name: str) -> dict | None:
        owner = self.names.get((project, name.strip().casefold()))
        return self.get(project, owner) if owner else None

    def create(self, project: str, attributes: dict[str, Any]) -> dict:
        if self.steal_next_create is not None:
            winner, self.steal_next_create = self.steal_next_create, None
            self.create(project, winner)
        name = attributes["name"]
        if (project, name.casefold()) in self.names:
            raise NameTaken(f"{self.label} name '{name}' is already taken in this project.")
        self.counter[project] = self.counter.get(project, 0) + 1
        object_id = self.counter[project]
        self.items[(project, object_id)] = {
            **attributes,
            "id": object_id,
            "created_at": "2024-01-01T00:00:00Z",
        }
        self.names[(project, name.casefold())] = object_id
        self.writes += 1
        return self.get(project, object_id)

    def find_many_by_name(self, project: str, names: list[str]) -> dict[str, dict]:
        return {n: found for n in names if (found := self.find_by_name(project, n)) is not None}

    def create_many(self, project: str, attributes: list[dict[str, Any]]) -> list[dict | None]:
        self.batches += 1
        records: list[dict | None] = []
        for entry in attributes:
            try:
                records.append(self.create(project, entry))
            except NameTaken:
                records.append(None)
        return records

    def update(self, project: str, object_id: int, changes: dict[str, Any]) -> dict:
        item = self.items.get((project, object_id))
        if item is None:
            raise NotFound(f"{self.label} {object_id} not found.")
        if "name" in changes and changes["name"].casefold() != item["name"].casefold():
            key = (project, changes["name"].casefold())
            if key in self.names:
                raise NameTaken(f"{self.label} name '{changes['name']}' is already taken in this project.")
            del self.names[(project, item["name"].casefold())]
            self.names[key] = object_id
        for k, v in changes.items():
            if v is None:
                item.pop(k, None)
            else:
                item[k] = v
        item["updated_at"] = "2024-01-02T00:00:00Z"
        self.writes += 1
        return self.get(project, object_id)


@pytest.fixture
def registry() -> Registry:
    return Registry(
        MemoryStore("Pipeline"),
        MemoryStore("Pipeline type"),
        MemoryStore("Address"),
        MemoryStore("Address type"),
    )


def writes(registry: Registry) -> int:
    stores = (registry.pipelines, registry.pipeline_types, registry.addresses, registry.address_types)
    return sum(s.writes for s in stores)  # type: ignore[attr-defined]


# -- request normalisation ---------------------------------------------------------------------
def test_top_level_strings_are_stripped_and_lowercased_but_metadata_and_watermarks_keep_case():
    body = PipelineUpsert.model_validate(
        {
            "name": "  My Pipeline ",
            "pipeline_type_name": "EXTRACTION",
            "next_watermark": " 2024-01-02T00:00:00Z ",
            "pipeline_metadata": {"Owner": "Data Team"},
            "freshness_number": 24,
            "freshness_datepart": " HOUR ",
        }
    )
    assert body.name == "my pipeline"
    assert body.pipeline_type_name == "extraction"
    assert body.next_watermark == " 2024-01-02T00:00:00Z "
    assert body.pipeline_metadata == {"Owner": "Data Team"}
    assert body.freshness_datepart == "hour"


@pytest.mark.parametrize(
    ("given", "stored"),
    [(10, "10"), (10.5, "10.5"), ("2024-01-01", "2024-01-01"), ("AbC", "AbC"), (0, "0")],
)
def test_watermarks_are_stored_as_strings(given, stored):
    body = PipelineUpsert.model_validate({"name": "p", "pipeline_type_name": "t", "next_watermark": given})
    assert body.next_watermark == stored


@pytest.mark.parametrize("bad", [True, {"a": 1}, [1], "x" * 51])
def test_watermarks_of_other_types_or_over_50_characters_are_refused(bad):
    with pytest.raises(ValidationError):
        PipelineUpsert.model_validate({"name": "p", "pipeline_type_name": "t", "next_watermark": bad})


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "pipeline_type_name": "t"},
        {"name": "   ", "pipeline_type_name": "t"},
        {"name": "x" * 151, "pipeline_type_name": "t"},
        {"name": 123, "pipeline_type_name": "t"},
        {"pipeline_type_name": "t"},
        {"name": "p"},
        {"name": "p", "pipeline_type_name": "t", "freshness_number": 0, "freshness_datepart": "hour"},
        {"name": "p", "pipeline_type_name": "t", "freshness_number": True, "freshness_datepart": "hour"},
        {"name": "p", "pipeline_type_name": "t", "freshness_number": 1.5, "freshness_datepart": "hour"},
        {"name": "p", "pipeline_type_name": "t", "freshness_number": 2**31, "freshness_datepart": "hour"},
        {"name": "p", "pipeline_type_name": "t", "freshness_number": 1, "freshness_datepart": "fortnight"},
        {"name": "p", "pipeline_type_name": "t", "pipeline_metadata": [1, 2]},
        {"name": "p", "pipeline_type_name": "t", "pipeline_metadata": {"x": "y" * 70_000}},
        {"name": "p", "pipeline_type_name": "t", "load_lineage": "perhaps"},
        ["not", "an", "object"],
    ],
)
def test_invalid_pipeline_bodies_are_refused(body):
    with pytest.raises(ValidationError):
        PipelineUpsert.model_validate(body)


@pytest.mark.parametrize("model", [PipelineUpsert, PipelineTypeUpsert])
@pytest.mark.parametrize(
    "pair",
    [
        {"freshness_number": 1},
        {"freshness_datepart": "day"},
        {"timeliness_number": 1},
        {"timeliness_datepart": "day"},
        {"timeliness_number": 1, "timeliness_datepart": None},
    ],
)
def test_freshness_and_timeliness_pairs_come_together_or_not_at_all(model, pair):
    with pytest.raises(ValidationError, match="together"):
        model.model_validate({"name": "p", "pipeline_type_name": "t", **pair})


def test_pairs_apply_to_patches_too_and_both_null_clears_them():
    with pytest.raises(ValidationError, match="together"):
        PipelinePatch.model_validate({"id": 1, "timeliness_datepart": "hour"})
    with pytest.raises(ValidationError, match="together"):
        PipelineTypePatch.model_validate({"id": 1, "freshness_number": 3})
    patch = PipelinePatch.model_validate({"id": 1, "freshness_number": None, "freshness_datepart": None})
    assert patch.changes(frozenset({"freshness_number", "freshness_datepart"})) == {
        "freshness_number": None,
        "freshness_datepart": None,
    }


def test_all_six_dateparts_are_accepted():
    for datepart in ("minute", "hour", "day", "week", "month", "year"):
        body = PipelineTypeUpsert.model_validate(
            {"name": "t", "timeliness_number": 1, "timeliness_datepart": datepart.upper()}
        )
        assert body.timeliness_datepart == datepart


def test_a_patch_needs_an_id_or_a_name():
    with pytest.raises(ValidationError, match="id or the name"):
        PipelinePatch.model_validate({"load_lineage": False})
    with pytest.raises(ValidationError, match="id or the name"):
        AddressPatch.model_validate({"id": None, "name": None})


def test_a_patch_refuses_null_for_fields_that_cannot_be_empty():
    with pytest.raises(ValidationError, match="may not be null"):
        PipelinePatch.model_validate({"id": 1, "active": None})
    with pytest.raises(ValidationError, match="may not be null"):
        PipelinePatch.model_validate({"id": 1, "pipeline_type_id": None})


def test_address_parts_are_limited_to_50_characters():
    with pytest.raises(ValidationError):
        AddressUpsert.model_validate(
            {"name": "a", "address_type_name": "t", "address_type_group_name": "g", "table_name": "x" * 51}
        )


def test_unknown_fields_are_ignored():
    body = AddressTypeUpsert.model_validate({"name": "pg", "group_name": "database", "colour": "red"})
    assert body.model_dump() == {"name": "pg", "group_name": "database"}


def test_dotted_names_give_database_schema_and_table_only_with_three_parts():
    assert parts_of_dotted_name("db.sch.tbl") == {
        "database_name": "db",
        "schema_name": "sch",
        "table_name": "tbl",
    }
    assert parts_of_dotted_name("db.tbl") == {}
    assert parts_of_dotted_name("a.b.c.d") == {}
    assert parts_of_dotted_name("a..c") == {}


def test_lineage_requests_normalise_each_address_and_bound_the_cross_product():
    address = {"name": "A.B.C", "address_type_name": "PG", "address_type_group_name": "Database"}
    body = AddressLineageRequest.model_validate(
        {"pipeline_id": 1, "source_addresses": [address], "target_addresses": []}
    )
    assert body.source_addresses[0].name == "a.b.c"
    assert body.source_addresses[0].address_type_group_name == "database"
    many = [{**address, "name": f"n{i}"} for i in range(101)]
    with pytest.raises(ValidationError, match="relationships"):
        AddressLineageRequest.model_validate(
            {"pipeline_id": 1, "source_addresses": many, "target_addresses": many}
        )


# -- pipelines ------------------------------------------------------------------------------------
def upsert(registry: Registry, **fields: Any) -> tuple[dict, bool]:
    body = {"name": "sales", "pipeline_type_name": "extraction", **fields}
    return registry.upsert_pipeline("acme", PipelineUpsert.model_validate(body))


def test_a_new_pipeline_is_created_with_its_type_and_defaults(registry):
    response, created = upsert(registry, pipeline_metadata={"K": "V"})
    assert created
    assert response == {"id": 1, "active": True, "load_lineage": True, "watermark": None}
    pipeline = registry.get_pipeline("acme", 1)
    assert pipeline["pipeline_type_id"] == registry.pipeline_types.find_by_name("acme", "extraction")["id"]
    assert pipeline["mute_freshness_check"] is False
    assert pipeline["pipeline_metadata"] == {"K": "V"}
    assert pipeline["updated_at"] is None


def test_posting_an_existing_pipeline_updates_given_fields_and_keeps_absent_ones(registry):
    upsert(registry, freshness_number=24, freshness_datepart="hour", pipeline_metadata={"a": 1})
    response, created = upsert(registry, timeliness_number=2, timeliness_datepart="hour")
    assert not created
    assert response["id"] == 1
    pipeline = registry.get_pipeline("acme", 1)
    assert (pipeline["freshness_number"], pipeline["timeliness_number"]) == (24, 2)
    assert pipeline["pipeline_metadata"] == {"a": 1}


def test_posting_an_unchanged_pipeline_writes_nothing(registry):
    upsert(registry, load_lineage=False)
    before = writes(registry)
    assert upsert(registry, load_lineage=False)[1] is False
    assert writes(registry) == before
    assert registry.get_pipeline("acme", 1)["updated_at"] is None


def test_the_response_watermark_is_the_stored_one_only_when_next_watermark_is_sent(registry):
    upsert(registry)
    registry.pipelines.update("acme", 1, {"watermark": "5"})
    assert upsert(registry)[0]["watermark"] is None
    response, _ = upsert(registry, next_watermark=6)
    assert response["watermark"] == "5"
    assert registry.get_pipeline("acme", 1)["next_watermark"] == "6"


def test_pipeline_names_match_without_regard_to_case(registry):
    registry.pipelines.create("acme", {"name": "User-Analytics", "pipeline_type_id": 1})
    response, created = upsert(registry, name="user-analytics")
    assert (response["id"], created) == (1, False)
    assert registry.get_pipeline("acme", 1)["name"] == "User-Analytics"


def test_a_pipeline_type_named_on_post_is_created_and_switched_to(registry):
    upsert(registry)
    upsert(registry, pipeline_type_name="loading")
    loading = registry.pipeline_types.find_by_name("acme", "loading")
    assert registry.get_pipeline("acme", 1)["pipeline_type_id"] == loading["id"]


def test_the_loser_of_a_concurrent_create_returns_the_winner_with_200(registry):
    registry.pipelines.steal_next_create = {"name": "sales", "pipeline_type_id": 1}
    response, created = upsert(registry, next_watermark="7")
    assert (response["id"], created) == (1, False)
    assert len(registry.list_pipelines("acme")) == 1
    assert registry.get_pipeline("acme", 1)["next_watermark"] == "7"


def test_unknown_pipeline_ids_are_not_found(registry):
    with pytest.raises(NotFound, match="Pipeline 42 not found"):
        registry.get_pipeline("acme", 42)


def test_patch_by_id_renames_and_updates(registry):
    upsert(registry)
    patched = registry.update_pipeline(
        "acme", PipelinePatch.model_validate({"id": 1, "name": "Sales V2", "watermark": 10, "active": False})
    )
    assert (patched["name"], patched["watermark"], patched["active"]) == ("sales v2", "10", False)
    assert patched["updated_at"] is not None


def test_patch_by_name_finds_the_pipeline(registry):
    upsert(registry)
    patched = registry.update_pipeline(
        "acme", PipelinePatch.model_validate({"name": "SALES", "load_lineage": False})
    )
    assert patched["load_lineage"] is False
    assert patched["name"] == "sales"


def test_patch_of_an_unknown_pipeline_or_type_is_not_found(registry):
    upsert(registry)
    with pytest.raises(NotFound):
        registry.update_pipeline("acme", PipelinePatch.model_validate({"id": 9, "active": False}))
    with pytest.raises(NotFound):
        registry.update_pipeline("acme", PipelinePatch.model_validate({"name": "nope", "active": False}))
    with pytest.raises(NotFound, match="Pipeline type 77"):
        registry.update_pipeline("acme", PipelinePatch.model_validate({"id": 1, "pipeline_type_id": 77}))


def test_renaming_onto_a_taken_name_conflicts(registry):
    upsert(registry, name="a")
    upsert(registry, name="b")
    with pytest.raises(NameTaken):
        registry.update_pipeline("acme", PipelinePatch.model_validate({"id": 2, "name": "A"}))


def test_patch_null_clears_nullable_fields(registry):
    upsert(registry, next_watermark="3", freshness_number=1, freshness_datepart="day")
    patched = registry.update_pipeline(
        "acme",
        PipelinePatch.model_validate(
            {"id": 1, "next_watermark": None, "freshness_number": None, "freshness_datepart": None}
        ),
    )
    assert (patched["next_watermark"], patched["freshness_number"], patched["freshness_datepart"]) == (
        None,
        None,
        None,
    )


def test_pipeline_view_renders_every_seed_field():
    view = pipeline_view({"id": 1, "name": "p", "pipeline_type_id": 2, "created_at": "2024-01-01T00:00:00Z"})
    assert list(view) == [
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
    ]
    assert (view["load_lineage"], view["active"], view["mute_timeliness_check"]) == (True, True, False)


# -- pipeline types, address types, addresses ----------------------------------------------------------
def test_posting_an_existing_pipeline_type_changes_nothing(registry):
    body = PipelineTypeUpsert.model_validate(
        {"name": "extraction", "freshness_number": 1, "freshness_datepart": "day"}
    )
    assert registry.upsert_pipeline_type("acme", body) == ({"id": 1}, True)
    again = PipelineTypeUpsert.model_validate(
        {"name": "Extraction", "freshness_number": 9, "freshness_datepart": "year"}
    )
    assert registry.upsert_pipeline_type("acme", again) == ({"id": 1}, False)
    assert registry.get_pipeline_type("acme", 1)["freshness_number"] == 1


def test_a_new_pipeline_type_mutes_nothing_unless_told(registry):
    body = PipelineTypeUpsert.model_validate({"name": "t", "mute_freshness_check": None})
    registry.upsert_pipeline_type("acme", body)
    stored = registry.get_pipeline_type("acme", 1)
    assert (stored["mute_freshness_check"], stored["mute_timeliness_check"]) == (False, False)
    registry.upsert_pipeline_type("acme", PipelineTypeUpsert(name="u", mute_timeliness_check=True))
    assert registry.get_pipeline_type("acme", 2)["mute_timeliness_check"] is True


def test_posting_an_existing_address_type_changes_nothing(registry):
    registry.upsert_address_type("acme", AddressTypeUpsert(name="pg", group_name="database"))
    assert registry.upsert_address_type("acme", AddressTypeUpsert(name="pg", group_name="files")) == (
        {"id": 1},
        False,
    )
    assert registry.get_address_type("acme", 1)["group_name"] == "database"


def address(**fields: Any) -> AddressUpsert:
    return AddressUpsert.model_validate(
        {
            "name": "db.sch.orders",
            "address_type_name": "postgres",
            "address_type_group_name": "database",
            **fields,
        }
    )


def test_a_database_address_gets_its_parts_from_its_dotted_name_unless_given(registry):
    registry.upsert_address("acme", address(table_name="Orders_Explicit"))
    stored = registry.get_address("acme", 1)
    assert (stored["database_name"], stored["schema_name"], stored["table_name"]) == (
        "db",
        "sch",
        "orders_explicit",
    )


def test_a_non_database_address_gets_no_parts(registry):
    registry.upsert_address("acme", address(address_type_group_name="files"))
    assert registry.get_address("acme", 1)["database_name"] is None


def test_posting_an_existing_address_updates_given_fields(registry):
    assert registry.upsert_address("acme", address())[1] is True
    response, created = registry.upsert_address("acme", address(primary_key="ID", address_metadata={"K": 1}))
    assert (response, created) == ({"id": 1}, False)
    stored = registry.get_address("acme", 1)
    assert (stored["primary_key"], stored["address_metadata"], stored["table_name"]) == (
        "id",
        {"K": 1},
        "orders",
    )


def test_patching_an_address_checks_its_type_and_its_new_name(registry):
    registry.upsert_address("acme", address())
    registry.upsert_address("acme", address(name="other"))
    with pytest.raises(NotFound, match="Address type 5"):
        registry.update_address("acme", AddressPatch.model_validate({"id": 1, "address_type_id": 5}))
    with pytest.raises(NameTaken):
        registry.update_address("acme", AddressPatch.model_validate({"id": 1, "name": "OTHER"}))
    patched = registry.update_address(
        "acme", AddressPatch.model_validate({"name": "other", "primary_key": "k"})
    )
    assert patched["primary_key"] == "k"


def test_projects_do_not_see_each_other(registry):
    upsert(registry)
    with pytest.raises(NotFound):
        registry.get_pipeline("other", 1)
    assert registry.list_pipelines("other") == []


# -- batched creation (the OpenLineage ingest's new jobs and datasets) --------------------------
def test_create_pipelines_creates_new_names_together_and_upserts_a_name_held_meanwhile(registry):
    # Given a pipeline that already holds one of the names, with another type
    registry.upsert_pipeline("acme", PipelineUpsert(name="ns/held", pipeline_type_name="old"))
    bodies = [PipelineUpsert(name=n, pipeline_type_name="airflow") for n in ("ns/a", "ns/held", "ns/b")]
    ids, created = registry.create_pipelines("acme", bodies)
    # Then the new ones are created in one batch, and the held one is the existing pipeline,
    # moved to the batch's type as upsert_pipeline would (and not counted as created)
    assert ids == {"ns/a": 2, "ns/held": 1, "ns/b": 3}
    assert created == {2, 3}
    assert registry.pipelines.batches == 1  # type: ignore[attr-defined]
    airflow = registry.pipeline_types.find_by_name("acme", "airflow")["id"]
    assert {registry.get_pipeline("acme", i)["pipeline_type_id"] for i in ids.values()} == {airflow}
    assert registry.get_pipeline("acme", 2)["active"] is True  # Watcher's defaults


def test_create_addresses_creates_only_names_nobody_holds_with_their_parts_and_one_type_lookup(registry):
    registry.upsert_address("acme", address(name="db.sch.old"))
    bodies = [address(name="db.sch.new"), address(name="db.sch.old"), address(name="files/x")]
    created = registry.create_addresses("acme", bodies)
    # Then the held name is left to upsert_address, the others are created as it would create them
    assert created == {"db.sch.new": 2, "files/x": 3}
    stored = registry.get_address("acme", 2)
    assert (stored["database_name"], stored["schema_name"], stored["table_name"]) == ("db", "sch", "new")
    assert registry.get_address("acme", 3)["address_type_id"] == 1
    assert len(registry.address_types.list("acme")) == 1
