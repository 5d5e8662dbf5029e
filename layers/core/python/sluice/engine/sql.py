"""SQL as a pipeline author writes it, made ready for DuckDB: run params bound, `{{ ref('x') }}`
resolved, other dialects transpiled with sqlglot, and the relations it reads named, so the engine can
hold them against the node's inputs before DuckDB runs anything.

Params. `${params.name}` stands for the run param `name` as a SQL *value*: it becomes a literal of
the SQL's dialect (strings quoted and escaped, numbers, TRUE/FALSE, NULL), so a param can never
inject SQL. `'${params.name}'` (already in quotes) means the same. A param is a value, not a text
fragment: write `'prefix-' || ${params.name}`, not `'prefix-${params.name}'`. `${var.KEY}` is the
caller's textual substitution, done before the engine sees the config; one left over means an
undefined variable and fails the node.

Relations. Each upstream node is a relation named by its node id, bare or as `{{ ref('id') }}`;
`{{ ref('name') }}` may also name a dataset of the project (dbt's sense of ref). Anything else fails.

Dialects. `duckdb` (the default) runs as written: sqlglot parses it to find the relations, but its
regenerated text is not used, since sqlglot trails DuckDB's grammar and a round trip could change a
valid query; when sqlglot cannot parse DuckDB SQL, DuckDB's parser decides. Any other dialect is
transpiled, and a construct sqlglot cannot carry over fails the node instead of changing meaning.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from sluice.engine.errors import NodeFailed, clean_message

DEFAULT_DIALECT = "duckdb"
REF = re.compile(r"\{\{\s*ref\(\s*(['\"])(?P<name>[^'\"]+)\1\s*\)\s*\}\}")
TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
PARAM = re.compile(r"(?P<quote>')?\$\{\s*params\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}(?(quote)')")
VARIABLE = re.compile(r"\$\{\s*var\.(?P<name>[^}]*)\}")


@dataclass(frozen=True)
class CompiledQuery:
    """A query ready for DuckDB."""

    sql: str
    # Relation names read outside CTEs, in order of appearance; None when only DuckDB could parse it.
    relations: tuple[str, ...] | None
    # Names given through ref(), which may also be datasets.
    refs: tuple[str, ...]


def check_dialect(dialect: str) -> str:
    name = (dialect or DEFAULT_DIALECT).lower()
    try:
        sqlglot.Dialect.get_or_raise(name)
    except (ValueError, SqlglotError) as exc:
        raise NodeFailed(f"unknown SQL dialect '{dialect}'") from exc
    return name


def bind_params(text: str, params: dict[str, Any] | None, dialect: str = DEFAULT_DIALECT) -> str:
    """Replace `${params.x}` by the literal of param x; see the module docstring."""
    given = params or {}
    undefined = VARIABLE.search(text)
    if undefined:
        raise NodeFailed(
            f"${{var.{undefined.group('name')}}} is not defined: set the variable or the run's variables"
        )

    def literal(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in given:
            known = ", ".join(sorted(given)) or "none"
            raise NodeFailed(
                f"${{params.{name}}} is used but the run has no param '{name}' (params: {known})"
            )
        return sql_literal(given[name], dialect, name)

    return PARAM.sub(literal, text)


def sql_literal(value: Any, dialect: str, name: str = "value") -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NodeFailed(f"param '{name}' is {value}, which SQL cannot hold as a literal")
        return repr(value)
    if isinstance(value, str):
        return exp.Literal.string(value).sql(dialect=dialect)
    raise NodeFailed(
        f"param '{name}' is a {type(value).__name__}; a SQL param must be a string, number, boolean or null"
    )


def resolve_refs(text: str, dialect: str) -> tuple[str, tuple[str, ...]]:
    """`{{ ref('x') }}` -> the quoted identifier x; any other template tag fails the node."""
    names: list[str] = []

    def identifier(match: re.Match[str]) -> str:
        name = match.group("name").strip()
        names.append(name)
        return exp.to_identifier(name, quoted=True).sql(dialect=dialect)

    resolved = REF.sub(identifier, text)
    leftover = TEMPLATE.search(resolved)
    if leftover:
        raise NodeFailed(
            f"unsupported template tag {leftover.group(0)}: only {{{{ ref('node_or_dataset') }}}} is supported"
        )
    return resolved, tuple(dict.fromkeys(names))


def compile_query(
    text: str, *, dialect: str = DEFAULT_DIALECT, params: dict[str, Any] | None = None
) -> CompiledQuery:
    """One query in `dialect` -> DuckDB SQL, with the relations it reads."""
    if not isinstance(text, str) or not text.strip():
        raise NodeFailed("the SQL is empty")
    dialect = check_dialect(dialect)
    bound = bind_params(text, params, dialect)
    resolved, refs = resolve_refs(bound, dialect)
    resolved = resolved.strip().rstrip(";").strip()
    try:
        trees = [tree for tree in sqlglot.parse(resolved, read=dialect) if tree is not None]
    except SqlglotError as exc:
        if dialect != DEFAULT_DIALECT:
            raise NodeFailed(f"sqlglot could not parse the {dialect} SQL: {clean_message(str(exc))}") from exc
        _check_one_select(resolved)
        return CompiledQuery(resolved, None, refs)
    if len(trees) != 1:
        raise NodeFailed(f"the SQL holds {len(trees)} statements; a node runs exactly one query")
    tree = trees[0]
    relations = relations_read(tree)
    if dialect == DEFAULT_DIALECT:
        compiled = resolved
    else:
        try:
            compiled = tree.sql(dialect=DEFAULT_DIALECT, unsupported_level=ErrorLevel.RAISE)
        except SqlglotError as exc:
            raise NodeFailed(
                f"sqlglot cannot carry this {dialect} SQL over to DuckDB: {clean_message(str(exc))}"
            ) from exc
    _check_one_select(compiled)
    return CompiledQuery(compiled, relations, refs)


def compile_condition(
    text: str, *, dialect: str = DEFAULT_DIALECT, params: dict[str, Any] | None = None
) -> tuple[str, tuple[str, ...]]:
    """A filter's boolean expression -> (DuckDB expression, relations its subqueries read)."""
    if not isinstance(text, str) or not text.strip():
        raise NodeFailed("the condition is empty")
    dialect = check_dialect(dialect)
    bound = bind_params(text, params, dialect)
    try:
        tree = sqlglot.parse_one(bound, read=dialect)
    except SqlglotError as exc:
        raise NodeFailed(f"the condition does not parse: {clean_message(str(exc))}") from exc
    if isinstance(tree, exp.Query) or not isinstance(tree, exp.Condition):
        raise NodeFailed(
            "the condition must be a boolean expression over the input's columns, not a statement"
        )
    try:
        compiled = tree.sql(dialect=DEFAULT_DIALECT, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise NodeFailed(
            f"sqlglot cannot carry this condition over to DuckDB: {clean_message(str(exc))}"
        ) from exc
    return compiled, relations_read(tree)


def relations_read(tree: exp.Expression) -> tuple[str, ...]:
    """Names of the tables a query reads, leaving out its own CTEs; schema-qualified names fail."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    names: list[str] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function such as range(); the sandbox keeps file readers away from files
        if table.args.get("db") or table.args.get("catalog"):
            raise NodeFailed(
                f"the SQL reads {table.sql(dialect=DEFAULT_DIALECT)}: name an input by its node id alone"
            )
        if table.name.lower() not in ctes:
            names.append(table.name)
    return tuple(dict.fromkeys(names))


_parsers = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    # A connection per thread: the local stack runs a Map state's nodes on threads of one process,
    # and a DuckDB connection is not to be shared between threads.
    connection = getattr(_parsers, "connection", None)
    if connection is None:
        connection = _parsers.connection = duckdb.connect(":memory:")
    return connection


def _check_one_select(sql: str) -> None:
    """DuckDB's parser has the last word: exactly one statement, and a query."""
    try:
        statements = _parser().extract_statements(sql)
    except duckdb.Error as exc:
        raise NodeFailed(str(exc)) from exc
    if len(statements) != 1:
        raise NodeFailed(f"the SQL holds {len(statements)} statements; a node runs exactly one query")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise NodeFailed(
            f"a node's SQL must be one query (SELECT, WITH, VALUES), not a {kind.name} statement"
        )
