"""The round-trip law of SPEC 6: parse_recipe(compile_recipe(c).sql) == c for every visual config c
written canonically (and == canonical(c) for any spelling of it), over all four recipe types with
names built to break quoting; and for SQL a person writes that the parser accepts, the config it
answers compiles to SQL giving the same rows on DuckDB."""

from __future__ import annotations

import os
from collections import Counter

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from sluice.domain.recipe_parse import canonical, parse_recipe
from sluice.domain.recipes import AGGREGATES, JOIN_TYPES, compile_recipe
from sluice.errors import ValidationFailed

EXAMPLES = int(os.environ.get("SLUICE_ROUND_TRIP_EXAMPLES", "250"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
DIALECT = "duckdb"

# -- names that break quoting -------------------------------------------------------------------
KEYWORDS = ["select", "from", "order", "Group", "join", "left", "union", "step_1", "as", "count", "null"]
HOSTILE_ALPHABET = st.sampled_from(list("aZ_09 \"'.-,;()$é中\\`%"))


def _usable(name: str) -> bool:
    return bool(name.strip()) and name != "*"


column_names = st.one_of(
    st.sampled_from(KEYWORDS),
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    st.text(HOSTILE_ALPHABET, min_size=1, max_size=10),
).filter(_usable)
# Inputs are model names: the compiler refuses quotes and braces in them (they live in ref('...')).
input_names = st.one_of(
    st.sampled_from(["orders", "Orders", "select", "my model", "a.b", "step_1", "ünï-code"]),
    st.text(st.sampled_from(list("aZ_09 .-é")), min_size=1, max_size=8),
).filter(_usable)


def column(name: str) -> exp.Column:
    return exp.column(exp.to_identifier(name, quoted=True))


def sql(tree: exp.Expression) -> str:
    return tree.sql(dialect=DIALECT)


@st.composite
def conditions(draw, names):
    name = draw(names)
    kind = draw(st.sampled_from(["gt", "and", "null", "like", "in", "between"]))
    if kind == "gt":
        return sql(exp.GT(this=column(name), expression=exp.Literal.number(draw(st.integers(-5, 500)))))
    if kind == "and":
        other = draw(names)
        return sql(
            exp.and_(
                exp.GTE(this=column(name), expression=exp.Literal.number(1)),
                exp.NEQ(
                    this=column(other),
                    expression=exp.Literal.string(draw(st.text(HOSTILE_ALPHABET, max_size=5))),
                ),
            )
        )
    if kind == "null":
        return sql(exp.Not(this=exp.Is(this=column(name), expression=exp.Null())))
    if kind == "like":
        return sql(exp.Like(this=column(name), expression=exp.Literal.string("it's%")))
    if kind == "in":
        return sql(exp.In(this=column(name), expressions=[exp.Literal.number(1), exp.Literal.number(2)]))
    return sql(exp.Between(this=column(name), low=exp.Literal.number(1), high=exp.Literal.number(9)))


@st.composite
def expressions(draw, names):
    name = draw(names)
    kind = draw(st.sampled_from(["mul", "upper", "coalesce", "case", "concat"]))
    if kind == "mul":
        return sql(exp.Mul(this=column(name), expression=exp.Literal.number("0.2")))
    if kind == "upper":
        return sql(exp.Upper(this=column(name)))
    if kind == "coalesce":
        return sql(exp.Coalesce(this=column(name), expressions=[exp.Literal.number(0)]))
    if kind == "case":
        return sql(
            exp.Case(
                ifs=[
                    exp.If(
                        this=exp.GT(this=column(name), expression=exp.Literal.number(0)),
                        true=exp.Literal.string("pos"),
                    )
                ],
                default=exp.Literal.string("neg"),
            )
        )
    return sql(exp.DPipe(this=column(name), expression=exp.Literal.string(" '\"")))


CANONICAL_TYPES = ["INT", "BIGINT", "TEXT", "DOUBLE", "DECIMAL(10, 2)", "DATE", "BOOLEAN", "TIMESTAMP"]
OTHER_SPELLINGS = [
    "integer",
    "varchar",
    "float8",
    "decimal(10,2)",
    "bool",
    "string",
    "int8",
    "numeric(12, 4)",
]


@st.composite
def prepare_steps(draw, spellings):
    """Steps of a valid prepare: once a select fixes the columns, later steps name only those."""
    steps = []
    known: list[str] | None = None
    for _ in range(draw(st.integers(0, 6))):
        names = column_names if known is None else st.sampled_from(known) if known else None
        kinds = ["select", "drop", "filter", "rename", "derive", "cast"] if names is not None else ["derive"]
        kind = draw(st.sampled_from(kinds))
        if kind in ("select", "drop"):
            chosen = draw(st.lists(names, min_size=1, max_size=4))
            steps.append({"type": kind, "columns": chosen})
            if kind == "select":
                known = chosen
            elif known is not None:
                known = [c for c in known if c.lower() not in {d.lower() for d in chosen}]
        elif kind == "filter":
            steps.append({"type": kind, "condition": draw(conditions(names))})
        elif kind == "rename":
            old, new = draw(names), draw(column_names)
            steps.append({"type": kind, "column": old, "to": new})
            if known is not None:
                known = [new if c.lower() == old.lower() else c for c in known]
        elif kind == "derive":
            name = draw(column_names)
            if known is not None and name.lower() in {c.lower() for c in known}:
                name = name + "_new"
                if name.lower() in {c.lower() for c in known}:
                    continue
            steps.append(
                {
                    "type": kind,
                    "column": name,
                    "expression": draw(expressions(names if names is not None else column_names)),
                }
            )
            if known is not None:
                known = [*known, name]
        else:
            steps.append({"type": kind, "column": draw(names), "to": draw(st.sampled_from(spellings))})
    return steps


@st.composite
def configs(draw, spellings=CANONICAL_TYPES, canonical_only=True):
    kind = draw(st.sampled_from(["prepare", "join", "group_by", "stack"]))
    if kind == "prepare":
        steps = draw(prepare_steps(spellings))
        return {"recipe_type": kind, "inputs": [draw(input_names)], "steps": steps}
    if kind == "join":
        left, right = draw(st.lists(input_names, min_size=2, max_size=2, unique=True))
        on = draw(
            st.lists(
                st.fixed_dictionaries({"left": column_names, "right": column_names}), min_size=1, max_size=3
            )
        )
        columns = []
        for _ in range(draw(st.integers(0, 4))):
            item = {"input": draw(st.sampled_from([left, right])), "column": draw(column_names)}
            if draw(st.booleans()):
                item["alias"] = draw(column_names)
            columns.append(item)
        config = {"recipe_type": kind, "inputs": [left, right], "on": on, "columns": columns}
        if canonical_only or draw(st.booleans()):
            config["join_type"] = draw(st.sampled_from(list(JOIN_TYPES)))
        return config
    if kind == "group_by":
        keys = draw(st.lists(column_names, max_size=3))
        aggregations = []
        for _ in range(draw(st.integers(0 if keys else 1, 4))):
            function = draw(st.sampled_from(AGGREGATES))
            target = "*" if function == "count" and draw(st.booleans()) else draw(column_names)
            item = {"column": target, "function": function}
            if canonical_only or draw(st.booleans()):
                item["alias"] = draw(column_names)
            aggregations.append(item)
        return {
            "recipe_type": kind,
            "inputs": [draw(input_names)],
            "keys": keys,
            "aggregations": aggregations,
        }
    config = {"recipe_type": kind, "inputs": draw(st.lists(input_names, min_size=2, max_size=4))}
    if canonical_only or draw(st.booleans()):
        config["mode"] = draw(st.sampled_from(["union_all", "union"]))
    if draw(st.booleans()):
        config["columns"] = draw(st.lists(column_names, min_size=1, max_size=4))
    elif canonical_only:
        config.setdefault("mode", "union_all")
    return config


SEEN: Counter[str] = Counter()


@PROPERTY
@given(configs())
def test_parse_of_generate_is_the_config(config):
    """parse(generate(c)) == c, exactly, for canonically written configs of all four types."""
    SEEN[config["recipe_type"]] += 1
    assert canonical(config) == config
    assert parse_recipe(compile_recipe(config).sql) == config


@PROPERTY
@given(configs(spellings=CANONICAL_TYPES + OTHER_SPELLINGS, canonical_only=False))
def test_parse_of_generate_is_the_canonical_config_for_any_spelling(config):
    """Defaults left out, types spelt otherwise: the parser answers canonical(c), which compiles to
    the very same SQL as c."""
    normal = canonical(config)
    assert parse_recipe(compile_recipe(config).sql) == normal
    assert compile_recipe(normal).sql == compile_recipe(config).sql
    assert canonical(normal) == normal


@st.composite
def prepare_with_known_columns(draw):
    columns = draw(st.lists(column_names, min_size=1, max_size=4, unique_by=str.lower))
    steps = []
    for _ in range(draw(st.integers(0, 4))):
        # derive over a known column replaces it in place (SELECT * REPLACE), a new one is appended
        name = draw(st.one_of(st.sampled_from(columns), column_names))
        steps.append(
            {"type": "derive", "column": name, "expression": draw(expressions(st.sampled_from(columns)))}
        )
    return {"recipe_type": "prepare", "inputs": ["m"], "steps": steps}, {"m": columns}


@PROPERTY
@given(prepare_with_known_columns())
def test_round_trip_holds_when_input_columns_are_known(case):
    config, known = case
    assert parse_recipe(compile_recipe(config, known).sql) == config


def test_the_property_tests_saw_every_recipe_type():
    """Runs after the first property test in file order: each type was drawn many times."""
    if not SEEN:
        pytest.skip("run together with test_parse_of_generate_is_the_config")
    assert set(SEEN) == {"prepare", "join", "group_by", "stack"}
    assert min(SEEN.values()) >= EXAMPLES // 25


# -- golden examples: one per recipe type and step kind -----------------------------------------
GOLDEN = [
    (
        "SELECT id, \"Order Date\" FROM {{ ref('orders') }}",
        {
            "recipe_type": "prepare",
            "inputs": ["orders"],
            "steps": [{"type": "select", "columns": ["id", "Order Date"]}],
        },
    ),
    (
        "SELECT * EXCLUDE (secret) FROM {{ ref('orders') }}",
        {"recipe_type": "prepare", "inputs": ["orders"], "steps": [{"type": "drop", "columns": ["secret"]}]},
    ),
    (
        "SELECT * FROM {{ ref('orders') }} WHERE amount > 100",
        {
            "recipe_type": "prepare",
            "inputs": ["orders"],
            "steps": [{"type": "filter", "condition": "amount > 100"}],
        },
    ),
    (
        "SELECT * RENAME (status AS state) FROM {{ ref('orders') }}",
        {
            "recipe_type": "prepare",
            "inputs": ["orders"],
            "steps": [{"type": "rename", "column": "status", "to": "state"}],
        },
    ),
    (
        "SELECT *, amount * 0.2 AS tax FROM {{ ref('orders') }}",
        {
            "recipe_type": "prepare",
            "inputs": ["orders"],
            "steps": [{"type": "derive", "column": "tax", "expression": "amount * 0.2"}],
        },
    ),
    (
        "SELECT * REPLACE (CAST(amount AS DECIMAL(10, 2)) AS amount) FROM {{ ref('orders') }}",
        {
            "recipe_type": "prepare",
            "inputs": ["orders"],
            "steps": [{"type": "cast", "column": "amount", "to": "DECIMAL(10, 2)"}],
        },
    ),
    (
        "SELECT orders.id AS order_id, customers.name FROM {{ ref('orders') }} AS orders "
        "LEFT JOIN {{ ref('customers') }} AS customers ON orders.customer_id = customers.id",
        {
            "recipe_type": "join",
            "inputs": ["orders", "customers"],
            "join_type": "left",
            "on": [{"left": "customer_id", "right": "id"}],
            "columns": [
                {"input": "orders", "column": "id", "alias": "order_id"},
                {"input": "customers", "column": "name"},
            ],
        },
    ),
    (
        "SELECT status, SUM(amount) AS total, COUNT(*) AS n, COUNT(DISTINCT customer_id) AS customers "
        "FROM {{ ref('orders') }} GROUP BY status",
        {
            "recipe_type": "group_by",
            "inputs": ["orders"],
            "keys": ["status"],
            "aggregations": [
                {"column": "amount", "function": "sum", "alias": "total"},
                {"column": "*", "function": "count", "alias": "n"},
                {"column": "customer_id", "function": "count_distinct", "alias": "customers"},
            ],
        },
    ),
    (
        "SELECT id, amount FROM {{ ref('jan') }} UNION ALL SELECT id, amount FROM {{ ref('feb') }}",
        {"recipe_type": "stack", "inputs": ["jan", "feb"], "mode": "union_all", "columns": ["id", "amount"]},
    ),
]


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("( ", "(").replace(" )", ")")


@pytest.mark.parametrize(
    ("text", "config"),
    GOLDEN,
    ids=[
        c["recipe_type"]
        + "-"
        + (c.get("steps") or [{"type": c.get("join_type", c.get("mode", ""))}])[0]["type"]
        for _, c in GOLDEN
    ],
)
def test_golden_sql_of_each_step_kind_and_recipe_type(text, config):
    """The compiled text (a prepare wraps its one step in a CTE) and the hand-written short form
    both read back as the config."""
    compiled = compile_recipe(config).sql
    if config["recipe_type"] == "prepare":
        assert _one_line(compiled) == f"WITH step_1 AS ({text}) SELECT * FROM step_1"
    else:
        assert _one_line(compiled) == text
    assert parse_recipe(compiled) == config
    assert parse_recipe(text) == config


# -- SQL that fits no visual pattern ------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "SELECT id, ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) AS rn FROM {{ ref('m') }}",
        "SELECT SUM(x) OVER (PARTITION BY a) AS s, SUM(x) OVER (PARTITION BY b) AS t FROM {{ ref('m') }}",
        "SELECT id FROM {{ ref('a') }} INTERSECT SELECT id FROM {{ ref('b') }}",
        "SELECT id FROM {{ ref('a') }} EXCEPT SELECT id FROM {{ ref('b') }}",
        "WITH x AS (SELECT * FROM {{ ref('a') }}), y AS (SELECT * FROM {{ ref('b') }}) SELECT * FROM x",
        "SELECT id FROM {{ ref('a') }} ORDER BY id",
        "SELECT DISTINCT id FROM {{ ref('a') }}",
        "SELECT id FROM {{ ref('a') }} LIMIT 5",
        "SELECT * FROM {{ source('raw', 'orders') }}",
        "SELECT * FROM orders",
        "SELECT * FROM (SELECT * FROM {{ ref('a') }}) AS t",
        "SELECT status, SUM(x) AS s FROM {{ ref('m') }} GROUP BY status HAVING SUM(x) > 1",
        "SELECT id, amount FROM {{ ref('a') }} UNION ALL SELECT id FROM {{ ref('b') }}",
        "SELECT id FROM {{ ref('a') }} UNION ALL SELECT id FROM {{ ref('b') }} UNION SELECT id FROM {{ ref('c') }}",
        "SELECT a.x FROM {{ ref('a') }} AS a CROSS JOIN {{ ref('b') }} AS b",
        "SELECT a.x FROM {{ ref('a') }} AS a JOIN {{ ref('b') }} AS b ON a.x > b.y",
        "SELECT MEDIAN(x) AS m FROM {{ ref('a') }}",
        "INSERT INTO t SELECT * FROM {{ ref('a') }}",
        "SELECT 1; SELECT 2",
    ],
)
def test_sql_that_fits_no_visual_pattern_is_none(text):
    assert parse_recipe(text) is None


