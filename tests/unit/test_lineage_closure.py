"""The lineage closure, without AWS: pure computation, incremental updates, and the lease."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.domain.lineage import (
    ClosureRow,
    Edge,
    Fresh,
    LineageService,
    affected_addresses,
    ancestors,
    closure_changes,
    cross_product,
    full_closure,
    plan_closure,
    sources_index,
)
from sluice.errors import Conflict


class MemoryLineage:
    """An in-memory LineageStore with the repository's contract."""

    def __init__(self) -> None:
        self.edges: dict[int, set[Edge]] = {}
        self.up: dict[int, dict[int, int]] = {}
        self.down: dict[int, dict[int, int]] = {}
        self.lease: tuple[str, int] | None = None
        self.rows_written = 0
        self.reads: list[int] = []
        self.looked_up: set[int] = set()  # every pipeline and address whose rows were read
        self.datasets: dict[int, tuple[dict[int, str], dict[int, str]]] = {}

    def edges_of_pipeline(self, project: str, pipeline_id: int) -> set[Edge]:
        self.looked_up.add(pipeline_id)
        return set(self.edges.get(pipeline_id, set()))

    def sources_of(self, project: str, address_id: int) -> set[int]:
        self.reads.append(address_id)
        self.looked_up.add(address_id)
        return {s for edges in self.edges.values() for s, t in edges if t == address_id}

    def upstream(self, project: str, address_id: int) -> dict[int, int]:
        self.looked_up.add(address_id)
        return dict(self.up.get(address_id, {}))

    def downstream(self, project: str, address_id: int) -> dict[int, int]:
        self.looked_up.add(address_id)
        return dict(self.down.get(address_id, {}))

    def write_pipeline_edges(self, project: str, changes: dict[int, tuple[set[Edge], set[Edge]]]) -> None:
        for pipeline_id, (added, removed) in changes.items():
            current = self.edges.setdefault(pipeline_id, set())
            current |= added
            current -= removed

    def apply_closure(self, project: str, rows: list[ClosureRow]) -> None:
        for row in rows:
            self.rows_written += 1
            if row.depth is None:
                self.up.get(row.address, {}).pop(row.ancestor, None)
                self.down.get(row.ancestor, {}).pop(row.address, None)
            else:
                self.up.setdefault(row.address, {})[row.ancestor] = row.depth
                self.down.setdefault(row.ancestor, {})[row.address] = row.depth

    def write_pipeline_datasets(
        self, project: str, recorded: dict[int, tuple[dict[int, str], dict[int, str]]]
    ) -> None:
        for pipeline_id, (reads, writes) in recorded.items():
            self.datasets[pipeline_id] = (dict(reads), dict(writes))

    def delete_pipeline_datasets(self, project: str, pipeline_id: int) -> None:
        self.datasets.pop(pipeline_id, None)

    def try_lock(self, project: str, owner: str, now: int, lease_seconds: int) -> bool:
        if self.lease is not None and self.lease[1] >= now:
            return False
        self.lease = (owner, now + lease_seconds)
        return True

    def release_lock(self, project: str, owner: str) -> None:
        if self.lease and self.lease[0] == owner:
            self.lease = None

    # what the store holds, in full_closure's shape
    def closure(self) -> dict[int, dict[int, int]]:
        return {a: dict(found) for a, found in self.up.items() if found}

    def mirrored(self) -> dict[int, dict[int, int]]:
        flipped: dict[int, dict[int, int]] = {}
        for ancestor, found in self.down.items():
            for address, depth in found.items():
                flipped.setdefault(address, {})[ancestor] = depth
        return flipped


def service(store: MemoryLineage) -> LineageService:
    return LineageService(store, registry=None, clock=lambda: 1000.0, sleep=lambda _s: None)  # type: ignore[arg-type]


def all_edges(store: MemoryLineage) -> set[Edge]:
    return {e for edges in store.edges.values() for e in edges}


