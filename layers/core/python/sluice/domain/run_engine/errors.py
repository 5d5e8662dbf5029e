"""What the run engine's adapters raise to it: exceptions the domain defines, so that a repository
translates a failed conditional write into one of these and the engine never imports the store."""

from __future__ import annotations

import re
from typing import Any

from sluice.domain.status import NodeStatus
from sluice.errors import Conflict, SluiceError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TriggerReplayed(Exception):
    """The Idempotency-Key was used before (RunItems.create); `claim` is what the first trigger
    stored: its request fingerprint and its response."""

    def __init__(self, claim: dict[str, Any]):
        super().__init__("idempotency key already used")
        self.claim = claim


class SlotsFull(Exception):
    """Every execution slot of the project is taken (Slots.claim_slot); the run stays pending in
    the queue."""


class NotPending(Exception):
    """The run is no longer pending (Slots.claim_slot): already dispatched, cancelled or gone."""


class FlowChildStarted(Conflict):
    """The flow's pipeline already has its child run in that level (RunItems.create; started by
    the hand-over or the reconciler)."""


class NodeFailed(SluiceError):
    """A node that could not finish. `detail` is DuckDB's or sqlglot's own message for SQL errors and a
    sentence naming the cause otherwise, never a traceback.

    The node engine (sluice.engine.execute_node) fills in the run's facts (timing, log lines,
    compiled SQL) before it re-raises, so the run engine can record the failed node run from the
    exception alone. Raised out of the ExecuteNode Lambda it is that Lambda's errorType, which
    fails the level's Map and so the run.
    """

    def __init__(self, detail: str, *, compiled_sql: str | None = None):
        super().__init__(clean_message(detail))
        self.node_id: str | None = None
        self.compiled_sql = compiled_sql
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.duration_ms: int | None = None
        self.logs: list[Any] = []

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "status": NodeStatus.failed.value,
            "error": self.detail,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "compiled_sql": self.compiled_sql,
            "logs": [line.to_dict() for line in self.logs],
        }


def clean_message(text: str) -> str:
    """sqlglot underlines the offending token with terminal escapes; a stored message has no use for them."""
    return _ANSI.sub("", str(text)).strip()
