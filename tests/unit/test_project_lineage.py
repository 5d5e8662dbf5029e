"""GET /api/lineage's graph: pipelines, declared and recorded datasets, connectors, variables."""

from __future__ import annotations

from sluice.domain.project_lineage import lineage_graph, project_lineage, variables_of


def pipeline(number: int, name: str, nodes: list[dict], **fields) -> dict:
    return {"id": number, "name": name, "status": "active", "graph": {"nodes": nodes, "edges": []}, **fields}


def source(node_id: str, dataset: str) -> dict:
    return {"id": node_id, "nodeType": "source", "config": {"kind": "dataset", "name": dataset}}


def target(node_id: str, dataset: str) -> dict:
    return {"id": node_id, "nodeType": "target", "config": {"kind": "dataset", "name": dataset}}


LOADER = pipeline(
    1,
    "load orders",
    [
        {"id": "raw", "nodeType": "source", "config": {"kind": "s3", "uri": "s3://in/${var.REGION}/x.csv"}},
        target("out", "orders"),
    ],
    connector_id=4,
)
REPORT = pipeline(2, "report", [source("in", "orders"), target("out", "daily")])
CONNECTORS = {("connector", 4): {"id": "connector-4", "name": "warehouse", "type": "postgres"}}


def edges_of(graph: dict) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["type"]) for e in graph["edges"]}


def test_declared_datasets_connectors_and_variables_make_one_graph():
    graph = lineage_graph([LOADER, REPORT], [], CONNECTORS)

    assert edges_of(graph) == {
        ("pipeline-1", "dataset:orders", "writes"),
        ("dataset:orders", "pipeline-2", "reads"),
        ("pipeline-2", "dataset:daily", "writes"),
        ("connector-4", "pipeline-1", "uses_connector"),
        ("variable:REGION", "pipeline-1", "uses_variable"),
    }
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert nodes["connector-4"] == {
        "id": "connector-4",
        "type": "connector",
        "name": "warehouse",
        "connector_type": "postgres",
    }
    assert nodes["pipeline-2"]["name"] == "report"
    assert nodes["dataset:orders"]["address_id"] is None  # nothing recorded yet
    writes = next(e for e in graph["edges"] if e["type"] == "writes" and e["source"] == "pipeline-1")
    assert (writes["declared"], writes["recorded"]) == (True, False)
    assert graph["shared_datasets"] == [
        {"dataset": "dataset:orders", "name": "orders", "writers": ["pipeline-1"], "readers": ["pipeline-2"]}
    ]


def test_recorded_lineage_joins_the_declared_and_adds_what_only_runs_know():
    recorded = [
        {"pipeline_id": 1, "reads": [], "writes": [{"address_id": 7, "name": "orders"}]},
        # an external pipeline (Watcher) with nothing declared, and one deleted since it recorded
        {"pipeline_id": 3, "reads": [{"address_id": 7, "name": "orders"}], "writes": []},
        {"pipeline_id": 9, "reads": [], "writes": [{"address_id": 8, "name": "gone"}]},
    ]
    external = {"id": 3, "name": "airflow dag", "status": "active", "graph": None}

    graph = lineage_graph([LOADER, REPORT, external], recorded, CONNECTORS)

    by_key = {(e["source"], e["target"], e["type"]): e for e in graph["edges"]}
    assert by_key[("pipeline-1", "dataset:orders", "writes")] == {
        "source": "pipeline-1",
        "target": "dataset:orders",
        "type": "writes",
        "declared": True,
        "recorded": True,
    }
    assert by_key[("dataset:orders", "pipeline-3", "reads")]["declared"] is False
    assert "dataset:gone" not in {node["id"] for node in graph["nodes"]}
    assert {node["id"]: node for node in graph["nodes"]}["dataset:orders"]["address_id"] == 7
    assert graph["shared_datasets"][0]["readers"] == ["pipeline-2", "pipeline-3"]


def test_an_empty_project_has_an_empty_graph():
    assert lineage_graph([], [], {}) == {"nodes": [], "edges": [], "shared_datasets": []}


def test_variables_are_found_anywhere_in_the_graph():
    record = {"graph": {"nodes": [{"config": {"sql": "SELECT * FROM t WHERE c = '${var.COUNTRY}'"}}]}}
    assert variables_of(record) == {"COUNTRY"}
    assert variables_of({"graph": None}) == set()


def test_only_what_substitution_would_fill_counts_as_a_reference():
    # an escaped `$${var.X}` is literal text and `${var.9x}` is malformed: neither is a reference
    nested = {
        "nodes": [{"config": {"headers": {"auth": "${var.TOKEN}"}, "note": "$${var.LITERAL} ${var.9x}"}}]
    }
    assert variables_of({"graph": nested}) == {"TOKEN"}


class Pipelines:
    def __init__(self, count: int, connector_id: int | None = None):
        self.records = [
            pipeline(n, f"p{n}", [target("t", f"d{n}")], connector_id=connector_id)
            for n in range(1, count + 1)
        ]
        self.referenced: list[list[dict]] = []

    def all(self, project):
        return self.records

    def references(self, project, records):
        self.referenced.append(records)
        return {}


class Recorded:
    def recorded_datasets(self, project):
        return []


def test_connectors_are_read_only_when_a_pipeline_names_one():
    store = Pipelines(3)
    graph = project_lineage("acme", store, Recorded())
    assert store.referenced == []  # no batch read
    assert len([n for n in graph["nodes"] if n["type"] == "pipeline"]) == 3

    named = Pipelines(2, connector_id=4)
    graph = project_lineage("acme", named, Recorded())
    assert [len(records) for records in named.referenced] == [2]
    assert {n["id"] for n in graph["nodes"] if n["type"] == "connector"} == {"connector-4"}
