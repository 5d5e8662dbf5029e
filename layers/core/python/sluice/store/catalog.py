"""Repositories of the catalog: connectors and schemas (counted ids, names claimed in the same
transaction, `ref_count` kept by pipeline writes) and variables (one item per key).

Every change is conditional on the item's `row_version`, so a write based on a stale read fails
instead of overwriting; deletes of connectors and schemas are conditional on no pipeline using
them. `lease` serialises the changes of one object whose secret and item change together.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.catalog import DEFAULT_PAGE, used_by
from sluice.errors import Conflict, InUse, NameTaken, NotFound
from sluice.store import keys
from sluice.store.table import (
    Condition,
    ConditionFailed,
    Table,
    TransactionCancelled,
    encode_cursor,
    serialize,
)

_FAILED = "ConditionalCheckFailed"
_BUSY = "TransactionConflict"
_KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
LEASE_SECONDS = 30
LEASE_WAIT_SECONDS = 5.0


class Lease:
    """A short exclusive lease on one object; `expires_at` is the table's TTL attribute as well, so
    a lease left by a crashed holder lapses after LEASE_SECONDS and then disappears."""

    def __init__(
        self,
        table: Table,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.table = table
        self._clock = clock
        self._sleep = sleep

    @contextlib.contextmanager
    def hold(self, project: str, kind: str, ident: str, label: str) -> Iterator[None]:
        pk, sk = keys.catalog_lease(project, kind, ident)
        owner = uuid.uuid4().hex
        deadline = self._clock() + LEASE_WAIT_SECONDS
        delay = 0.05
        while not self.table.take_lease(pk, sk, owner, int(self._clock()), LEASE_SECONDS):
            if self._clock() >= deadline:
                raise Conflict(f"{label} is being changed by another request; retry in a few seconds.")
            self._sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            self.table.release_lease(pk, sk, owner)


def _record(item: dict[str, Any], json_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    record = {k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES}
    for name in json_fields:
        if isinstance(record.get(name), str):
            record[name] = json.loads(record[name])
    return record


def _page(
    table: Table, partition: str, prefix: str, kind: str, limit: int | None, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Items of one partition in sort-key order: all of them without limit and cursor, else one
    page of `limit` (default DEFAULT_PAGE) and the cursor after it (None on the last page)."""
    if limit is None and cursor is None:
        items = table.query_all(partition, begins_with=prefix, consistent=True)
        return [i for i in items if i.get("kind") == kind], None
    size = limit or DEFAULT_PAGE
    found: list[dict[str, Any]] = []
    # One more than the page: whether it exists says whether there is a next page. DynamoDB may
    # stop early at 1 MB, so keep reading until the page is full or the partition ends.
    while len(found) <= size:
        page = table.query(
            partition, begins_with=prefix, limit=size + 1 - len(found), cursor=cursor, consistent=True
        )
        found += [i for i in page.items if i.get("kind") == kind]
        cursor = page.cursor
        if cursor is None:
            break
    if len(found) <= size:
        return found, None
    last = found[size - 1]
    return found[:size], encode_cursor(serialize({"PK": last["PK"], "SK": last["SK"]}))


def _transact(table: Table, operations: list[dict[str, Any]], sleep: Callable[[float], None]) -> None:
    """TransactWriteItems, retried briefly while another transaction holds one of the items."""
    delay = 0.02
    for attempt in range(5):
        try:
            table.transact(operations)
            return
        except TransactionCancelled as exc:
            if _BUSY not in exc.reasons or attempt == 4:
                raise
            sleep(delay)
            delay *= 2


