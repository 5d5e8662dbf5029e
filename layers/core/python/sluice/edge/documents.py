"""Request bodies in JSON or, where seed 001 allows it, YAML: parsed into plain JSON values.

YAML is read with the safe loader after a pass over its event stream that refuses anchors and
aliases outright (so a billion-laughs document is refused at its first anchor, never expanded)
and nesting deeper than JSON bodies ever need. Values YAML has and JSON has not are turned into
JSON (dates become ISO 8601 strings) or refused (binary, sets, NaN, non-string keys).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from sluice import timeutil
from sluice.edge.app import RequestBodyDoc
from sluice.errors import ValidationFailed
from sluice.lazy import LazyModule

YAML_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64
yaml = LazyModule("yaml")  # only YAML bodies pay for it


def _loader() -> Any:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


Body = TypeVar("Body", bound=BaseModel)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_yaml(content_type: str | None) -> bool:
    return media_type(content_type) in YAML_MEDIA_TYPES


def read_document(raw: bytes, content_type: str | None) -> Any:
    """The body as JSON values: YAML when the content type says so, JSON otherwise."""
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationFailed(f"Request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB.")
    if not raw.strip():
        raise ValidationFailed("Request body is required.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("Request body is not UTF-8 text.") from exc
    return read_yaml(text) if is_yaml(content_type) else read_json(text)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def read_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValidationFailed("Request body is not valid JSON: it is nested too deeply.") from exc
    except ValueError as exc:
        raise ValidationFailed(
            f"Request body is not valid JSON: {exc}. "
            "(YAML is accepted with Content-Type: application/yaml or text/yaml.)"
        ) from exc


def read_yaml(text: str) -> Any:
    try:
        _refuse_references(text)
        loaded = yaml.load(text, Loader=_loader())  # noqa: S506 - the safe loader, after the checks above
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "it is not YAML"
        raise ValidationFailed(f"Request body is not valid YAML{where}: {problem}.") from exc
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"Request body is not valid YAML: {exc}.") from exc
    return _as_json(loaded)


def _refuse_references(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_loader()):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line = event.start_mark.line + 1
            raise ValidationFailed(
                f"YAML anchors and aliases (& and *) are not accepted (line {line}); write the values out."
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                line = event.start_mark.line + 1
                raise ValidationFailed(
                    f"YAML is nested more than {MAX_YAML_DEPTH} levels deep (line {line})."
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationFailed(f"YAML mapping keys must be strings; quote the key {key!r}.")
            converted[key] = _as_json(item)
        return converted
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailed("YAML .nan and .inf are not numbers JSON can carry.")
    if isinstance(value, _dt.datetime):
        return timeutil.iso(value if value.tzinfo else value.replace(tzinfo=_dt.UTC))
    if isinstance(value, _dt.date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValidationFailed(
        f"YAML values of type {type(value).__name__} (e.g. !!binary, !!set) are not accepted."
    )


def document_body(model: type[Body]) -> Callable[..., Any]:
    """A dependency giving a JSON or YAML body as `model`, read after the caller is known (as
    `sluice.edge.app.json_body` does for JSON): 401, then 403, then 422."""

    async def dependency(request: Request) -> Body:
        document = read_document(await request.body(), request.headers.get("content-type"))
        if not isinstance(document, dict):
            raise ValidationFailed("Request body must be an object (a JSON object or a YAML mapping).")
        try:
            return model.model_validate(document)
        except PydanticValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
            ) from exc

    dependency.__name__ = f"document_body_{model.__name__}"
    dependency.request_body = RequestBodyDoc(  # type: ignore[attr-defined]
        model, ("application/json", "application/yaml", "text/yaml")
    )
    return dependency
