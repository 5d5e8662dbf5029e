"""The registry repositories on moto: items, name claims, counters, renames, tenancy."""

from __future__ import annotations

import threading

import pytest

from sluice.errors import NameTaken, NotFound
from sluice.store import keys
from sluice.store.registry import (
    AddressRepository,
    AddressTypeRepository,
    PipelineRepository,
    PipelineTypeRepository,
)


@pytest.fixture
def pipelines(table):
    return PipelineRepository(table)


def test_a_created_pipeline_is_one_item_with_watcher_fields_and_a_name_claim(table, pipelines):
    record = pipelines.create(
        "acme", {"name": "Sales", "pipeline_type_id": 1, "pipeline_metadata": {"K": [1]}}
    )
    assert record["id"] == 1
    item = table.get(*keys.pipeline("acme", 1))
    assert item["kind"] == "pipeline"
    assert item["name"] == "Sales"
    assert item["pipeline_metadata"] == '{"K":[1]}'  # stored as a JSON string
    assert item["created_at"].endswith("Z")
    assert "updated_at" not in item
    claim = table.get(*keys.name_claim("acme", "pipeline", "sales"))
    assert claim["owner_id"] == 1
    assert pipelines.get("acme", 1)["pipeline_metadata"] == {"K": [1]}


def test_the_first_object_of_a_project_registers_the_project(table, pipelines):
    pipelines.create("acme", {"name": "a", "pipeline_type_id": 1})
    AddressTypeRepository(table).create("acme", {"name": "pg", "group_name": "database"})
    assert table.get(*keys.project_registry("acme"))["project"] == "acme"
    assert [i["SK"] for i in table.query_all(keys.PROJECTS)] == ["acme"]


def test_names_are_unique_without_regard_to_case(pipelines):
    pipelines.create("acme", {"name": "User-Analytics", "pipeline_type_id": 1})
    with pytest.raises(NameTaken, match="already taken"):
        pipelines.create("acme", {"name": "user-analytics", "pipeline_type_id": 1})
    assert pipelines.find_by_name("acme", "USER-ANALYTICS")["name"] == "User-Analytics"
    assert len(pipelines.list("acme")) == 1


def test_the_same_name_in_another_project_is_another_object(pipelines):
    pipelines.create("acme", {"name": "sales", "pipeline_type_id": 1})
    other = pipelines.create("globex", {"name": "sales", "pipeline_type_id": 1})
    assert other["id"] == 1
    assert pipelines.get("globex", 1)["name"] == "sales"
    assert pipelines.find_by_name("initech", "sales") is None
    assert pipelines.get("initech", 1) is None


def test_update_sets_and_removes_attributes_and_stamps_updated_at(pipelines):
    pipelines.create("acme", {"name": "p", "pipeline_type_id": 1, "watermark": "1", "next_watermark": "2"})
    updated = pipelines.update(
        "acme", 1, {"watermark": "2", "next_watermark": None, "pipeline_metadata": {"a": 1}}
    )
    assert updated["watermark"] == "2"
    assert "next_watermark" not in updated
    assert updated["pipeline_metadata"] == {"a": 1}
    assert updated["updated_at"].endswith("Z")


def test_update_of_an_unknown_id_is_not_found(pipelines):
    with pytest.raises(NotFound):
        pipelines.update("acme", 5, {"active": False})


def test_a_rename_moves_the_claim(table, pipelines):
    pipelines.create("acme", {"name": "old", "pipeline_type_id": 1})
    renamed = pipelines.update("acme", 1, {"name": "new", "active": False})
    assert (renamed["name"], renamed["active"]) == ("new", False)
    assert table.get(*keys.name_claim("acme", "pipeline", "old")) is None
    assert pipelines.find_by_name("acme", "NEW")["id"] == 1
    pipelines.create("acme", {"name": "old", "pipeline_type_id": 1})  # the old name is free again


def test_a_case_only_rename_keeps_the_claim(table, pipelines):
    pipelines.create("acme", {"name": "sales", "pipeline_type_id": 1})
    assert pipelines.update("acme", 1, {"name": "Sales"})["name"] == "Sales"
    assert table.get(*keys.name_claim("acme", "pipeline", "sales"))["owner_id"] == 1


def test_a_rename_onto_a_taken_name_changes_nothing(table, pipelines):
    pipelines.create("acme", {"name": "a", "pipeline_type_id": 1})
    pipelines.create("acme", {"name": "b", "pipeline_type_id": 1})
    with pytest.raises(NameTaken):
        pipelines.update("acme", 2, {"name": "A", "active": False})
    assert pipelines.get("acme", 2)["name"] == "b"
    assert "active" not in pipelines.get("acme", 2)
    assert table.get(*keys.name_claim("acme", "pipeline", "b"))["owner_id"] == 2


def test_list_reads_one_partition_in_id_order_and_get_many_batches(table):
    addresses = AddressRepository(table)
    for name in ("c", "a", "b"):
        addresses.create("acme", {"name": name, "address_type_id": 1})
    assert [a["name"] for a in addresses.list("acme")] == ["c", "a", "b"]
    assert {i: a["name"] for i, a in addresses.get_many("acme", {1, 3, 99}).items()} == {1: "c", 3: "b"}
    assert addresses.get_many("acme", set()) == {}


def test_each_kind_counts_its_own_ids(table):
    PipelineTypeRepository(table).create("acme", {"name": "t"})
    AddressTypeRepository(table).create("acme", {"name": "t", "group_name": "g"})
    assert PipelineTypeRepository(table).get("acme", 1)["name"] == "t"
    assert AddressTypeRepository(table).get("acme", 1)["group_name"] == "g"


