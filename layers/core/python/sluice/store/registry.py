"""Repositories of Watcher's registry: pipelines, pipeline types, addresses and address types.

Each object is one item (keys from `sluice.store.keys`) plus a name-claim item that makes its
name unique in the project without regard to case; both are written in one transaction, and a
rename swaps claims in one transaction. Records handed out are the item's attributes without
its keys, with metadata (stored as a JSON string) decoded to an object.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from sluice import timeutil
from sluice.domain.status import DEFAULT_PIPELINE_STATUS
from sluice.errors import Conflict, NameTaken, NotFound
from sluice.store import keys
from sluice.store.table import Condition, ConditionFailed, Table, TransactionCancelled

_FAILED = "ConditionalCheckFailed"
_BUSY = "TransactionConflict"  # another transaction held one of the items: retry shortly
_KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
CREATE_CHUNK = 49  # objects per create_many transaction: 2 items each and one companion, under 100
DEFAULT_STATUS = DEFAULT_PIPELINE_STATUS.value  # what a pipeline Watcher's surface wrote (no status) is


class NamedRepository:
    """Integer ids from a project counter, names unique per project and case-insensitive."""

    kind: str = ""  # counter and name-claim kind, and the item's `kind` attribute
    label: str = ""  # how error sentences call the object
    sort_prefix: str = ""  # the sort-key prefix of these items in their partition
    json_fields: tuple[str, ...] = ()

    def __init__(self, table: Table, sleep: Callable[[float], None] = time.sleep):
        self.table = table
        self._sleep = sleep

    # -- keys (per kind) -------------------------------------------------------------------------
    def key(self, project: str, object_id: int) -> tuple[str, str]:
        raise NotImplementedError

    def partition(self, project: str) -> str:
        raise NotImplementedError

    # -- reads ------------------------------------------------------------------------------------
    def get(self, project: str, object_id: int) -> dict[str, Any] | None:
        item = self.table.get(*self.key(project, object_id))
        return self._record(item) if item else None

    def get_many(
        self, project: str, object_ids: set[int], consistent: bool = False
    ) -> dict[int, dict[str, Any]]:
        items = self.table.batch_get([self.key(project, i) for i in sorted(object_ids)], consistent)
        return {int(item["id"]): self._record(item) for item in items}

    def list(self, project: str) -> list[dict[str, Any]]:
        """Every object of the project in id order (one Query on the kind's partition)."""
        items = self.table.query_all(self.partition(project), begins_with=self.sort_prefix, consistent=True)
        # Other surfaces may keep sub-items (revisions...) under the same prefix; list objects only.
        return [self._record(item) for item in items if item.get("kind") == self.kind]

    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None:
        """The object holding `name` in any letter case, through its name claim."""
        claim = self.table.get(*keys.name_claim(project, self.kind, name))
        if claim is None:
            return None
        return self.get(project, int(claim["owner_id"]))

    def find_many_by_name(self, project: str, names: list[str]) -> dict[str, dict[str, Any]]:
        """{name: record} of the names held (any letter case): the claims, then the objects, each
        read with BatchGetItem."""
        claim_keys = {name: keys.name_claim(project, self.kind, name) for name in names}
        claims = self.table.batch_get(list(claim_keys.values()), consistent=True)
        owners = {(c["PK"], c["SK"]): int(c["owner_id"]) for c in claims}
        ids = {name: owners[key] for name, key in claim_keys.items() if key in owners}
        found = self.get_many(project, set(ids.values())) if ids else {}
        return {name: found[i] for name, i in ids.items() if i in found}

    # -- writes ------------------------------------------------------------------------------------
    def create(self, project: str, attributes: dict[str, Any]) -> dict[str, Any]:
        """A new object with the next id; NameTaken if another object holds the name."""
        name = attributes["name"]
        object_id = self.table.next_number(*keys.counter(project, self.kind))
        if object_id == 1:
            self._register_project(project)
        item = self._new_item(project, object_id, attributes, timeutil.iso(timeutil.now()))
        claim = self._claim(project, name, object_id)
        absent = Condition("attribute_not_exists(PK)")
        operations = [self.table.put_op(item, absent), self.table.put_op(claim, absent)]
        try:
            self._transact([*operations, *self._companion_operations(project, item, 1)])
        except TransactionCancelled as exc:
            if exc.reasons[1] == _FAILED:
                raise NameTaken(self._taken(name)) from exc
            raise Conflict(f"{self.label} id {object_id} is already in use; retry.") from exc
        return self._record(item)

    def create_many(self, project: str, attributes: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """New objects for several names at once, in the order given: their ids from one counter
        update, each object written with its name claim in transactions of up to CREATE_CHUNK
        objects (the kind's companion writes merged, one per transaction). None in place of a name
        another object holds, or that an earlier entry of the list holds in another letter case:
        the caller resolves those as `create` would have (get-or-create)."""
        if not attributes:
            return []
        if self._batch_companions(project, attributes) is None:
            return [self._create_or_none(project, a) for a in attributes]
        first: dict[tuple[str, str], int] = {}
        for position, entry in enumerate(attributes):
            first.setdefault(keys.name_claim(project, self.kind, entry["name"]), position)
        unique = sorted(first.values())
        ids = self.table.next_numbers(*keys.counter(project, self.kind), len(unique))
        if ids[0] == 1:
            self._register_project(project)
        stamp = timeutil.iso(timeutil.now())
        items = {
            position: self._new_item(project, object_id, attributes[position], stamp)
            for object_id, position in zip(ids, unique, strict=True)
        }
        created: dict[int, dict[str, Any]] = {}
        for start in range(0, len(unique), CREATE_CHUNK):
            created.update(
                self._create_chunk(project, [(p, items[p]) for p in unique[start : start + CREATE_CHUNK]])
            )
        return [self._record(created[p]) if p in created else None for p in range(len(attributes))]

    def _new_item(
        self, project: str, object_id: int, attributes: dict[str, Any], stamp: str
    ) -> dict[str, Any]:
        pk, sk = self.key(project, object_id)
        return {
            **self._encode(attributes),
            "PK": pk,
            "SK": sk,
            "kind": self.kind,
            "id": object_id,
            "created_at": stamp,
            **self._index_keys(project, object_id, attributes),
        }

    def _create_chunk(
        self, project: str, chunk: list[tuple[int, dict[str, Any]]]
    ) -> dict[int, dict[str, Any]]:
        """One transaction of items and claims; the names it finds taken are dropped and the rest
        written again (their ids stay unused, as a failed `create` leaves its id)."""
        absent = Condition("attribute_not_exists(PK)")
        while chunk:
            operations = []
            for _position, item in chunk:
                claim = self._claim(project, item["name"], int(item["id"]))
                operations += [self.table.put_op(item, absent), self.table.put_op(claim, absent)]
            companions = self._batch_companions(project, [item for _p, item in chunk]) or []
            try:
                self._transact([*operations, *companions])
            except TransactionCancelled as exc:
                reasons = exc.reasons[: len(operations)]
                if any(reasons[i] == _FAILED for i in range(0, len(operations), 2)):
                    raise Conflict(f"{self.label} ids are already in use; retry.") from exc
                taken = {i // 2 for i in range(1, len(operations), 2) if reasons[i] == _FAILED}
                if not taken:
                    raise Conflict(f"{self.label}s could not be created together; retry.") from exc
                chunk = [entry for index, entry in enumerate(chunk) if index not in taken]
                continue
            return dict(chunk)
        return {}

    def _create_or_none(self, project: str, attributes: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self.create(project, attributes)
        except NameTaken:
            return None

    def update(self, project: str, object_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `changes` (None removes an attribute) and stamp updated_at; returns the new record.

        A change of name beyond letter case moves the name claim in the same transaction, so a
        taken name fails the whole update (NameTaken) and nothing is half-written.
        """
        for _attempt in range(4):
            current = self.get(project, object_id)
            if current is None:
                raise NotFound(f"{self.label} {object_id} not found.")
            if not changes:
                return current
            written = {**self._encode(changes), "updated_at": timeutil.iso(timeutil.now())}
            new_name = changes.get("name")
            pk, sk = self.key(project, object_id)
            if new_name is None or _same_name(new_name, current["name"]):
                try:
                    item = self.table.update(
                        pk, sk, set_=written, condition=Condition("attribute_exists(PK)")
                    )
                except ConditionFailed as exc:
                    raise NotFound(f"{self.label} {object_id} not found.") from exc
                return self._record(item)
            if self._renamed(project, object_id, current, new_name, written):
                merged = {**current, **written}
                return self._record({k: v for k, v in merged.items() if v is not None})
        raise Conflict(f"{self.label} {object_id} was changed by another request meanwhile; retry.")

    def _renamed(
        self, project: str, object_id: int, current: dict, new_name: str, written: dict[str, Any]
    ) -> bool:
        """One transaction: update the item (still under its old name), drop the old claim, take
        the new one. False when the item changed meanwhile (the caller re-reads and retries)."""
        pk, sk = self.key(project, object_id)
        old_pk, old_sk = keys.name_claim(project, self.kind, current["name"])
        still_named = Condition(
            "attribute_exists(PK) AND #name = :old", names={"#name": "name"}, values={":old": current["name"]}
        )
        owned = Condition("#owner = :id", names={"#owner": "owner_id"}, values={":id": object_id})
        operations = [
            self.table.update_op(pk, sk, set_=written, condition=still_named),
            self.table.delete_op(old_pk, old_sk, condition=owned),
            self.table.put_op(
                self._claim(project, new_name, object_id), Condition("attribute_not_exists(PK)")
            ),
        ]
        try:
            self._transact(operations)
        except TransactionCancelled as exc:
            if exc.reasons[2] == _FAILED:
                raise NameTaken(self._taken(new_name)) from exc
            return False
        return True

    def delete(self, project: str, object_id: int) -> dict[str, Any]:
        """Remove the object and free its name in one transaction; returns what was removed.

        Callers remove what hangs off the object (a pipeline's runs, its lineage edges) themselves.
        """
        for _attempt in range(4):
            current = self.get(project, object_id)
            if current is None:
                raise NotFound(f"{self.label} {object_id} not found.")
            pk, sk = self.key(project, object_id)
            claim_pk, claim_sk = keys.name_claim(project, self.kind, current["name"])
            still_named = Condition(
                "attribute_exists(PK) AND #name = :name",
                names={"#name": "name"},
                values={":name": current["name"]},
            )
            owned = Condition("#owner = :id", names={"#owner": "owner_id"}, values={":id": object_id})
            try:
                self._transact(
                    [
                        self.table.delete_op(pk, sk, condition=still_named),
                        self.table.delete_op(claim_pk, claim_sk, condition=owned),
                        *self._companion_operations(project, current, -1),
                    ]
                )
            except TransactionCancelled:
                continue  # renamed or removed meanwhile: look again
            return current
        raise Conflict(f"{self.label} {object_id} was changed by another request meanwhile; retry.")

    # -- hooks: kinds whose create and delete move other items in the same transaction ------------
    def _index_keys(self, project: str, object_id: int, attributes: dict[str, Any]) -> dict[str, str]:
        """GSI keys a new item carries."""
        return {}

    def _companion_operations(self, project: str, record: dict[str, Any], sign: int) -> list[dict[str, Any]]:
        """Writes that go with creating (sign 1) or deleting (sign -1) the object; they must not fail
        on a condition of their own when the caller cannot cause it (the create maps its failures)."""
        return []

    def _batch_companions(self, project: str, records: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The companion writes of creating all of `records` in one transaction, each item at most
        once; None when this kind cannot merge them (create_many then creates one by one)."""
        return []

    # -- internals ---------------------------------------------------------------------------------
    def _transact(self, operations: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retried briefly while another transaction holds one of the items."""
        delay = 0.02
        for attempt in range(5):
            try:
                self.table.transact(operations)
                return
            except TransactionCancelled as exc:
                if _BUSY not in exc.reasons or attempt == 4:
                    raise
                self._sleep(delay)
                delay *= 2

    def _claim(self, project: str, name: str, object_id: int) -> dict[str, Any]:
        pk, sk = keys.name_claim(project, self.kind, name)
        return {"PK": pk, "SK": sk, "kind": "name_claim", "owner_kind": self.kind, "owner_id": object_id}

    def _register_project(self, project: str) -> None:
        """Scheduled jobs visit every project through this registry (PK "PROJECTS")."""
        pk, sk = keys.project_registry(project)
        item = {"PK": pk, "SK": sk, "kind": "project", "project": project}
        item["created_at"] = timeutil.iso(timeutil.now())
        # Already registered when another kind's first object came earlier.
        with contextlib.suppress(ConditionFailed):
            self.table.put(item, Condition("attribute_not_exists(PK)"))

    def _taken(self, name: str) -> str:
        return f"{self.label} name '{name}' is already taken in this project."

    def _encode(self, attributes: dict[str, Any]) -> dict[str, Any]:
        encoded = dict(attributes)
        for field in self.json_fields:
            value = encoded.get(field)
            if value is not None and not isinstance(value, str):
                encoded[field] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return encoded

    def _record(self, item: dict[str, Any]) -> dict[str, Any]:
        record = {k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES}
        for field in self.json_fields:
            if isinstance(record.get(field), str):
                record[field] = json.loads(record[field])
        return record


def _same_name(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


class PipelineRepository(NamedRepository):
    """The pipeline item shared by every surface (Watcher's fields at top level, `kind: pipeline`).

    Other areas read a pipeline with `get(project, id)` / `find_by_name(project, name)` and change
    it with `update(project, id, {field: value})` (None removes; `name` renames under the claim).
    """

    kind = "pipeline"
    label = "Pipeline"
    sort_prefix = "PL#"
    json_fields = ("pipeline_metadata",)

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        return keys.pipeline(project, object_id)

    def partition(self, project: str) -> str:
        return keys.pipelines(project)

    # Every pipeline, whichever surface made it, is in its status's index and the project's counts.
    def _index_keys(self, project: str, object_id: int, attributes: dict[str, Any]) -> dict[str, str]:
        return self.status_index(project, object_id, attributes.get("status"))

    def _companion_operations(self, project: str, record: dict[str, Any], sign: int) -> list[dict[str, Any]]:
        status = record.get("status") or DEFAULT_STATUS
        return [
            self.counts_op(project, {"total": sign, status: sign}),
            *self.reference_ops(project, record, sign),
        ]

    def _batch_companions(self, project: str, records: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if any(r.get(field) is not None for r in records for field in ("connector_id", "schema_id")):
            return None  # several pipelines may reference one connector: not in one transaction
        moves: dict[str, int] = {"total": len(records)}
        for record in records:
            status = record.get("status") or DEFAULT_STATUS
            moves[status] = moves.get(status, 0) + 1
        return [self.counts_op(project, moves)]

    def status_index(self, project: str, object_id: int, status: str | None) -> dict[str, str]:
        return {
            "GSI1PK": keys.pipelines_with_status(project, status or DEFAULT_STATUS),
            "GSI1SK": self.key(project, object_id)[1],
        }

    def counts_op(self, project: str, moves: dict[str, int]) -> dict[str, Any]:
        """ADD to the project's pipeline counts (the item appears with the first pipeline)."""
        moves = {name: step for name, step in moves.items() if step}
        return self.table.update_op(
            *keys.pipeline_counts(project), add=moves, set_={"kind": "pipeline_counts"}
        )

    def reference_ops(self, project: str, record: dict[str, Any], sign: int) -> list[dict[str, Any]]:
        """ref_count of the connector and schema the pipeline names, up or down by one; each must
        exist (a referenced one cannot be deleted, so on a delete it always does)."""
        operations = []
        for field, key in (("connector_id", keys.connector), ("schema_id", keys.schema)):
            if record.get(field) is not None:
                operations.append(
                    self.table.update_op(
                        *key(project, int(record[field])),
                        add={"ref_count": sign},
                        condition=Condition("attribute_exists(PK)"),
                    )
                )
        return operations


class PipelineTypeRepository(NamedRepository):
    kind = "pipeline_type"
    label = "Pipeline type"
    sort_prefix = "PT#"

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        return keys.pipeline_type(project, object_id)

    def partition(self, project: str) -> str:
        return keys.pipeline_types(project)


class AddressRepository(NamedRepository):
    kind = "address"
    label = "Address"
    sort_prefix = "AD#"
    json_fields = ("address_metadata",)

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        return keys.address(project, object_id)

    def partition(self, project: str) -> str:
        return keys.addresses(project)


class AddressTypeRepository(NamedRepository):
    kind = "address_type"
    label = "Address type"
    sort_prefix = "AT#"

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        return keys.address_type(project, object_id)

    def partition(self, project: str) -> str:
        return keys.address_types(project)
