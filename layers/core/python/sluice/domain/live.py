"""Live events (seed 002's WebSocket, SPEC 5): a client connects to the WebSocket API with a token
(`?token=` or the Authorization header) and receives its own project's run events as JSON
messages `{type: "run.status" | "node.status" | "log", run_id, ...}`.

The run engine publishes the events on EventBridge (RUN_STATUS, NODE_STATUS, LOG_LINES); the
fan-out function posts each to the connections of the event's project, and only those. A
connection item lives at most CONNECTION_TTL_SECONDS (API Gateway's own limit is two hours).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sluice.auth.principal import Principal
from sluice.errors import Unauthorized

RUN_STATUS = "run.status"
NODE_STATUS = "node.status"
LOG_LINES = "log"
LIVE_EVENT_TYPES = (RUN_STATUS, NODE_STATUS, LOG_LINES)
CONNECTION_TTL_SECONDS = 2 * 3600


class Connections(Protocol):
    """Open WebSocket connections by project (sluice.store.live.ConnectionRepository)."""

    def add(self, project: str, connection_id: str, subject: str, expires_at: int) -> None: ...
    def remove(self, connection_id: str) -> None: ...
    def of_project(self, project: str, now: int) -> list[str]: ...


class Gone(Exception):
    """The connection is closed (API Gateway's GoneException)."""


class Poster(Protocol):
    """Posts a message to one connection (sluice.adapters.live.ConnectionPoster); Gone if closed."""

    def post(self, connection_id: str, message: dict[str, Any]) -> None: ...


def connect(
    connection_id: str,
    token: str | None,
    authenticate: Callable[[str], Principal],
    connections: Connections,
    now: int,
) -> Principal:
    """Accept a connection with a valid token (Unauthorized otherwise: the socket is refused)."""
    if not token:
        raise Unauthorized("Connect with ?token=<API key or JWT> or an 'Authorization: Bearer' header.")
    principal = authenticate(token)
    connections.add(principal.project, connection_id, principal.subject, now + CONNECTION_TTL_SECONDS)
    return principal


def messages_of(detail_type: str, detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The client messages of one run event: one per log line, else one."""
    body = {k: v for k, v in detail.items() if k != "project"}
    if detail_type == LOG_LINES:
        lines = body.pop("lines", None) or []
        return [{"type": LOG_LINES, **body, **line} for line in lines]
    return [{"type": detail_type, **body}]


def fan_out(
    detail_type: str, detail: Mapping[str, Any], connections: Connections, poster: Poster, now: int
) -> dict[str, int]:
    """Post the event's messages to every open connection of its project; closed ones are forgotten."""
    project = str(detail.get("project") or "")
    if detail_type not in LIVE_EVENT_TYPES or not project:
        return {"connections": 0, "sent": 0, "gone": 0}
    messages = messages_of(detail_type, detail)
    sent = gone = 0
    targets = connections.of_project(project, now)
    for connection_id in targets:
        try:
            for message in messages:
                poster.post(connection_id, message)
                sent += 1
        except Gone:
            connections.remove(connection_id)
            gone += 1
    return {"connections": len(targets), "sent": sent, "gone": gone}
