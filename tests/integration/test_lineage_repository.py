"""The lineage repository on moto: edge items, the mirrored closure, and the lease."""

from __future__ import annotations

import pytest

from sluice.domain.lineage import ClosureRow, LineageService, full_closure
from sluice.store import keys
from sluice.store.lineage import LineageRepository


@pytest.fixture
def lineage(table):
    return LineageRepository(table)


def test_edges_are_stored_per_pipeline_and_per_target(table, lineage):
    lineage.write_pipeline_edges("acme", {7: ({(1, 2), (3, 2)}, set()), 8: ({(1, 2)}, set())})
    assert lineage.edges_of_pipeline("acme", 7) == {(1, 2), (3, 2)}
    assert lineage.sources_of("acme", 2) == {1, 3}
    lineage.write_pipeline_edges("acme", {7: (set(), {(1, 2), (3, 2)})})
    assert lineage.edges_of_pipeline("acme", 7) == set()
    assert lineage.sources_of("acme", 2) == {1}  # pipeline 8 still declares 1 -> 2
    inbound = list(table.query_all(keys.lineage_inbound("acme", 2)))
    assert [i["SK"] for i in inbound] == [keys.inbound_edge(1, 8)]


def test_closure_rows_are_mirrored_upstream_and_downstream(lineage):
    lineage.apply_closure("acme", [ClosureRow(3, 1, 2), ClosureRow(3, 2, 1)])
    assert lineage.upstream("acme", 3) == {1: 2, 2: 1}
    assert lineage.downstream("acme", 1) == {3: 2}
    lineage.apply_closure("acme", [ClosureRow(3, 1, None)])
    assert lineage.upstream("acme", 3) == {2: 1}
    assert lineage.downstream("acme", 1) == {}


def test_the_lease_is_exclusive_until_released_or_expired(table, lineage):
    assert lineage.try_lock("acme", "a", now=100, lease_seconds=30)
    assert not lineage.try_lock("acme", "b", now=110, lease_seconds=30)
    assert lineage.try_lock("globex", "b", now=110, lease_seconds=30)  # per project
    lineage.release_lock("acme", "b")  # not b's lease: stays
    assert not lineage.try_lock("acme", "b", now=120, lease_seconds=30)
    assert lineage.try_lock("acme", "b", now=131, lease_seconds=30)  # expired: taken over
    lineage.release_lock("acme", "a")  # a's lease is gone; b keeps it
    assert table.get(*keys.lineage_lock("acme"))["owner"] == "b"
    lineage.release_lock("acme", "b")
    assert table.get(*keys.lineage_lock("acme")) is None


def test_service_on_dynamodb_keeps_the_closure_equal_to_a_full_recompute(lineage):
    service = LineageService(lineage, registry=None)  # type: ignore[arg-type]
    steps = [(1, {(1, 2), (2, 3)}), (2, {(3, 4), (4, 2)}), (1, {(1, 3)}), (2, set())]
    declared: dict[int, set] = {}
    for pipeline_id, edges in steps:
        service.replace_pipeline_edges("acme", pipeline_id, edges)
        declared[pipeline_id] = edges
        expected = full_closure({e for es in declared.values() for e in es})
        for address in range(1, 5):
            assert lineage.upstream("acme", address) == expected.get(address, {})
            mirrored = {d: found[address] for d, found in expected.items() if address in found}
            assert lineage.downstream("acme", address) == mirrored