def test_concurrent_creators_of_one_name_end_with_one_object(pipelines, atomic_writes):
    # Given eight threads that create the same pipeline name at the same moment
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            pipelines.create("acme", {"name": "race", "pipeline_type_id": 1})
            outcomes.append("created")
        except NameTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one object holds the name
    assert sorted(outcomes) == ["created"] + ["taken"] * 7
    assert len(pipelines.list("acme")) == 1


def test_delete_removes_the_object_and_frees_its_name(table, pipelines):
    pipelines.create("acme", {"name": "gone", "pipeline_type_id": 1})
    assert pipelines.delete("acme", 1)["name"] == "gone"
    assert pipelines.get("acme", 1) is None
    assert table.get(*keys.name_claim("acme", "pipeline", "gone")) is None
    assert pipelines.create("acme", {"name": "GONE", "pipeline_type_id": 1})["id"] == 2
    with pytest.raises(NotFound):
        pipelines.delete("acme", 1)


def test_list_skips_other_kinds_of_items_under_the_same_prefix(table, pipelines):
    pipelines.create("acme", {"name": "p", "pipeline_type_id": 1})
    pk, sk = keys.pipeline("acme", 1)
    table.put({"PK": pk, "SK": sk + "#REV#000001", "kind": "pipeline_revision"})
    assert [p["name"] for p in pipelines.list("acme")] == ["p"]


# -- create_many: several new objects in one counter update and a few transactions --------------
def test_create_many_writes_each_object_with_its_claim_and_status_index_and_counts(table, pipelines):
    # Given 120 new pipeline names (three transactions of up to 49) in a new project
    names = [f"job-{i:03d}" for i in range(120)]
    records = pipelines.create_many("acme", [{"name": n, "pipeline_type_id": 1} for n in names])
    # Then each is created with the next ids, in the order given, as create would write it
    assert [r["id"] for r in records] == list(range(1, 121))
    assert [r["name"] for r in records] == names
    item = table.get(*keys.pipeline("acme", 120))
    assert item["kind"] == "pipeline" and item["created_at"].endswith("Z")
    assert item["GSI1PK"] == keys.pipelines_with_status("acme", "active")
    assert table.get(*keys.name_claim("acme", "pipeline", "JOB-007"))["owner_id"] == 8
    # And the counts, the project's registration and the counter moved once for all of them
    counts = table.get(*keys.pipeline_counts("acme"))
    assert counts["total"] == 120 and counts["active"] == 120
    assert [i["SK"] for i in table.query_all(keys.PROJECTS)] == ["acme"]
    assert pipelines.create("acme", {"name": "next", "pipeline_type_id": 1})["id"] == 121


def test_create_many_answers_none_for_names_held_and_for_a_second_letter_case(table, pipelines):
    # Given a pipeline that holds one of the names already
    pipelines.create("acme", {"name": "Taken", "pipeline_type_id": 1})
    records = pipelines.create_many(
        "acme",
        [
            {"name": "a", "pipeline_type_id": 1},
            {"name": "taken", "pipeline_type_id": 1},
            {"name": "B", "pipeline_type_id": 1},
            {"name": "b", "pipeline_type_id": 1},
        ],
    )
    # Then the free names are created, the held one and the second case of "b" are None
    assert [r and r["name"] for r in records] == ["a", None, "B", None]
    assert sorted(p["name"] for p in pipelines.list("acme")) == ["B", "Taken", "a"]
    assert table.get(*keys.pipeline_counts("acme"))["total"] == 3
    assert table.get(*keys.name_claim("acme", "pipeline", "taken"))["owner_id"] == 1


def test_create_many_racing_creators_of_the_same_names_end_with_one_object_each(pipelines, atomic_writes):
    # Given four threads creating the same 30 names together, and one creating them one by one
    names = [f"n{i}" for i in range(30)]
    barrier = threading.Barrier(5)
    results: list[list] = []

    def together() -> None:
        barrier.wait()
        results.append(pipelines.create_many("acme", [{"name": n, "pipeline_type_id": 1} for n in names]))

    def one_by_one() -> None:
        barrier.wait()
        for name in names:
            try:
                results.append([pipelines.create("acme", {"name": name, "pipeline_type_id": 1})])
            except NameTaken:
                results.append([None])

    threads = [threading.Thread(target=together) for _ in range(4)] + [threading.Thread(target=one_by_one)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every name is held by exactly one object, which one of the creators was answered
    listed = pipelines.list("acme")
    assert sorted(p["name"] for p in listed) == sorted(names)
    answered = [r["id"] for batch in results for r in batch if r is not None]
    assert sorted(answered) == sorted(p["id"] for p in listed)


def test_create_many_of_pipelines_with_references_creates_them_one_by_one(table, pipelines):
    # Given a connector two new pipelines reference (one counter item, so not in one transaction)
    pk, sk = keys.connector("acme", 1)
    table.put({"PK": pk, "SK": sk, "kind": "connector", "ref_count": 0})
    records = pipelines.create_many(
        "acme",
        [{"name": n, "pipeline_type_id": 1, "connector_id": 1} for n in ("x", "y")],
    )
    assert [r["name"] for r in records] == ["x", "y"]
    assert table.get(pk, sk)["ref_count"] == 2


def test_create_many_of_nothing_writes_nothing(table, pipelines):
    assert pipelines.create_many("acme", []) == []
    assert table.get(*keys.counter("acme", "pipeline")) is None
