"""API keys: stored by SHA-256 only, found by hash (GSI1) for the authorizer."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any

from sluice import timeutil
from sluice.errors import Conflict, NotFound
from sluice.store import keys
from sluice.store.table import Condition, ConditionFailed, Table


class _KeyLocations:
    """Where each key hash was last found: (PK, SK) of its item, for a warm container's next request.

    A hash names one secret and a key item never moves, so the location cannot go wrong, only stale
    (the key revoked, or a new table): the consistent read of the item then misses and the GSI is
    asked again. Bounded, least recently used first out.
    """

    def __init__(self, size: int = 1024):
        self.size = size
        self.found: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.lock = Lock()

    def get(self, key_hash: str) -> tuple[str, str] | None:
        with self.lock:
            location = self.found.get(key_hash)
            if location is not None:
                self.found.move_to_end(key_hash)
            return location

    def put(self, key_hash: str, location: tuple[str, str]) -> None:
        with self.lock:
            self.found[key_hash] = location
            self.found.move_to_end(key_hash)
            while len(self.found) > self.size:
                self.found.popitem(last=False)

    def forget(self, key_hash: str) -> None:
        with self.lock:
            self.found.pop(key_hash, None)


_LOCATIONS = _KeyLocations()


class ApiKeyRepository:
    def __init__(self, table: Table):
        self.table = table

    def create(self, project: str, key_id: str, name: str, role: str, key_hash: str, created_by: str) -> dict:
        pk, sk = keys.api_key(project, key_id)
        gpk, gsk = keys.api_key_hash_index(key_hash)
        item = {
            "PK": pk,
            "SK": sk,
            "GSI1PK": gpk,
            "GSI1SK": gsk,
            "kind": "api_key",
            "id": key_id,
            "project": project,
            "name": name,
            "role": role,
            "key_hash": key_hash,
            "created_by": created_by,
            "created_at": timeutil.iso(timeutil.now()),
        }
        try:
            self.table.put(item, Condition("attribute_not_exists(PK)"))
        except ConditionFailed as exc:
            raise Conflict(f"API key id {key_id} already exists.") from exc
        return _record(item)

    def find_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The live key with this hash: the GSI finds it, a consistent read proves it is not revoked.

        A warm container remembers where the hash was found, so a known key costs one GetItem."""
        location = _LOCATIONS.get(key_hash)
        if location is not None:
            item = self.table.get(*location, consistent=True)
            if item is not None and item.get("key_hash") == key_hash:
                return item
            _LOCATIONS.forget(key_hash)
        gpk, _ = keys.api_key_hash_index(key_hash)
        page = self.table.query(gpk, index="GSI1", limit=1)
        if not page.items:
            return None
        found = page.items[0]
        item = self.table.get(found["PK"], found["SK"], consistent=True)
        if item is not None:
            _LOCATIONS.put(key_hash, (found["PK"], found["SK"]))
        return item

    def list(self, project: str) -> list[dict]:
        return [_record(i) for i in self.table.query_all(keys.api_keys(project), consistent=True)]

    def revoke(self, project: str, key_id: str) -> None:
        pk, sk = keys.api_key(project, key_id)
        try:
            self.table.delete(pk, sk, Condition("attribute_exists(PK)"))
        except ConditionFailed as exc:
            raise NotFound(f"API key {key_id} not found.") from exc

    def exists(self, project: str, key_id: str) -> bool:
        pk, sk = keys.api_key(project, key_id)
        return self.table.get(pk, sk) is not None


def _record(item: dict) -> dict:
    """The key's stored attributes (its hash among them; views drop it), without the table's keys."""
    return {k: v for k, v in item.items() if k not in ("PK", "SK", "GSI1PK", "GSI1SK")}
