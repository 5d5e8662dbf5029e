"""The one error a node run ends with: why it failed, in words a pipeline author can act on."""

from __future__ import annotations

import re
from typing import Any

from sluice.errors import SluiceError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class NodeFailed(SluiceError):
    """A node that could not finish. `detail` is DuckDB's or sqlglot's own message for SQL errors and a
    sentence naming the cause otherwise, never a traceback.

    execute_node fills in the run's facts (timing, log lines, compiled SQL) before it re-raises, so the
    orchestration layer can record the failed node run from the exception alone.
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
            "status": "failed",
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
