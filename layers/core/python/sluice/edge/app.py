"""Builds each API area's FastAPI app and its Lambda handler, the same way for every area.

Domain errors become HTTP responses here and only here; every route is authenticated unless it
is listed as public; the handler wraps Mangum with Powertools logging, metrics and tracing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from mangum import Mangum
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sluice.auth.principal import Principal, Role
from sluice.domain import api_health
from sluice.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    SluiceError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

STATUS_OF_ERROR: dict[type[SluiceError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    ValidationFailed: 422,
    Unavailable: 503,
}

logger = Logger(service="sluice")


def status_of(error: SluiceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF_ERROR:
            return STATUS_OF_ERROR[cls]
    return 400


def principal(request: Request) -> Principal:
    """The caller, as the authorizer established it; a denial becomes 401 with its reason."""
    event = request.scope.get("aws.event") or {}
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    if context.get("denied"):
        raise Unauthorized(context["denied"])
    if "project" not in context or "role" not in context:
        raise Unauthorized("Request was not authenticated; send 'Authorization: Bearer <API key or JWT>'.")
    return Principal.from_context(context)


def requires(role: Role) -> Callable[..., Principal]:
    """A dependency giving the caller, after checking its role is at least `role`."""

    def dependency(caller: Principal = Depends(principal)) -> Principal:
        caller.require(role)
        return caller

    dependency.__name__ = f"requires_{role.name}"
    return dependency


viewer = requires(Role.viewer)
editor = requires(Role.editor)
admin = requires(Role.admin)


Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True)
class RequestBodyDoc:
    """What a body-reading dependency reads, for the OpenAPI document: its model and media types."""

    model: type[BaseModel]
    media_types: tuple[str, ...]
    required: bool = True


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def json_body(model: type[Body], *, empty_is_object: bool = False) -> Callable[..., Any]:
    """A dependency giving the request's JSON body as `model`, read after the caller is known.

    FastAPI parses a declared body before running any dependency, so a malformed body from an
    unauthenticated caller would answer 422 instead of 401. Declaring the body through this
    dependency after the role dependency keeps the order: 401, then 403, then 422. NaN and
    Infinity are refused (they could never be rendered back as JSON), and so is a body nested
    too deeply to parse. With `empty_is_object`, an empty body is read as `{}` (routes whose
    documented calls post no body, e.g. `POST /timeliness` or a trigger with defaults).
    """

    async def dependency(request: Request) -> Body:
        raw = await request.body()
        if empty_is_object and not raw.strip():
            return _validated(model, {})
        return _validated(model, parse_json(raw))

    dependency.__name__ = f"json_body_{model.__name__}"
    # The assembled OpenAPI document (sluice.local.openapi) reads the body's schema from here:
    # FastAPI cannot see a body read inside a dependency.
    dependency.request_body = RequestBodyDoc(model, ("application/json",), required=not empty_is_object)  # type: ignore[attr-defined]
    return dependency


def _invalid_json(reason: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "json_invalid", "loc": ("body",), "msg": "invalid JSON", "ctx": {"error": reason}}]
    )


def _validated(model: type[Body], data: Any) -> Body:
    return validated(model, data)


def validated(model: type[Body], data: Any, loc: tuple[Any, ...] = ()) -> Body:
    """`data` as `model`, or the 422 whose `loc` names the failing field under `body` (and `loc`,
    e.g. the index of an item in a batch)."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *loc, *e.get("loc", ()))} for e in exc.errors(include_url=False)]
        ) from exc


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, with json_body's guards (NaN, Infinity, nesting) and its 422."""
    if not raw.strip():
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Request body is required.", "input": None}]
        )
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _invalid_json(str(exc)) from exc


class AnswerRoute(APIRoute):
    """A route whose response model (sluice.edge.responses) validates and documents what its view
    produced, and serializes only the keys the view set: an absent key stays absent, not null."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(*args, **kwargs)


def area_router(prefix: str = "") -> APIRouter:
    """An area's router: its routes are AnswerRoutes."""
    return APIRouter(prefix=prefix, route_class=AnswerRoute)


def created_status(response: Any, created: bool) -> None:
    """An upsert answers 201 when it created the object and 200 when it found it."""
    response.status_code = 201 if created else 200


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    detail = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        message = error.get("msg", "invalid value")
        if error.get("type") == "json_invalid":
            message = "Request body is not valid JSON: " + str((error.get("ctx") or {}).get("error", message))
        detail.append({"loc": loc, "msg": message, "type": error.get("type", "value_error")})
    return detail


def create_app(area: str, routers: Iterable[Any]) -> FastAPI:
    app = FastAPI(title=f"Sluice {area}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(SluiceError)
    async def _domain_error(_request: Request, exc: SluiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such route."
        elif exc.status_code == 405:
            detail = "Method not allowed on this route."
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "Internal error; it has been logged."}, status_code=500)

    for router in routers:
        app.include_router(router)
    return app


def metrics_disabled() -> bool:
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "false").strip().lower() in ("1", "true", "yes")


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() not in ("1", "true", "yes")


def lambda_handler(app: FastAPI, area: str) -> Callable[[dict, Any], dict]:
    """The Lambda entry point of an area: Mangum under Powertools Logger, Metrics and Tracer."""
    area_logger = Logger(service=area)
    metrics = Metrics(namespace="Sluice", service=area)
    adapter = Mangum(app, lifespan="off")

    measured = not metrics_disabled()  # disabled metrics still pile up and print every 100 values

    def serve(event: dict, context: Any) -> dict:
        started = time.perf_counter()
        response = adapter(event, context)
        status = int(response.get("statusCode", 500))
        latency_ms = (time.perf_counter() - started) * 1000
        project = api_health.caller_project(event)
        if not measured:  # the local stack: the same figures, kept in this process (api-health)
            api_health.RECORDER.record(area, status, latency_ms, project)
            return response
        if project:  # per project, so api-health shows each project its own requests
            metrics.add_dimension(name="project", value=project)
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
        if status >= 500:
            metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        elif status >= 400:
            metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        return response

    if tracing_enabled():
        # Only when tracing is on: the X-Ray SDK costs ~100 ms of import (docs/performance.md).
        serve = Tracer(service=area).capture_lambda_handler(capture_response=False)(serve)
    if measured:  # wrapping when metrics are off only warns "no metrics" on every request
        serve = metrics.log_metrics(serve)
    handler = area_logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)(serve)
    handler.app = app  # type: ignore[attr-defined]  # in-process callers (benchmarks) reach the app
    return handler
