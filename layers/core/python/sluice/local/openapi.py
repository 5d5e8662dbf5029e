"""The one OpenAPI document of Sluice's HTTP API, assembled from the areas' FastAPI apps.

template.yaml says which routes exist (its HttpApi events: path, method, auth) and which function
serves each; each function's FastAPI app says what the route takes and answers. The document has
exactly the template's routes, each with its operation from the area's app (parameters, response
model), the request body its body dependency reads (FastAPI cannot see a body read inside a
dependency, so `sluice.edge.app.RequestBodyDoc` carries it), the bearer scheme on every route but
the public ones, and the error shape `{"detail": ...}` on every 4xx. `sluice openapi` prints it;
the copy committed as openapi.json is what API Gateway's definition export holds, and a test fails
when it is stale. The local gateway serves it at GET /openapi.json and a browser at GET /docs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sluice import __version__
from sluice.local.functions import FunctionRegistry
from sluice.local.template import ROOT, load_template, resources_of_type

COMMITTED_PATH = ROOT / "openapi.json"
SCHEMA_REF = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
ERROR_SCHEMA = {
    "title": "Error",
    "description": "Every 4xx and 5xx answer: a human sentence, or for 422 FastAPI's list of issues.",
    "type": "object",
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"$ref": SCHEMA_REF + "ValidationIssue"}},
            ]
        }
    },
    "required": ["detail"],
}
VALIDATION_ISSUE_SCHEMA = {
    "title": "ValidationIssue",
    "type": "object",
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
    "required": ["loc", "msg", "type"],
}
ERROR_RESPONSES = {
    "400": "A well-formed request that cannot be done.",
    "401": "Missing, expired, badly signed or revoked token.",
    "403": "The caller's role is too weak.",
    "404": "Unknown object (or one of another project).",
    "409": "Conflict: a name taken, or an illegal state change.",
    "413": "The body is larger than the route accepts.",
    "422": "A body, parameter or header that fails validation.",
    "429": "Too many requests; retry after a pause.",
}


def http_events(template: dict[str, Any]) -> Iterator[tuple[str, str, str, str, bool]]:
    """(event name, function, METHOD, path, authorized) of every HttpApi event, in template order."""
    for function, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event_name, event in (resource["Properties"].get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            authorized = ((props.get("Auth") or {}).get("Authorizer")) != "NONE"
            yield event_name, function, str(props.get("Method", "ANY")).upper(), props["Path"], authorized


def _json_schema_of(model: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request model's schema and the definitions it refers to (pendulum times as date-time)."""
    from pydantic.json_schema import GenerateJsonSchema

    class Generator(GenerateJsonSchema):
        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
            return {"type": "string", "format": "date-time"}  # the only arbitrary type in bodies

    schema = model.model_json_schema(  # type: ignore[attr-defined]
        ref_template=SCHEMA_REF + "{model}", schema_generator=Generator, mode="validation"
    )
    definitions = schema.pop("$defs", {})
    return schema, definitions


def _body_docs(route: Any) -> Iterator[Any]:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        doc = getattr(dependant.call, "request_body", None)
        if doc is not None:
            yield doc
        stack.extend(dependant.dependencies)