@pytest.mark.parametrize(
    "text", ["SELECT FROM WHERE (", "SELEC * FROM x", "SELECT * FROM {{ ref('a') }} WHERE ("]
)
def test_sql_that_does_not_parse_raises_with_sqlglots_message(text):
    with pytest.raises(ValidationFailed, match="The SQL does not parse: "):
        parse_recipe(text)


def test_an_expression_nested_too_deeply_is_refused_with_a_sentence():
    deep = "(" * 5000 + "1" + ")" * 5000
    with pytest.raises(ValidationFailed, match="nests too deeply"):
        compile_recipe(
            {"recipe_type": "prepare", "inputs": ["a"], "steps": [{"type": "filter", "condition": deep}]}
        )


# -- generate(parse(s)) computes the same rows as s on DuckDB -----------------------------------
ACCEPTED = [
    "SELECT id, amount * 2 AS double_amount, status AS state FROM {{ ref('orders') }} WHERE amount > 60",
    "SELECT o.id, o.amount FROM {{ ref('orders') }} AS o WHERE o.status = 'paid'",
    "WITH cleaned AS (SELECT * FROM {{ ref('orders') }} WHERE status <> 'void'), "
    "taxed AS (SELECT *, amount * 0.2 AS tax FROM cleaned) SELECT id, tax FROM taxed",
    "SELECT * REPLACE (amount + 1 AS amount) FROM {{ ref('orders') }}",
    "SELECT * RENAME (status AS state, id AS order_id) FROM {{ ref('orders') }}",
    "SELECT * EXCLUDE (customer_id) FROM {{ ref('orders') }} WHERE id > 1",
    "SELECT c.name, o.amount FROM {{ ref('orders') }} o JOIN {{ ref('customers') }} c ON c.id = o.customer_id",
    "SELECT o.id, c.name AS who FROM {{ ref('orders') }} AS o FULL OUTER JOIN {{ ref('customers') }} AS c "
    "ON o.customer_id = c.id AND o.id = c.id",
    "SELECT * FROM {{ ref('orders') }} AS o RIGHT JOIN {{ ref('customers') }} AS c ON o.customer_id = c.id",
    "SELECT status, AVG(amount) AS mean, MIN(id) AS first, MAX(id) AS last FROM {{ ref('orders') }} GROUP BY status",
    "SELECT COUNT(*) AS n, SUM(amount) AS total FROM {{ ref('orders') }}",
    "SELECT id FROM {{ ref('orders') }} UNION SELECT id FROM {{ ref('customers') }}",
    "SELECT * FROM {{ ref('orders') }} UNION ALL SELECT * FROM {{ ref('orders') }}",
]


