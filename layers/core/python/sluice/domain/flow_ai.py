"""AI recipes (seed 000 "AI / Agent recipes", SPEC 6 and 8): embed, llm_enrich, agent and rag_search
over one input dataset, writing the dataset `model_name`.

Each recipe keeps a pipeline `ai.<recipe_type>.<model_name>` (a `dataset` source, an `ai` transform,
a `dataset` target), so it runs as nodes of the run engine (sluice.engine.ai) and its runs are that
pipeline's runs. Creation is idempotent on (project, model_name, recipe_type): the same pair again
answers the recipe that exists, unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.definition_requests import DefinitionRequest
from sluice.domain.flow_codegen import check_model_name
from sluice.domain.flow_recipes import KEPT_MARK, PipelinePort, keep_pipeline
from sluice.domain.run_engine import RunRequest
from sluice.errors import NotFound, ValidationFailed

AI_RECIPE_TYPES = ("embed", "llm_enrich", "agent", "rag_search")
MAX_TOP_K = 1000


class AiRecipeStore(Protocol):
    def find(self, project: str, model_name: str, recipe_type: str) -> dict[str, Any] | None: ...
    def next_id(self, project: str) -> int: ...
    def create(self, project: str, recipe: dict[str, Any]) -> dict[str, Any] | None: ...
    def get(self, project: str, recipe_id: int) -> dict[str, Any] | None: ...
    def list(self, project: str) -> list[dict[str, Any]]: ...
    def update(self, project: str, recipe_id: int, changes: dict[str, Any]) -> dict[str, Any]: ...
    def delete(self, project: str, recipe: dict[str, Any]) -> None: ...


class AiPipelines(PipelinePort, Protocol):
    def delete(self, project: str, ref: str | int) -> None: ...


class RunPort(Protocol):
    """What AI recipes ask of the run engine (sluice.domain.run_engine.RunEngine)."""

    def pipeline_by_id(self, project: str, ref: Any) -> dict[str, Any]: ...
    def trigger(self, project: str, record: dict[str, Any], request: RunRequest, render: Any) -> Any: ...
    def list_runs(self, project: str, pipeline_id: int, page: int, per_page: int) -> list[Any]: ...


def pipeline_name(recipe_type: str, model_name: str) -> str:
    return f"ai.{recipe_type}.{model_name}"


def checked_run_config(recipe_type: str, run_config: Any) -> dict[str, Any]:
    """The run_config a recipe type needs, refused with a sentence when it lacks it."""
    if run_config is None:
        run_config = {}
    if not isinstance(run_config, dict):
        raise ValidationFailed("run_config must be an object.")

    def text(key: str) -> None:
        value = run_config.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValidationFailed(f"A {recipe_type} recipe needs run_config.{key}, a non-empty text.")

    if run_config.get("model") is not None and not isinstance(run_config["model"], str):
        raise ValidationFailed("run_config.model must be a model id (text).")
    if recipe_type == "embed":
        text("text_column")
    elif recipe_type == "rag_search":
        text("query")
        top_k = run_config.get("top_k", 5)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise ValidationFailed(f"run_config.top_k must be a whole number from 1 to {MAX_TOP_K}.")
    elif recipe_type == "llm_enrich":
        text("prompt")
    else:
        text("instructions")
        if run_config.get("tools"):
            raise ValidationFailed(
                "run_config.tools: agent recipes run no tools in Sluice yet; give instructions only."
            )
    return dict(run_config)


def ai_view(recipe: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ids.render("ai-recipe", int(recipe["id"])),
        "model_name": recipe["model_name"],
        "recipe_type": recipe["recipe_type"],
        "inputs": list(recipe["inputs"]),
        "run_config": recipe["run_config"],
        "pipeline_id": ids.render("pipeline", int(recipe["pipeline_id"])),
        "created_at": recipe.get("created_at"),
        "updated_at": recipe.get("updated_at"),
    }


class AiRecipes:
    def __init__(
        self,
        store: AiRecipeStore,
        pipelines: AiPipelines,
        runs: Callable[[], RunPort],
        clock: Callable[[], Any] = timeutil.now,
    ):
        self.store = store
        self.pipelines = pipelines
        self._runs = runs  # built only by the routes that run or list runs
        self._clock = clock

    def create(self, project: str, body: dict[str, Any], author: str) -> tuple[dict[str, Any], bool]:
        name = check_model_name(body.get("model_name"))
        recipe_type = body.get("recipe_type")
        if recipe_type not in AI_RECIPE_TYPES:
            raise ValidationFailed(
                f"recipe_type must be one of {', '.join(AI_RECIPE_TYPES)}, not {recipe_type!r}."
            )
        existing = self.store.find(project, name, recipe_type)
        if existing is not None:
            return ai_view(existing), False
        inputs = _inputs(body.get("inputs"), name)
        run_config = checked_run_config(recipe_type, body.get("run_config"))
        nodes, edges = ai_graph(name, recipe_type, inputs[0], run_config)
        description = f"Runs AI recipe {recipe_type} {name} ({KEPT_MARK} /api/flow/ai-recipes)."
        recipe_id = self.store.next_id(project)
        pipeline_id = keep_pipeline(
            self.pipelines, project, pipeline_name(recipe_type, name), description, nodes, edges, author
        )
        now = timeutil.iso(self._clock())
        recipe = {
            "id": recipe_id,
            "model_name": name,
            "recipe_type": recipe_type,
            "inputs": inputs,
            "run_config": run_config,
            "pipeline_id": pipeline_id,
            "created_at": now,
            "updated_at": now,
        }
        created = self.store.create(project, recipe)
        if created is None:  # a concurrent create of the same pair won (its pipeline is the same one)
            winner = self.store.find(project, name, recipe_type)
            if winner is None:
                raise NotFound(f"AI recipe {name} ({recipe_type}) was deleted meanwhile.")
            return ai_view(winner), False
        return ai_view(created), True

    def get(self, project: str, recipe_id: Any) -> dict[str, Any]:
        return ai_view(self._require(project, recipe_id))

    def list(self, project: str, recipe_type: str | None = None) -> dict[str, Any]:
        if recipe_type is not None and recipe_type not in AI_RECIPE_TYPES:
            raise ValidationFailed(
                f"recipe_type must be one of {', '.join(AI_RECIPE_TYPES)}, not {recipe_type!r}."
            )
        found = [r for r in self.store.list(project) if recipe_type in (None, r["recipe_type"])]
        return {"data": [ai_view(r) for r in found]}

    def update(self, project: str, recipe_id: Any, body: dict[str, Any], author: str) -> dict[str, Any]:
        recipe = self._require(project, recipe_id)
        changes: dict[str, Any] = {}
        if body.get("inputs") is not None:
            changes["inputs"] = _inputs(body["inputs"], recipe["model_name"])
        if body.get("run_config") is not None:
            changes["run_config"] = checked_run_config(recipe["recipe_type"], body["run_config"])
        if not changes:
            raise ValidationFailed("Send inputs, run_config or both.")
        merged = {**recipe, **changes}
        nodes, edges = ai_graph(
            merged["model_name"], merged["recipe_type"], merged["inputs"][0], merged["run_config"]
        )
        self.pipelines.update(
            project, int(recipe["pipeline_id"]), DefinitionRequest(nodes=nodes, edges=edges), author
        )
        changes["updated_at"] = timeutil.iso(self._clock())
        return ai_view(self.store.update(project, int(recipe["id"]), changes))

    def delete(self, project: str, recipe_id: Any) -> None:
        recipe = self._require(project, recipe_id)
        self.store.delete(project, recipe)
        with contextlib.suppress(NotFound):  # deleted by hand already
            self.pipelines.delete(project, int(recipe["pipeline_id"]))

    def run(self, project: str, recipe_id: Any, render: Any) -> Any:
        recipe = self._require(project, recipe_id)
        engine = self._runs()
        record = engine.pipeline_by_id(project, recipe["pipeline_id"])
        view, _ = engine.trigger(project, record, RunRequest(trigger="api"), render)
        return view

    def runs(
        self, project: str, recipe_id: Any, render: Callable[[Any], dict[str, Any]], limit: int = 50
    ) -> dict:
        recipe = self._require(project, recipe_id)
        found = self._runs().list_runs(project, int(recipe["pipeline_id"]), 1, limit)
        return {"data": [render(run) for run in found]}

    def _require(self, project: str, recipe_id: Any) -> dict[str, Any]:
        number = ids.parse("ai-recipe", recipe_id)
        recipe = self.store.get(project, number)
        if recipe is None:
            raise NotFound(f"AI recipe {ids.render('ai-recipe', number)} not found.")
        return recipe


def ai_graph(
    name: str, recipe_type: str, dataset: str, run_config: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = [
        {"id": "input", "nodeType": "source", "config": {"kind": "dataset", "name": dataset}},
        {
            "id": "ai",
            "nodeType": "transform",
            "config": {"ai": {"recipe_type": recipe_type, "run_config": run_config}},
        },
        {
            "id": "output",
            "nodeType": "target",
            "config": {"kind": "dataset", "name": name, "mode": "overwrite"},
        },
    ]
    return nodes, [{"source": "input", "target": "ai"}, {"source": "ai", "target": "output"}]


def _inputs(value: Any, name: str) -> list[str]:
    if (
        not isinstance(value, list)
        or len(value) != 1
        or not isinstance(value[0], str)
        or not value[0].strip()
    ):
        raise ValidationFailed('inputs must name exactly one dataset: ["dataset_name"].')
    if any(c in value[0] for c in "'\"{}"):
        raise ValidationFailed(f"input name {value[0]!r} may not contain quotes or braces.")
    if value[0].lower() == name.lower():
        raise ValidationFailed(f"AI recipe '{name}' cannot read its own output.")
    return [value[0]]
