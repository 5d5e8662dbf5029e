"""Saved recipes and zones (seed 000, SPEC 6 and 8).

A recipe is a dbt-style model of the project: a visual config compiled to SQL (or SQL alone), kept
with every revision in the table and written as the model file `models/<model_name>.sql` with its
YAML sidecar `models/<model_name>.yml` under the project in the data bucket. It is also a dataset of
the project's flow graph: each save keeps a pipeline named `recipe.<model_name>` whose graph reads
the recipe's inputs (`dataset` sources), runs the recipe (a `recipe` or `sql` transform) and writes
the dataset `<model_name>`. So `POST /api/pipeline/run {target: {type: "recipe", name}, scope}`
runs it, and its upstream and downstream pipelines and recipes, the way every flow run runs.

Zones group the models of the Flow canvas. Auto-assign proposes, and never writes: raw inputs (the
datasets pipelines load from outside sources) together, and every other model with the connector
its upstream raw inputs come through.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import yaml

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.definition_requests import DefinitionRequest
from sluice.domain.flow_codegen import FlowCodegen, check_model_name
from sluice.domain.flows import RECIPE_PIPELINE_PREFIX, FlowGraph, recipe_pipeline_name
from sluice.domain.graph import NODE_ID, Graph
from sluice.domain.recipe_parse import canonical, parse_recipe
from sluice.errors import Conflict, NotFound, ValidationFailed

RAW_ZONE = "Raw inputs"
_REF = re.compile(r"""\{\{\s*ref\(\s*['"]([^'"{}]+)['"]\s*\)\s*\}\}""")
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}|[a-z]{3,20}")
TRANSFORM_ID, TARGET_ID = "recipe_model", "recipe_output"


class RecipeStore(Protocol):
    def get(self, project: str, model_name: str) -> dict[str, Any] | None: ...
    def save(self, project: str, recipe: dict[str, Any], previous: int | None) -> None: ...
    def revisions(
        self, project: str, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    def all(self, project: str) -> list[dict[str, Any]]: ...


class ZoneStore(Protocol):
    def create(self, project: str, name: str, color: str | None, now: str) -> dict[str, Any]: ...
    def get(self, project: str, zone_id: int) -> dict[str, Any] | None: ...
    def list(self, project: str) -> list[dict[str, Any]]: ...
    def update(self, project: str, zone_id: int, changes: dict[str, Any]) -> dict[str, Any]: ...
    def delete(self, project: str, zone_id: int) -> int: ...
    def assign(self, project: str, model_name: str, zone_id: int | None) -> None: ...
    def zone_of(self, project: str, model_name: str) -> int | None: ...
    def members(self, project: str) -> dict[str, int]: ...


class ModelFiles(Protocol):
    def write(self, project: str, model_name: str, sql: str, sidecar: str) -> None:
        """Write models/<model_name>.sql and models/<model_name>.yml under the project."""


class PipelinePort(Protocol):
    """What recipes need of pipeline definitions (sluice.domain.pipelines.PipelineDefinitions)."""

    def get(self, project: str, ref: str | int) -> dict[str, Any]: ...
    def create(self, project: str, request: DefinitionRequest, author: str) -> dict[str, Any]: ...
    def update(
        self, project: str, ref: str | int, request: DefinitionRequest, author: str
    ) -> dict[str, Any]: ...


def recipe_view(recipe: dict[str, Any], zone_id: int | None) -> dict[str, Any]:
    return {
        "model_name": recipe["model_name"],
        "config": recipe.get("config"),
        "sql": recipe["sql"],
        "inputs": list(recipe.get("inputs") or []),
        "output_columns": recipe.get("output_columns"),
        "revision": int(recipe["revision"]),
        "pipeline_id": ids.render("pipeline", recipe["pipeline_id"]) if recipe.get("pipeline_id") else None,
        "zone_id": zone_ref(zone_id),
        "created_at": recipe.get("created_at"),
        "updated_at": recipe.get("updated_at"),
        "updated_by": recipe.get("updated_by"),
    }


def zone_ref(zone_id: int | None) -> str | None:
    return None if zone_id is None else ids.render("zone", zone_id)


def zone_view(zone: dict[str, Any]) -> dict[str, Any]:
    return {**zone, "id": ids.render("zone", int(zone["id"]))}


class RecipeBook:
    def __init__(
        self,
        recipes: RecipeStore,
        zones: ZoneStore,
        codegen: FlowCodegen,
        files: ModelFiles,
        pipelines: PipelinePort,
        project_pipelines: Callable[[str], list[dict[str, Any]]],
        clock: Callable[[], Any] = timeutil.now,
    ):
        self.recipes = recipes
        self.zones = zones
        self.codegen = codegen
        self.files = files
        self.pipelines = pipelines
        self.project_pipelines = project_pipelines
        self._clock = clock

    # -- recipes ----------------------------------------------------------------------------------
    def save(self, project: str, body: dict[str, Any], author: str) -> tuple[dict[str, Any], bool]:
        """Compile, keep the recipe's pipeline (for its id), write the revision, then the model
        files, and converge both on the stored revision (`_converge`). Everything is checked before
        anything is written; (view, created)."""
        name = check_model_name(body.get("model_name"))
        config, sql = body.get("config"), body.get("sql")
        if (config is None) == (sql is None):
            raise ValidationFailed("Send exactly one of config (a visual recipe) and sql (a SQL model).")
        if config is not None:
            compiled = self.codegen.generate(project, config)
            config = canonical(config, self.codegen.known_columns(project, config))
            sql, inputs, output_columns = compiled["sql"], compiled["inputs"], compiled["output_columns"]
        else:
            if not isinstance(sql, str) or not sql.strip() or len(sql) > 200_000:
                raise ValidationFailed("sql must be a non-empty string of at most 200000 characters.")
            parse_recipe(sql)  # raises with sqlglot's message when it does not parse
            config = None  # SPEC 8: a SQL recipe's config is null (parse-to-visual reads it on demand)
            inputs = list(dict.fromkeys(_REF.findall(sql)))
            output_columns = None
        if name.lower() in {i.lower() for i in inputs}:
            raise ValidationFailed(f"Recipe '{name}' cannot read its own output.")
        current = self.recipes.get(project, name)
        now = timeutil.iso(self._clock())
        revision = 1 if current is None else int(current["revision"]) + 1
        pipeline_id = self._sync_pipeline(project, name, inputs, config, sql, current, author)
        recipe = {
            "model_name": current["model_name"] if current else name,
            "config": config,
            "sql": sql,
            "inputs": inputs,
            "output_columns": output_columns,
            "revision": revision,
            "pipeline_id": pipeline_id,
            "created_at": current["created_at"] if current else now,
            "updated_at": now,
            "updated_by": author,
        }
        try:
            self.recipes.save(project, recipe, None if current is None else int(current["revision"]))
        except Conflict:
            self._converge(project, name, None)  # our graph may have landed after the winner's
            raise
        self.files.write(project, recipe["model_name"], sql, _sidecar(recipe))
        self._converge(project, name, revision)
        return recipe_view(recipe, self.zones.zone_of(project, name)), current is None

    def get(self, project: str, model_name: str) -> dict[str, Any]:
        recipe = self.recipes.get(project, check_model_name(model_name))
        if recipe is None:
            raise NotFound(f"Recipe '{model_name}' not found.")
        return recipe_view(recipe, self.zones.zone_of(project, model_name))

    def revisions(
        self, project: str, model_name: str, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of the recipe's revisions, newest first, with `next_cursor` (null on the last page)."""
        self.get(project, model_name)
        found, following = self.recipes.revisions(project, model_name, limit, cursor)
        return {"data": [recipe_view(r, None) for r in found], "next_cursor": following}

    def _converge(self, project: str, name: str, written: int | None) -> None:
        """Leave the recipe's pipeline and model files as the stored recipe says.

        They are written outside the recipe's transaction (the pipeline before it, for its id; the
        files after it), so two saves can interleave: a save that loses the race (409) may have
        written its graph after the winner's, and a save that wins but writes its files late may
        cover a newer revision's. Each save therefore ends by reading the current revision and, when
        it is not the one it wrote (`written`; None: it wrote none), writing that one's pipeline
        graph and files, until the revision it last wrote is still current. The last writer of
        either is then always a save that saw the current revision after writing it."""
        for _attempt in range(5):
            stored = self.recipes.get(project, name)
            if stored is None or int(stored["revision"]) == written:
                return
            author = str(stored.get("updated_by") or "recipes")
            inputs = list(stored.get("inputs") or [])
            self._sync_pipeline(project, name, inputs, stored.get("config"), stored["sql"], stored, author)
            self.files.write(project, stored["model_name"], stored["sql"], _sidecar(stored))
            written = int(stored["revision"])

    def _sync_pipeline(
        self,
        project: str,
        name: str,
        inputs: list[str],
        config: dict[str, Any] | None,
        sql: str,
        current: dict[str, Any] | None,
        author: str,
    ) -> int:
        nodes, edges = recipe_graph(name, inputs, config, sql)
        description = (
            f"Runs recipe {name} ({KEPT_MARK} save-recipe-steps; edit the recipe, not this pipeline)."
        )
        return keep_pipeline(
            self.pipelines, project, recipe_pipeline_name(name), description, nodes, edges, author
        )

    # -- zones --------------------------------------------------------------------------------------
    def create_zone(self, project: str, name: Any, color: Any) -> dict[str, Any]:
        return zone_view(
            self.zones.create(project, _zone_name(name), _zone_color(color), timeutil.iso(self._clock()))
        )

    def list_zones(self, project: str) -> dict[str, Any]:
        members = self.zones.members(project)
        counts = Counter(members.values())
        return {
            "data": [zone_view(z) | {"model_count": counts.get(z["id"], 0)} for z in self.zones.list(project)]
        }

    def update_zone(self, project: str, zone_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        update: dict[str, Any] = {}
        if "name" in changes:
            update["name"] = _zone_name(changes["name"])
        if "color" in changes:
            update["color"] = _zone_color(changes["color"])
        if not update:
            raise ValidationFailed("Send name, color or both.")
        update["updated_at"] = timeutil.iso(self._clock())
        return zone_view(self.zones.update(project, zone_id, update))

    def delete_zone(self, project: str, zone_id: int) -> int:
        return self.zones.delete(project, zone_id)

    def assign(self, project: str, model_name: Any, zone_id: int | None) -> dict[str, Any]:
        name = check_model_name(model_name)
        if not self._is_model(project, name):
            raise NotFound(f"There is no recipe or dataset named '{name}' in this project.")
        self.zones.assign(project, name, zone_id)
        return {"model_name": name, "zone_id": zone_ref(zone_id)}

    def _is_model(self, project: str, name: str) -> bool:
        if self.recipes.get(project, name) is not None:
            return True
        flow = FlowGraph.of(self.project_pipelines(project))
        return bool(flow.writers_of(name)) or self.codegen.engine.columns(project, name) is not None

    def auto_assign(self, project: str) -> dict[str, Any]:
        """Proposals only: nothing is written (the client confirms through assign)."""
        records = self.project_pipelines(project)
        flow = FlowGraph.of(records)
        by_name = {z["name"].casefold(): z["id"] for z in self.zones.list(project)}
        members = self.zones.members(project)
        raw: dict[str, str] = {}  # raw dataset -> its connector label
        upstream: dict[str, set[str]] = {}  # model -> datasets it reads
        for pid, record in flow.records.items():
            if str(record.get("name", "")).lower().startswith(RECIPE_PIPELINE_PREFIX):
                continue  # a recipe's own pipeline: the recipe is read below
            reads = flow.reads[pid]
            for written in flow.writes[pid]:
                upstream.setdefault(written, set()).update(reads)
                if not reads:
                    raw[written] = _connector_label(record)
        for recipe in self.recipes.all(project):
            upstream[recipe["model_name"]] = set(recipe.get("inputs") or [])

        def raw_sources(model: str, seen: set[str]) -> set[str]:
            if model in raw:
                return {model}
            found: set[str] = set()
            for parent in upstream.get(model, ()):
                if parent not in seen:
                    found |= raw_sources(parent, seen | {parent})
            return found

        proposals = []
        for model in sorted(set(upstream) | set(raw)):
            if model in raw:
                zone, reason = (
                    RAW_ZONE,
                    f"a raw input: loaded by a pipeline from {raw[model]}, reading no other dataset",
                )
            else:
                sources = raw_sources(model, {model})
                if not sources:
                    continue
                labels = Counter(raw[s] for s in sources)
                label, count = labels.most_common(1)[0]
                zone = f"From {label}"
                reason = (
                    f"every upstream raw input ({', '.join(sorted(sources))}) comes from {label}"
                    if count == len(sources)
                    else f"{count} of its {len(sources)} upstream raw inputs come from {label}"
                )
            zone_id = by_name.get(zone.casefold())
            if zone_id is not None and members.get(model.lower()) == zone_id:
                continue  # already there
            proposal: dict[str, Any] = {"model_name": model, "reason": reason}
            proposal.update(
                {"zone_id": zone_ref(zone_id), "zone_name": zone}
                if zone_id is not None
                else {"zone_name": zone}
            )
            proposals.append(proposal)
        return {"proposals": proposals}


KEPT_MARK = "kept by"


def keep_pipeline(
    pipelines: PipelinePort,
    project: str,
    name: str,
    description: str,
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    author: str,
) -> int:
    """Create the pipeline a recipe keeps, or update its graph; a pipeline of that name that no
    recipe keeps (made by hand) is never taken over: 409. Validated before anything is written."""
    request = DefinitionRequest(name=name, description=description, nodes=nodes, edges=edges)
    request.graph()
    try:
        existing = pipelines.get(project, name)
    except NotFound:
        return _pipeline_number(pipelines.create(project, request, author))
    existing = existing.get("data", existing)
    if f"({KEPT_MARK} " not in str(existing.get("description") or ""):
        raise Conflict(
            f"A pipeline named '{name}' already exists and no recipe keeps it; rename that pipeline or "
            "choose another model_name."
        )
    update = DefinitionRequest(nodes=nodes, edges=edges)
    return _pipeline_number(pipelines.update(project, _pipeline_number(existing), update, author))


def recipe_graph(
    name: str, inputs: list[str], config: dict[str, Any] | None, sql: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The recipe's pipeline: a `dataset` source per input (named by it when it is a valid node id,
    so the model's ref() reads it), the recipe, and a `dataset` target named after the model."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    taken = {TRANSFORM_ID, TARGET_ID}
    for number, dataset in enumerate(inputs):
        node_id = dataset if NODE_ID.match(dataset) and dataset not in taken else f"input_{number}"
        taken.add(node_id)
        nodes.append({"id": node_id, "nodeType": "source", "config": {"kind": "dataset", "name": dataset}})
        edges.append({"source": node_id, "target": TRANSFORM_ID})
    # A visual recipe runs as a `recipe` transform: the engine compiles it knowing the inputs' columns
    # as they are at run time. A SQL recipe runs its SQL.
    transform = {"recipe": config} if config is not None else {"sql": sql}
    nodes.append({"id": TRANSFORM_ID, "nodeType": "transform", "config": transform})
    nodes.append(
        {
            "id": TARGET_ID,
            "nodeType": "target",
            "config": {"kind": "dataset", "name": name, "mode": "overwrite"},
        }
    )
    edges.append({"source": TRANSFORM_ID, "target": TARGET_ID})
    return nodes, edges


def _pipeline_number(view: dict[str, Any]) -> int:
    data = view.get("data", view)
    value = data["id"]
    return int(str(value).removeprefix("pipeline-"))


def _sidecar(recipe: dict[str, Any]) -> str:
    """The model's YAML sidecar: what dbt reads of it (name, config as meta) and its revision."""
    document = {
        "version": 2,
        "models": [
            {
                "name": recipe["model_name"],
                "meta": {
                    "sluice": {
                        "recipe_config": recipe["config"],
                        "inputs": recipe["inputs"],
                        "revision": recipe["revision"],
                        "updated_at": recipe["updated_at"],
                        "updated_by": recipe["updated_by"],
                    }
                },
                **(
                    {"columns": [{"name": c} for c in recipe["output_columns"]]}
                    if recipe["output_columns"]
                    else {}
                ),
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _zone_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 100:
        raise ValidationFailed("A zone's name must be 1-100 characters.")
    return value.strip()


def _zone_color(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _COLOR.fullmatch(value) is None:
        raise ValidationFailed("color must be a hex color like #1f77b4 or a lowercase color name.")
    return value


def _connector_label(record: dict[str, Any]) -> str:
    """What a loader pipeline reads from: its connector, else the kinds of its source nodes."""
    if record.get("connector_id") is not None:
        return f"connector {record['connector_id']}"
    graph = Graph.from_document(record.get("graph"))
    kinds = sorted(
        {
            str((n.config or {}).get("connector_id") or (n.config or {}).get("kind") or "unknown")
            for n in graph.nodes
            if n.node_type == "source"
        }
    )
    return (", ".join(kinds) or "no") + " sources"