@pytest.fixture(scope="module")
def db():
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE orders AS SELECT * FROM (VALUES (1, 10, 150.0, 'paid'), (2, 11, 50.0, 'open'), "
        "(3, 10, 300.0, 'paid'), (4, 12, 75.0, 'void'), (5, NULL, 90.0, 'paid')) t(id, customer_id, amount, status)"
    )
    connection.execute(
        "CREATE TABLE customers AS SELECT * FROM (VALUES (10, 'ada'), (11, 'bob'), (13, 'cy')) t(id, name)"
    )
    yield connection
    connection.close()


def _columns(db, name):
    return [row[0] for row in db.execute(f"DESCRIBE {name}").fetchall()]


def _run(db, text, inputs=("orders", "customers")):
    for name in inputs:
        text = text.replace("{{ ref('" + name + "') }}", name)
    return Counter(db.execute(text).fetchall())


@pytest.mark.parametrize("text", ACCEPTED)
def test_generate_of_parse_gives_the_same_rows_on_duckdb(db, text):
    config = parse_recipe(text)
    assert config is not None, text
    known = {name: _columns(db, name) for name in config["inputs"]}
    regenerated = compile_recipe(config, known).sql
    assert _run(db, regenerated) == _run(db, text)
    # and the regenerated SQL is a fixpoint: it parses to the same config
    assert parse_recipe(regenerated) == config


