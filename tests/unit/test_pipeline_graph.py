"""The pipeline graph: both seeds' spellings converted losslessly, and every reason a graph is refused."""

from __future__ import annotations

import copy

import pytest

from sluice.domain.graph import (
    MAX_NODES,
    Graph,
    graph_from_nodes_and_edges,
    graph_from_sources,
)
from sluice.domain.graph_validation import validate_graph
from sluice.errors import ValidationFailed

NODES = [
    {
        "id": "orders",
        "nodeType": "source",
        "label": "Orders",
        "config": {"kind": "s3", "uri": "s3://raw/orders/", "format": "parquet"},
        "position": {"x": 0, "y": 0},
    },
    {
        "id": "fx",
        "nodeType": "source",
        "label": None,
        "config": {"kind": "http", "url": "https://fx.example/rates", "records_path": "data.rates"},
        "position": None,
    },
    {
        "id": "joined",
        "nodeType": "transform",
        "label": "Join",
        "config": {
            "sql": "select o.*, f.rate from orders o join {{ ref('fx') }} f using (currency)",
            "dialect": "duckdb",
        },
        "position": {"x": 200, "y": 50.5},
    },
    {
        "id": "big",
        "nodeType": "filter",
        "label": None,
        "config": {"condition": "amount * rate > 100"},
        "position": None,
    },
    {
        "id": "warehouse",
        "nodeType": "target",
        "label": None,
        "config": {"kind": "dataset", "name": "big_orders", "mode": "merge", "key": ["order_id"]},
        "position": None,
    },
    {
        "id": "archive",
        "nodeType": "target",
        "label": "S3",
        "config": {"kind": "s3", "uri": "s3://archive/orders.csv", "format": "csv"},
        "position": None,
    },
]
EDGES = [
    {"source": "orders", "target": "joined", "label": "left"},
    {"source": "fx", "target": "joined", "label": None},
    {"source": "joined", "target": "big", "label": None},
    {"source": "big", "target": "warehouse", "label": None},
    {"source": "joined", "target": "archive", "label": "all rows"},
]
SPELLED_001 = {
    "sources": [
        {
            "name": "orders",
            "type": "s3",
            "uri": "s3://raw/orders/",
            "format": "parquet",
            "label": "Orders",
            "position": {"x": 0, "y": 0},
        },
        {"name": "fx", "type": "http", "url": "https://fx.example/rates", "records_path": "data.rates"},
    ],
    "transforms": [
        {
            "name": "joined",
            "type": "sql",
            "sql": "select o.*, f.rate from orders o join {{ ref('fx') }} f using (currency)",
            "dialect": "duckdb",
            "inputs": [{"name": "orders", "label": "left"}, "fx"],
            "label": "Join",
            "position": {"x": 200, "y": 50.5},
        },
        {"name": "big", "type": "filter", "condition": "amount * rate > 100", "inputs": ["joined"]},
    ],
    "destinations": [
        {
            "name": "warehouse",
            "type": "dataset",
            "mode": "merge",
            "key": ["order_id"],
            "dataset": "big_orders",
            "inputs": ["big"],
        },
        {
            "name": "archive",
            "type": "s3",
            "uri": "s3://archive/orders.csv",
            "format": "csv",
            "inputs": [{"name": "joined", "label": "all rows"}],
            "label": "S3",
        },
    ],
}


def spelled(**lists):
    return graph_from_sources(lists.get("sources"), lists.get("transforms"), lists.get("destinations"))


def nodes_graph(nodes, edges=None):
    return graph_from_nodes_and_edges(nodes, edges)


def refused(graph_or_factory) -> str:
    with pytest.raises(ValidationFailed) as caught:
        graph = graph_or_factory() if callable(graph_or_factory) else graph_or_factory
        validate_graph(graph)
    return caught.value.detail


# -- spellings -------------------------------------------------------------------------------------
def test_nodes_and_edges_read_back_in_both_spellings():
    graph = nodes_graph(NODES, EDGES)
    validate_graph(graph)
    assert graph.nodes_and_edges() == {"nodes": NODES, "edges": EDGES}
    assert graph.sources_transforms_destinations() == SPELLED_001


def test_sources_transforms_destinations_read_back_in_both_spellings():
    graph = spelled(**SPELLED_001)
    validate_graph(graph)
    assert graph.sources_transforms_destinations() == SPELLED_001
    assert graph.nodes_and_edges() == {"nodes": NODES, "edges": EDGES}


