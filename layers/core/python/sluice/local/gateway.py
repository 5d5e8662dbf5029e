"""The local API Gateway: serves template.yaml's HttpApi routes as API Gateway HTTP API v2 would.

It matches the route (exact paths before parameters, `{proxy+}` greedy), builds the payload
format 2.0 event, runs the Lambda authorizer on authorized routes, invokes the function's
handler and returns its response. Unknown routes answer 404 as API Gateway does.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sluice.local.functions import ACCOUNT, REGION
from sluice.local.template import Route

log = logging.getLogger("sluice.local")
API_ID = "local"
DIAGNOSTICS_PATH = "/_local/stats"  # not an API route: the local gateway's own, like /health of a server
OPENAPI_PATH = "/openapi.json"  # the API's own document (sluice.local.openapi), no auth
DOCS_PATH = "/docs"  # a browser over it
WEBSOCKET_PATH = "/api/ws"  # the WebSocket API (live events), on the gateway's port
CONNECTIONS_PREFIX = "/@connections/"  # API Gateway's management API: post to a connection
TEXT_TYPES = ("json", "yaml", "text/", "xml", "x-www-form-urlencoded", "javascript", "ndjson")


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    specificity: tuple[int, int, int]

    @property
    def route_key(self) -> str:
        return f"{self.route.method} {self.route.path}"


def compile_route(route: Route) -> CompiledRoute:
    regex, params = "", []
    segments = [s for s in route.path.strip("/").split("/") if s]
    greedy = 0
    for segment in segments:
        match = re.fullmatch(r"\{([A-Za-z0-9_]+)(\+?)\}", segment)
        if match and match.group(2):
            regex += rf"/(?P<{match.group(1)}>.+)"
            greedy = 1
            params.append(match.group(1))
        elif match:
            regex += rf"/(?P<{match.group(1)}>[^/]+)"
            params.append(match.group(1))
        else:
            regex += "/" + re.escape(segment)
    literal = sum(1 for s in segments if not s.startswith("{"))
    # API Gateway prefers the most specific route: more literal segments, no greedy, exact method.
    specificity = (literal, -greedy, 1 if route.method != "ANY" else 0)
    return CompiledRoute(route, re.compile("^" + (regex or "/") + "/?$"), tuple(params), specificity)


class Gateway:
    """An ASGI app; `invoke(logical_id, event)` runs a function's handler in this process."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Callable[[str, dict[str, Any]], Any],
        authorizer: str | None,
        diagnostics: Callable[[bool], dict[str, Any]] | None = None,
        openapi: Callable[[], str] | None = None,
        docs: Callable[[], str] | None = None,
        websocket: dict[str, str] | None = None,
    ):
        self.routes = sorted((compile_route(r) for r in routes), key=lambda c: c.specificity, reverse=True)
        self.invoke = invoke
        self.authorizer = authorizer
        self.diagnostics = diagnostics  # GET /_local/stats: the local stack's own figures, no data
        self.openapi = openapi  # GET /openapi.json: the assembled document, as text
        self.docs = docs  # GET /docs: an HTML page over it
        self.websocket = websocket or {}  # WebSocket route key -> function ($connect, $disconnect)
        self._sockets: dict[str, asyncio.Queue[str | None]] = {}  # open connections' outboxes

    def match(self, method: str, path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        path_matches = []
        for compiled in self.routes:
            found = compiled.pattern.match(path)
            if found:
                path_matches.append((compiled, found.groupdict()))
        for compiled, params in path_matches:
            if compiled.route.method in (method, "ANY"):
                return compiled, params
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        method, path = request.method.upper(), request.url.path
        if path == DIAGNOSTICS_PATH and method == "GET" and self.diagnostics is not None:
            reset = request.query_params.get("reset") == "1"  # start a new measurement window
            return JSONResponse(await to_thread.run_sync(self.diagnostics, reset))
        if path == OPENAPI_PATH and method == "GET" and self.openapi is not None:
            return Response(await to_thread.run_sync(self.openapi), media_type="application/json")
        if path == DOCS_PATH and method == "GET" and self.docs is not None:
            return Response(self.docs(), media_type="text/html")
        if path.startswith(CONNECTIONS_PREFIX) and self.websocket:
            return await self._manage_connection(method, path.removeprefix(CONNECTIONS_PREFIX), request)
        matched = self.match(method, path)
        if matched is None:
            return JSONResponse(
                {"message": "Not Found", "detail": f"No route for {method} {path}."}, status_code=404
            )
        compiled, params = matched
        body = await request.body()
        event = build_event(request, compiled.route_key, params, body)
        if compiled.route.authorized and self.authorizer:
            verdict = await to_thread.run_sync(self.invoke, self.authorizer, authorizer_event(event))
            if not verdict or not verdict.get("isAuthorized"):
                return JSONResponse({"message": "Forbidden"}, status_code=403)
            event["requestContext"]["authorizer"] = {"lambda": verdict.get("context") or {}}
        try:
            result = await to_thread.run_sync(self.invoke, compiled.route.function, event)
        except Exception:  # a crashed function is a 500 from API Gateway, never a traceback
            log.exception("%s failed on %s", compiled.route.function, compiled.route_key)
            return JSONResponse({"message": "Internal Server Error"}, status_code=500)
        return to_response(result)

    # ---------------------------------------------------------------- the WebSocket API
    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A WebSocket API connection as API Gateway runs one: `$connect` decides (a status other
        than 200 refuses the handshake with it), messages posted to `/@connections/{id}` are sent,
        `$disconnect` runs when either side closes."""
        connect = self.websocket.get("$connect")
        if scope.get("path") != WEBSOCKET_PATH or connect is None:
            await send({"type": "websocket.close", "code": 1008})
            return
        await receive()  # websocket.connect
        connection_id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        query = dict(parse_qsl((scope.get("query_string") or b"").decode()))
        event = websocket_event("$connect", "CONNECT", connection_id, headers, query)
        try:
            result = await to_thread.run_sync(self.invoke, connect, event)
        except Exception:
            log.exception("%s failed on $connect", connect)
            result = {"statusCode": 500}
        status = int((result or {}).get("statusCode") or 500)
        if status != 200:
            if "websocket.http.response" in (scope.get("extensions") or {}):
                body = str((result or {}).get("body") or "Forbidden").encode()
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._sockets[connection_id] = outbox
        await send({"type": "websocket.accept"})

        async def deliver() -> None:
            while True:
                text = await outbox.get()
                if text is None:
                    await send({"type": "websocket.close", "code": 1000})
                    return
                await send({"type": "websocket.send", "text": text})

        sender = asyncio.create_task(deliver())
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
        finally:
            self._sockets.pop(connection_id, None)
            sender.cancel()
            disconnect = self.websocket.get("$disconnect")
            if disconnect is not None:
                gone = websocket_event("$disconnect", "DISCONNECT", connection_id, {}, {})
                try:
                    await to_thread.run_sync(self.invoke, disconnect, gone)
                except Exception:
                    log.exception("%s failed on $disconnect", disconnect)

    async def _manage_connection(self, method: str, connection_id: str, request: Request) -> Response:
        """POST (send the body), GET (is it open) or DELETE (close) one connection; 410 when gone."""
        outbox = self._sockets.get(connection_id)
        if outbox is None:
            return JSONResponse(
                {"message": f"Connection {connection_id} is gone."},
                status_code=410,
                headers={"x-amzn-ErrorType": "GoneException"},
            )
        if method == "POST":
            outbox.put_nowait((await request.body()).decode())
            return Response(status_code=200)
        if method == "DELETE":
            outbox.put_nowait(None)
            return Response(status_code=204)
        return JSONResponse({"connectionId": connection_id})


def websocket_event(
    route_key: str, event_type: str, connection_id: str, headers: dict[str, str], query: dict[str, str]
) -> dict[str, Any]:
    """A WebSocket API event as API Gateway gives it to a Lambda integration."""
    return {
        "headers": headers,
        "queryStringParameters": query or None,
        "isBase64Encoded": False,
        "requestContext": {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": connection_id,
            "apiId": API_ID,
            "stage": "api",
            "domainName": headers.get("host", "localhost"),
            "requestId": str(uuid.uuid4()),
            "connectedAt": int(time.time() * 1000),
            "accountId": ACCOUNT,
        },
    }


def build_event(request: Request, route_key: str, params: dict[str, str], body: bytes) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers and key != "cookie" else value
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    raw_query = request.url.query
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = headers.get("content-type", "")
    text_body = not body or any(t in content_type for t in TEXT_TYPES)
    if text_body:
        try:
            encoded_body, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            encoded_body, is_base64 = base64.b64encode(body).decode(), True
    else:
        encoded_body, is_base64 = base64.b64encode(body).decode(), True
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.url.path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": API_ID,
            "http": {
                "method": request.method.upper(),
                "path": request.url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.client.host if request.client else "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = encoded_body
    return event


def authorizer_event(event: dict[str, Any]) -> dict[str, Any]:
    method = event["requestContext"]["http"]["method"]
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/$default/{method}{event['rawPath']}",
        "identitySource": [event["headers"]["authorization"]] if "authorization" in event["headers"] else [],
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": event["headers"],
        "queryStringParameters": event.get("queryStringParameters", {}),
        "pathParameters": event.get("pathParameters", {}),
        "requestContext": event["requestContext"],
    }


def to_response(result: Any) -> Response:
    """A Lambda proxy result (payload 2.0) as an HTTP response."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway treats a bare result as a JSON 200 body.
        import json

        return Response(json.dumps(result), status_code=200, media_type="application/json")
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    response = Response(content=content, status_code=int(result["statusCode"]))
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.append(name, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.append("set-cookie", cookie)
    return response
