"""Flow area (seed 000 `/api/flow/*`, flow_codegen): visual recipes compiled to SQL and SQL parsed
back, column lineage and preview."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from sluice import composition
from sluice.auth.principal import Principal
from sluice.edge.app import area_router, create_app, json_body, lambda_handler, viewer
from sluice.edge.responses.flow import CompiledRecipe, RecipeConfig, RecipeLineage, RecipePreview

if TYPE_CHECKING:
    from sluice.domain.flow_codegen import FlowCodegen

router = area_router()
Codegen = Depends(composition.flow_codegen)


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


app = create_app("flow", [router])
handler = lambda_handler(app, "flow")