def test_conversion_round_trips_both_ways():
    from_003 = nodes_graph(NODES, EDGES)
    again = spelled(**from_003.sources_transforms_destinations())
    assert again == from_003
    from_001 = spelled(**SPELLED_001)
    assert nodes_graph(**from_001.nodes_and_edges()) == from_001
    assert Graph.from_document(from_001.to_document()) == from_001


def test_interleaved_nodes_are_kept_sources_first_then_transforms_then_targets():
    nodes = [NODES[4], NODES[2], NODES[0], NODES[3], NODES[1], NODES[5]]
    edges = list(reversed(EDGES))
    graph = nodes_graph(nodes, edges)
    assert [n.id for n in graph.nodes] == ["orders", "fx", "joined", "big", "warehouse", "archive"]
    # Edges grouped by target in node order; a node's inputs keep the order they were given in.
    assert [(e.source, e.target) for e in graph.edges] == [
        ("fx", "joined"),
        ("orders", "joined"),
        ("joined", "big"),
        ("big", "warehouse"),
        ("joined", "archive"),
    ]


def test_a_dataset_node_without_a_dataset_name_uses_its_own_id():
    graph = nodes_graph(
        [
            {"id": "src", "nodeType": "source", "config": {"kind": "dataset"}},
            {"id": "out", "nodeType": "target", "config": {"kind": "dataset"}},
        ],
        [{"source": "src", "target": "out"}],
    )
    assert [n.config["name"] for n in graph.nodes] == ["src", "out"]
    spelled_001 = graph.sources_transforms_destinations()
    assert spelled_001["sources"] == [{"name": "src", "type": "dataset"}]
    assert spelled_001["destinations"] == [{"name": "out", "type": "dataset", "inputs": ["src"]}]


def test_a_recipe_transform_is_type_recipe_in_seed_001():
    graph = spelled(
        sources=[{"name": "a", "type": "inline", "rows": []}],
        transforms=[{"name": "r", "type": "recipe", "recipe": {"steps": []}, "inputs": ["a"]}],
    )
    validate_graph(graph)
    assert graph.nodes[1].node_type == "transform" and graph.nodes[1].config == {"recipe": {"steps": []}}
    assert graph.sources_transforms_destinations()["transforms"][0]["type"] == "recipe"


def test_an_empty_graph_is_valid_and_empty_in_both_spellings():
    graph = spelled()
    validate_graph(graph)
    assert graph.both_spellings() == {
        "nodes": [],
        "edges": [],
        "sources": [],
        "transforms": [],
        "destinations": [],
    }


# -- refusals -------------------------------------------------------------------------------------
def with_node(index: int, **changes):
    nodes = copy.deepcopy(NODES)
    nodes[index] = {**nodes[index], **changes}
    return nodes


def with_config(index: int, **changes):
    nodes = copy.deepcopy(NODES)
    nodes[index]["config"] = {**nodes[index]["config"], **changes}
    return nodes


def without_config_key(index: int, key: str):
    nodes = copy.deepcopy(NODES)
    del nodes[index]["config"][key]
    return nodes


