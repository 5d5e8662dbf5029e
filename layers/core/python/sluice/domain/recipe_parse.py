"""parse-to-visual (SPEC 6): a dbt-style SQL model read back into the visual recipe config that
compiles to it, or None when the SQL fits no visual pattern. The inverse of recipes.compile_recipe.

The round-trip law: `parse_recipe(compile_recipe(c).sql) == canonical(c)` for every valid config c,
and `canonical(c) == c` when c is already written as the parser writes it (every default spelled
out, expressions and types as sqlglot renders them in DuckDB's dialect). `canonical` is what the
recipe editor stores, so what it saves is exactly what it reads back.

Besides the compiler's own shapes the parser accepts nearby SQL a person writes, and answers a config
whose compiled SQL computes the same rows (checked on DuckDB by the tests):
- prepare: any chain of CTEs each reading the one before (the first a `ref`), and a last SELECT;
  each SELECT may have a WHERE (a filter step), `* EXCLUDE/RENAME/REPLACE`, `*, expr AS c` (derive),
  or a list of columns and `expr AS c` (derives, then a select, then renames).
- join: two refs, each with an alias, `[INNER|LEFT|RIGHT|FULL] [OUTER] JOIN ... ON a.x = b.y AND ...`
  and columns qualified by those aliases (or `*`).
- group_by: keys first (as in GROUP BY), then aliased SUM/COUNT/AVG/MIN/MAX/COUNT(DISTINCT) of columns.
- stack: SELECTs of the same columns (or `*`) from refs, all UNION ALL or all UNION.

It answers None for window functions, DISTINCT, ORDER BY, LIMIT, HAVING, subqueries, INTERSECT and
EXCEPT, CTE chains that branch, sources other than `{{ ref('...') }}`, and other Jinja. SQL that does
not parse raises ValidationFailed with sqlglot's message.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.domain.recipes import AGGREGATES, DIALECT, compile_recipe
from sluice.errors import ValidationFailed
from sluice.lazy import LazyModule

sqlglot = LazyModule("sqlglot")
exp = LazyModule("sqlglot.expressions")
errors = LazyModule("sqlglot.errors")

_REF = re.compile(r"""\{\{\s*ref\(\s*(?:'([^'{}"]+)'|"([^'{}"]+)")\s*\)\s*\}\}""")
_SENTINEL = "__sluice_parse_ref_{}__"
_ALLOWED_SELECT_ARGS = {"expressions", "from_", "where", "with_"}
_AGG_NAMES = {"Sum": "sum", "Count": "count", "Avg": "avg", "Min": "min", "Max": "max"}


class NotVisual(Exception):
    """The SQL parses but fits no visual pattern (parse_recipe answers None)."""


def parse_recipe(sql: str) -> dict[str, Any] | None:
    if not isinstance(sql, str) or not sql.strip():
        raise ValidationFailed("sql must be a non-empty string.")
    refs: dict[str, str] = {}

    def sentinel(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        for key, value in refs.items():
            if value == name:
                return key
        key = _SENTINEL.format(len(refs))
        refs[key] = name
        return key

    text = _REF.sub(sentinel, sql)
    if "{{" in text or "{%" in text:
        return None  # Jinja other than ref() (source(), config(), macros): not a visual recipe
    try:
        statements = [tree for tree in sqlglot.parse(text, read=DIALECT) if tree is not None]
    except errors.SqlglotError as exc:
        raise ValidationFailed(f"The SQL does not parse: {_plain(str(exc))}") from exc
    except RecursionError as exc:
        raise ValidationFailed("The SQL does not parse: it nests too deeply.") from exc
    if len(statements) != 1:
        return None
    tree = statements[0]
    try:
        config = _Reader(refs).read(tree)
        # Only a config the compiler accepts is a visual recipe; anything else is SQL-only.
        compile_recipe(config)
    except (NotVisual, ValidationFailed, RecursionError):
        return None
    return config


def canonical(config: dict[str, Any], input_columns: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The config as parse_recipe writes it: defaults spelled out, keys the compiler reads, SQL
    expressions and types in sqlglot's DuckDB rendering. Raises ValidationFailed as the compiler
    does."""
    compile_recipe(config, input_columns)
    kind = config["recipe_type"]
    inputs = list(config["inputs"])
    if kind == "prepare":
        return {
            "recipe_type": kind,
            "inputs": inputs,
            "steps": [_canonical_step(s) for s in config.get("steps", [])],
        }
    if kind == "join":
        columns = []
        for item in config.get("columns") or []:
            column = {"input": item["input"], "column": item["column"]}
            if item.get("alias") is not None:
                column["alias"] = item["alias"]
            columns.append(column)
        return {
            "recipe_type": kind,
            "inputs": inputs,
            "join_type": config.get("join_type", "inner"),
            "on": [{"left": pair["left"], "right": pair["right"]} for pair in config["on"]],
            "columns": columns,
        }
    if kind == "group_by":
        aggregations = []
        for item in config.get("aggregations", []):
            column, function = item["column"], item["function"]
            alias = item.get("alias") or (function if column == "*" else f"{function}_{column}")
            aggregations.append({"column": column, "function": function, "alias": alias})
        return {
            "recipe_type": kind,
            "inputs": inputs,
            "keys": list(config.get("keys", [])),
            "aggregations": aggregations,
        }
    result: dict[str, Any] = {"recipe_type": kind, "inputs": inputs, "mode": config.get("mode", "union_all")}
    if config.get("columns") is not None:
        result["columns"] = list(config["columns"])
    return result


def _canonical_step(step: dict[str, Any]) -> dict[str, Any]:
    kind = step["type"]
    if kind in ("select", "drop"):
        return {"type": kind, "columns": list(step["columns"])}
    if kind == "filter":
        return {"type": kind, "condition": _render(sqlglot.parse_one(step["condition"], read=DIALECT))}
    if kind == "rename":
        return {"type": kind, "column": step["column"], "to": step["to"]}
    if kind == "derive":
        expression = _render(sqlglot.parse_one(step["expression"], read=DIALECT))
        return {"type": kind, "column": step["column"], "expression": expression}
    return {
        "type": kind,
        "column": step["column"],
        "to": exp.DataType.build(step["to"], dialect=DIALECT).sql(DIALECT),
    }


def _render(tree: exp.Expression) -> str:
    return tree.sql(dialect=DIALECT)


def _plain(message: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", message).strip()


class _Reader:
    def __init__(self, refs: dict[str, str]):
        self.refs = refs

    # -- dispatch -------------------------------------------------------------------------------
    def read(self, tree: exp.Expression) -> dict[str, Any]:
        if isinstance(tree, exp.Union):
            return self._stack(tree)
        if not isinstance(tree, exp.Select):
            raise NotVisual
        if any(isinstance(node, (exp.Window, exp.Subquery)) for node in tree.walk()):
            raise NotVisual
        if tree.args.get("joins"):
            return self._join(tree)
        if tree.args.get("group") or any(isinstance(node, exp.AggFunc) for node in tree.walk()):
            return self._group_by(tree)
        return self._prepare(tree)

    # -- common ---------------------------------------------------------------------------------
    def _plain_select(self, select: exp.Expression, allowed: set[str]) -> exp.Select:
        if not isinstance(select, exp.Select):
            raise NotVisual
        for key, value in select.args.items():
            if value not in (None, [], False) and key not in allowed:
                raise NotVisual
        return select

    def _ref(self, table: exp.Expression) -> tuple[str, str | None]:
        """(input name, alias) of a `{{ ref() }}` table, NotVisual for anything else."""
        if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
            raise NotVisual
        name = table.this.this if isinstance(table.this, exp.Identifier) else None
        if name not in self.refs:
            raise NotVisual
        alias = table.args.get("alias")
        if alias is not None and (alias.args.get("columns") or not isinstance(alias.this, exp.Identifier)):
            raise NotVisual
        return self.refs[name], alias.this.this if alias is not None else None

    def _from(self, select: exp.Select) -> exp.Expression:
        source = select.args.get("from_")
        if source is None:
            raise NotVisual
        return source.this

    @staticmethod
    def _name(column: exp.Expression, tables: set[str | None]) -> str:
        """The name of a column of the one relation read (qualified by it, or not at all)."""
        if not isinstance(column, exp.Column) or not isinstance(column.this, exp.Identifier):
            raise NotVisual
        if column.args.get("db") or column.args.get("catalog"):
            raise NotVisual
        table = column.args.get("table")
        if table is not None and table.this not in tables:
            raise NotVisual
        return column.this.this

    # -- prepare --------------------------------------------------------------------------------
    def _prepare(self, tree: exp.Select) -> dict[str, Any]:
        chain: list[exp.Select] = []
        with_ = tree.args.get("with_")
        names: list[str] = []
        if with_ is not None:
            if with_.args.get("recursive"):
                raise NotVisual
            for cte in with_.expressions:
                if cte.args.get("materialized") is not None or cte.alias_column_names:
                    raise NotVisual
                chain.append(self._plain_select(cte.this, {"expressions", "from_", "where"}))
                names.append(cte.alias)
        chain.append(self._plain_select(tree, _ALLOWED_SELECT_ARGS))
        input_name: str | None = None
        steps: list[dict[str, Any]] = []
        for index, select in enumerate(chain):
            source = self._from(select)
            if index == 0:
                input_name, alias = self._ref(source)
                tables = {alias, None}
            else:
                if (
                    not isinstance(source, exp.Table)
                    or source.args.get("db")
                    or source.name != names[index - 1]
                ):
                    raise NotVisual  # a chain that branches or reads something else
                alias = source.args.get("alias")
                tables = {source.name, alias.name if alias is not None else None}
            steps.extend(self._steps(select, tables))
        return {"recipe_type": "prepare", "inputs": [input_name], "steps": steps}

    def _steps(self, select: exp.Select, tables: set[str | None]) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        where = select.args.get("where")
        if where is not None:
            steps.append({"type": "filter", "condition": _render(_local(where.this, tables))})
        projections = list(select.expressions)
        if not projections:
            raise NotVisual
        first = projections[0]
        if isinstance(first, exp.Star):
            steps.extend(self._star_steps(first, projections[1:], tables))
            return steps
        if any(
            isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
            for p in projections
        ):
            raise NotVisual
        return steps + self._list_steps(projections, tables)

    def _star_steps(
        self, star: exp.Star, rest: list[exp.Expression], tables: set[str | None]
    ) -> list[dict[str, Any]]:
        modifiers = {key: value for key, value in star.args.items() if value}
        if len(modifiers) > 1 or "ilike" in modifiers or (modifiers and rest):
            raise NotVisual
        if "except_" in modifiers:
            return [{"type": "drop", "columns": [self._name(c, tables) for c in modifiers["except_"]]}]
        if "rename" in modifiers:
            steps = []
            for item in modifiers["rename"]:
                if not isinstance(item, exp.Alias):
                    raise NotVisual
                steps.append({"type": "rename", "column": self._name(item.this, tables), "to": item.alias})
            return steps
        if "replace" in modifiers:
            steps = []
            for item in modifiers["replace"]:
                if not isinstance(item, exp.Alias):
                    raise NotVisual
                value = item.this
                if (
                    isinstance(value, exp.Cast)
                    and type(value) is exp.Cast
                    and isinstance(value.this, exp.Column)
                    and not value.args.get("format")
                    and self._name(value.this, tables) == item.alias
                ):
                    steps.append({"type": "cast", "column": item.alias, "to": value.to.sql(DIALECT)})
                else:
                    steps.append(
                        {"type": "derive", "column": item.alias, "expression": _render(_local(value, tables))}
                    )
            return steps
        steps = []
        for item in rest:
            if not isinstance(item, exp.Alias) or isinstance(item.this, exp.Star):
                raise NotVisual
            steps.append(
                {"type": "derive", "column": item.alias, "expression": _render(_local(item.this, tables))}
            )
        return steps

    def _list_steps(self, projections: list[exp.Expression], tables: set[str | None]) -> list[dict[str, Any]]:
        """`SELECT a, b AS c, x * 2 AS d`: derive d, select [a, b, d], rename b to c."""
        derives: list[dict[str, Any]] = []
        selected: list[str] = []
        renames: list[dict[str, Any]] = []
        for item in projections:
            if isinstance(item, exp.Column):
                selected.append(self._name(item, tables))
                continue
            if not isinstance(item, exp.Alias):
                raise NotVisual
            if isinstance(item.this, exp.Column):
                source = self._name(item.this, tables)
                selected.append(source)
                if source != item.alias:
                    renames.append({"type": "rename", "column": source, "to": item.alias})
                continue
            derives.append(
                {"type": "derive", "column": item.alias, "expression": _render(_local(item.this, tables))}
            )
            selected.append(item.alias)
        outputs = [s["to"] for s in renames] + [
            n for n in selected if n not in {r["column"] for r in renames}
        ]
        lowered = [name.lower() for name in outputs]
        if (derives or renames) and (
            len(set(lowered)) != len(lowered) or len({n.lower() for n in selected}) != len(selected)
        ):
            raise NotVisual  # the steps could not keep the columns apart
        return [*derives, {"type": "select", "columns": selected}, *renames]

    # -- join -----------------------------------------------------------------------------------
    def _join(self, tree: exp.Select) -> dict[str, Any]:
        select = self._plain_select(tree, {"expressions", "from_", "joins"})
        (join,) = select.args["joins"] if len(select.args["joins"]) == 1 else (None,)
        if join is None:
            raise NotVisual
        left, left_alias = self._ref(self._from(select))
        right, right_alias = self._ref(join.this)
        if left_alias is None or right_alias is None or left_alias == right_alias or left == right:
            raise NotVisual
        for key, value in join.args.items():
            if value and key not in ("this", "on", "side", "kind"):
                raise NotVisual
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if kind not in ("", "INNER", "OUTER") or (kind == "INNER" and side) or (kind == "OUTER" and not side):
            raise NotVisual
        join_type = {"": "inner", "LEFT": "left", "RIGHT": "right", "FULL": "full"}[side]
        aliases = {left_alias: left, right_alias: right}
        on = []
        for condition in _conjuncts(join.args.get("on")):
            if not isinstance(condition, exp.EQ):
                raise NotVisual
            a, b = self._qualified(condition.this, aliases), self._qualified(condition.expression, aliases)
            if {a[0], b[0]} != {left, right}:
                raise NotVisual
            l_col, r_col = (a[1], b[1]) if a[0] == left else (b[1], a[1])
            on.append({"left": l_col, "right": r_col})
        columns: list[dict[str, Any]] = []
        projections = list(select.expressions)
        if (
            len(projections) == 1
            and isinstance(projections[0], exp.Star)
            and not any(projections[0].args.values())
        ):
            projections = []
        for item in projections:
            alias = None
            if isinstance(item, exp.Alias):
                alias, item = item.alias, item.this
            model, column = self._qualified(item, aliases)
            entry = {"input": model, "column": column}
            if alias is not None:
                entry["alias"] = alias
            columns.append(entry)
        return {
            "recipe_type": "join",
            "inputs": [left, right],
            "join_type": join_type,
            "on": on,
            "columns": columns,
        }

    @staticmethod
    def _qualified(column: exp.Expression, aliases: dict[str, str]) -> tuple[str, str]:
        if not isinstance(column, exp.Column) or not isinstance(column.this, exp.Identifier):
            raise NotVisual
        table = column.args.get("table")
        if table is None or column.args.get("db") or table.this not in aliases:
            raise NotVisual
        return aliases[table.this], column.this.this

    # -- group by -------------------------------------------------------------------------------
    def _group_by(self, tree: exp.Select) -> dict[str, Any]:
        select = self._plain_select(tree, {"expressions", "from_", "group"})
        model, alias = self._ref(self._from(select))
        tables = {alias, None}
        group = select.args.get("group")
        if group is not None and any(group.args.get(k) for k in group.args if k != "expressions"):
            raise NotVisual
        keys = [self._name(key, tables) for key in (group.expressions if group is not None else [])]
        projections = list(select.expressions)
        if [
            self._name(p, tables) if isinstance(p, exp.Column) else None for p in projections[: len(keys)]
        ] != keys:
            raise NotVisual
        aggregations = []
        for item in projections[len(keys) :]:
            if not isinstance(item, exp.Alias):
                raise NotVisual
            aggregations.append({**self._aggregate(item.this, tables), "alias": item.alias})
        return {"recipe_type": "group_by", "inputs": [model], "keys": keys, "aggregations": aggregations}

    def _aggregate(self, call: exp.Expression, tables: set[str | None]) -> dict[str, str]:
        function = _AGG_NAMES.get(type(call).__name__)
        if function is None:
            raise NotVisual
        argument = call.this
        if function == "count" and isinstance(argument, exp.Distinct):
            if len(argument.expressions) != 1:
                raise NotVisual
            return {"column": self._name(argument.expressions[0], tables), "function": "count_distinct"}
        if call.expressions:
            raise NotVisual
        if function == "count" and isinstance(argument, exp.Star):
            return {"column": "*", "function": "count"}
        column = self._name(argument, tables)
        if column == "*" or function not in AGGREGATES:
            raise NotVisual
        return {"column": column, "function": function}

    # -- stack ----------------------------------------------------------------------------------
    def _stack(self, tree: exp.Union) -> dict[str, Any]:
        parts: list[exp.Expression] = []
        modes: set[bool] = set()
        node: exp.Expression = tree
        while isinstance(node, exp.Union):
            if type(node) is not exp.Union or any(
                node.args.get(k) for k in node.args if k not in ("this", "expression", "distinct")
            ):
                raise NotVisual
            modes.add(bool(node.args.get("distinct")))
            parts.insert(0, node.expression)
            node = node.this
        parts.insert(0, node)
        if len(modes) != 1:
            raise NotVisual
        inputs: list[str] = []
        shapes: list[list[str] | None] = []
        for part in parts:
            select = self._plain_select(part, {"expressions", "from_"})
            model, alias = self._ref(self._from(select))
            inputs.append(model)
            projections = select.expressions
            if (
                len(projections) == 1
                and isinstance(projections[0], exp.Star)
                and not any(projections[0].args.values())
            ):
                shapes.append(None)
            else:
                shapes.append([self._name(p, {alias, None}) for p in projections])
        if any(shape != shapes[0] for shape in shapes):
            raise NotVisual
        result: dict[str, Any] = {
            "recipe_type": "stack",
            "inputs": inputs,
            "mode": "union" if modes.pop() else "union_all",
        }
        if shapes[0] is not None:
            result["columns"] = shapes[0]
        return result


def _local(expression: exp.Expression, tables: set[str | None]) -> exp.Expression:
    """An expression over the one relation read, its columns unqualified (a step reads the step
    before it, whatever that was called); a column of any other table is not visual."""
    tree = expression.copy()
    for column in tree.find_all(exp.Column):
        table = column.args.get("table")
        if table is None:
            continue
        if column.args.get("db") or table.this not in tables:
            raise NotVisual
        column.set("table", None)
    return tree


def _conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    if condition is None:
        raise NotVisual
    if isinstance(condition, exp.And):
        return [*_conjuncts(condition.this), *_conjuncts(condition.expression)]
    if isinstance(condition, exp.Paren):
        return _conjuncts(condition.this)
    return [condition]
