"""Address lineage in the table: direct edges (per pipeline and per target), the closure
(upstream and downstream partitions, mirrored), and the project's lineage lease."""

from __future__ import annotations

from collections.abc import Mapping

from sluice import timeutil
from sluice.domain.lineage import ClosureRow, Edge
from sluice.store import keys
from sluice.store.table import Table


class LineageRepository:
    def __init__(self, table: Table):
        self.table = table

    # -- direct edges --------------------------------------------------------------------------
    def edges_of_pipeline(self, project: str, pipeline_id: int) -> set[Edge]:
        items = self.table.query_all(keys.lineage_edges_of_pipeline(project, pipeline_id), consistent=True)
        return {(int(i["source_address_id"]), int(i["target_address_id"])) for i in items}

    def sources_of(self, project: str, address_id: int) -> set[int]:
        """Direct sources of an address over every pipeline (an edge stays while any declares it)."""
        items = self.table.query_all(keys.lineage_inbound(project, address_id), consistent=True)
        return {int(i["source_address_id"]) for i in items}

    def write_pipeline_edges(self, project: str, changes: Mapping[int, tuple[set[Edge], set[Edge]]]) -> None:
        """Pipelines' edges added and removed ({pipeline id: (added, removed)}), in one batch
        write. Each edge is two items: in the pipeline's partition and in its target's inbound
        partition."""
        now = timeutil.iso(timeutil.now())
        puts = []
        deletes = []
        for pipeline_id, (added, removed) in sorted(changes.items()):
            edges_pk = keys.lineage_edges_of_pipeline(project, pipeline_id)
            for source, target in sorted(added):
                attributes = {
                    "kind": "lineage_edge",
                    "pipeline_id": pipeline_id,
                    "source_address_id": source,
                    "target_address_id": target,
                    "created_at": now,
                }
                puts.append({"PK": edges_pk, "SK": keys.lineage_edge(source, target), **attributes})
                inbound_pk = keys.lineage_inbound(project, target)
                puts.append({"PK": inbound_pk, "SK": keys.inbound_edge(source, pipeline_id), **attributes})
            for source, target in sorted(removed):
                deletes.append((edges_pk, keys.lineage_edge(source, target)))
                deletes.append(
                    (keys.lineage_inbound(project, target), keys.inbound_edge(source, pipeline_id))
                )
        self.table.batch_write(puts=puts, deletes=deletes)

    # -- the datasets of each pipeline (for /api/lineage) ---------------------------------------
    def write_pipeline_datasets(
        self, project: str, recorded: Mapping[int, tuple[dict[int, str], dict[int, str]]]
    ) -> None:
        """Replace what each pipeline last recorded reading and writing ({pipeline id: (reads,
        writes)}, each {address id: name}), in one batch write."""
        now = timeutil.iso(timeutil.now())
        items = []
        for pipeline_id, (reads, writes) in sorted(recorded.items()):
            pk, sk = keys.pipeline_datasets(project, pipeline_id)
            items.append(
                {
                    "PK": pk,
                    "SK": sk,
                    "kind": "pipeline_datasets",
                    "pipeline_id": pipeline_id,
                    "reads": [{"address_id": a, "name": n} for a, n in sorted(reads.items())],
                    "writes": [{"address_id": a, "name": n} for a, n in sorted(writes.items())],
                    "recorded_at": now,
                }
            )
        self.table.batch_write(puts=items)

    def delete_pipeline_datasets(self, project: str, pipeline_id: int) -> None:
        self.table.delete(*keys.pipeline_datasets(project, pipeline_id))

    def recorded_datasets(self, project: str) -> list[dict]:
        """Every pipeline's recorded datasets: one Query, paged through (the project's whole graph
        is the answer)."""
        return list(self.table.query_all(keys.lineage_datasets(project), consistent=True))

    # -- closure ---------------------------------------------------------------------------------
    def upstream(self, project: str, address_id: int) -> dict[int, int]:
        """Every ancestor with its depth: one Query."""
        return self._closure(keys.lineage_upstream(project, address_id))

    def downstream(self, project: str, address_id: int) -> dict[int, int]:
        """Every descendant with its depth: one Query."""
        return self._closure(keys.lineage_downstream(project, address_id))

    def _closure(self, partition: str) -> dict[int, int]:
        items = self.table.query_all(partition, consistent=True)
        return {int(i["address_id"]): int(i["depth"]) for i in items}

    def apply_closure(self, project: str, rows: list[ClosureRow]) -> None:
        """Each closure fact is stored twice, under the address (upstream) and under its ancestor
        (downstream), so both directions are a single Query."""
        puts = []
        deletes = []
        for row in rows:
            up = (keys.lineage_upstream(project, row.address), keys.pad(row.ancestor))
            down = (keys.lineage_downstream(project, row.ancestor), keys.pad(row.address))
            if row.depth is None:
                deletes += [up, down]
                continue
            common = {"kind": "lineage_closure", "depth": row.depth}
            puts.append({"PK": up[0], "SK": up[1], "address_id": row.ancestor, **common})
            puts.append({"PK": down[0], "SK": down[1], "address_id": row.address, **common})
        self.table.batch_write(puts=puts, deletes=deletes)

    # -- the project's lineage lease ----------------------------------------------------------------
    def try_lock(self, project: str, owner: str, now: int, lease_seconds: int) -> bool:
        """Take the lease if it is free or expired (it also lapses through the table's TTL)."""
        return self.table.take_lease(*keys.lineage_lock(project), owner, now, lease_seconds)

    def release_lock(self, project: str, owner: str) -> None:
        self.table.release_lease(*keys.lineage_lock(project), owner)
