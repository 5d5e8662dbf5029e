"""Pipeline definitions in the table: the one pipeline item every surface shares (its graph gzipped
in a binary attribute), its revisions, the project's pipeline counts, the status index, the
pipeline's run index and its schedule firings.

Creates, updates and deletes are single transactions over the item, its name claim, the counts,
the referenced connector's and schema's `ref_count`, and the new revision, each guarded by a
condition on what was read, so concurrent writers never leave a count or a reference wrong.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.executions import Run, run_from_stored
from sluice.domain.pipelines import StaleDefinition
from sluice.errors import Conflict, NameTaken, ValidationFailed
from sluice.store import keys
from sluice.store.executions import in_parallel
from sluice.store.registry import DEFAULT_STATUS, PipelineRepository
from sluice.store.table import Condition, Table, TransactionCancelled

MAX_GRAPH_BYTES = 300_000  # gzipped; with the other attributes the item stays under DynamoDB's 400 KB
FIRING_RETENTION_DAYS = 90
_FAILED = "ConditionalCheckFailed"
_REFERENCES = (("connector_id", "connectorId", "connector"), ("schema_id", "schemaId", "schema"))
_KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")


def encode_graph(document: dict[str, Any]) -> bytes:
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    blob = gzip.compress(raw, mtime=0)
    if len(blob) > MAX_GRAPH_BYTES:
        raise ValidationFailed(
            f"The pipeline's graph is too large to store: {len(blob) // 1000} KB compressed, "
            f"the limit is {MAX_GRAPH_BYTES // 1000} KB."
        )
    return blob


def decode_graph(blob: Any) -> dict[str, Any] | None:
    if not blob:
        return None
    return json.loads(gzip.decompress(bytes(blob)))


class PipelineDefinitionRepository:
    def __init__(self, table: Table, sleep: Callable[[float], None] = time.sleep):
        self.table = table
        self.pipelines = PipelineRepository(table, sleep)

    # -- reads ------------------------------------------------------------------------------------
    def get(self, project: str, pipeline_id: int) -> dict[str, Any] | None:
        return _decoded(self.pipelines.get(project, pipeline_id))

    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None:
        return _decoded(self.pipelines.find_by_name(project, name))

    def page(
        self, project: str, status: str | None, after_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to `limit` pipelines in id order after `after_id` (keyset: inserts never shift a page).
        Without a status, the pipelines partition (consistent); with one, its status index."""
        after = keys.pipeline(project, after_id)[1] if after_id else "PL#"
        if status is None:
            page = self.table.query(keys.pipelines(project), after=after, limit=limit, consistent=True)
        else:
            page = self.table.query(
                keys.pipelines_with_status(project, status), index="GSI1", after=after, limit=limit
            )
        return [
            self.pipelines._record(item) | _graph_of(item)
            for item in page.items
            if item.get("kind") == "pipeline"
        ]

    def all(self, project: str, page_size: int = 100) -> list[dict[str, Any]]:
        """Every pipeline of the project, a page (Query) at a time: for answers that are the whole
        project (the flow graph, `/api/lineage`)."""
        records: list[dict[str, Any]] = []
        after: int | None = None
        while True:
            page = self.page(project, None, after, page_size)
            records += page
            if len(page) < page_size:
                return records
            after = int(page[-1]["id"])

    def id_at(self, project: str, status: str | None, offset: int) -> int | None:
        """The id of the `offset`-th pipeline in id order (keys only), or None past the end."""
        if status is None:
            sort_key = self.table.skip(keys.pipelines(project), offset, consistent=True)
        else:
            sort_key = self.table.skip(keys.pipelines_with_status(project, status), offset, index="GSI1")
        return int(sort_key.removeprefix("PL#")) if sort_key else None

    def count(self, project: str, status: str | None) -> int:
        counts = self.table.get(*keys.pipeline_counts(project)) or {}
        return max(int(counts.get(status or "total") or 0), 0)

    def references(
        self, project: str, records: list[dict[str, Any]]
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The connectors and schemas the records name, keyed by (kind, id): their stored attributes
        (without keys or secret references' values), one batch read for a whole page."""
        wanted = {
            (kind, int(record[field]))
            for record in records
            for field, _, kind in _REFERENCES
            if record.get(field) is not None
        }
        item_key = {"connector": keys.connector, "schema": keys.schema}
        found = self.table.batch_get([item_key[kind](project, number) for kind, number in sorted(wanted)])
        return {
            (item["kind"], int(item["id"])): {k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES}
            for item in found
            if item.get("kind") in item_key
        }

    def exists(self, project: str, kind: str, number: int) -> bool:
        key = keys.connector(project, number) if kind == "connector" else keys.schema(project, number)
        item = self.table.get(*key)
        return item is not None and item.get("kind") == kind

    def last_runs(self, project: str, pipeline_ids: list[int]) -> dict[int, Run]:
        """Each pipeline's latest run by start time: one Query per pipeline on its run index (in
        parallel), then one batch read of the runs."""

        def latest(pipeline_id: int) -> int | None:
            page = self.table.query(keys.pipeline_runs(project, pipeline_id), forward=False, limit=1)
            return int(page.items[0]["run_id"]) if page.items else None

        run_ids = [r for r in in_parallel(latest, pipeline_ids) if r is not None]
        runs = self.runs(project, run_ids)
        return {run.pipeline_id: run for run in runs}

    def runs(self, project: str, run_ids: list[int]) -> list[Run]:
        found = self.table.batch_get([keys.run(project, i) for i in run_ids], consistent=True)
        return [run_from_stored(item) for item in found if item.get("kind") == "run"]

    def run_index_page(self, project: str, pipeline_id: int, limit: int) -> list[tuple[int, tuple[str, str]]]:
        """(run id, index key) of up to `limit` of the pipeline's runs, oldest first."""
        page = self.table.query(keys.pipeline_runs(project, pipeline_id), limit=limit, consistent=True)
        return [(int(item["run_id"]), (item["PK"], item["SK"])) for item in page.items]

    def revisions(
        self, project: str, pipeline_id: int, limit: int, before: int | None
    ) -> list[dict[str, Any]]:
        """Newest first, up to `limit`, older than revision `before` when given."""
        partition = keys.pipeline_revisions(project, pipeline_id)
        bound = {"before": keys.pipeline_revision(project, pipeline_id, before)[1]} if before else {}
        page = self.table.query(partition, forward=False, limit=limit, consistent=True, **bound)
        return [_revision(item) for item in page.items]

    def revision(self, project: str, pipeline_id: int, number: int) -> dict[str, Any] | None:
        item = self.table.get(*keys.pipeline_revision(project, pipeline_id, number))
        return _revision(item) if item else None

    # -- writes -----------------------------------------------------------------------------------
    def check_graph_size(self, document: dict[str, Any]) -> None:
        """422 before anything is written when the graph would not fit in the item."""
        encode_graph(document)

    def next_id(self, project: str) -> int:
        pipeline_id = self.table.next_number(*keys.counter(project, self.pipelines.kind))
        if pipeline_id == 1:
            self.pipelines._register_project(project)
        return pipeline_id

    def create(
        self, project: str, pipeline_id: int, attributes: dict[str, Any], revision: dict[str, Any]
    ) -> dict[str, Any]:
        """The item, its name claim, the counts, the references and revision 1, in one transaction."""
        pk, sk = keys.pipeline(project, pipeline_id)
        item = {
            **_encoded(attributes),
            "PK": pk,
            "SK": sk,
            "kind": self.pipelines.kind,
            "id": pipeline_id,
            **self.pipelines.status_index(project, pipeline_id, attributes.get("status")),
        }
        absent = Condition("attribute_not_exists(PK)")
        references = self.pipelines.reference_ops(project, attributes, 1)
        operations = [
            self.table.put_op(item, absent),
            self.table.put_op(self.pipelines._claim(project, attributes["name"], pipeline_id), absent),
            self.pipelines.counts_op(project, {"total": 1, attributes.get("status") or DEFAULT_STATUS: 1}),
            self._revision_op(project, pipeline_id, revision),
            *references,
        ]
        try:
            self.pipelines._transact(operations)
        except TransactionCancelled as exc:
            if exc.reasons[1] == _FAILED:
                raise NameTaken(self.pipelines._taken(attributes["name"])) from exc
            _raise_missing_reference(attributes, exc.reasons[4:])
            raise Conflict(f"Pipeline id {pipeline_id} is already in use; retry.") from exc
        return _decoded(self.pipelines._record(item)) or {}

    def update(
        self,
        project: str,
        current: dict[str, Any],
        changes: dict[str, Any],
        revision: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Apply `changes` (None removes) to the pipeline as it was read (`current`); StaleDefinition
        when it changed meanwhile. Counts, references, claims and the revision move with it."""
        pipeline_id = int(current["id"])
        pk, sk = keys.pipeline(project, pipeline_id)
        status_before = current.get("status") or DEFAULT_STATUS
        status_after = changes.get("status") or status_before
        written = {
            **_encoded(changes),
            "updated_at": changes.get("updated_at") or timeutil.iso(timeutil.now()),
            **self.pipelines.status_index(project, pipeline_id, status_after),
        }
        guard = _unchanged(current, ("name", "status", "revision", "connector_id", "schema_id"))
        operations = [self.table.update_op(pk, sk, set_=written, condition=guard)]
        if status_after != status_before:
            operations.append(self.pipelines.counts_op(project, {status_before: -1, status_after: 1}))
        if revision is not None:
            operations.append(self._revision_op(project, pipeline_id, revision))
        added: dict[str, Any] = {}
        for field, _, _ in _REFERENCES:
            if field in changes and changes[field] != current.get(field):
                operations += self.pipelines.reference_ops(project, {field: current.get(field)}, -1)
                added[field] = changes[field]
        first_added = len(operations)
        operations += self.pipelines.reference_ops(project, added, 1)
        new_name = changes.get("name")
        renamed = new_name is not None and new_name.strip().casefold() != current["name"].strip().casefold()
        if renamed:
            old_pk, old_sk = keys.name_claim(project, self.pipelines.kind, current["name"])
            owned = Condition("#owner = :id", names={"#owner": "owner_id"}, values={":id": pipeline_id})
            operations.append(self.table.delete_op(old_pk, old_sk, condition=owned))
            operations.append(
                self.table.put_op(
                    self.pipelines._claim(project, new_name, pipeline_id),
                    Condition("attribute_not_exists(PK)"),
                )
            )
        try:
            self.pipelines._transact(operations)
        except TransactionCancelled as exc:
            if renamed and exc.reasons[-1] == _FAILED:
                raise NameTaken(self.pipelines._taken(new_name)) from exc
            _raise_missing_reference(added, exc.reasons[first_added : first_added + len(added)])
            raise StaleDefinition(f"Pipeline {pipeline_id} changed meanwhile.") from exc
        merged = {**current, **changes, "updated_at": written["updated_at"]}
        return {k: v for k, v in merged.items() if v is not None}

    def delete(self, project: str, pipeline_id: int) -> dict[str, Any]:
        """The item, its name claim, its counts and its references (PipelineRepository.delete)."""
        return self.pipelines.delete(project, pipeline_id)

    def delete_revisions_and_firings(self, project: str, pipeline_id: int, limit: int) -> int:
        """Delete up to `limit` of the pipeline's revisions, then of its firings; how many went."""
        for partition in (
            keys.pipeline_revisions(project, pipeline_id),
            keys.pipeline_firings(project, pipeline_id),
        ):
            page = self.table.query(partition, limit=limit, consistent=True)
            if page.items:
                return self.table.batch_write(deletes=[(i["PK"], i["SK"]) for i in page.items])
        return 0

    def delete_keys(self, item_keys: list[tuple[str, str]]) -> int:
        return self.table.batch_write(deletes=item_keys)

    def delete_checks_of(self, project: str, pipeline_id: int) -> int:
        """The pipeline's freshness records and anomaly rules (with their claims), and the marks its
        runs left for the platform: its last run and its latest run per date (store/run_calendar.py)."""
        doomed = [
            (i["PK"], i["SK"])
            for i in self.table.query_all(
                keys.freshness_records_of_pipeline(project, pipeline_id), index="GSI1"
            )
        ]
        doomed.append(keys.last_run(project, pipeline_id))
        doomed += [
            (i["PK"], i["SK"])
            for i in self.table.query_all(keys.dated_runs(project, pipeline_id), consistent=True)
        ]
        for rule in self.table.query_all(keys.anomaly_rules_of_pipeline(project, pipeline_id), index="GSI1"):
            doomed.append((rule["PK"], rule["SK"]))
            doomed.append(keys.anomaly_rule_claim(project, pipeline_id, rule["metric_field"]))
        return self.table.batch_write(deletes=doomed)

    def record_firing(
        self, project: str, pipeline: dict[str, Any], scheduled: str, next_run_at: str, now: str
    ) -> bool:
        """Record one firing and move next_run_at, if the pipeline is still active on the same
        schedule; False when this firing was already recorded or the pipeline changed."""
        pipeline_id = int(pipeline["id"])
        expires = int(timeutil.now().add(days=FIRING_RETENTION_DAYS).timestamp())
        firing_pk, firing_sk = keys.pipeline_firing(project, pipeline_id, scheduled)
        firing = {
            "PK": firing_pk,
            "SK": firing_sk,
            "kind": "pipeline_firing",
            "pipeline_id": pipeline_id,
            "scheduled_at": scheduled,
            "fired_at": now,
            "schedule": pipeline["schedule"],
            "revision": pipeline.get("revision"),
            "expires_at": expires,
        }
        still = _unchanged(pipeline, ("status", "schedule"))
        operations = [
            self.table.put_op(firing, Condition("attribute_not_exists(PK)")),
            self.table.update_op(
                *keys.pipeline(project, pipeline_id), set_={"next_run_at": next_run_at}, condition=still
            ),
        ]
        try:
            self.pipelines._transact(operations)
        except TransactionCancelled:
            return False
        return True

    def firings(self, project: str, pipeline_id: int, limit: int = 100) -> list[dict[str, Any]]:
        page = self.table.query(
            keys.pipeline_firings(project, pipeline_id), forward=False, limit=limit, consistent=True
        )
        return [{"scheduled_at": i["scheduled_at"], "fired_at": i["fired_at"]} for i in page.items]

    # -- internals --------------------------------------------------------------------------------
    def _revision_op(self, project: str, pipeline_id: int, revision: dict[str, Any]) -> dict[str, Any]:
        pk, sk = keys.pipeline_revision(project, pipeline_id, int(revision["revision"]))
        item = {
            "PK": pk,
            "SK": sk,
            "kind": "pipeline_revision",
            "pipeline_id": pipeline_id,
            "revision": int(revision["revision"]),
            "author": revision["author"],
            "created_at": revision["created_at"],
            "node_count": len(revision["graph"].get("nodes", ())),
            "edge_count": len(revision["graph"].get("edges", ())),
            "graph": encode_graph(revision["graph"]),
        }
        return self.table.put_op(item, Condition("attribute_not_exists(PK)"))


def _encoded(attributes: dict[str, Any]) -> dict[str, Any]:
    encoded = dict(attributes)
    if "graph" in encoded:
        graph = encoded["graph"]
        encoded["graph"] = encode_graph(graph) if graph and graph.get("nodes") else None
    return encoded


def _graph_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"graph": decode_graph(item.get("graph"))}


def _decoded(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {**record, "graph": decode_graph(record.get("graph"))}


def _revision(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "revision": int(item["revision"]),
        "author": item.get("author"),
        "created_at": item.get("created_at"),
        "node_count": int(item.get("node_count") or 0),
        "edge_count": int(item.get("edge_count") or 0),
        "graph": decode_graph(item.get("graph")) or {"nodes": [], "edges": []},
    }


def _unchanged(record: dict[str, Any], fields: tuple[str, ...]) -> Condition:
    """The item still exists with these attributes as read (absent ones still absent)."""
    clauses, names, values = ["attribute_exists(PK)"], {}, {}
    for index, field in enumerate(fields):
        token = f"#u{index}"
        names[token] = field
        if record.get(field) is None:
            clauses.append(f"attribute_not_exists({token})")
        else:
            clauses.append(f"{token} = :u{index}")
            values[f":u{index}"] = record[field]
    return Condition(" AND ".join(clauses), names=names, values=values)


def _raise_missing_reference(referencing: dict[str, Any], reasons: list[str]) -> None:
    """A failed `attribute_exists` on a referenced connector or schema: 422 naming it."""
    present = [
        (field, rendered, kind) for field, rendered, kind in _REFERENCES if referencing.get(field) is not None
    ]
    for (field, rendered, kind), reason in zip(present, reasons, strict=False):
        if reason == _FAILED:
            number = int(referencing[field])
            raise ValidationFailed(f"{rendered} {ids.render(kind, number)} does not exist.")
