"""Two saves of one recipe that interleave leave the recipe's pipeline and model files as the stored
recipe says (the pipeline and the files are written outside the recipe's transaction)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sluice.domain.flow_recipes import TRANSFORM_ID, RecipeBook
from sluice.errors import Conflict, NotFound

PROJECT = "default"


class Recipes:
    """The recipe store's contract: a save makes revision N current only if N-1 still is."""

    def __init__(self) -> None:
        self.current: dict[str, dict[str, Any]] = {}

    def get(self, project: str, model_name: str) -> dict[str, Any] | None:
        found = self.current.get(model_name)
        return copy.deepcopy(found) if found else None

    def save(self, project: str, recipe: dict[str, Any], previous: int | None) -> None:
        stored = self.current.get(recipe["model_name"])
        if (stored["revision"] if stored else None) != previous:
            raise Conflict("saved by someone else meanwhile")
        self.current[recipe["model_name"]] = copy.deepcopy(recipe)


class Zones:
    def zone_of(self, project: str, model_name: str) -> int | None:
        return None


class Files:
    def __init__(self) -> None:
        self.written: dict[str, str] = {}
        self.before_write: Any = None

    def write(self, project: str, model_name: str, sql: str, sidecar: str) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        self.written[model_name] = sql


class Pipelines:
    def __init__(self) -> None:
        self.by_name: dict[str, dict[str, Any]] = {}

    def get(self, project: str, ref: str | int) -> dict[str, Any]:
        if ref not in self.by_name:
            raise NotFound(f"no pipeline {ref}")
        return self.by_name[ref]

    def create(self, project: str, request: Any, author: str) -> dict[str, Any]:
        self.by_name[request.name] = {
            "id": len(self.by_name) + 1,
            "name": request.name,
            "description": request.description,
            "nodes": request.nodes,
        }
        return self.by_name[request.name]

    def update(self, project: str, ref: str | int, request: Any, author: str) -> dict[str, Any]:
        found = next(p for p in self.by_name.values() if p["id"] == ref)
        found["nodes"] = request.nodes
        return found

    def sql_of(self, model_name: str) -> str:
        nodes = self.by_name[f"recipe.{model_name}"]["nodes"]
        return next(n for n in nodes if n["id"] == TRANSFORM_ID)["config"]["sql"]


@pytest.fixture()
def book() -> tuple[RecipeBook, Recipes, Files, Pipelines]:
    recipes, files, pipelines = Recipes(), Files(), Pipelines()
    return RecipeBook(recipes, Zones(), None, files, pipelines, lambda project: []), recipes, files, pipelines  # type: ignore[arg-type]


def sql(label: str) -> str:
    return f"SELECT '{label}' AS label FROM {{{{ ref('orders') }}}}"


def test_a_save_that_loses_the_race_puts_back_the_winners_graph(book):
    recipes_book, recipes, files, pipelines = book
    recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("first")}, "ana")
    read_before_the_winner = recipes.get(PROJECT, "m")
    recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("winner")}, "ana")

    # The loser read the recipe before the winner saved, so it writes its graph after the winner's,
    # then its recipe save fails.
    real_get = recipes.get
    calls = iter([read_before_the_winner])
    recipes.get = lambda project, name: next(calls, None) or real_get(project, name)  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("loser")}, "bob")

    assert recipes.current["m"]["revision"] == 2
    assert pipelines.sql_of("m") == sql("winner")
    assert files.written["m"] == sql("winner")


def test_a_winner_whose_files_land_late_writes_the_newer_revision_again(book):
    recipes_book, recipes, files, pipelines = book
    recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("first")}, "ana")
    # While the second save writes its files, a third save runs from start to end.
    files.before_write = lambda: recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("third")}, "bob")
    recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("second")}, "ana")

    assert recipes.current["m"]["revision"] == 3
    assert files.written["m"] == sql("third")
    assert pipelines.sql_of("m") == sql("third")


def test_a_save_without_a_race_reads_once_more_and_writes_nothing_again(book):
    recipes_book, recipes, files, pipelines = book
    writes = []
    real_write = files.write
    files.write = lambda *args: (writes.append(args[1]), real_write(*args))  # type: ignore[method-assign]
    recipes_book.save(PROJECT, {"model_name": "m", "sql": sql("only")}, "ana")
    assert writes == ["m"]
    assert pipelines.sql_of("m") == sql("only")