def _same_name(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _at_version(record: dict[str, Any]) -> Condition:
    version = record.get("row_version")
    if version is None:
        return Condition("attribute_exists(PK) AND attribute_not_exists(#rv)", names={"#rv": "row_version"})
    return Condition(
        "attribute_exists(PK) AND #rv = :rv", names={"#rv": "row_version"}, values={":rv": version}
    )


class CatalogRepository:
    """Connectors or schemas: ids from a project counter, names claimed case-insensitively."""

    kind = ""  # counter and name-claim kind, the item's `kind`, and the rendered id's prefix
    label = ""
    sort_prefix = ""
    json_fields: tuple[str, ...] = ()

    def __init__(
        self,
        table: Table,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.table = table
        self._sleep = sleep
        self._lease = Lease(table, clock, sleep)

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        raise NotImplementedError

    def partition(self, project: str) -> str:
        raise NotImplementedError

    # -- reads --------------------------------------------------------------------------------------
    def record(self, project: str, object_id: int) -> dict[str, Any] | None:
        """The stored attributes (a connector's config with its secret references), or None."""
        item = self.table.get(*self.key(project, object_id))
        if item is None or item.get("kind") != self.kind:
            return None
        return _record(item, self.json_fields)

    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None:
        claim = self.table.get(*keys.name_claim(project, self.kind, name))
        return self.record(project, int(claim["owner_id"])) if claim else None

    def page(
        self, project: str, limit: int | None, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        items, next_cursor = _page(
            self.table, self.partition(project), self.sort_prefix, self.kind, limit, cursor
        )
        return [_record(i, self.json_fields) for i in items], next_cursor

    # -- writes -------------------------------------------------------------------------------------
    def next_id(self, project: str) -> int:
        return self.table.next_number(*keys.counter(project, self.kind))

    def insert(self, project: str, object_id: int, attributes: dict[str, Any]) -> dict[str, Any]:
        """The item and its name claim in one transaction; NameTaken if the name is claimed."""
        now = timeutil.iso(timeutil.now())
        pk, sk = self.key(project, object_id)
        item = {
            **self._encode(attributes),
            "PK": pk,
            "SK": sk,
            "kind": self.kind,
            "id": object_id,
            "row_version": 1,
            "created_at": now,
            "updated_at": now,
        }
        absent = Condition("attribute_not_exists(PK)")
        operations = [
            self.table.put_op(item, absent),
            self.table.put_op(self._claim(project, attributes["name"], object_id), absent),
        ]
        try:
            _transact(self.table, operations, self._sleep)
        except TransactionCancelled as exc:
            if exc.reasons[1] == _FAILED:
                raise NameTaken(
                    f"{self.label} name '{attributes['name']}' is already taken in this project."
                ) from exc
            raise Conflict(f"{self.label} id {object_id} is already in use; retry.") from exc
        return _record(item, self.json_fields)

    def change(self, project: str, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `changes` (None removes) if the item is still as read; a rename moves the claim in
        the same transaction. NotFound, NameTaken, or Conflict when it changed meanwhile."""
        if not changes:
            return record
        object_id = int(record["id"])
        pk, sk = self.key(project, object_id)
        written = {**self._encode(changes), "updated_at": timeutil.iso(timeutil.now())}
        update = {"set_": written, "add": {"row_version": 1}, "condition": _at_version(record)}
        new_name = changes.get("name")
        if new_name is None or _same_name(new_name, record["name"]):
            try:
                item = self.table.update(pk, sk, **update)
            except ConditionFailed as exc:
                raise self._stale(project, object_id) from exc
            return _record(item, self.json_fields)
        old_pk, old_sk = keys.name_claim(project, self.kind, record["name"])
        owned = Condition("#owner = :id", names={"#owner": "owner_id"}, values={":id": object_id})
        operations = [
            self.table.update_op(pk, sk, **update),
            self.table.delete_op(old_pk, old_sk, condition=owned),
            self.table.put_op(
                self._claim(project, new_name, object_id), Condition("attribute_not_exists(PK)")
            ),
        ]
        try:
            _transact(self.table, operations, self._sleep)
        except TransactionCancelled as exc:
            if exc.reasons[2] == _FAILED:
                raise NameTaken(f"{self.label} name '{new_name}' is already taken in this project.") from exc
            raise self._stale(project, object_id) from exc
        changed = self.record(project, object_id)
        if changed is None:
            raise NotFound(f"{self.label} {ids.render(self.kind, object_id)} not found.")
        return changed

    def remove(self, project: str, record: dict[str, Any]) -> None:
        """Delete the item and free its name, unless a pipeline still uses it (InUse)."""
        object_id = int(record["id"])
        rendered = ids.render(self.kind, object_id)
        pk, sk = self.key(project, object_id)
        for _attempt in range(3):
            unused = Condition(
                "attribute_exists(PK) AND #name = :name AND (attribute_not_exists(#refs) OR #refs <= :zero)",
                names={"#name": "name", "#refs": "ref_count"},
                values={":name": record["name"], ":zero": 0},
            )
            claim_pk, claim_sk = keys.name_claim(project, self.kind, record["name"])
            owned = Condition("#owner = :id", names={"#owner": "owner_id"}, values={":id": object_id})
            try:
                _transact(
                    self.table,
                    [self.table.delete_op(pk, sk, unused), self.table.delete_op(claim_pk, claim_sk, owned)],
                    self._sleep,
                )
                return
            except TransactionCancelled:
                current = self.record(project, object_id)
                if current is None:
                    raise NotFound(f"{self.label} {rendered} not found.") from None
                references = int(current.get("ref_count") or 0)
                if references > 0:
                    raise InUse(used_by(self.kind, rendered, references)) from None
                record = current  # renamed meanwhile: delete under its new name
        raise Conflict(f"{self.label} {rendered} was changed by another request meanwhile; retry.")

    def lease(self, project: str, object_id: int) -> contextlib.AbstractContextManager[None]:
        rendered = ids.render(self.kind, object_id)
        return self._lease.hold(project, self.kind, str(object_id), f"{self.label} {rendered}")

    # -- internals ----------------------------------------------------------------------------------
    def _stale(self, project: str, object_id: int) -> Exception:
        rendered = ids.render(self.kind, object_id)
        if self.record(project, object_id) is None:
            return NotFound(f"{self.label} {rendered} not found.")
        return Conflict(f"{self.label} {rendered} was changed by another request meanwhile; retry.")

    def _claim(self, project: str, name: str, object_id: int) -> dict[str, Any]:
        pk, sk = keys.name_claim(project, self.kind, name)
        return {"PK": pk, "SK": sk, "kind": "name_claim", "owner_kind": self.kind, "owner_id": object_id}

    def _encode(self, attributes: dict[str, Any]) -> dict[str, Any]:
        encoded = dict(attributes)
        for name in self.json_fields:
            if encoded.get(name) is not None:
                encoded[name] = json.dumps(encoded[name], separators=(",", ":"), ensure_ascii=False)
        return encoded


class ConnectorRepository(CatalogRepository):
    """Connector items (`kind: connector`); `config` is kept as JSON text with a
    `{"$secret": pointer}` reference in place of each secret value."""

    kind = "connector"
    label = "Connector"
    sort_prefix = "CN#"
    json_fields = ("config",)

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        return keys.connector(project, object_id)

    def partition(self, project: str) -> str:
        return keys.connectors(project)


class SchemaRepository(CatalogRepository):
    """Schema items (`kind: schema`); `columns` is kept as JSON text."""

    kind = "schema"
    label = "Schema"
    sort_prefix = "SC#"
    json_fields = ("columns",)

    def key(self, project: str, object_id: int) -> tuple[str, str]:
        return keys.schema(project, object_id)

    def partition(self, project: str) -> str:
        return keys.schemas(project)


class VariableRepository:
    """One item per variable key; a secret variable's item holds the secret's version, not its value."""

    kind = "variable"

    def __init__(
        self,
        table: Table,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.table = table
        self._lease = Lease(table, clock, sleep)

    def get(self, project: str, key: str) -> dict[str, Any] | None:
        item = self.table.get(*keys.variable(project, key))
        return _record(item) if item and item.get("kind") == self.kind else None

    def page(
        self, project: str, limit: int | None, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        items, next_cursor = _page(self.table, keys.variables(project), "VAR#", self.kind, limit, cursor)
        return [_record(i) for i in items], next_cursor

    def put(
        self, project: str, key: str, attributes: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Create (current None) or replace the variable if it is still as read."""
        now = timeutil.iso(timeutil.now())
        pk, sk = keys.variable(project, key)
        item = {
            **attributes,
            "PK": pk,
            "SK": sk,
            "kind": self.kind,
            "row_version": int((current or {}).get("row_version") or 0) + 1,
            "created_at": (current or {}).get("created_at") or now,
            "updated_at": now,
        }
        condition = Condition("attribute_not_exists(PK)") if current is None else _at_version(current)
        try:
            self.table.put(item, condition)
        except ConditionFailed as exc:
            raise Conflict(f"Variable '{key}' was changed by another request meanwhile; retry.") from exc
        return _record(item)

    def remove(self, project: str, current: dict[str, Any]) -> None:
        key = current["key"]
        try:
            self.table.delete(*keys.variable(project, key), condition=_at_version(current))
        except ConditionFailed as exc:
            if self.get(project, key) is None:
                raise NotFound(f"Variable '{key}' not found.") from exc
            raise Conflict(f"Variable '{key}' was changed by another request meanwhile; retry.") from exc

    def lease(self, project: str, key: str) -> contextlib.AbstractContextManager[None]:
        return self._lease.hold(project, self.kind, key, f"Variable '{key}'")
