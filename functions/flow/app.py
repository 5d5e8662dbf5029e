"""Flow area (seed 000 `/api/flow/*`, flow_codegen): visual recipes compiled to SQL and SQL parsed
back, column lineage and preview; saved recipes; zones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain import ids
from sluice.edge.app import area_router, create_app, created_status, editor, json_body, lambda_handler, viewer
from sluice.edge.responses.flow import (
    CompiledRecipe,
    Recipe,
    RecipeConfig,
    RecipeLineage,
    RecipePreview,
    RecipeRevisions,
    Zone,
    ZoneAssignment,
    ZoneProposals,
    Zones,
)

if TYPE_CHECKING:
    from sluice.domain.flow_codegen import FlowCodegen
    from sluice.domain.flow_recipes import RecipeBook

router = area_router()
Codegen = Depends(composition.flow_codegen)
Book = Depends(composition.recipe_book)


class ConfigBody(BaseModel):
    """A visual recipe config, as SPEC 6 writes it (or wrapped as `{config: {...}}`); the compiler
    checks it and names what is wrong."""

    model_config = ConfigDict(extra="allow")

    def config(self) -> Any:
        data = self.model_dump()
        wrapped = data.get("config")
        return wrapped if "recipe_type" not in data and isinstance(wrapped, dict) else data


class SqlBody(BaseModel):
    sql: str = Field(max_length=200_000)


class LineageBody(BaseModel):
    model_name: str = Field(max_length=128)
    config: dict[str, Any]


# Compiling, parsing, lineage and preview change nothing, so a viewer may call them.
@router.post("/api/flow/generate-sql", response_model=CompiledRecipe)
def generate_sql(
    caller: Principal = Depends(viewer),
    body: ConfigBody = Depends(json_body(ConfigBody)),
    codegen: FlowCodegen = Codegen,
) -> dict:
    return codegen.generate(caller.project, body.config())


@router.post("/api/flow/parse-to-visual", response_model=RecipeConfig | None)
def parse_to_visual(
    caller: Principal = Depends(viewer),
    body: SqlBody = Depends(json_body(SqlBody)),
    codegen: FlowCodegen = Codegen,
) -> dict | None:
    return codegen.parse(body.sql)


@router.post("/api/flow/visual-lineage", response_model=RecipeLineage)
def visual_lineage(
    caller: Principal = Depends(viewer),
    body: LineageBody = Depends(json_body(LineageBody)),
    codegen: FlowCodegen = Codegen,
) -> dict:
    return codegen.lineage(caller.project, body.model_name, body.config)


@router.post("/api/flow/preview-sql", response_model=RecipePreview)
def preview_sql(
    caller: Principal = Depends(viewer),
    body: ConfigBody = Depends(json_body(ConfigBody)),
    codegen: FlowCodegen = Codegen,
) -> dict:
    return codegen.preview(caller.project, body.config())


# -- saved recipes --------------------------------------------------------------------------------
class SaveRecipeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_name: str = Field(max_length=128)
    config: dict[str, Any] | None = None
    sql: str | None = Field(None, max_length=200_000)


@router.post("/api/flow/save-recipe-steps", response_model=Recipe)
def save_recipe_steps(
    response: Response,
    caller: Principal = Depends(editor),
    body: SaveRecipeBody = Depends(json_body(SaveRecipeBody)),
    book: RecipeBook = Book,
) -> dict:
    saved, created = book.save(caller.project, body.model_dump(), caller.subject)
    created_status(response, created)
    return saved


@router.get("/api/flow/recipe/{model_name}", response_model=Recipe)
def get_recipe(model_name: str, caller: Principal = Depends(viewer), book: RecipeBook = Book) -> dict:
    return book.get(caller.project, model_name)


@router.get("/api/flow/recipe/{model_name}/revisions", response_model=RecipeRevisions)
def get_recipe_revisions(
    model_name: str,
    caller: Principal = Depends(viewer),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=2048),
    book: RecipeBook = Book,
) -> dict:
    return book.revisions(caller.project, model_name, limit, cursor)


# -- zones ----------------------------------------------------------------------------------------
class ZoneBody(BaseModel):
    name: str = Field(max_length=100)
    color: str | None = Field(None, max_length=20)


class ZonePatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, max_length=100)
    color: str | None = Field(None, max_length=20)

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set if k in ("name", "color")}


class AssignBody(BaseModel):
    model_name: str = Field(max_length=128)
    zone_id: int | str | None


def zone_number(value: Any) -> int | None:
    return None if value is None else ids.parse("zone", value)


@router.get("/api/flow/zones", response_model=Zones)
def list_zones(caller: Principal = Depends(viewer), book: RecipeBook = Book) -> dict:
    return book.list_zones(caller.project)


@router.post("/api/flow/zones", response_model=Zone, status_code=201)
def create_zone(
    caller: Principal = Depends(editor),
    body: ZoneBody = Depends(json_body(ZoneBody)),
    book: RecipeBook = Book,
) -> dict:
    return book.create_zone(caller.project, body.name, body.color)


# Registered before /zones/{zone_id} would be, so `assign` and `auto-assign` are never read as ids.
@router.post("/api/flow/zones/assign", response_model=ZoneAssignment)
def assign_zone(
    caller: Principal = Depends(editor),
    body: AssignBody = Depends(json_body(AssignBody)),
    book: RecipeBook = Book,
) -> dict:
    return book.assign(caller.project, body.model_name, zone_number(body.zone_id))


@router.post("/api/flow/zones/auto-assign", response_model=ZoneProposals)
def auto_assign_zones(caller: Principal = Depends(editor), book: RecipeBook = Book) -> dict:
    return book.auto_assign(caller.project)


@router.patch("/api/flow/zones/{zone_id}", response_model=Zone)
@router.put("/api/flow/zones/{zone_id}", response_model=Zone)
def update_zone(
    zone_id: str,
    caller: Principal = Depends(editor),
    body: ZonePatch = Depends(json_body(ZonePatch)),
    book: RecipeBook = Book,
) -> dict:
    return book.update_zone(caller.project, ids.parse("zone", zone_id), body.changes())


@router.delete("/api/flow/zones/{zone_id}", status_code=204)
def delete_zone(zone_id: str, caller: Principal = Depends(editor), book: RecipeBook = Book) -> Response:
    book.delete_zone(caller.project, ids.parse("zone", zone_id))
    return Response(status_code=204)


app = create_app("flow", [router])
handler = lambda_handler(app, "flow")
