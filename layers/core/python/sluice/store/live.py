"""Open WebSocket connections (live events): one item per connection in its project's partition,
and one by connection id (a `$disconnect` names only the connection), both expiring by TTL."""

from __future__ import annotations

import contextlib

from sluice.store import keys
from sluice.store.table import Table


class ConnectionRepository:
    def __init__(self, table: Table):
        self.table = table

    def add(self, project: str, connection_id: str, subject: str, expires_at: int) -> None:
        pk, sk = keys.live_connection(project, connection_id)
        bpk, bsk = keys.live_connection_owner(connection_id)
        self.table.transact(
            [
                self.table.put_op(
                    {
                        "PK": pk,
                        "SK": sk,
                        "kind": "live_connection",
                        "subject": subject,
                        "expires_at": expires_at,
                    }
                ),
                self.table.put_op(
                    {"PK": bpk, "SK": bsk, "kind": "live_owner", "project": project, "expires_at": expires_at}
                ),
            ]
        )

    def remove(self, connection_id: str) -> None:
        owner = self.table.delete(*keys.live_connection_owner(connection_id))
        if owner and owner.get("project"):
            with contextlib.suppress(Exception):
                self.table.delete(*keys.live_connection(str(owner["project"]), connection_id))

    def of_project(self, project: str, now: int) -> list[str]:
        """The project's connections not yet expired (TTL deletes lazily): one Query."""
        return [
            str(item["SK"])
            for item in self.table.query_all(keys.live_connections(project))
            if int(item.get("expires_at") or 0) > now
        ]
