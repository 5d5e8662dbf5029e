"""GET /api/lineage on moto: definitions declare datasets, Watcher's address lineage records them,
a deleted pipeline leaves the graph, and one project never sees another's."""

from __future__ import annotations

import pytest

from sluice.auth.principal import Principal, Role
from sluice.store.lineage import LineageRepository
from tests.apigw import invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:ed")
VIEWER = Principal("acme", Role.viewer, "user:vi")
OTHER = Principal("globex", Role.admin, "user:other")
ADDRESS = {"address_type_name": "dataset", "address_type_group_name": "sluice"}


@pytest.fixture
def areas(table):
    return load_area("pipelines").handler, load_area("lineage").handler


def create(pipelines, name: str, nodes: list[dict], edges: list[dict]) -> str:
    status, body = invoke(
        pipelines, "POST", "/api/v1/pipelines", {"name": name, "nodes": nodes, "edges": edges}, EDITOR
    )
    assert status == 201, body
    return body["data"]["id"]


def test_declared_and_recorded_datasets_meet_in_one_graph(areas):
    pipelines, lineage = areas
    # Given a loader that writes `orders` and a report that reads it (declared in their definitions)
    loader = create(
        pipelines,
        "loader",
        [
            {"id": "rows", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}},
            {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": "orders"}},
        ],
        [{"source": "rows", "target": "out"}],
    )
    report = create(
        pipelines,
        "report",
        [
            {"id": "in", "nodeType": "source", "config": {"kind": "dataset", "name": "orders"}},
            {"id": "sum", "nodeType": "transform", "config": {"sql": 'SELECT count(*) AS n FROM "in"'}},
        ],
        [{"source": "in", "target": "sum"}],
    )
    # And the loader recorded what it wrote (as a run does, through Watcher's address lineage)
    status, _ = invoke(
        lineage,
        "POST",
        "/address_lineage",
        {
            "pipeline_id": int(loader.removeprefix("pipeline-")),
            "source_addresses": [ADDRESS | {"name": "landing.csv"}],
            "target_addresses": [ADDRESS | {"name": "orders"}],
        },
        EDITOR,
    )
    assert status == 201

    # When a viewer asks for the project's lineage
    status, graph = invoke(lineage, "GET", "/api/lineage", principal=VIEWER)

    # Then both pipelines and the datasets between them are there, with where each edge comes from
    assert status == 200
    edges = {(e["source"], e["target"], e["type"]): e for e in graph["edges"]}
    assert edges[(loader, "dataset:orders", "writes")] == {
        "source": loader,
        "target": "dataset:orders",
        "type": "writes",
        "declared": True,
        "recorded": True,
    }
    assert edges[("dataset:landing.csv", loader, "reads")]["declared"] is False
    assert edges[("dataset:orders", report, "reads")]["recorded"] is False
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert isinstance(nodes["dataset:orders"]["address_id"], int)
    assert graph["shared_datasets"] == [
        {"dataset": "dataset:orders", "name": "orders", "writers": [loader], "readers": [report]}
    ]

    # And another project sees none of it
    assert invoke(lineage, "GET", "/api/lineage", principal=OTHER) == (
        200,
        {"nodes": [], "edges": [], "shared_datasets": []},
    )


def test_a_deleted_pipeline_leaves_the_graph_with_what_it_recorded(areas, table):
    pipelines, lineage = areas
    loader = create(
        pipelines,
        "short-lived",
        [
            {"id": "rows", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}},
            {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": "tmp"}},
        ],
        [{"source": "rows", "target": "out"}],
    )
    recorded = invoke(
        lineage,
        "POST",
        "/address_lineage",
        {
            "pipeline_id": int(loader.removeprefix("pipeline-")),
            "source_addresses": [],
            "target_addresses": [ADDRESS | {"name": "tmp"}],
        },
        EDITOR,
    )
    assert recorded[0] == 201, recorded
    assert any(
        edge.get("recorded") for edge in invoke(lineage, "GET", "/api/lineage", principal=VIEWER)[1]["edges"]
    )
    status, _ = invoke(pipelines, "DELETE", "/api/v1/pipelines/short-lived", principal=EDITOR)
    assert status in (200, 204)

    status, graph = invoke(lineage, "GET", "/api/lineage", principal=VIEWER)
    assert status == 200
    assert graph == {"nodes": [], "edges": [], "shared_datasets": []}
    assert LineageRepository(table).recorded_datasets("acme") == []  # not merely hidden: gone


def test_every_pipeline_is_read_page_by_page(areas, table):
    from sluice.store.pipelines import PipelineDefinitionRepository

    pipelines, _ = areas
    made = [
        create(
            pipelines,
            f"p{n}",
            [{"id": "s", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}],
            [],
        )
        for n in range(5)
    ]
    found = PipelineDefinitionRepository(table).all("acme", page_size=2)
    assert [f"pipeline-{record['id']}" for record in found] == made
