"""`GET /api/lineage` (seed 002, SPEC 5): one graph of the project's pipelines, the datasets they
read and write, the connectors they use and the variables they reference.

Datasets come from two places, and each edge says which:
- `recorded`: what runs (and external pipelines through Watcher's `POST /address_lineage`) last
  recorded reading and writing, the same addresses Watcher's address lineage links;
- `declared`: the `dataset` sources and targets of the pipeline's current definition, so a pipeline
  that has not run yet is already in place.
A dataset node's id is `dataset:<name>`, and it carries `address_id` once an address exists for it.
`shared_datasets` lists the datasets more than one pipeline touches: who writes, who reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from sluice.domain import ids


class PipelineRecords(Protocol):
    def all(self, project: str) -> list[dict[str, Any]]: ...
    def references(
        self, project: str, records: list[dict[str, Any]]
    ) -> dict[tuple[str, int], dict[str, Any]]: ...


class RecordedDatasets(Protocol):
    def recorded_datasets(self, project: str) -> list[dict[str, Any]]: ...


class ProjectLineage:
    """The use case over its two readers (the pipeline definitions and the recorded lineage)."""

    def __init__(self, pipelines: PipelineRecords, recorded: RecordedDatasets):
        self.pipelines = pipelines
        self.recorded = recorded

    def of(self, project: str) -> dict[str, Any]:
        return project_lineage(project, self.pipelines, self.recorded)


def project_lineage(project: str, pipelines: PipelineRecords, recorded: RecordedDatasets) -> dict[str, Any]:
    """Read the project's pipelines (a Query a page), the connectors they name (one batch read) and
    what they recorded (one Query), and join them; the cost grows with the graph."""
    records = pipelines.all(project)
    connectors = [record for record in records if record.get("connector_id") is not None]
    references = pipelines.references(project, connectors) if connectors else {}
    return lineage_graph(records, recorded.recorded_datasets(project), references)


def variables_of(record: Mapping[str, Any]) -> set[str]:
    """Keys of the `${var.KEY}` references anywhere in the pipeline's graph (as substitution reads them)."""
    from sluice.domain.variables import referenced_variables  # its request models: not at cold start

    return referenced_variables(record.get("graph") or {})


def lineage_graph(
    records: Iterable[Mapping[str, Any]],
    recorded: Iterable[Mapping[str, Any]],
    references: Mapping[tuple[str, int], Mapping[str, Any]],
) -> dict[str, Any]:
    from sluice.domain.flows import datasets_of  # the graph model: only once a graph is drawn

    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}

    def dataset(name: str, address_id: int | None = None) -> str:
        node_id = f"dataset:{name}"
        node = nodes.setdefault(node_id, {"id": node_id, "type": "dataset", "name": name, "address_id": None})
        if address_id is not None:
            node["address_id"] = address_id
        return node_id

    def edge(source: str, target: str, kind: str, origin: str | None = None) -> None:
        found = edges.setdefault((source, target, kind), {"source": source, "target": target, "type": kind})
        if origin is not None:
            found.setdefault("declared", False)
            found.setdefault("recorded", False)
            found[origin] = True

    pipeline_ids: set[int] = set()
    for record in records:
        number = int(record["id"])
        pipeline_ids.add(number)
        pipeline = ids.render("pipeline", number)
        nodes[pipeline] = {
            "id": pipeline,
            "type": "pipeline",
            "name": record.get("name"),
            "status": record.get("status"),
        }
        reads, writes = datasets_of(record)
        for name in sorted(reads):
            edge(dataset(name), pipeline, "reads", "declared")
        for name in sorted(writes):
            edge(pipeline, dataset(name), "writes", "declared")
        connector_id = record.get("connector_id")
        if connector_id is not None:
            view = references.get(("connector", int(connector_id))) or {}
            connector = ids.render("connector", int(connector_id))
            nodes[connector] = {
                "id": connector,
                "type": "connector",
                "name": view.get("name"),
                "connector_type": view.get("type"),
            }
            edge(connector, pipeline, "uses_connector")
        for name in sorted(variables_of(record)):
            variable = f"variable:{name}"
            nodes[variable] = {"id": variable, "type": "variable", "name": name}
            edge(variable, pipeline, "uses_variable")

    for item in recorded:
        number = int(item["pipeline_id"])
        if number not in pipeline_ids:
            continue  # deleted since it recorded
        pipeline = ids.render("pipeline", number)
        for read in item.get("reads") or []:
            edge(dataset(str(read["name"]), int(read["address_id"])), pipeline, "reads", "recorded")
        for written in item.get("writes") or []:
            edge(pipeline, dataset(str(written["name"]), int(written["address_id"])), "writes", "recorded")

    return {
        "nodes": sorted(nodes.values(), key=lambda node: (node["type"], node["id"])),
        "edges": sorted(edges.values(), key=lambda e: (e["type"], e["source"], e["target"])),
        "shared_datasets": _shared(edges.values()),
    }


def _shared(edges: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    writers: dict[str, set[str]] = {}
    readers: dict[str, set[str]] = {}
    for found in edges:
        if found["type"] == "writes":
            writers.setdefault(found["target"], set()).add(found["source"])
        elif found["type"] == "reads":
            readers.setdefault(found["source"], set()).add(found["target"])
    shared = []
    for node_id in sorted(set(writers) | set(readers)):
        touching = writers.get(node_id, set()) | readers.get(node_id, set())
        if len(touching) > 1:
            shared.append(
                {
                    "dataset": node_id,
                    "name": node_id.removeprefix("dataset:"),
                    "writers": sorted(writers.get(node_id, set()), key=_pipeline_number),
                    "readers": sorted(readers.get(node_id, set()), key=_pipeline_number),
                }
            )
    return shared


def _pipeline_number(pipeline: str) -> int:
    return ids.parse("pipeline", pipeline)
