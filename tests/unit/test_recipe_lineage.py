"""Column lineage of visual recipes (OpenLineage types) from sqlglot's lineage over the compiled
model: the edges of each recipe type, and no config of the round-trip strategies makes it fail."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from sluice.domain.recipe_lineage import recipe_lineage
from sluice.errors import ValidationFailed
from tests.unit.test_recipe_round_trip import configs


def edges(answer: dict) -> set[tuple]:
    return {
        (
            e["source"]["model"],
            e["source"]["column"],
            e["target"]["column"],
            e["transformation"]["type"],
            e["transformation"]["subtype"],
        )
        for e in answer["edges"]
    }


def test_join_edges_are_identity_plus_indirect_join_keys():
    config = {
        "recipe_type": "join",
        "inputs": ["orders", "customers"],
        "join_type": "inner",
        "on": [{"left": "customer_id", "right": "id"}],
        "columns": [
            {"input": "orders", "column": "amount", "alias": "spent"},
            {"input": "customers", "column": "name"},
        ],
    }
    answer = recipe_lineage("spend", config)
    assert answer["output_columns"] == ["spent", "name"]
    assert edges(answer) == {
        ("orders", "amount", "spent", "DIRECT", "IDENTITY"),
        ("customers", "name", "name", "DIRECT", "IDENTITY"),
        *{
            (m, c, t, "INDIRECT", "JOIN")
            for m, c in (("orders", "customer_id"), ("customers", "id"))
            for t in ("spent", "name")
        },
    }


def test_group_by_edges_aggregate_and_group():
    config = {
        "recipe_type": "group_by",
        "inputs": ["orders"],
        "keys": ["status"],
        "aggregations": [
            {"column": "amount", "function": "avg", "alias": "mean"},
            {"column": "customer_id", "function": "count_distinct", "alias": "buyers"},
        ],
    }
    assert edges(recipe_lineage("m", config)) == {
        ("orders", "status", "status", "DIRECT", "IDENTITY"),
        ("orders", "amount", "mean", "DIRECT", "AGGREGATION"),
        ("orders", "customer_id", "buyers", "DIRECT", "AGGREGATION"),
        *{("orders", "status", t, "INDIRECT", "GROUP_BY") for t in ("status", "mean", "buyers")},
    }


def test_prepare_follows_a_filter_on_a_derived_column_back_to_its_input():
    config = {
        "recipe_type": "prepare",
        "inputs": ["orders"],
        "steps": [
            {"type": "derive", "column": "tax", "expression": "amount * 0.2"},
            {"type": "rename", "column": "status", "to": "state"},
            {"type": "filter", "condition": "tax > 10 AND state = 'paid'"},
            {"type": "cast", "column": "amount", "to": "INT"},
        ],
    }
    found = edges(recipe_lineage("m", config, {"orders": ["id", "amount", "status"]}))
    assert ("orders", "id", "id", "DIRECT", "IDENTITY") in found
    assert ("orders", "amount", "amount", "DIRECT", "TRANSFORMATION") in found
    assert ("orders", "amount", "tax", "DIRECT", "TRANSFORMATION") in found
    assert ("orders", "status", "state", "DIRECT", "IDENTITY") in found
    assert {("orders", c, "id", "INDIRECT", "FILTER") for c in ("amount", "status")} <= found


def test_stack_edges_reach_every_input():
    config = {"recipe_type": "stack", "inputs": ["jan", "feb"], "mode": "union", "columns": ["id"]}
    assert edges(recipe_lineage("m", config)) == {
        ("jan", "id", "id", "DIRECT", "IDENTITY"),
        ("feb", "id", "id", "DIRECT", "IDENTITY"),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_every_config_has_lineage_with_well_formed_edges(config):
    """Never a crash: lineage, or (a step naming a column an earlier step dropped, which only the
    columns lineage infers reveal) a ValidationFailed that says so."""
    try:
        answer = recipe_lineage("model", config)
    except ValidationFailed as exc:
        assert "not among the columns" in exc.detail
        return
    for edge in answer["edges"]:
        assert edge["source"]["model"] in config["inputs"]
        assert edge["target"] == {"model": "model", "column": edge["target"]["column"]}
        assert edge["target"]["column"] in answer["output_columns"]
        assert edge["transformation"]["type"] in ("DIRECT", "INDIRECT")
