"""Drive an area's Lambda handler in-process with API Gateway HTTP API (payload 2.0) events.

`load_area("pipelines")` imports functions/pipelines/app.py under a unique module name (every
area's module is called `app`); `invoke(handler, "POST", "/pipeline", body={...}, principal=p)`
returns `(status, json_or_text)`.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sluice.auth.principal import Principal

ROOT = Path(__file__).resolve().parents[1]


def load_area(area: str) -> ModuleType:
    """The function module of an area (functions/<area>/app.py), imported once per process."""
    name = f"sluice_function_{area}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / area / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    """The attributes of a Lambda context object that Powertools and Mangum read."""

    function_name: str = "sluice-test-function"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:sluice-test-function"
    aws_request_id: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/sluice-test-function"
    log_stream_name: str = "test"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def http_event(
    method: str,
    path: str,
    body: Any = None,
    principal: Principal | None = None,
    headers: dict[str, str] | None = None,
    raw_body: str | bytes | None = None,
    query: dict[str, str] | str | None = None,
    route_key: str | None = None,
) -> dict[str, Any]:
    """A payload-format-2.0 event as the HTTP API sends it after the Lambda authorizer ran."""
    all_headers = {"host": "api.test", "user-agent": "tests"}
    encoded = False
    text: str | None = None
    if raw_body is not None:
        if isinstance(raw_body, bytes):
            text, encoded = base64.b64encode(raw_body).decode(), True
        else:
            text = raw_body
        all_headers["content-type"] = "application/json"
    elif body is not None:
        text = json.dumps(body)
        all_headers["content-type"] = "application/json"
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    if isinstance(query, dict):
        from urllib.parse import urlencode

        raw_query = urlencode(query)
    else:
        raw_query = query or ""
    request_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method.upper()} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "testapi",
            "domainName": "api.test",
            "domainPrefix": "api",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "tests",
            },
            "requestId": request_id,
            "routeKey": route_key or f"{method.upper()} {path}",
            "stage": "$default",
            "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1704067200000,
        },
        "isBase64Encoded": encoded,
    }
    if raw_query:
        from urllib.parse import parse_qsl

        event["queryStringParameters"] = dict(parse_qsl(raw_query))
    if text is not None:
        event["body"] = text
    if principal is not None:
        event["requestContext"]["authorizer"] = {"lambda": principal.to_context()}
    return event


def _ensure_event_loop() -> None:
    # Mangum runs the app on the thread's event loop; threads other than the main one have none.
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def invoke(
    handler: Any,
    method: str,
    path: str,
    body: Any = None,
    principal: Principal | None = None,
    headers: dict[str, str] | None = None,
    raw_body: str | bytes | None = None,
    query: dict[str, str] | str | None = None,
) -> tuple[int, Any]:
    """Call the handler as Lambda would; the response body is parsed as JSON when it is JSON.

    Safe from several threads at once (each stands for its own Lambda instance).
    """
    _ensure_event_loop()
    event = http_event(method, path, body, principal, headers, raw_body, query)
    response = handler(event, LambdaContext())
    text = response.get("body") or ""
    if response.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    try:
        payload: Any = json.loads(text) if text else None
    except ValueError:
        payload = text
    return int(response["statusCode"]), payload