# -- pure functions --------------------------------------------------------------------------------
def test_cross_product_pairs_every_source_with_every_target():
    assert cross_product([1, 2, 2], [3, 4]) == {(1, 3), (1, 4), (2, 3), (2, 4)}
    assert cross_product([], [3]) == set()


def test_ancestors_have_their_shortest_depth():
    index = sources_index({(1, 2), (2, 3), (1, 3), (3, 4)})
    assert ancestors(4, lambda n: index.get(n, ())) == {3: 1, 2: 2, 1: 2}


def test_cycles_end_and_an_address_is_never_its_own_ancestor():
    index = sources_index({(1, 2), (2, 3), (3, 1), (4, 4)})
    assert ancestors(1, lambda n: index.get(n, ())) == {3: 1, 2: 2}
    assert ancestors(4, lambda n: index.get(n, ())) == {}


def test_closure_changes_write_only_what_differs():
    rows = closure_changes(9, stored={1: 1, 2: 3, 5: 1}, wanted={1: 1, 2: 2, 7: 4})
    assert rows == [ClosureRow(9, 2, 2), ClosureRow(9, 7, 4), ClosureRow(9, 5, None)]
    assert closure_changes(9, {1: 1}, {1: 1}) == []


def test_affected_addresses_are_targets_and_their_descendants():
    below = {2: {3: 1, 4: 2}, 5: {}}
    assert affected_addresses({2, 5}, lambda a: below.get(a, {})) == {2, 3, 4, 5}


def test_plan_closure_recomputes_only_what_it_is_given():
    index = sources_index({(1, 2), (2, 3)})
    rows = plan_closure({3}, lambda n: index.get(n, ()), lambda _a: {})
    assert rows == [ClosureRow(3, 1, 2), ClosureRow(3, 2, 1)]


def test_full_closure_of_a_chain():
    assert full_closure({(1, 2), (2, 3)}) == {2: {1: 1}, 3: {2: 1, 1: 2}}


# -- incremental updates through the service ---------------------------------------------------------
def test_replacing_a_pipelines_edges_updates_upstream_and_downstream():
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_pipeline_edges("p", 1, {(1, 2)})
    lineage.replace_pipeline_edges("p", 2, {(2, 3)})
    assert store.up == {2: {1: 1}, 3: {2: 1, 1: 2}}
    assert store.down[1] == {2: 1, 3: 2}
    lineage.replace_pipeline_edges("p", 1, {(4, 2)})  # 1 no longer feeds 2
    assert store.closure() == {2: {4: 1}, 3: {2: 1, 4: 2}}
    assert store.down.get(1) == {}


def test_an_edge_stays_while_any_pipeline_declares_it():
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_pipeline_edges("p", 1, {(1, 2)})
    lineage.replace_pipeline_edges("p", 2, {(1, 2)})
    lineage.replace_pipeline_edges("p", 1, set())
    assert store.closure() == {2: {1: 1}}
    lineage.replace_pipeline_edges("p", 2, set())
    assert store.closure() == {}


def test_repeating_the_same_edges_writes_nothing():
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_pipeline_edges("p", 1, {(1, 2), (2, 3)})
    written = store.rows_written
    lineage.replace_pipeline_edges("p", 1, {(1, 2), (2, 3)})
    assert store.rows_written == written


def test_unrelated_addresses_are_not_recomputed():
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_pipeline_edges("p", 1, {(10, 11), (11, 12)})
    lineage.replace_pipeline_edges("p", 2, {(1, 2)})
    store.reads.clear()
    lineage.replace_pipeline_edges("p", 2, {(1, 3)})
    assert not {10, 11, 12} & set(store.reads)


def test_a_cycle_across_pipelines_is_recorded_without_looping():
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_pipeline_edges("p", 1, {(1, 2)})
    lineage.replace_pipeline_edges("p", 2, {(2, 1)})
    assert store.closure() == {1: {2: 1}, 2: {1: 1}}


