"""What connectors, schemas and variables share: name rules, list pages, and the store port.

Connectors and schemas are seed 003's references of a pipeline (`connectorId`, `schemaId`):
objects with an integer id from a project counter, rendered `connector-<n>` / `schema-<n>`, a
name unique in the project without regard to case, and a `ref_count` that pipeline writes keep
(`ADD ref_count`), so that deleting one still in use is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

MAX_NAME_CHARS = 150
MAX_PAGE = 100
DEFAULT_PAGE = 20
# Letters and digits of any script, `_`, then also spaces, `.` and `-`; no slashes, no control
# characters, nothing that needs escaping in a URL path segment but a space.
NAME_PATTERN = re.compile(r"^\w[\w .-]*$")


def _name(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # pydantic reports the wrong type
    text = value.strip()
    if not text or len(text) > MAX_NAME_CHARS:
        raise PydanticCustomError(
            "name_length", f"A name is 1 to {MAX_NAME_CHARS} characters (spaces trimmed)."
        )
    if not NAME_PATTERN.fullmatch(text):
        raise PydanticCustomError(
            "name_characters",
            "A name starts with a letter, digit or '_' and holds only letters, digits, spaces, '_', '.' and '-'.",
        )
    return text


CatalogName = Annotated[str, BeforeValidator(_name)]
Description = Annotated[str, Field(max_length=1000)]


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise PydanticCustomError("control_characters", "Control characters are not allowed here.")
    return value


PlainText = Annotated[str, AfterValidator(_no_control_characters)]


def used_by(kind: str, rendered_id: str, count: int) -> str:
    """The 409 sentence of a delete refused because pipelines still reference the object."""
    noun = "pipeline" if count == 1 else "pipelines"
    return f"{kind} {rendered_id} is used by {count} {noun}; remove it from them before deleting it."


class CatalogStore(Protocol):
    """A repository of connectors or schemas (sluice.store.catalog). Records are the stored
    attributes (a connector's `config` with secret references); views render them."""

    def record(self, project: str, object_id: int) -> dict[str, Any] | None: ...
    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None: ...
    def page(
        self, project: str, limit: int | None, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    def next_id(self, project: str) -> int: ...
    def insert(self, project: str, object_id: int, attributes: dict[str, Any]) -> dict[str, Any]: ...
    def change(self, project: str, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]: ...
    def remove(self, project: str, record: dict[str, Any]) -> None: ...
    def lease(self, project: str, object_id: int) -> AbstractContextManager[None]: ...


Clock = Callable[[], float]
