"""The flow area (seed 000 `/api/flow/*`): compiled recipes, configs read back, column lineage,
previews."""

from __future__ import annotations

from typing import Any

from sluice.edge.responses import Answer, OpenAnswer


class RecipeConfig(OpenAnswer):
    """A visual recipe config (SPEC 6): its keys are the recipe's own."""

    recipe_type: str
    inputs: list[str]


class CompiledRecipe(Answer):
    sql: str
    inputs: list[str]
    output_columns: list[str] | None


class LineageColumn(Answer):
    model: str
    column: str


class LineageTransformation(Answer):
    """OpenLineage's column lineage transformation: type DIRECT or INDIRECT and its subtype."""

    type: str
    subtype: str
    description: str | None = None
    masking: bool = False


class LineageEdge(Answer):
    source: LineageColumn
    target: LineageColumn
    transformation: LineageTransformation


class RecipeLineage(Answer):
    model_name: str
    output_columns: list[str]
    edges: list[LineageEdge]


class RecipePreview(Answer):
    sql: str
    columns: list[str]
    rows: list[dict[str, Any]]


class Recipe(Answer):
    model_name: str
    config: RecipeConfig | None
    sql: str
    inputs: list[str]
    output_columns: list[str] | None = None
    revision: int
    pipeline_id: str | None = None
    zone_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    updated_by: str | None = None


class RecipeRevisions(Answer):
    data: list[Recipe]
    next_cursor: str | None = None


class Zone(Answer):
    id: str
    name: str
    color: str | None = None
    model_count: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Zones(Answer):
    data: list[Zone]


class ZoneAssignment(Answer):
    model_name: str
    zone_id: str | None


class ZoneProposal(Answer):
    model_name: str
    zone_id: str | None = None
    zone_name: str | None = None
    reason: str


class ZoneProposals(Answer):
    proposals: list[ZoneProposal]


class AiRecipe(Answer):
    id: str
    model_name: str
    recipe_type: str
    inputs: list[str]
    run_config: dict[str, Any]
    pipeline_id: str
    created_at: str | None = None
    updated_at: str | None = None


class AiRecipes(Answer):
    data: list[AiRecipe]


class AiRecipeRun(Answer):
    run_id: str
    id: str
    pipeline_id: str
    status: str


class AiRecipeRuns(Answer):
    data: list[dict[str, Any]]