def _api_routes(routes: list[Any]) -> Iterator[Any]:
    """The APIRoutes of an app, also those inside included routers (FastAPI keeps them apart)."""
    for route in routes:
        if hasattr(route, "dependant"):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _rewrite_refs(value: Any, renames: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(SCHEMA_REF):
                name = item[len(SCHEMA_REF) :]
                out[key] = SCHEMA_REF + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(item, renames)
        return out
    if isinstance(value, list):
        return [_rewrite_refs(item, renames) for item in value]
    return value


class Assembler:
    """Collects the areas' operations and schemas into one document; schema names that two areas
    use for different shapes get the area's name in front, so no area's schema is lost."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, "ValidationIssue": VALIDATION_ISSUE_SCHEMA}
        self.paths: dict[str, dict[str, Any]] = {}

    def add_schemas(self, area: str, schemas: dict[str, Any]) -> dict[str, str]:
        renames = {}
        for name, schema in schemas.items():
            if name in ("HTTPValidationError", "ValidationError"):
                continue  # replaced by the Error shape every area really answers
            if name in self.schemas and self.schemas[name] != schema:
                candidate, n = f"{area}{name}", 2
                while candidate in self.schemas and self.schemas[candidate] != schema:
                    candidate, n = f"{area}{name}{n}", n + 1
                renames[name] = candidate
        for name, schema in schemas.items():
            if name in ("HTTPValidationError", "ValidationError"):
                continue
            self.schemas[renames.get(name, name)] = _rewrite_refs(schema, renames)
        return renames

    def document(self) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Sluice API",
                "version": __version__,
                "description": (
                    "Every surface of Sluice in one document: the Pipeline API (/api/v1/pipelines), "
                    "the Runs API (/api/pipelines, /api/runs, /api/...), the Flows API (/api/pipeline, "
                    "/api/flow) and Watcher's (/pipeline, /start_pipeline_execution, /address, ...). "
                    "Authenticate with `Authorization: Bearer <API key or JWT>`. Errors answer "
                    '`{"detail": "<sentence>"}`.'
                ),
            },
            "security": [{"bearerAuth": []}],
            "paths": {path: self.paths[path] for path in sorted(self.paths)},
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key (`df_key_...`) or a JWT (HS256) with sub, role, project, exp.",
                    }
                },
                "schemas": {name: self.schemas[name] for name in sorted(self.schemas)},
                "responses": {
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": {"$ref": SCHEMA_REF + "Error"}}},
                    }
                    for code, text in ERROR_RESPONSES.items()
                },
            },
        }


def _operation(
    app_operation: dict[str, Any],
    route: Any | None,
    event: str,
    area: str,
    renames: dict[str, str],
    authorized: bool,
) -> dict[str, Any]:
    operation = copy.deepcopy(app_operation)
    operation["operationId"] = event
    operation["tags"] = [area]
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError; the Error shape below replaces it
    if route is not None and route.dependant.response_param_name:
        _document_other_success(responses)
    for body in _body_docs(route) if route is not None else ():
        name = body.model.__name__
        schema = {"$ref": SCHEMA_REF + renames.get(name, name)}
        operation["requestBody"] = {
            "required": body.required,
            "content": {media: {"schema": schema} for media in body.media_types},
        }
    codes = ["400", "404", "409", "422", "429"]
    if authorized:
        codes[1:1] = ["401", "403"]
    else:
        operation["security"] = []
    if "requestBody" in operation:
        codes.append("413")
    for code in sorted(codes):
        responses.setdefault(code, {"$ref": f"#/components/responses/{code}"})
    return operation


ALTERNATE_SUCCESS = {
    "200": ("201", "Created: no object of that name existed."),
    "201": ("200", "Found: the object existed (an upsert), or an Idempotency-Key replays the first answer."),
    "202": ("200", "An Idempotency-Key replays the first answer, or a dry run answered at once."),
}


def _document_other_success(responses: dict[str, Any]) -> None:
    """A route that takes the Response sets its own status: an upsert answers 201 or 200, a trigger
    202 or 200 (SPEC 7 and 4). Both are documented, with the one schema the route answers."""
    declared = [code for code in responses if code.startswith("2")]
    if len(declared) != 1 or declared[0] not in ALTERNATE_SUCCESS:
        return
    other, description = ALTERNATE_SUCCESS[declared[0]]
    responses.setdefault(other, {**responses[declared[0]], "description": description})


def assemble(
    registry: FunctionRegistry | None = None, template: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole API's document. Raises LookupError when a template route has no route in its app."""
    template = template or (registry.template if registry else load_template())
    registry = registry or FunctionRegistry(template)
    assembler = Assembler()
    area_docs: dict[str, tuple[dict[str, Any], dict[tuple[str, str], Any]]] = {}
    body_names: dict[str, dict[str, str]] = {}
    missing = []
    for event, function, method, path, authorized in http_events(template):
        area = function.removesuffix("Function")
        if function not in area_docs:
            app = registry.handler(function).app  # type: ignore[attr-defined]
            doc = app.openapi()
            routes = {(m.lower(), r.path): r for r in _api_routes(app.routes) for m in r.methods}
            renames = assembler.add_schemas(area, (doc.get("components") or {}).get("schemas") or {})
            area_docs[function] = (_rewrite_refs(doc, renames), routes)
            body_names[function] = {}
            for route in routes.values():
                for body in _body_docs(route):
                    schema, definitions = _json_schema_of(body.model)
                    definitions[body.model.__name__] = schema
                    body_names[function].update(assembler.add_schemas(area, definitions))
        doc, routes = area_docs[function]
        verbs = METHODS if method == "ANY" else (method.lower(),)
        found = False
        for verb in verbs:
            app_operation = (doc.get("paths") or {}).get(path, {}).get(verb)
            if app_operation is None:
                continue
            found = True
            assembler.paths.setdefault(path, {})[verb] = _operation(
                app_operation, routes.get((verb, path)), event, area, body_names[function], authorized
            )
        if not found:
            missing.append(f"{method} {path} ({function})")
    if missing:
        raise LookupError("template.yaml routes no area's app serves: " + "; ".join(missing))
    return assembler.document()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def committed() -> dict[str, Any] | None:
    return json.loads(COMMITTED_PATH.read_text()) if COMMITTED_PATH.is_file() else None


class ServedDocument:
    """The document the local gateway serves: assembled from the running stack's own handlers at the
    first request (so it is the code that answers, not a file that may be stale), then kept."""

    def __init__(self, registry: FunctionRegistry):
        self.registry = registry
        self._document: str | None = None

    def __call__(self) -> str:
        if self._document is None:
            self._document = render(assemble(self.registry))
        return self._document


def docs_page(openapi_url: str = "/openapi.json") -> str:
    """A Swagger UI page over the document (its scripts come from the jsDelivr CDN, as FastAPI's own)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    return bytes(get_swagger_ui_html(openapi_url=openapi_url, title="Sluice API").body).decode()


def write(path: Path, builder: Callable[[], dict[str, Any]] = assemble) -> None:
    path.write_text(render(builder()))