@pytest.mark.parametrize(
    "nodes, edges, expected",
    [
        (with_node(3, nodeType="join"), EDGES, "Node 'big': nodeType 'join' is not one Sluice can run"),
        (with_config(0, kind="ftp"), EDGES, "Node 'orders': source kind 'ftp' is not one Sluice can run"),
        (
            with_config(5, kind="kafka"),
            EDGES,
            "Node 'archive': target kind 'kafka' is not one Sluice can run",
        ),
        (
            without_config_key(2, "sql"),
            EDGES,
            "Node 'joined': a transform needs exactly one of config.sql or config.recipe",
        ),
        (
            with_config(2, recipe={}),
            EDGES,
            "Node 'joined': a transform needs exactly one of config.sql or config.recipe",
        ),
        (without_config_key(3, "condition"), EDGES, "Node 'big': a filter needs config.condition"),
        (with_config(0, format="xml"), EDGES, "Node 'orders': config.format must be one of"),
        (with_config(0, uri="https://x"), EDGES, "Node 'orders': config.uri must be an s3://"),
        (with_config(1, url="ftp://x"), EDGES, "Node 'fx': an http source needs config.url"),
        (
            with_config(4, mode="upsert"),
            EDGES,
            "Node 'warehouse': config.mode must be one of overwrite, append, merge",
        ),
        (without_config_key(4, "key"), EDGES, "Node 'warehouse': a merge target needs config.key"),
        (with_config(2, dialect="klingon"), EDGES, "Node 'joined': dialect 'klingon' is not a SQL dialect"),
        (NODES, [*EDGES, {"source": "big", "target": "ghost"}], "Edge big -> ghost: 'ghost' is not a node"),
        (
            NODES,
            [*EDGES, {"source": "nowhere", "target": "big"}],
            "Edge nowhere -> big: 'nowhere' is not a node",
        ),
        (NODES, [*EDGES, EDGES[0]], "Edge orders -> joined is given twice"),
        (
            NODES,
            [e for e in EDGES if e["target"] != "warehouse"],
            "Node 'warehouse': a target needs an input",
        ),
        (
            NODES,
            [*EDGES, {"source": "joined", "target": "warehouse"}],
            "Node 'warehouse': a target writes exactly one input",
        ),
        (
            NODES,
            [e for e in EDGES if e["target"] != "big"],
            "Node 'big': a filter needs exactly one input; it has 0",
        ),
        (
            NODES,
            [*EDGES, {"source": "orders", "target": "big"}],
            "Node 'big': a filter needs exactly one input; it has 2",
        ),
        (NODES, [*EDGES, {"source": "big", "target": "fx"}], "Node 'fx': a source takes no inputs"),
        ([*NODES, {**NODES[0], "label": "again"}], EDGES, "Node 'orders' appears twice"),
    ],
)
def test_a_graph_sluice_cannot_run_is_refused_naming_the_node(nodes, edges, expected):
    assert expected in refused(lambda: nodes_graph(nodes, edges))


def test_a_cycle_is_refused_naming_a_node_on_it():
    nodes = [
        {"id": "a", "nodeType": "source", "config": {"kind": "inline", "rows": []}},
        {"id": "b", "nodeType": "transform", "config": {"sql": "select * from a union all select * from d"}},
        {"id": "c", "nodeType": "transform", "config": {"sql": "select * from b"}},
        {"id": "d", "nodeType": "transform", "config": {"sql": "select * from c"}},
    ]
    edges = [
        {"source": "a", "target": "b"},
        {"source": "b", "target": "c"},
        {"source": "c", "target": "d"},
        {"source": "d", "target": "b"},
    ]
    detail = refused(lambda: nodes_graph(nodes, edges))
    assert "is on a cycle" in detail and "b -> c -> d -> b" in detail


def test_a_node_feeding_itself_is_a_cycle():
    nodes = [{"id": "t", "nodeType": "transform", "config": {"sql": "select * from t"}}]
    assert "Node 't' is on a cycle (t -> t)" in refused(
        lambda: nodes_graph(nodes, [{"source": "t", "target": "t"}])
    )


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("select * from orders where", "Node 'joined': config.sql does not parse as duckdb SQL"),
        ("select 'unterminated from orders", "does not parse as duckdb SQL"),
        ("select 1; select 2", "must be one query, not 2 statements"),
        ("drop table orders", "must be a query (SELECT ...), not DROP"),
        ("insert into orders select * from fx", "must be a query"),
        (
            "select * from payments",
            "its SQL reads payments, which is not one of its upstream nodes (fx, orders)",
        ),
        ("select * from orders join analytics.fx using (id)", "reads analytics.fx"),
        ("select * from read_csv('s3://x/y.csv')", "reads READ_CSV"),
        ("select * from 'file.parquet'", "reads file.parquet"),
        ("select * from {{ ref('big') }}", "reads big, which is not one of its upstream nodes"),
        ("select * from orders where id in (select id from secret_table)", "reads secret_table"),
    ],
)
def test_sql_that_does_not_parse_or_reads_beyond_its_inputs_is_refused(sql, expected):
    assert expected in refused(lambda: nodes_graph(with_config(2, sql=sql), EDGES))


@pytest.mark.parametrize(
    "sql",
    [
        "with recent as (select * from orders where day > now() - interval 1 day) select * from recent, fx",
        'select * from ORDERS union all select * from {{ ref("fx") }}',
        "select * from orders cross join generate_series(1, 3) as g(i), fx",
        "select * from orders, fx where region = '${var.REGION}' limit ${var.N}",
        'select * from "orders" natural join fx',
    ],
)
def test_sql_reading_only_its_inputs_and_own_ctes_is_accepted(sql):
    validate_graph(nodes_graph(with_config(2, sql=sql), EDGES))


