"""Watcher's registry and lineage (seed 004): pipelines, pipeline types, addresses, address types,
address lineage; and the upsert answers."""

from __future__ import annotations

from sluice.edge.responses import Answer, Json


class Created(Answer):
    """An upsert's answer: the object's id (201 created, 200 found)."""

    id: int


class PipelineUpserted(Created):
    active: bool
    load_lineage: bool
    watermark: str | None = None


class WatcherPipeline(Answer):
    id: int
    name: str
    pipeline_type_id: int | None = None
    watermark: str | None = None
    next_watermark: str | None = None
    pipeline_metadata: dict[str, Json] | None = None
    last_target_insert: str | None = None
    last_target_update: str | None = None
    last_target_soft_delete: str | None = None
    freshness_number: int | None = None
    freshness_datepart: str | None = None
    mute_freshness_check: bool | None = None
    timeliness_number: int | None = None
    timeliness_datepart: str | None = None
    mute_timeliness_check: bool | None = None
    load_lineage: bool | None = None
    active: bool | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PipelineType(Answer):
    id: int
    name: str
    freshness_number: int | None = None
    freshness_datepart: str | None = None
    mute_freshness_check: bool | None = None
    timeliness_number: int | None = None
    timeliness_datepart: str | None = None
    mute_timeliness_check: bool | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Address(Answer):
    id: int
    name: str
    address_type_id: int | None = None
    database_name: str | None = None
    schema_name: str | None = None
    table_name: str | None = None
    primary_key: str | None = None
    address_metadata: dict[str, Json] | None = None
    created_at: str | None = None
    updated_at: str | None = None


class AddressType(Answer):
    id: int
    name: str
    group_name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class LineageRecorded(Answer):
    pipeline_id: int
    lineage_relationships_created: int
    message: str


class LineageNeighbour(Answer):
    address_id: int
    name: str | None = None
    depth: int


class AddressLineage(Answer):
    address_id: int
    upstream: list[LineageNeighbour]
    downstream: list[LineageNeighbour]


class LineageNode(Answer):
    """A node of `GET /api/lineage`: a pipeline (`status`), a dataset (`address_id` once recorded),
    a connector (`connector_type`) or a variable."""

    id: str
    type: str
    name: str | None = None
    status: str | None = None
    address_id: int | None = None
    connector_type: str | None = None


class LineageEdge(Answer):
    source: str
    target: str
    type: str
    declared: bool | None = None  # a dataset edge: in the pipeline's current definition
    recorded: bool | None = None  # and/or recorded by its runs (or Watcher's address lineage)


class SharedDataset(Answer):
    dataset: str
    name: str
    writers: list[str]
    readers: list[str]


class ProjectLineage(Answer):
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    shared_datasets: list[SharedDataset]
