"""What a pipeline definition's create or update says (SPEC 3): either seed's spelling of the body
(camelCase or snake_case for seed 003's fields, its graph as nodes/edges or sources/transforms/
destinations), its execution settings, and the rules for a pipeline's name."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from sluice.domain.graph import Graph, graph_from_nodes_and_edges, graph_from_sources
from sluice.domain.graph_validation import validate_graph
from sluice.domain.registry import Id
from sluice.errors import ValidationFailed

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,149}$")
ID_LIKE = re.compile(r"^(pipeline-)?[0-9]+$", re.IGNORECASE)
MAX_DESCRIPTION_CHARS = 4_000
MAX_VERSION_CHARS = 50
MAX_PARTITIONING_CHARS = 4_096
EXECUTION_MODES = ("full_refresh", "incremental")


def _version_text(value: Any) -> Any:
    """001 writes `version: 1.0`; YAML and JSON read that as a number, so a number becomes its text."""
    if isinstance(value, bool):
        raise ValueError("version must be a string")
    if isinstance(value, int | float):
        return str(value)
    return value


def _bounded_partitioning(value: Any) -> Any:
    if value is not None and len(json.dumps(value)) > MAX_PARTITIONING_CHARS:
        raise ValueError(f"partitioning must be at most {MAX_PARTITIONING_CHARS} characters of JSON")
    return value


Positive = Annotated[Id, Field(ge=1)]


class ExecutionConfig(BaseModel):
    """Seed 003's execution settings; `mode` is SPEC 3's addition."""

    model_config = ConfigDict(extra="ignore")

    batchSize: Annotated[Id, Field(ge=1, le=1_000_000)] | None = Field(  # noqa: N815 - the seed's name
        None, validation_alias=AliasChoices("batchSize", "batch_size")
    )
    parallelism: Annotated[Id, Field(ge=1, le=64)] | None = None
    partitioning: Annotated[
        str | list[str] | dict[str, Any] | None, BeforeValidator(_bounded_partitioning)
    ] = None
    mode: Literal["full_refresh", "incremental"] | None = None

    def stored(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class DefinitionRequest(BaseModel):
    """A create or update body in either seed's shape (camelCase or snake_case for 003's fields).

    Which fields were sent matters on an update (`model_fields_set`): an absent field is kept,
    null clears `description`, `version`, `schedule`, `connectorId`, `schemaId` and `executionConfig`.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | Id | None = None
    name: str | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    # The length bound sits on the string alone: on `str | None` it met a null and raised a TypeError
    # (a 500), which schemathesis found (issue 15).
    version: Annotated[
        Annotated[str, Field(max_length=MAX_VERSION_CHARS)] | None, BeforeValidator(_version_text)
    ] = None
    status: Literal["active", "paused", "error", "draft"] | None = None
    schedule: str | None = None
    connector_id: str | Id | None = Field(None, validation_alias=AliasChoices("connectorId", "connector_id"))
    schema_id: str | Id | None = Field(None, validation_alias=AliasChoices("schemaId", "schema_id"))
    execution_config: ExecutionConfig | None = Field(
        None, validation_alias=AliasChoices("executionConfig", "execution_config")
    )
    nodes: list[Any] | None = None
    edges: list[Any] | None = None
    sources: list[Any] | None = None
    transforms: list[Any] | None = None
    destinations: list[Any] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _lower_status(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def sent(self, field: str) -> bool:
        return field in self.model_fields_set

    def graph(self) -> Graph | None:
        """The graph in whichever spelling was sent (validated), or None when none was sent."""
        as_nodes_and_edges = self.nodes is not None or self.edges is not None
        as_sources_and_targets = any(
            g is not None for g in (self.sources, self.transforms, self.destinations)
        )
        if as_nodes_and_edges and as_sources_and_targets:
            raise ValidationFailed(
                "Give the graph as nodes/edges (seed 003) or as sources/transforms/destinations "
                "(seed 001), not both."
            )
        if self.edges is not None and self.nodes is None:
            raise ValidationFailed(
                "edges need nodes: nodes and edges are replaced together, so send nodes with the edges."
            )
        if as_nodes_and_edges:
            graph = graph_from_nodes_and_edges(self.nodes, self.edges)
        elif as_sources_and_targets:
            graph = graph_from_sources(self.sources, self.transforms, self.destinations)
        else:
            return None
        validate_graph(graph)
        return graph


def checked_name(name: Any) -> str:
    """A name given on /api/v1: letters, digits, space, `_`, `.`, `-`; never an id's shape."""
    if not isinstance(name, str):
        raise ValidationFailed("name is required: a string of 1-150 characters.")
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise ValidationFailed(
            "name must be 1-150 characters of letters, digits, spaces, '_', '.' and '-', starting with "
            "a letter or digit (no slashes or control characters)."
        )
    if ID_LIKE.match(name):
        raise ValidationFailed(f"name '{name}' looks like a pipeline id; choose a name that is not a number.")
    return name
