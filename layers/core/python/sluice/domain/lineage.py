"""Address lineage: direct edges declared per pipeline, and their closure kept incrementally.

The closure holds, for every address, each ancestor with its depth (the length of the shortest
path); the store mirrors it as descendants, so "all upstream of X" and "all downstream of X" are
one read each. When a pipeline's edges are replaced only the addresses whose ancestry can change
are recomputed, and only the rows that differ from what is stored are written.

Why only those addresses: a path that gains or loses an edge ends at that edge's target or
below it, so every changed closure row belongs to a target of the pipeline's old or new edges
or to one of its stored descendants (a new path is a chain of old paths joined by new edges,
each new edge ending at a new target).
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from sluice.domain.registry import AddressLineageRequest, AddressUpsert, Registry
from sluice.errors import Conflict, NotFound

Edge = tuple[int, int]  # (source address id, target address id)

LEASE_SECONDS = 30  # longer than a Lambda's 29 s timeout: a crashed holder's lease runs out
LOCK_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class ClosureRow:
    """One closure fact to write: `ancestor` is upstream of `address` at `depth` (None: remove it)."""

    address: int
    ancestor: int
    depth: int | None


# -- pure closure computation ---------------------------------------------------------------------
def cross_product(sources: Iterable[int], targets: Iterable[int]) -> set[Edge]:
    targets = set(targets)
    return {(s, t) for s in set(sources) for t in targets}


def affected_addresses(targets: Iterable[int], descendants_of: Callable[[int], Iterable[int]]) -> set[int]:
    """The targets of changed edges and everything below them (per the stored closure)."""
    affected = set(targets)
    for target in list(affected):
        affected.update(descendants_of(target))
    return affected


def ancestors(address: int, sources_of: Callable[[int], Iterable[int]]) -> dict[int, int]:
    """Every address upstream of `address` with its shortest depth (breadth-first over direct edges).

    The visited set makes cycles finite; an address is never its own ancestor.
    """
    depths: dict[int, int] = {}
    seen = {address}
    frontier = [address]
    depth = 0
    while frontier:
        depth += 1
        reached = []
        for node in frontier:
            for source in sources_of(node):
                if source not in seen:
                    seen.add(source)
                    depths[source] = depth
                    reached.append(source)
        frontier = reached
    return depths


def closure_changes(address: int, stored: Mapping[int, int], wanted: Mapping[int, int]) -> list[ClosureRow]:
    """The rows that turn the stored ancestry of `address` into the wanted one."""
    rows = [ClosureRow(address, a, d) for a, d in sorted(wanted.items()) if stored.get(a) != d]
    rows += [ClosureRow(address, a, None) for a in sorted(stored) if a not in wanted]
    return rows


def plan_closure(
    affected: Iterable[int],
    sources_of: Callable[[int], Iterable[int]],
    stored_ancestors_of: Callable[[int], Mapping[int, int]],
) -> list[ClosureRow]:
    """Recompute the ancestry of each affected address and diff it against what is stored."""
    rows: list[ClosureRow] = []
    for address in sorted(affected):
        rows += closure_changes(address, stored_ancestors_of(address), ancestors(address, sources_of))
    return rows


def sources_index(edges: Iterable[Edge]) -> dict[int, set[int]]:
    index: dict[int, set[int]] = {}
    for source, target in edges:
        index.setdefault(target, set()).add(source)
    return index


def full_closure(edges: Iterable[Edge]) -> dict[int, dict[int, int]]:
    """The whole closure from scratch: address -> {ancestor: depth} (the reference the increments
    must always agree with; also a way to rebuild a project's closure)."""
    index = sources_index(edges)
    nodes = set(index) | {s for sources in index.values() for s in sources}
    closure = {node: ancestors(node, lambda n: index.get(n, ())) for node in nodes}
    return {node: found for node, found in closure.items() if found}


@dataclass(frozen=True)
class Fresh:
    """Pipelines and addresses created under the lease that is replacing edges: no stored lineage
    row names them yet (no edges, no closure rows), so the closure update need not read them."""

    pipelines: frozenset[int] = frozenset()
    addresses: frozenset[int] = frozenset()


def _no_edges(_key: int) -> set[Edge]:
    return set()


def _no_rows(_key: int) -> dict[int, int]:
    return {}


# -- the port ----------------------------------------------------------------------------------
class LineageStore(Protocol):
    def edges_of_pipeline(self, project: str, pipeline_id: int) -> set[Edge]: ...
    def sources_of(self, project: str, address_id: int) -> set[int]: ...
    def upstream(self, project: str, address_id: int) -> dict[int, int]: ...
    def downstream(self, project: str, address_id: int) -> dict[int, int]: ...
    def write_pipeline_edges(
        self, project: str, changes: Mapping[int, tuple[set[Edge], set[Edge]]]
    ) -> None: ...  # {pipeline id: (added, removed)}
    def apply_closure(self, project: str, rows: list[ClosureRow]) -> None: ...
    def write_pipeline_datasets(
        self, project: str, recorded: Mapping[int, tuple[dict[int, str], dict[int, str]]]
    ) -> None: ...  # {pipeline id: (reads, writes)}, each {address id: name}
    def delete_pipeline_datasets(self, project: str, pipeline_id: int) -> None: ...
    def try_lock(self, project: str, owner: str, now: int, lease_seconds: int) -> bool: ...
    def release_lock(self, project: str, owner: str) -> None: ...


# -- use cases -----------------------------------------------------------------------------------
class LineageService:
    """POST /address_lineage and the lineage reads, over the lineage store and the registry."""

    def __init__(
        self,
        store: LineageStore,
        registry: Registry,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.registry = registry
        self._clock = clock
        self._sleep = sleep

    def record_address_lineage(self, project: str, body: AddressLineageRequest) -> tuple[dict, bool]:
        """Replace the pipeline's edges with sources x targets; (response, created).

        An unknown pipeline, or one with load_lineage false, records nothing (Watcher answers 200).
        """
        pipeline_id = body.pipeline_id
        pipeline = self.registry.pipelines.get(project, pipeline_id)
        if pipeline is None or not pipeline.get("load_lineage", True):
            reason = "is unknown" if pipeline is None else "does not have load_lineage=True"
            message = f"Pipeline {pipeline_id} {reason}. No lineage relationships created."
            return {"pipeline_id": pipeline_id, "lineage_relationships_created": 0, "message": message}, False
        # The lease is taken before anything is written, so a busy project (409) changes nothing.
        with self.lineage_lease(project):
            reads = self._address_ids(project, body.source_addresses)
            writes = self._address_ids(project, body.target_addresses)
            edges = cross_product(set(reads), set(writes))
            self._replace_edges(project, pipeline_id, edges)
            # Kept beside the edges, which a pipeline that only writes (no sources) has none of.
            self.store.write_pipeline_datasets(project, {pipeline_id: (reads, writes)})
        message = f"Lineage relationships created for pipeline {pipeline_id}"
        return {
            "pipeline_id": pipeline_id,
            "lineage_relationships_created": len(edges),
            "message": message,
        }, True

    def record_many(
        self,
        project: str,
        bodies: list[AddressLineageRequest],
        workers: int = 8,
        new_pipelines: Collection[int] | None = None,
    ) -> None:
        """Several pipelines' `/address_lineage` at once (the OpenLineage ingest's batches): each as
        record_address_lineage records it: every distinct address upserted once and side by side
        (upsert_address holds under concurrency, so outside the lease), then, under one lease, each
        pipeline's edges replaced in turn (the closure of one depends on the others').

        `new_pipelines` given means the caller holds the project's lineage lease, and took it
        before it created those pipelines: then no lineage row can name them, or the addresses
        this call creates (every lineage write holds the lease), so their reads are skipped.
        """
        if not bodies:
            return
        leased = new_pipelines is not None
        pipelines = self.registry.pipelines.get_many(
            project, {b.pipeline_id for b in bodies}, consistent=True
        )
        live = [
            b
            for b in bodies
            if (p := pipelines.get(b.pipeline_id)) is not None and p.get("load_lineage", True)
        ]
        if not live:
            return
        # One task per name: its distinct bodies upserted in the requests' order (the last
        # metadata wins, as in one request after another).
        by_name: dict[str, dict[str, AddressUpsert]] = {}
        for body in live:
            for address in (*body.source_addresses, *body.target_addresses):
                by_name.setdefault(address.name, {})[address.model_dump_json(exclude_unset=True)] = address

        def upsert(versions: dict[str, AddressUpsert]) -> int:
            return [self.registry.upsert_address(project, a)[0]["id"] for a in versions.values()][-1]

        # The new names of one body each are created together; the rest upserted side by side.
        single = [next(iter(v.values())) for v in by_name.values() if len(v) == 1]
        ids = self.registry.create_addresses(project, single)
        created = frozenset(ids.values()) if leased else frozenset()
        rest = {name: versions for name, versions in by_name.items() if name not in ids}
        if rest:
            with ThreadPoolExecutor(max_workers=min(workers, len(rest))) as pool:
                ids.update(zip(rest, pool.map(upsert, rest.values()), strict=True))
        # A pipeline named twice keeps its last body, as one request after another would leave it.
        last = {body.pipeline_id: body for body in live}
        datasets = {
            pipeline_id: (
                {ids[a.name]: a.name for a in body.source_addresses},
                {ids[a.name]: a.name for a in body.target_addresses},
            )
            for pipeline_id, body in last.items()
        }
        edges = {p: cross_product(set(reads), set(writes)) for p, (reads, writes) in datasets.items()}
        fresh = Fresh(frozenset(new_pipelines or ()), created)
        with self.lineage_lease(project) if not leased else contextlib.nullcontext():
            self._replace_many(project, edges, workers, fresh)
            self.store.write_pipeline_datasets(project, datasets)

    def replace_pipeline_edges(self, project: str, pipeline_id: int, edges: set[Edge]) -> None:
        """A pipeline's direct edges set outright, and the closure they change."""
        with self.lineage_lease(project):
            self._replace_edges(project, pipeline_id, edges)

    def forget_pipeline(self, project: str, pipeline_id: int) -> None:
        """A deleted pipeline: its edges, the closure rows they made, and its recorded datasets go."""
        with self.lineage_lease(project):
            self._replace_edges(project, pipeline_id, set())
            self.store.delete_pipeline_datasets(project, pipeline_id)

    def lineage_of(self, project: str, address_id: int) -> dict:
        """Everything upstream and downstream of an address, nearest first."""
        if self.registry.addresses.get(project, address_id) is None:
            raise NotFound(f"Address {address_id} not found.")
        upstream = self.store.upstream(project, address_id)
        downstream = self.store.downstream(project, address_id)
        names = self.registry.addresses.get_many(project, set(upstream) | set(downstream))

        def listed(depths: dict[int, int]) -> list[dict]:
            ordered = sorted(depths.items(), key=lambda pair: (pair[1], pair[0]))
            return [
                {"address_id": a, "name": (names.get(a) or {}).get("name"), "depth": d} for a, d in ordered
            ]

        return {"address_id": address_id, "upstream": listed(upstream), "downstream": listed(downstream)}

    # -- internals --------------------------------------------------------------------------------
    def _address_ids(self, project: str, addresses: list[AddressUpsert]) -> dict[int, str]:
        """{address id: name} of the addresses, each upserted once."""
        ids: dict[str, int] = {}
        for address in addresses:
            if address.name not in ids:
                ids[address.name] = self.registry.upsert_address(project, address)[0]["id"]
        return {address_id: name for name, address_id in ids.items()}

    def replace_many_pipeline_edges(
        self, project: str, edges: dict[int, set[Edge]], workers: int = 8, fresh: Fresh | None = None
    ) -> None:
        """Several pipelines' direct edges set outright ({pipeline id: edges}), and one closure
        computation for all of them (`fresh`: as in _replace_many)."""
        with self.lineage_lease(project):
            self._replace_many(project, edges, workers, fresh)

    def _replace_edges(self, project: str, pipeline_id: int, edges: set[Edge]) -> None:
        self._replace_many(project, {pipeline_id: edges}, workers=1)

    def _replace_many(
        self, project: str, edges: dict[int, set[Edge]], workers: int, fresh: Fresh | None = None
    ) -> None:
        """Direct edges first (the closure is computed from them), then the closure rows that change,
        computed once for every pipeline given, the reads of each step side by side.

        All of the pipelines' old and new targets are recomputed, not only those of changed edges,
        so repeating a request also repairs a closure left behind by an interrupted one. One
        computation is enough for many pipelines: every changed row still belongs to a target of
        a changed edge or to one of its stored descendants (the module docstring's argument holds
        for any set of changed edges), and the ancestry is computed from the final edges.

        What `fresh` names has no stored lineage row, so it is not read: a fresh pipeline has
        no old edges, and a fresh address no closure rows, and no sources but those of `edges`.
        """
        if not edges:
            return
        fresh = fresh or Fresh()
        # A fresh address's sources are the new edges into it (no other edge can name it).
        new_sources = sources_index(e for p in edges for e in edges[p] if e[1] in fresh.addresses)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(edges)))) as pool:

            def each(read: Callable, keys: Iterable, skip: frozenset[int], known: Callable) -> dict:
                """read(key) for each key, side by side; known(key) for the fresh ones, unread."""
                keys = list(keys)
                found = {k: known(k) for k in keys if k in skip}
                unread = [k for k in keys if k not in skip]
                reads = pool.map(read, unread) if len(unread) > 1 else map(read, unread)
                return found | dict(zip(unread, reads, strict=True))

            old = each(lambda p: self.store.edges_of_pipeline(project, p), edges, fresh.pipelines, _no_edges)
            self.store.write_pipeline_edges(
                project, {p: (edges[p] - old[p], old[p] - edges[p]) for p in edges}
            )
            targets = {target for p in edges for _, target in old[p] | edges[p]}
            below = each(lambda a: self.store.downstream(project, a), targets, fresh.addresses, _no_rows)
            affected = affected_addresses(targets, lambda a: below[a])
            # Every address the breadth-first walks will reach, read one level at a time.
            sources: dict[int, set[int]] = {}
            frontier = set(affected)

            def read_sources(address: int) -> set[int]:
                return self.store.sources_of(project, address)

            def new_sources_of(address: int) -> set[int]:
                return new_sources.get(address, set())

            while frontier:
                sources.update(each(read_sources, sorted(frontier), fresh.addresses, new_sources_of))
                frontier = {s for a in frontier for s in sources[a]} - sources.keys()
            stored = each(
                lambda a: self.store.upstream(project, a), sorted(affected), fresh.addresses, _no_rows
            )
        rows = plan_closure(affected, sources.__getitem__, stored.__getitem__)
        self.store.apply_closure(project, rows)

    @contextmanager
    def lineage_lease(self, project: str) -> Iterator[None]:
        """Serialise closure updates in a project: a lease with an expiry, waited for briefly."""
        owner = uuid.uuid4().hex
        deadline = self._clock() + LOCK_WAIT_SECONDS
        delay = 0.05
        while not self.store.try_lock(project, owner, int(self._clock()), LEASE_SECONDS):
            if self._clock() >= deadline:
                raise Conflict("Another request is updating this project's lineage; retry in a few seconds.")
            self._sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            self.store.release_lock(project, owner)


DATASET_ADDRESS_TYPE = "sluice_dataset"
DATASET_ADDRESS_GROUP = "sluice"


class DatasetLineage:
    """A run's dataset sources and targets as Watcher addresses, linked through LineageService
    (the run engine's LineageRecorder)."""

    def __init__(self, service: LineageService):
        self.service = service

    def record(self, project: str, pipeline_id: int, sources: list[str], targets: list[str]) -> None:
        def address(name: str) -> AddressUpsert:
            return AddressUpsert(
                name=name,
                address_type_name=DATASET_ADDRESS_TYPE,
                address_type_group_name=DATASET_ADDRESS_GROUP,
            )

        request = AddressLineageRequest(
            pipeline_id=pipeline_id,
            source_addresses=[address(n) for n in sources],
            target_addresses=[address(n) for n in targets],
        )
        self.service.record_address_lineage(project, request)
