"""Connectors, schemas and variables (`/api/v1/connectors`, `/schemas`, `/variables`): single objects
as `{"data": {...}}`, lists as `{"data": [...]}` with `pagination` when a page was asked for."""

from __future__ import annotations

from sluice.edge.responses import Answer, Json


class Pagination(Answer):
    limit: int | None = None
    cursor: str | None = None
    hasMore: bool  # seed 003's name


class Connector(Answer):
    id: str
    name: str
    type: str
    config: dict[str, Json]  # secret values are always `********`
    secretFields: list[str]  # seed 003's name
    pipelineCount: int
    created_at: str | None = None
    updated_at: str | None = None


class Column(Answer):
    name: str
    type: str
    nullable: bool
    description: str | None = None


class Schema(Answer):
    id: str
    name: str
    displayName: str  # seed 003's name
    columns: list[Column]
    pipelineCount: int
    created_at: str | None = None
    updated_at: str | None = None


class Variable(Answer):
    key: str
    value: str  # `********` for a secret variable
    secret: bool
    description: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class ConnectorData(Answer):
    data: Connector


class Connectors(Answer):
    data: list[Connector]
    pagination: Pagination | None = None


class SchemaData(Answer):
    data: Schema


class Schemas(Answer):
    data: list[Schema]
    pagination: Pagination | None = None


class VariableData(Answer):
    data: Variable


class Variables(Answer):
    data: list[Variable]
    pagination: Pagination | None = None
