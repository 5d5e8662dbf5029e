"""SQL made ready for DuckDB: params as literals, ref() resolution, dialect transpilation, the
relations a query reads, and the statements a node refuses."""

from __future__ import annotations

import pytest

from sluice.engine import NodeFailed
from sluice.engine.sql import bind_params, compile_condition, compile_query


def test_ref_becomes_a_quoted_identifier_and_is_reported():
    compiled = compile_query("SELECT * FROM {{ ref('raw-orders') }} JOIN {{ref(\"c\")}} USING (id)")
    assert compiled.sql == 'SELECT * FROM "raw-orders" JOIN "c" USING (id)'
    assert compiled.refs == ("raw-orders", "c")
    assert compiled.relations == ("raw-orders", "c")


def test_relations_leave_out_ctes_and_keep_subqueries():
    compiled = compile_query(
        "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent WHERE id IN (SELECT id FROM paid)"
    )
    assert compiled.relations == ("orders", "paid")


def test_duckdb_sql_runs_as_written():
    sql = "FROM orders SELECT * EXCLUDE (secret) WHERE amount > 1"
    assert compile_query(sql).sql == sql


def test_other_dialects_are_transpiled_and_lossy_translation_fails():
    compiled = compile_query("SELECT TOP 5 name FROM [orders]", dialect="tsql")
    assert compiled.sql == 'SELECT name FROM "orders" LIMIT 5'
    with pytest.raises(NodeFailed, match="sqlglot cannot carry this snowflake SQL over to DuckDB"):
        compile_query("SELECT TO_VARCHAR(d, 'YYYY') FROM t", dialect="snowflake")
    with pytest.raises(NodeFailed, match="unknown SQL dialect 'cobol'"):
        compile_query("SELECT 1", dialect="cobol")


def test_sql_that_sqlglot_cannot_parse_falls_to_duckdbs_parser():
    with pytest.raises(NodeFailed, match='Parser Error: syntax error at or near "SELEC"'):
        compile_query("SELEC 1")


def test_schema_qualified_names_and_other_templates_are_refused():
    with pytest.raises(NodeFailed, match="reads main.orders: name an input by its node id alone"):
        compile_query("SELECT * FROM main.orders")
    with pytest.raises(NodeFailed, match="unsupported template tag"):
        compile_query("SELECT * FROM {{ source('a', 'b') }}")


@pytest.mark.parametrize(
    "value, literal",
    [
        ("2024-01-15", "'2024-01-15'"),
        ("o'brien", "'o''brien'"),
        (3, "3"),
        (2.5, "2.5"),
        (True, "TRUE"),
        (None, "NULL"),
    ],
)
def test_params_become_literals(value, literal):
    assert bind_params("x = ${params.v}", {"v": value}) == f"x = {literal}"
    assert bind_params("x = '${params.v}'", {"v": value}) == f"x = {literal}"


def test_params_cannot_inject_sql():
    compiled = compile_query(
        "SELECT * FROM t WHERE name = ${params.name}", params={"name": "x'; DROP TABLE t; --"}
    )
    assert compiled.sql == "SELECT * FROM t WHERE name = 'x''; DROP TABLE t; --'"


def test_params_that_are_not_scalars_fail():
    with pytest.raises(NodeFailed, match="param 'ids' is a list"):
        bind_params("${params.ids}", {"ids": [1, 2]})


def test_a_leftover_variable_means_it_is_undefined():
    with pytest.raises(NodeFailed, match=r"\$\{var.SCHEMA\} is not defined"):
        compile_query("SELECT * FROM ${var.SCHEMA}")


def test_conditions_are_expressions_and_report_subquery_relations():
    assert compile_condition("a > 1 AND b IN (SELECT b FROM other)") == (
        "a > 1 AND b IN (SELECT b FROM other)",
        ("other",),
    )
    assert (
        compile_condition("IFF(a, TRUE, FALSE)", dialect="snowflake")[0]
        == "CASE WHEN a THEN TRUE ELSE FALSE END"
    )


def test_empty_sql_fails():
    with pytest.raises(NodeFailed, match="the SQL is empty"):
        compile_query("   ")