pipelines = st.integers(min_value=1, max_value=3)
edge_sets = st.sets(st.tuples(st.integers(1, 6), st.integers(1, 6)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(pipelines, edge_sets), min_size=1, max_size=8))
def test_incremental_closure_always_equals_a_full_recompute(replacements):
    store = MemoryLineage()
    lineage = service(store)
    for pipeline_id, edges in replacements:
        lineage.replace_pipeline_edges("p", pipeline_id, edges)
        expected = full_closure(all_edges(store))
        assert store.closure() == expected
        assert {a: f for a, f in store.mirrored().items() if f} == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(pipelines, edge_sets, min_size=1, max_size=3), min_size=1, max_size=5))
def test_many_pipelines_replaced_at_once_equal_a_full_recompute(batches):
    store = MemoryLineage()
    lineage = service(store)
    for batch in batches:
        lineage.replace_many_pipeline_edges("p", batch, workers=4)
        expected = full_closure(all_edges(store))
        assert store.closure() == expected
        assert {a: f for a, f in store.mirrored().items() if f} == expected


def test_many_pipelines_share_one_closure_computation():
    """Each address's sources and ancestry are read once for the whole batch, not per pipeline."""
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_many_pipeline_edges("p", {p: {(p, 100)} for p in range(1, 21)})
    assert store.closure() == {100: {p: 1 for p in range(1, 21)}}
    assert store.reads.count(100) == 1


# Fresh pipelines (10-12) and addresses (20-23): created under the lease, so no row names them yet.
fresh_edge_sets = st.sets(
    st.tuples(st.sampled_from([1, 2, 3, 20, 21, 22, 23]), st.sampled_from([1, 2, 3, 20, 21, 22, 23])),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(pipelines, edge_sets, max_size=3),
    st.dictionaries(st.integers(10, 12), fresh_edge_sets, min_size=1, max_size=3),
)
def test_fresh_pipelines_and_addresses_are_not_read_and_the_closure_stays_exact(stored, new):
    """New jobs of an OpenLineage batch: their pipelines and the addresses created with them are
    skipped by the reads, and the closure still equals a full recompute, existing lineage included
    (a new job may read or write addresses other pipelines already chain through)."""
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_many_pipeline_edges("p", stored)
    store.looked_up.clear()
    fresh = Fresh(pipelines=frozenset(new), addresses=frozenset({20, 21, 22, 23}))
    lineage.replace_many_pipeline_edges("p", new, fresh=fresh)
    expected = full_closure(all_edges(store))
    assert store.closure() == expected
    assert {a: f for a, f in store.mirrored().items() if f} == expected
    assert not store.looked_up & (fresh.pipelines | fresh.addresses)


def test_a_new_job_feeding_an_existing_chain_extends_its_descendants():
    store = MemoryLineage()
    lineage = service(store)
    lineage.replace_pipeline_edges("p", 1, {(1, 2), (2, 3)})
    lineage.replace_many_pipeline_edges(
        "p", {10: {(20, 1)}}, fresh=Fresh(pipelines=frozenset({10}), addresses=frozenset({20}))
    )
    assert store.closure() == {1: {20: 1}, 2: {1: 1, 20: 2}, 3: {2: 1, 1: 2, 20: 3}}
    assert store.down[20] == {1: 1, 2: 2, 3: 3}


# -- the lease ------------------------------------------------------------------------------------------
def test_a_held_lease_is_waited_for_then_refused_with_409():
    store = MemoryLineage()
    store.lease = ("someone-else", 10_000)
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    lineage = LineageService(store, registry=None, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="retry"):
        lineage.replace_pipeline_edges("p", 1, {(1, 2)})
    assert slept and store.edges == {}
    assert store.lease == ("someone-else", 10_000)


def test_an_expired_lease_is_taken_over_and_released_after_use():
    store = MemoryLineage()
    store.lease = ("crashed", 999)
    service(store).replace_pipeline_edges("p", 1, {(1, 2)})
    assert store.lease is None
    assert store.closure() == {2: {1: 1}}
