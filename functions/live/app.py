"""Live events (seed 002's WebSocket): the WebSocket API's `$connect` and `$disconnect`, and the
fan-out of run events from EventBridge to the connections of each event's project."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from sluice import composition
from sluice.auth.tokens import bearer_token
from sluice.config import settings
from sluice.domain import live
from sluice.domain.access import authenticate
from sluice.errors import Unauthorized

logger = Logger(service="live")


def _token(event: dict[str, Any]) -> str | None:
    query = event.get("queryStringParameters") or {}
    if query.get("token"):
        return str(query["token"])
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "authorization" and value:
            try:
                return bearer_token(value)
            except Unauthorized:
                return None
    return None


@logger.inject_lambda_context
def on_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    connection_id = str((event.get("requestContext") or {}).get("connectionId") or "")
    try:
        principal = live.connect(
            connection_id,
            _token(event),
            lambda token: authenticate(token, composition.api_keys(), settings().jwt_secret),
            composition.live_connections(),
            int(time.time()),
        )
    except Unauthorized as denial:
        logger.info("socket refused", extra={"reason": denial.detail})
        return {"statusCode": 401, "body": denial.detail}
    logger.info("socket connected", extra={"project": principal.project})
    return {"statusCode": 200}


@logger.inject_lambda_context
def on_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    connection_id = str((event.get("requestContext") or {}).get("connectionId") or "")
    if connection_id:
        composition.live_connections().remove(connection_id)
    return {"statusCode": 200}


@logger.inject_lambda_context
def on_run_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An EventBridge rule's target: `run.status`, `node.status` and `log` events."""
    return live.fan_out(
        str(event.get("detail-type") or ""),
        event.get("detail") or {},
        composition.live_connections(),
        composition.live_poster(),
        int(time.time()),
    )
