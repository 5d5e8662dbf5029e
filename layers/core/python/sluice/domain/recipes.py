"""Visual recipes (SPEC 6): a Prepare, Join, Group By or Stack config compiled with sqlglot to one
dbt-style SQL model whose inputs are `{{ ref('name') }}`. A pure function, shared by the flow area's
generate-sql and preview-sql and by the engine's `recipe` transforms.

The SQL has one fixed shape per recipe type, so that parse-to-visual can read a config back exactly:

- prepare: one CTE per step, `step_1` ... `step_n`, each reading the previous one (the first reads
  the input), then `SELECT * FROM step_n`; no steps is `SELECT * FROM input`.
    select  SELECT c1, c2 FROM prev
    drop    SELECT * EXCLUDE (c1, c2) FROM prev
    filter  SELECT * FROM prev WHERE <condition>
    rename  SELECT * RENAME (c AS c2) FROM prev
    derive  SELECT *, <expression> AS c FROM prev, or SELECT * REPLACE (<expression> AS c) FROM prev
            when c is already a column of the input (known only when input columns are given)
    cast    SELECT * REPLACE (CAST(c AS t) AS c) FROM prev
- join: SELECT left.c AS a, right.d AS b FROM input_l AS left <KIND> JOIN input_r AS right
  ON left.x = right.y AND ..., each input aliased by its own name (`SELECT *` without columns).
- group_by: SELECT keys..., FUNC(c) AS alias, ... FROM input GROUP BY keys...
- stack: SELECT cols FROM input_1 UNION ALL SELECT cols FROM input_2 ... (UNION for mode union).

Expressions (filter conditions, derived expressions) are DuckDB SQL, checked by sqlglot here, so a
bad one is a 422 at save time rather than a failed run. Invalid configs raise ValidationFailed
naming the offending part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sluice.errors import ValidationFailed
from sluice.lazy import LazyModule

sqlglot = LazyModule("sqlglot")
exp = LazyModule("sqlglot.expressions")
errors = LazyModule("sqlglot.errors")
tokens = LazyModule("sqlglot.tokens")

RECIPE_TYPES = ("prepare", "join", "group_by", "stack")
PREPARE_STEPS = ("select", "drop", "filter", "rename", "derive", "cast")
JOIN_TYPES = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "full": "FULL"}
AGGREGATES = ("sum", "count", "avg", "min", "max", "count_distinct")
STACK_MODES = ("union_all", "union")
DIALECT = "duckdb"
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_KEYWORDS = {word.upper() for word in tokens.Tokenizer.KEYWORDS}


@dataclass(frozen=True)
class CompiledRecipe:
    sql: str
    inputs: list[str]
    # None when it depends on input columns that were not given (a prepare without a select step).
    output_columns: list[str] | None

    def to_dict(self) -> dict[str, Any]:
        return {"sql": self.sql, "inputs": self.inputs, "output_columns": self.output_columns}


def compile_recipe(
    config: dict[str, Any], input_columns: dict[str, list[str]] | None = None
) -> CompiledRecipe:
    """The SQL model of a visual recipe config.

    `input_columns` (input name -> its columns), when known, makes `output_columns` exact, lets a
    derive replace an existing column in place, and turns a reference to an unknown column into a
    ValidationFailed instead of a failed run.
    """
    if not isinstance(config, dict):
        raise ValidationFailed("A recipe config must be an object.")
    recipe_type = config.get("recipe_type")
    if recipe_type not in RECIPE_TYPES:
        raise ValidationFailed(f"recipe_type must be one of {', '.join(RECIPE_TYPES)}, not {recipe_type!r}.")
    inputs = _inputs(config, recipe_type)
    refs = _RefTables(inputs)
    known = input_columns or {}
    build = {"prepare": _prepare, "join": _join, "group_by": _group_by, "stack": _stack}[recipe_type]
    query, output_columns = build(config, inputs, refs, known)
    return CompiledRecipe(refs.render(query.sql(dialect=DIALECT, pretty=True)), inputs, output_columns)


# -- common parts ---------------------------------------------------------------------------------
class _RefTables:
    """Inputs stand in the tree as sentinel tables, replaced by `{{ ref('name') }}` in the text:
    sqlglot cannot build a Jinja tag, and a sentinel cannot clash with a real relation name."""

    def __init__(self, inputs: list[str]):
        self.sentinels = {name: f"__sluice_ref_{index}__" for index, name in enumerate(dict.fromkeys(inputs))}

    def table(self, name: str, alias: str | None = None) -> exp.Table:
        table = exp.Table(this=exp.to_identifier(self.sentinels[name]))
        if alias is not None:
            table.set("alias", exp.TableAlias(this=identifier(alias)))
        return table

    def render(self, sql: str) -> str:
        for name, sentinel in self.sentinels.items():
            sql = sql.replace(sentinel, "{{ ref('" + name + "') }}")
        return sql


def identifier(name: str) -> exp.Identifier:
    """A column or alias, quoted only when it must be (not plain lowercase, or a keyword)."""
    plain = _PLAIN_NAME.fullmatch(name) is not None and name.upper() not in _KEYWORDS
    return exp.to_identifier(name, quoted=not plain)


def _column(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=identifier(name), table=identifier(table) if table else None)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{where} must be a non-empty string.")
    return value


def _names(value: Any, where: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise ValidationFailed(
            f"{where} must be a {'' if allow_empty else 'non-empty '}list of column names."
        )
    return [_text(item, f"{where}[{index}]") for index, item in enumerate(value)]


def _inputs(config: dict[str, Any], recipe_type: str) -> list[str]:
    inputs = config.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValidationFailed("inputs must be a non-empty list of model (dataset) names.")
    names = [_text(name, f"inputs[{index}]") for index, name in enumerate(inputs)]
    for name in names:
        if any(char in name for char in "'\"{}"):
            raise ValidationFailed(f"input name {name!r} may not contain quotes or braces.")
    wanted = {"prepare": "exactly 1", "group_by": "exactly 1", "join": "exactly 2", "stack": "at least 2"}[
        recipe_type
    ]
    count = len(names)
    fits = {"exactly 1": count == 1, "exactly 2": count == 2, "at least 2": count >= 2}[wanted]
    if not fits:
        raise ValidationFailed(f"a {recipe_type} recipe takes {wanted} input(s), not {count}.")
    if recipe_type == "join" and names[0] == names[1]:
        raise ValidationFailed("a join recipe needs two different inputs.")
    return names


def _expression(text: Any, where: str) -> exp.Expression:
    source = _text(text, where)
    try:
        tree = sqlglot.parse_one(source, read=DIALECT)
    except errors.SqlglotError as exc:
        raise ValidationFailed(f"{where} does not parse: {_plain(str(exc))}") from exc
    except RecursionError as exc:
        raise ValidationFailed(f"{where} nests too deeply to parse.") from exc
    if isinstance(tree, exp.Query) or not isinstance(tree, exp.Condition):
        raise ValidationFailed(f"{where} must be an expression, not a statement.")
    return tree


def _plain(message: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", message).strip()


def _check_known(columns: list[str] | None, wanted: list[str], where: str) -> None:
    if columns is None:
        return
    lowered = {column.lower() for column in columns}
    unknown = [name for name in wanted if name.lower() not in lowered]
    if unknown:
        raise ValidationFailed(f"{where}: {', '.join(unknown)} not among the columns ({', '.join(columns)}).")


# -- prepare --------------------------------------------------------------------------------------
def _prepare(
    config: dict[str, Any], inputs: list[str], refs: _RefTables, known: dict[str, list[str]]
) -> tuple[exp.Query, list[str] | None]:
    steps = config.get("steps", [])
    if not isinstance(steps, list):
        raise ValidationFailed("steps must be a list.")
    columns = list(known[inputs[0]]) if inputs[0] in known else None
    source: exp.Expression = refs.table(inputs[0])
    ctes: list[tuple[str, exp.Select]] = []
    for number, step in enumerate(steps, start=1):
        where = f"steps[{number - 1}]"
        if not isinstance(step, dict) or step.get("type") not in PREPARE_STEPS:
            kind = step.get("type") if isinstance(step, dict) else step
            raise ValidationFailed(f"{where}.type must be one of {', '.join(PREPARE_STEPS)}, not {kind!r}.")
        select, columns = _prepare_step(step, where, source, columns)
        name = f"step_{number}"
        ctes.append((name, select))
        source = exp.Table(this=exp.to_identifier(name))
    query = exp.select("*").from_(source)
    for name, select in ctes:
        query = query.with_(name, as_=select)
    return query, columns


def _prepare_step(
    step: dict[str, Any], where: str, source: exp.Expression, columns: list[str] | None
) -> tuple[exp.Select, list[str] | None]:
    kind = step["type"]
    star = exp.Star()
    if kind == "select":
        chosen = _names(step.get("columns"), f"{where}.columns")
        _check_known(columns, chosen, f"{where} (select)")
        return exp.select(*(_column(name) for name in chosen)).from_(source.copy()), chosen
    if kind == "drop":
        dropped = _names(step.get("columns"), f"{where}.columns")
        _check_known(columns, dropped, f"{where} (drop)")
        star.set("except_", [_column(name) for name in dropped])
        remaining = (
            None if columns is None else [c for c in columns if c.lower() not in {d.lower() for d in dropped}]
        )
        return exp.select(star).from_(source.copy()), remaining
    if kind == "filter":
        condition = _expression(step.get("condition"), f"{where}.condition")
        return exp.select("*").from_(source.copy()).where(condition), columns
    if kind == "rename":
        old = _text(step.get("column"), f"{where}.column")
        new = _text(step.get("to"), f"{where}.to")
        _check_known(columns, [old], f"{where} (rename)")
        star.set("rename", [exp.alias_(_column(old), identifier(new))])
        renamed = None if columns is None else [new if c.lower() == old.lower() else c for c in columns]
        return exp.select(star).from_(source.copy()), renamed
    if kind == "derive":
        name = _text(step.get("column"), f"{where}.column")
        expression = _expression(step.get("expression"), f"{where}.expression")
        if columns is not None and name.lower() in {c.lower() for c in columns}:
            star.set("replace", [exp.alias_(expression, identifier(name))])
            return exp.select(star).from_(source.copy()), columns
        derived = None if columns is None else [*columns, name]
        return exp.select("*", exp.alias_(expression, identifier(name))).from_(source.copy()), derived
    name = _text(step.get("column"), f"{where}.column")
    _check_known(columns, [name], f"{where} (cast)")
    target = _text(step.get("to"), f"{where}.to")
    try:
        data_type = exp.DataType.build(target, dialect=DIALECT)
    except (errors.SqlglotError, ValueError) as exc:
        raise ValidationFailed(f"{where}.to: {target!r} is not a SQL type.") from exc
    star.set("replace", [exp.alias_(exp.Cast(this=_column(name), to=data_type), identifier(name))])
    return exp.select(star).from_(source.copy()), columns


# -- join -----------------------------------------------------------------------------------------
def _join(
    config: dict[str, Any], inputs: list[str], refs: _RefTables, known: dict[str, list[str]]
) -> tuple[exp.Query, list[str] | None]:
    left, right = inputs
    join_type = config.get("join_type", "inner")
    if join_type not in JOIN_TYPES:
        raise ValidationFailed(f"join_type must be one of {', '.join(JOIN_TYPES)}, not {join_type!r}.")
    pairs = config.get("on")
    if not isinstance(pairs, list) or not pairs:
        raise ValidationFailed("on must be a non-empty list of {left, right} column pairs.")
    conditions = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            raise ValidationFailed(f"on[{index}] must be an object {{left, right}}.")
        left_column = _text(pair.get("left"), f"on[{index}].left")
        right_column = _text(pair.get("right"), f"on[{index}].right")
        _check_known(known.get(left), [left_column], f"on[{index}].left")
        _check_known(known.get(right), [right_column], f"on[{index}].right")
        conditions.append(exp.EQ(this=_column(left_column, left), expression=_column(right_column, right)))
    selected = config.get("columns") or []
    if not isinstance(selected, list):
        raise ValidationFailed("columns must be a list of {input, column, alias}.")
    projections: list[exp.Expression] = []
    output: list[str] | None = []
    for index, item in enumerate(selected):
        if not isinstance(item, dict) or item.get("input") not in inputs:
            raise ValidationFailed(f"columns[{index}].input must be one of the inputs ({left}, {right}).")
        column = _text(item.get("column"), f"columns[{index}].column")
        _check_known(known.get(item["input"]), [column], f"columns[{index}]")
        alias = item.get("alias")
        expression: exp.Expression = _column(column, item["input"])
        if alias is not None:
            expression = exp.alias_(expression, identifier(_text(alias, f"columns[{index}].alias")))
        projections.append(expression)
        output.append(alias or column)
    if not projections:
        projections = [exp.Star()]
        output = None if left not in known or right not in known else [*known[left], *known[right]]
    query = (
        exp.select(*projections)
        .from_(refs.table(left, alias=left))
        .join(refs.table(right, alias=right), on=exp.and_(*conditions), join_type=JOIN_TYPES[join_type])
    )
    return query, output


# -- group by -------------------------------------------------------------------------------------
def _group_by(
    config: dict[str, Any], inputs: list[str], refs: _RefTables, known: dict[str, list[str]]
) -> tuple[exp.Query, list[str] | None]:
    columns = known.get(inputs[0])
    keys = _names(config.get("keys", []), "keys", allow_empty=True)
    _check_known(columns, keys, "keys")
    aggregations = config.get("aggregations", [])
    if not isinstance(aggregations, list):
        raise ValidationFailed("aggregations must be a list of {column, function, alias}.")
    if not keys and not aggregations:
        raise ValidationFailed("a group_by recipe needs keys, aggregations or both.")
    projections: list[exp.Expression] = [_column(key) for key in keys]
    output = list(keys)
    for index, item in enumerate(aggregations):
        where = f"aggregations[{index}]"
        if not isinstance(item, dict):
            raise ValidationFailed(f"{where} must be an object {{column, function, alias}}.")
        function = item.get("function")
        if function not in AGGREGATES:
            raise ValidationFailed(
                f"{where}.function must be one of {', '.join(AGGREGATES)}, not {function!r}."
            )
        column = _text(item.get("column"), f"{where}.column")
        if column == "*" and function != "count":
            raise ValidationFailed(f"{where}: only count takes '*'.")
        if column != "*":
            _check_known(columns, [column], where)
        alias = item.get("alias") or (function if column == "*" else f"{function}_{column}")
        projections.append(
            exp.alias_(_aggregate(function, column), identifier(_text(alias, f"{where}.alias")))
        )
        output.append(alias)
    query = exp.select(*projections).from_(refs.table(inputs[0]))
    if keys:
        query = query.group_by(*(_column(key) for key in keys))
    return query, output


def _aggregate(function: str, column: str) -> exp.Expression:
    argument: exp.Expression = exp.Star() if column == "*" else _column(column)
    if function == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[argument]))
    return {"sum": exp.Sum, "count": exp.Count, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[function](
        this=argument
    )


# -- stack ----------------------------------------------------------------------------------------
def _stack(
    config: dict[str, Any], inputs: list[str], refs: _RefTables, known: dict[str, list[str]]
) -> tuple[exp.Query, list[str] | None]:
    mode = config.get("mode", "union_all")
    if mode not in STACK_MODES:
        raise ValidationFailed(f"mode must be one of {', '.join(STACK_MODES)}, not {mode!r}.")
    columns = config.get("columns")
    chosen = _names(columns, "columns") if columns is not None else None
    parts: list[exp.Select] = []
    for name in inputs:
        if chosen is not None:
            _check_known(known.get(name), chosen, f"columns of input {name}")
        projections = [_column(column) for column in chosen] if chosen else [exp.Star()]
        parts.append(exp.select(*projections).from_(refs.table(name)))
    query: exp.Query = parts[0]
    for part in parts[1:]:
        query = exp.union(query, part, distinct=mode == "union")
    output = chosen if chosen is not None else known.get(inputs[0])
    return query, list(output) if output is not None else None