@pytest.mark.parametrize(
    "condition, expected",
    [
        ("amount >", "config.condition does not parse"),
        ("select 1", "must be a SQL boolean expression, not a statement"),
        ("amount > 1; drop table x", "must be a SQL boolean expression"),
        ("id in (select id from blocked)", "reads blocked, which is not one of its upstream nodes (joined)"),
    ],
)
def test_a_filter_condition_must_be_an_expression_over_its_input(condition, expected):
    assert expected in refused(lambda: nodes_graph(with_config(3, condition=condition), EDGES))


def test_sql_in_another_dialect_parses_in_that_dialect():
    sql = "select top 5 * from orders, fx"
    assert "does not parse" in refused(lambda: nodes_graph(with_config(2, sql=sql), EDGES))
    validate_graph(nodes_graph(with_config(2, sql=sql, dialect="tsql"), EDGES))


def test_more_nodes_than_the_limit_are_refused_before_reading_them():
    nodes = [{"id": f"n{i}"} for i in range(10_000)]  # not even valid nodes: the count comes first
    with pytest.raises(ValidationFailed, match=f"at most {MAX_NODES} nodes; this one has 10000"):
        nodes_graph(nodes, [])
    sources = [{"name": f"s{i}", "type": "inline", "rows": []} for i in range(MAX_NODES + 1)]
    with pytest.raises(ValidationFailed, match=f"at most {MAX_NODES} nodes; this one has {MAX_NODES + 1}"):
        spelled(sources=sources)


def test_exactly_the_node_limit_is_accepted():
    sources = [{"name": f"s{i}", "type": "inline", "rows": []} for i in range(MAX_NODES)]
    validate_graph(spelled(sources=sources))


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: nodes_graph("nope"), "nodes must be a list"),
        (lambda: nodes_graph([5]), "nodes[0] must be an object"),
        (lambda: nodes_graph([{"id": "a/b", "nodeType": "source"}]), "a node id must be 1-128 letters"),
        (lambda: nodes_graph([{"id": "a\nb", "nodeType": "source"}]), "a node id must be"),
        (lambda: nodes_graph([{"id": "a"}]), "Node 'a': nodeType is required"),
        (
            lambda: nodes_graph([{"id": "a", "nodeType": "source", "config": []}]),
            "Node 'a': config must be an object",
        ),
        (
            lambda: nodes_graph(
                [{"id": "a", "nodeType": "source", "config": {"kind": "inline", "rows": [], "inputs": 1}}]
            ),
            "config key 'inputs' is reserved",
        ),
        (
            lambda: nodes_graph([{"id": "a", "nodeType": "source", "position": {"x": "1", "y": 2}}]),
            "position must be {x: number, y: number}",
        ),
        (
            lambda: nodes_graph([{"id": "a", "nodeType": "source", "label": "x" * 201}]),
            "label must be a string of at most 200",
        ),
        (lambda: nodes_graph([], [{"source": "a"}]), "edges[0] target: a node id must be"),
        (lambda: spelled(sources="x"), "sources must be a list"),
        (lambda: spelled(sources=[{"name": "a"}]), "Node 'a': type is required in sources"),
        (
            lambda: spelled(sources=[{"name": "a", "type": "inline", "rows": [], "inputs": []}]),
            "a source takes no inputs",
        ),
        (
            lambda: spelled(transforms=[{"name": "t", "type": "python", "code": "x"}]),
            "transform type 'python' is not one Sluice can run",
        ),
        (
            lambda: spelled(transforms=[{"name": "t", "type": "sql", "sql": "select 1", "inputs": "a"}]),
            "inputs must be a list",
        ),
        (
            lambda: spelled(sources=[{"name": "a", "type": "s3", "dataset": "x"}]),
            "config key 'dataset' is reserved",
        ),
        (
            lambda: spelled(sources=[{"name": "a", "type": "inline", "rows": {"not": "a list"}}]),
            "an inline source needs config.rows",
        ),
        (
            lambda: spelled(
                transforms=[{"name": "t", "type": "sql", "sql": "select 1", "inputs": ["ghost"]}]
            ),
            "'ghost' is not a node",
        ),
    ],
)
def test_malformed_graphs_are_refused_with_a_sentence(build, expected):
    assert expected in refused(build)