# -- parse-to-visual never fails other than with a sentence ---------------------------------------
SQL_PIECES = [
    "SELECT", "*", ",", "FROM", "{{ ref('a') }}", "{{ ref('b') }}", "AS", "x", "y", '"q q"', "a.x", "b.y",
    "WHERE", "x > 1", "GROUP BY", "JOIN", "ON", "a.x = b.y", "AND", "UNION", "ALL", "WITH",
    "c AS (SELECT * FROM {{ ref('a') }})", "(", ")", "SUM(x)", "COUNT(*)", "COUNT(DISTINCT x)",
    "EXCLUDE (x)", "RENAME (x AS y)", "REPLACE (1 AS x)", "OVER (PARTITION BY x)", "LEFT", "OUTER",
    "CAST(x AS INT)", "LIMIT 1", ";", "t(x)", "c", "DISTINCT", "ORDER BY x",
]  # fmt: skip


def _parses_or_says_why(text: str) -> None:
    try:
        result = parse_recipe(text)
    except ValidationFailed as exc:
        assert exc.detail.startswith(("The SQL does not parse", "sql must be a non-empty")), exc.detail
        return
    if result is not None:
        compile_recipe(result)  # whatever it answers is a config the compiler takes


@PROPERTY
@given(st.lists(st.sampled_from(SQL_PIECES), min_size=1, max_size=14))
def test_parse_of_any_token_soup_answers_or_says_why(pieces):
    _parses_or_says_why(" ".join(pieces))


@PROPERTY
@given(configs(), st.data())
def test_parse_of_damaged_generated_sql_answers_or_says_why(config, data):
    text = compile_recipe(config).sql
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    _parses_or_says_why(text[:start] + text[end:])
