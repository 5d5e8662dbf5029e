"""Pipeline definitions on `/api/v1/pipelines` (SPEC 3, seeds 001 and 003): the one rendering of a
pipeline with both graph spellings and Watcher's fields, its lists, revisions and one revision."""

from __future__ import annotations

from pydantic import Field

from sluice.edge.responses import Answer, Json, Number, OpenAnswer
from sluice.edge.responses.registry import WatcherPipeline


class GraphNode(Answer):
    id: str
    nodeType: str  # seed 003's name
    label: str | None = None
    config: dict[str, Json]
    position: Json = None


class GraphEdge(Answer):
    source: str
    target: str
    label: str | None = None


class GraphItem(OpenAnswer):
    """Seed 001's item of `sources`, `transforms` or `destinations`: `{name, type, ...config}`,
    with `inputs` for transforms and destinations (a config's own keys pass through)."""

    name: Json
    type: Json = None
    inputs: list[Json] | None = None
    label: Json = None
    position: Json = None


class BothSpellings(Answer):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    sources: list[GraphItem]
    transforms: list[GraphItem]
    destinations: list[GraphItem]


class LastRun(Answer):
    """Seed 001's `last_run`."""

    id: str
    status: str
    started_at: str | None = None
    duration_ms: int | None = None
    rows_loaded: Number | None = None


class ConnectorReference(Answer):
    id: str
    name: str
    type: str | None = None


class SchemaReference(Answer):
    id: str
    name: str
    displayName: str  # seed 003's name


class ExecutionSettings(Answer):
    batchSize: int | None = None  # seed 003's names
    parallelism: int | None = None
    partitioning: Json = None
    mode: str | None = None


class Definition(BothSpellings, WatcherPipeline):
    """A pipeline on `/api/v1`: SPEC 3's fields, both graph spellings, and Watcher's fields."""

    id: str  # type: ignore[assignment]  # `pipeline-<n>` here, Watcher's integer there
    description: str | None = None
    version: str | None = None
    status: str
    schedule: str | None = None
    next_run_at: str | None = None
    last_run: LastRun | None = None
    lastRunAt: str | None = None  # seed 003's names
    lastRunStatus: str | None = None
    connectorId: str | None = None
    schemaId: str | None = None
    connector: ConnectorReference | None = None
    schema_: SchemaReference | None = Field(None, alias="schema")
    executionConfig: ExecutionSettings
    revision: int | None = None
    createdAt: str | None = None
    updatedAt: str | None = None


class DefinitionData(Answer):
    data: Definition


class PageMeta(Answer):
    total: int
    page: int | None = None
    per_page: int


class CursorPagination(Answer):
    total: int
    hasMore: bool  # seed 003's name
    limit: int
    cursor: str | None = None


class Definitions(Answer):
    """Seed 001's pages (`meta`) or seed 003's keyset pages (`pagination` and `meta`)."""

    data: list[Definition]
    meta: PageMeta
    pagination: CursorPagination | None = None


class RevisionSummary(Answer):
    revision: int
    author: str | None = None
    created_at: str | None = None
    node_count: int
    edge_count: int


class RevisionsMeta(Answer):
    pipeline: str
    current: int | None = None


class Revisions(Answer):
    data: list[RevisionSummary]
    meta: RevisionsMeta


class Revision(RevisionSummary, BothSpellings):
    pipeline: str


class RevisionData(Answer):
    data: Revision
