"""Flow AI area (seed 000 `/api/flow/ai-*`, flow_ai): AI recipes (embed, llm_enrich, agent,
rag_search), their nodes, runs and run history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.views.runs import runs_api_view, triggered_view
from sluice.edge.app import area_router, create_app, created_status, editor, json_body, lambda_handler, viewer
from sluice.edge.responses.flow import AiRecipe, AiRecipeRun, AiRecipeRuns, AiRecipes

if TYPE_CHECKING:
    from sluice.domain.flow_ai import AiRecipes as AiRecipeService

router = area_router()
Recipes = Depends(composition.ai_recipes)


class AiRecipeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_name: str = Field(max_length=128)
    recipe_type: str = Field(max_length=32)
    inputs: list[str] = Field(max_length=1)
    run_config: dict[str, Any] = Field(default_factory=dict)


class AiRecipePatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: list[str] | None = Field(None, max_length=1)
    run_config: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # seed 000 says "config or run_config": config.inputs

    def changes(self) -> dict[str, Any]:
        found = dict(self.config or {})
        if self.inputs is not None:
            found["inputs"] = self.inputs
        if self.run_config is not None:
            found["run_config"] = self.run_config
        return found


@router.get("/api/flow/ai-nodes", response_model=AiRecipes)
def ai_nodes(
    caller: Principal = Depends(viewer),
    recipe_type: str | None = Query(None, max_length=32),
    recipes: AiRecipeService = Recipes,
) -> dict:
    return recipes.list(caller.project, recipe_type)


@router.post("/api/flow/ai-recipes", response_model=AiRecipe, status_code=201)
def create_ai_recipe(
    response: Response,
    caller: Principal = Depends(editor),
    body: AiRecipeBody = Depends(json_body(AiRecipeBody)),
    recipes: AiRecipeService = Recipes,
) -> dict:
    view, created = recipes.create(caller.project, body.model_dump(), caller.subject)
    created_status(response, created)
    return view


@router.get("/api/flow/ai-recipes", response_model=AiRecipes)
def list_ai_recipes(caller: Principal = Depends(viewer), recipes: AiRecipeService = Recipes) -> dict:
    return recipes.list(caller.project)


@router.get("/api/flow/ai-recipes/{recipe_id}", response_model=AiRecipe)
def get_ai_recipe(
    recipe_id: str, caller: Principal = Depends(viewer), recipes: AiRecipeService = Recipes
) -> dict:
    return recipes.get(caller.project, recipe_id)


@router.put("/api/flow/ai-recipes/{recipe_id}", response_model=AiRecipe)
@router.patch("/api/flow/ai-recipes/{recipe_id}", response_model=AiRecipe)
def update_ai_recipe(
    recipe_id: str,
    caller: Principal = Depends(editor),
    body: AiRecipePatch = Depends(json_body(AiRecipePatch)),
    recipes: AiRecipeService = Recipes,
) -> dict:
    return recipes.update(caller.project, recipe_id, body.changes(), caller.subject)


@router.delete("/api/flow/ai-recipes/{recipe_id}", status_code=204)
def delete_ai_recipe(
    recipe_id: str, caller: Principal = Depends(editor), recipes: AiRecipeService = Recipes
) -> Response:
    recipes.delete(caller.project, recipe_id)
    return Response(status_code=204)


@router.post("/api/flow/ai-recipes/{recipe_id}/run", response_model=AiRecipeRun, status_code=202)
def run_ai_recipe(
    recipe_id: str, caller: Principal = Depends(editor), recipes: AiRecipeService = Recipes
) -> dict:
    def render(run: Any) -> dict:
        view = triggered_view(run)
        return {"run_id": view["id"], **view}

    return recipes.run(caller.project, recipe_id, render)


@router.get("/api/flow/ai-recipes/{recipe_id}/runs", response_model=AiRecipeRuns)
def ai_recipe_runs(
    recipe_id: str, caller: Principal = Depends(viewer), recipes: AiRecipeService = Recipes
) -> dict:
    return recipes.runs(caller.project, recipe_id, runs_api_view)


app = create_app("flow_ai", [router])
handler = lambda_handler(app, "flow_ai")
