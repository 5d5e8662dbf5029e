"""Visual recipe compilation (SPEC 6): one fixed SQL shape per recipe type (what parse-to-visual will
read back), output columns, the errors a recipe editor shows, and the SQL really running on DuckDB."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from sluice.domain.recipes import compile_recipe
from sluice.errors import ValidationFailed

PREPARE = {
    "recipe_type": "prepare",
    "inputs": ["orders"],
    "steps": [
        {"type": "select", "columns": ["id", "amount", "status", "Order Date"]},
        {"type": "filter", "condition": "amount > 100"},
        {"type": "rename", "column": "status", "to": "state"},
        {"type": "derive", "column": "tax", "expression": "amount * 0.2"},
        {"type": "cast", "column": "amount", "to": "DECIMAL(10, 2)"},
        {"type": "drop", "columns": ["Order Date"]},
    ],
}
JOIN = {
    "recipe_type": "join",
    "inputs": ["orders", "customers"],
    "join_type": "left",
    "on": [{"left": "customer_id", "right": "id"}],
    "columns": [
        {"input": "orders", "column": "id", "alias": "order_id"},
        {"input": "customers", "column": "name"},
    ],
}
GROUP_BY = {
    "recipe_type": "group_by",
    "inputs": ["orders"],
    "keys": ["status"],
    "aggregations": [
        {"column": "amount", "function": "sum", "alias": "total"},
        {"column": "*", "function": "count", "alias": "n"},
        {"column": "customer_id", "function": "count_distinct", "alias": "customers"},
    ],
}
STACK = {"recipe_type": "stack", "inputs": ["jan", "feb"], "mode": "union_all", "columns": ["id", "amount"]}


def one_line(sql: str) -> str:
    return " ".join(sql.split())


def test_prepare_compiles_to_one_cte_per_step():
    compiled = compile_recipe(PREPARE)
    assert one_line(compiled.sql) == (
        "WITH step_1 AS ( SELECT id, amount, status, \"Order Date\" FROM {{ ref('orders') }} ), "
        "step_2 AS ( SELECT * FROM step_1 WHERE amount > 100 ), "
        "step_3 AS ( SELECT * RENAME (status AS state) FROM step_2 ), "
        "step_4 AS ( SELECT *, amount * 0.2 AS tax FROM step_3 ), "
        "step_5 AS ( SELECT * REPLACE (CAST(amount AS DECIMAL(10, 2)) AS amount) FROM step_4 ), "
        'step_6 AS ( SELECT * EXCLUDE ("Order Date") FROM step_5 ) '
        "SELECT * FROM step_6"
    )
    assert compiled.inputs == ["orders"]
    assert compiled.output_columns == ["id", "amount", "state", "tax"]


def test_prepare_without_steps_is_the_input_and_its_columns_depend_on_the_input():
    assert (
        one_line(compile_recipe({"recipe_type": "prepare", "inputs": ["m"]}).sql)
        == "SELECT * FROM {{ ref('m') }}"
    )
    assert compile_recipe({"recipe_type": "prepare", "inputs": ["m"]}).output_columns is None
    known = compile_recipe({"recipe_type": "prepare", "inputs": ["m"]}, {"m": ["a", "b"]})
    assert known.output_columns == ["a", "b"]


def test_derive_of_an_existing_column_replaces_it_in_place():
    config = {
        "recipe_type": "prepare",
        "inputs": ["m"],
        "steps": [{"type": "derive", "column": "a", "expression": "a + 1"}],
    }
    compiled = compile_recipe(config, {"m": ["a", "b"]})
    assert "SELECT * REPLACE (a + 1 AS a) FROM {{ ref('m') }}" in one_line(compiled.sql)
    assert compiled.output_columns == ["a", "b"]


def test_join_aliases_each_input_by_its_name():
    compiled = compile_recipe(JOIN)
    assert one_line(compiled.sql) == (
        "SELECT orders.id AS order_id, customers.name "
        "FROM {{ ref('orders') }} AS orders LEFT JOIN {{ ref('customers') }} AS customers "
        "ON orders.customer_id = customers.id"
    )
    assert compiled.output_columns == ["order_id", "name"]


def test_group_by_names_each_aggregate():
    compiled = compile_recipe(GROUP_BY)
    assert one_line(compiled.sql) == (
        "SELECT status, SUM(amount) AS total, COUNT(*) AS n, COUNT(DISTINCT customer_id) AS customers "
        "FROM {{ ref('orders') }} GROUP BY status"
    )
    assert compiled.output_columns == ["status", "total", "n", "customers"]


def test_group_by_gives_default_aliases_and_allows_no_keys():
    compiled = compile_recipe(
        {"recipe_type": "group_by", "inputs": ["m"], "aggregations": [{"column": "x", "function": "max"}]}
    )
    assert one_line(compiled.sql) == "SELECT MAX(x) AS max_x FROM {{ ref('m') }}"


def test_stack_unions_the_chosen_columns_of_every_input():
    compiled = compile_recipe(STACK)
    assert one_line(compiled.sql) == (
        "SELECT id, amount FROM {{ ref('jan') }} UNION ALL SELECT id, amount FROM {{ ref('feb') }}"
    )
    distinct = compile_recipe({**STACK, "inputs": ["a", "b", "c"], "mode": "union"})
    assert one_line(distinct.sql).count(" UNION SELECT ") == 2


@pytest.mark.parametrize("config", [PREPARE, JOIN, GROUP_BY, STACK], ids=lambda c: c["recipe_type"])
def test_every_compiled_recipe_parses_back_with_sqlglot(config):
    """What parse-to-visual will start from: the model parses once refs are names again."""
    sql = compile_recipe(config).sql
    for name in config["inputs"]:
        sql = sql.replace("{{ ref('" + name + "') }}", name)
    assert sqlglot.parse_one(sql, read="duckdb") is not None


@pytest.mark.parametrize("config", [PREPARE, JOIN, GROUP_BY, STACK], ids=lambda c: c["recipe_type"])
def test_compiling_is_deterministic(config):
    assert compile_recipe(config) == compile_recipe(config)


def test_compiled_recipes_run_on_duckdb():
    db = duckdb.connect()
    db.execute(
        "CREATE TABLE orders AS SELECT * FROM (VALUES (1, 10, 150.0, 'paid', DATE '2024-01-01'), "
        "(2, 11, 50.0, 'open', DATE '2024-01-02'), (3, 10, 300.0, 'paid', DATE '2024-01-03')) "
        't(id, customer_id, amount, status, "Order Date")'
    )
    db.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (10, 'ada'), (11, 'bob')) t(id, name)")
    db.execute("CREATE TABLE jan AS SELECT 1 AS id, 5.0 AS amount, 'x' AS other")
    db.execute("CREATE TABLE feb AS SELECT 2 AS id, 7.0 AS amount, 'y' AS other")

    def run(config):
        sql = compile_recipe(config).sql
        for name in config["inputs"]:
            sql = sql.replace("{{ ref('" + name + "') }}", name)
        return db.execute(sql).fetchall()

    assert run(PREPARE) == [(1, 150, "paid", 30.0), (3, 300, "paid", 60.0)]
    assert sorted(run(JOIN)) == [(1, "ada"), (2, "bob"), (3, "ada")]
    assert sorted(run(GROUP_BY)) == [("open", 50.0, 1, 1), ("paid", 450.0, 2, 1)]
    assert run(STACK) == [(1, 5.0), (2, 7.0)]


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"recipe_type": "pivot", "inputs": ["m"]},
            "recipe_type must be one of prepare, join, group_by, stack",
        ),
        ({"recipe_type": "prepare", "inputs": []}, "inputs must be a non-empty list"),
        ({"recipe_type": "prepare", "inputs": ["a", "b"]}, "a prepare recipe takes exactly 1 input"),
        ({"recipe_type": "join", "inputs": ["a"], "on": []}, "a join recipe takes exactly 2 input"),
        ({"recipe_type": "join", "inputs": ["a", "a"], "on": []}, "two different inputs"),
        ({"recipe_type": "stack", "inputs": ["a"]}, "at least 2 input"),
        (
            {"recipe_type": "prepare", "inputs": ["m"], "steps": [{"type": "pivot"}]},
            r"steps\[0\].type must be one of",
        ),
        (
            {"recipe_type": "prepare", "inputs": ["m"], "steps": [{"type": "filter", "condition": "a >"}]},
            r"steps\[0\].condition does not parse",
        ),
        (
            {
                "recipe_type": "prepare",
                "inputs": ["m"],
                "steps": [{"type": "derive", "column": "x", "expression": "SELECT 1"}],
            },
            "must be an expression, not a statement",
        ),
        (
            {
                "recipe_type": "join",
                "inputs": ["a", "b"],
                "join_type": "cross",
                "on": [{"left": "x", "right": "y"}],
            },
            "join_type must be one of inner, left, right, full",
        ),
        ({"recipe_type": "join", "inputs": ["a", "b"]}, "on must be a non-empty list"),
        (
            {
                "recipe_type": "join",
                "inputs": ["a", "b"],
                "on": [{"left": "x", "right": "y"}],
                "columns": [{"input": "c", "column": "x"}],
            },
            r"columns\[0\].input must be one of the inputs",
        ),
        ({"recipe_type": "group_by", "inputs": ["m"]}, "needs keys, aggregations or both"),
        (
            {
                "recipe_type": "group_by",
                "inputs": ["m"],
                "aggregations": [{"column": "x", "function": "median"}],
            },
            r"aggregations\[0\].function must be one of",
        ),
        (
            {
                "recipe_type": "group_by",
                "inputs": ["m"],
                "aggregations": [{"column": "*", "function": "sum"}],
            },
            "only count takes",
        ),
        (
            {"recipe_type": "stack", "inputs": ["a", "b"], "mode": "merge"},
            "mode must be one of union_all, union",
        ),
        ({"recipe_type": "prepare", "inputs": ["it's"]}, "may not contain quotes"),
    ],
)
def test_invalid_configs_name_the_offending_part(config, message):
    with pytest.raises(ValidationFailed, match=message):
        compile_recipe(config)


def test_known_input_columns_catch_unknown_column_references():
    with pytest.raises(ValidationFailed, match=r"keys: nope not among the columns \(a, b\)"):
        compile_recipe({"recipe_type": "group_by", "inputs": ["m"], "keys": ["nope"]}, {"m": ["a", "b"]})
    with pytest.raises(ValidationFailed, match=r"on\[0\].right: zz not among the columns"):
        compile_recipe(
            {"recipe_type": "join", "inputs": ["l", "r"], "on": [{"left": "a", "right": "zz"}]},
            {"l": ["a"], "r": ["b"]},
        )


def test_names_that_need_quoting_are_quoted():
    compiled = compile_recipe(
        {
            "recipe_type": "group_by",
            "inputs": ["m"],
            "keys": ["Region", "select"],
            "aggregations": [{"column": "my col", "function": "sum", "alias": "Total"}],
        }
    )
    assert one_line(compiled.sql) == (
        'SELECT "Region", "select", SUM("my col") AS "Total" FROM {{ ref(\'m\') }} GROUP BY "Region", "select"'
    )
