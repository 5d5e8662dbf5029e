"""Schemas (seed 003's `schemaId`): a named list of typed columns that a pipeline's target follows.

Column types are the documented portable names (`COLUMN_TYPES`) or any type DuckDB, which runs
Sluice's SQL, can parse (`DECIMAL(18,2)`, `VARCHAR[]`, `STRUCT(a INTEGER)`...).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from sluice.domain import ids
from sluice.domain.catalog import CatalogName, CatalogStore, Description, PlainText
from sluice.domain.views.catalog import schema_view
from sluice.errors import NameTaken, NotFound

KIND = "schema"
MAX_COLUMNS = 1000
COLUMN_TYPES = frozenset(
    {
        "string",
        "text",
        "varchar",
        "integer",
        "int",
        "smallint",
        "bigint",
        "float",
        "real",
        "double",
        "decimal",
        "numeric",
        "boolean",
        "bool",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "json",
        "uuid",
        "binary",
        "blob",
    }
)
# What a DuckDB type name may contain; checked before DuckDB sees it, which is lenient about trailers.
_TYPE_CHARACTERS = re.compile(r"^[A-Za-z][A-Za-z0-9_ ,()\[\]'\"]*$")


@lru_cache(maxsize=512)
def duckdb_knows(type_name: str) -> bool:
    import duckdb  # only for names outside the documented set: ~100 ms of import

    try:
        duckdb.type(type_name)
    except (duckdb.Error, ValueError, TypeError, RuntimeError):
        return False
    return True


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1, "[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _column_type(value: str) -> str:
    text = value.strip()
    if text.lower() in COLUMN_TYPES:
        return text.lower()
    if len(text) <= 200 and _TYPE_CHARACTERS.fullmatch(text) and _balanced(text) and duckdb_knows(text):
        return text
    raise PydanticCustomError(
        "column_type",
        "Unknown column type '{type}': use one of " + ", ".join(sorted(COLUMN_TYPES)) + ", or a DuckDB type.",
        {"type": text[:60]},
    )


ColumnType = Annotated[str, AfterValidator(_column_type)]


class Column(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[PlainText, Field(min_length=1, max_length=255)]
    type: ColumnType
    nullable: StrictBool = True
    description: Description | None = None


Columns = Annotated[list[Column], Field(min_length=1, max_length=MAX_COLUMNS)]
DisplayName = Annotated[PlainText, Field(min_length=1, max_length=150)]


def _unique_columns(columns: list[Column] | None) -> None:
    seen: set[str] = set()
    for column in columns or []:
        folded = column.name.strip().casefold()
        if folded in seen:
            raise PydanticCustomError(
                "duplicate_column", "Column '{name}' appears twice.", {"name": column.name[:60]}
            )
        seen.add(folded)


class SchemaCreate(BaseModel):
    """POST /api/v1/schemas `{name, displayName?, columns}` (displayName defaults to the name)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: CatalogName
    display_name: DisplayName | None = Field(default=None, alias="displayName")
    columns: Columns

    @model_validator(mode="after")
    def _valid(self) -> SchemaCreate:
        _unique_columns(self.columns)
        return self


class SchemaUpdate(BaseModel):
    """PUT /api/v1/schemas/{id}: given fields replace the stored ones (columns wholly)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: CatalogName | None = None
    display_name: DisplayName | None = Field(default=None, alias="displayName")
    columns: Columns | None = None

    @model_validator(mode="after")
    def _valid(self) -> SchemaUpdate:
        _unique_columns(self.columns)
        return self


def _stored_columns(columns: list[Column]) -> list[dict[str, Any]]:
    return [c.model_dump(exclude_none=True) for c in columns]


class Schemas:
    def __init__(self, store: CatalogStore):
        self.store = store

    def create(self, project: str, body: SchemaCreate) -> dict[str, Any]:
        if self.store.find_by_name(project, body.name) is not None:
            raise NameTaken(f"Schema name '{body.name}' is already taken in this project.")
        attributes = {
            "name": body.name,
            "display_name": body.display_name or body.name,
            "columns": _stored_columns(body.columns),
        }
        return schema_view(self.store.insert(project, self.store.next_id(project), attributes))

    def list(self, project: str, limit: int | None, cursor: str | None) -> tuple[list[dict], str | None]:
        records, next_cursor = self.store.page(project, limit, cursor)
        return [schema_view(r) for r in records], next_cursor

    def get(self, project: str, schema_id: str | int) -> dict[str, Any]:
        return schema_view(self._require(project, ids.parse(KIND, schema_id)))

    def update(self, project: str, schema_id: str | int, body: SchemaUpdate) -> dict[str, Any]:
        number = ids.parse(KIND, schema_id)
        current = self._require(project, number)
        changes: dict[str, Any] = {}
        if body.name is not None:
            found = self.store.find_by_name(project, body.name)
            if found is not None and int(found["id"]) != number:
                raise NameTaken(f"Schema name '{body.name}' is already taken in this project.")
            changes["name"] = body.name
        if body.display_name is not None:
            changes["display_name"] = body.display_name
        if body.columns is not None:
            changes["columns"] = _stored_columns(body.columns)
        return schema_view(self.store.change(project, current, changes))

    def delete(self, project: str, schema_id: str | int) -> None:
        number = ids.parse(KIND, schema_id)
        self.store.remove(project, self._require(project, number))

    def _require(self, project: str, number: int) -> dict[str, Any]:
        record = self.store.record(project, number)
        if record is None:
            raise NotFound(f"Schema {ids.render(KIND, number)} not found.")
        return record
