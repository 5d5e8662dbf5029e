"""Seed 000's flow graph: the project's pipelines linked by the datasets they write and read.

A pipeline that reads dataset D (a `dataset` source) depends on the pipeline that writes D (a
`dataset` target). SPEC 4's scopes walk this graph the way they walk nodes inside one pipeline,
and the pipelines they select run level by level (a level only once every pipeline it reads from
has succeeded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.domain.graph import Graph
from sluice.domain.runs import levels, select_scope
from sluice.errors import InvalidRequest, ValidationFailed

TARGET_TYPES = ("pipeline", "dataset", "recipe")
RECIPE_PIPELINE_PREFIX = "recipe."


def recipe_pipeline_name(model_name: str) -> str:
    """The pipeline a saved recipe keeps (sluice.domain.flow_recipes): a run target of type recipe."""
    return RECIPE_PIPELINE_PREFIX + model_name


def datasets_of(record: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(datasets the pipeline reads, datasets it writes), from its `dataset` sources and targets."""
    graph = Graph.from_document(record.get("graph"))
    reads: set[str] = set()
    writes: set[str] = set()
    for node in graph.nodes:
        config = node.config or {}
        if config.get("kind") != "dataset" or not isinstance(config.get("name"), str):
            continue
        if node.node_type == "source":
            reads.add(config["name"])
        elif node.node_type == "target":
            writes.add(config["name"])
    return reads, writes


@dataclass(frozen=True)
class FlowGraph:
    records: dict[int, dict[str, Any]]
    reads: dict[int, set[str]]
    writes: dict[int, set[str]]

    @classmethod
    def of(cls, records: Iterable[Mapping[str, Any]]) -> FlowGraph:
        by_id = {int(r["id"]): dict(r) for r in records}
        reads, writes = {}, {}
        for pid, record in by_id.items():
            reads[pid], writes[pid] = datasets_of(record)
        return cls(by_id, reads, writes)

    def writers_of(self, dataset: str) -> list[int]:
        return sorted(pid for pid, written in self.writes.items() if dataset in written)

    def readers_of(self, dataset: str) -> list[int]:
        return sorted(pid for pid, read in self.reads.items() if dataset in read)

    @property
    def upstream(self) -> dict[str, list[str]]:
        """Pipeline id (as text) -> ids of the pipelines writing what it reads (never itself)."""
        return {
            str(pid): sorted({str(w) for name in self.reads[pid] for w in self.writers_of(name) if w != pid})
            for pid in self.records
        }

    def plan(self, target: int, scope: str) -> list[list[int]]:
        """The selected pipelines in levels: each level's pipelines read only from earlier levels
        or from pipelines outside the selection (whose datasets are taken as they are)."""
        graph = self.upstream
        chosen = select_scope(graph, str(target), scope)
        outside = set(graph) - chosen
        try:
            planned = levels(graph, chosen, satisfied=outside)
        except ValidationFailed as exc:
            raise InvalidRequest(f"The flow cannot be run: {exc.detail}") from exc
        return [[int(pid) for pid in level] for level in planned]
