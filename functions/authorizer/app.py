"""HTTP API Lambda authorizer: resolves the bearer token to a project, role and subject.

It always authorizes, carrying either the principal or the reason for denial in its context,
because an HTTP API authorizer cannot give its own error body; the area's edge answers 401
with that reason (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from sluice import composition
from sluice.auth.tokens import bearer_token
from sluice.config import settings
from sluice.domain.access import authenticate
from sluice.errors import Unauthorized

logger = Logger(service="authorizer")


def _authorization_header(event: dict[str, Any]) -> str | None:
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            return value
    return None


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        token = bearer_token(_authorization_header(event))
        principal = authenticate(token, composition.api_keys(), settings().jwt_secret)
    except Unauthorized as denial:
        logger.info("denied", extra={"reason": denial.detail, "route": event.get("routeKey")})
        return {"isAuthorized": True, "context": {"denied": denial.detail}}
    return {"isAuthorized": True, "context": principal.to_context()}
