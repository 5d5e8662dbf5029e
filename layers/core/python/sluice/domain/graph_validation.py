"""What Sluice can run (SPEC 3a): `validate_graph` refuses (422, naming the node and the reason)
unknown node types, bad configs, edges to unknown nodes, cycles, targets without their one input,
filters without exactly one input, SQL that does not parse, and SQL that reads anything but its
upstream nodes. SQL is parsed with sqlglot, imported only when a graph with SQL is validated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sluice.domain.graph import (
    DEFAULT_DIALECT,
    FILE_FORMATS,
    GENERATING_FUNCTIONS,
    MAX_SQL_CHARS,
    NODE_TYPES,
    REF_PATTERN,
    SOURCE_KINDS,
    TARGET_KINDS,
    VARIABLE_PATTERN,
    WRITE_MODES,
    Graph,
    Node,
    check_node_count,
    shown,
)
from sluice.errors import ValidationFailed
from sluice.lazy import LazyModule

sqlglot = LazyModule("sqlglot")
exp = LazyModule("sqlglot.expressions")
errors = LazyModule("sqlglot.errors")


def _fail(sentence: str) -> ValidationFailed:
    return ValidationFailed(sentence)


# -- validation ------------------------------------------------------------------------------------
def validate_graph(graph: Graph) -> None:
    """Refuse what Sluice could not run; every sentence names the node (or edge) and the reason."""
    check_node_count(len(graph.nodes))
    seen: set[str] = set()
    for node in graph.nodes:
        if node.id in seen:
            raise _fail(f"Node '{node.id}' appears twice; node ids must be unique in a pipeline.")
        seen.add(node.id)
    pairs: set[tuple[str, str]] = set()
    for edge in graph.edges:
        for end in (edge.source, edge.target):
            if end not in seen:
                raise _fail(f"Edge {edge.source} -> {edge.target}: '{end}' is not a node of this pipeline.")
        if (edge.source, edge.target) in pairs:
            raise _fail(f"Edge {edge.source} -> {edge.target} is given twice.")
        pairs.add((edge.source, edge.target))
    for node in graph.nodes:
        _validate_node(graph, node)
    cycle = find_cycle(graph)
    if cycle:
        raise _fail(f"Node '{cycle[0]}' is on a cycle ({' -> '.join(cycle)}); a pipeline must be acyclic.")
    for node in graph.nodes:
        if node.node_type == "transform" and "sql" in node.config:
            check_sql_reads(node, [e.source for e in graph.inputs_of(node.id)])
        elif node.node_type == "filter":
            check_condition(node, [e.source for e in graph.inputs_of(node.id)])


def _validate_node(graph: Graph, node: Node) -> None:
    where = f"Node '{node.id}'"
    config = node.config
    inputs = graph.inputs_of(node.id)
    if node.node_type == "source":
        if inputs:
            raise _fail(f"{where}: a source takes no inputs, but {inputs[0].source} feeds it.")
        _validate_source(where, config)
    elif node.node_type == "transform":
        has_sql, has_recipe, has_ai = "sql" in config, "recipe" in config, "ai" in config
        if has_sql + has_recipe + has_ai != 1:
            raise _fail(
                f"{where}: a transform needs exactly one of config.sql or config.recipe (or config.ai, an AI recipe)."
            )
        if has_ai:
            if not isinstance(config["ai"], dict) or not isinstance(config["ai"].get("recipe_type"), str):
                raise _fail(f"{where}: config.ai must be an AI recipe object with a recipe_type.")
            if len(inputs) != 1:
                raise _fail(f"{where}: an AI recipe transform needs exactly one input; it has {len(inputs)}.")
        if has_sql:
            if not isinstance(config["sql"], str) or not config["sql"].strip():
                raise _fail(f"{where}: config.sql must be a non-empty SQL query.")
            if len(config["sql"]) > MAX_SQL_CHARS:
                raise _fail(f"{where}: config.sql is longer than {MAX_SQL_CHARS} characters.")
            _dialect(node)
        elif has_recipe and not isinstance(config["recipe"], dict):
            raise _fail(f"{where}: config.recipe must be a visual recipe object.")
    elif node.node_type == "filter":
        if len(inputs) != 1:
            raise _fail(f"{where}: a filter needs exactly one input; it has {len(inputs)}.")
        condition = config.get("condition")
        if not isinstance(condition, str) or not condition.strip():
            raise _fail(f"{where}: a filter needs config.condition, a SQL boolean expression.")
        _dialect(node)
    elif node.node_type == "target":
        if not inputs:
            raise _fail(f"{where}: a target needs an input; no edge leads into it.")
        if len(inputs) > 1:
            raise _fail(
                f"{where}: a target writes exactly one input; it has {len(inputs)} "
                "(add a transform that combines them)."
            )
        _validate_target(where, config)
    else:
        raise _fail(
            f"{where}: nodeType '{node.node_type}' is not one Sluice can run ({', '.join(NODE_TYPES)})."
        )


def _validate_source(where: str, config: dict[str, Any]) -> None:
    kind = config.get("kind")
    if kind == "inline":
        rows = config.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise _fail(f"{where}: an inline source needs config.rows, a list of objects.")
    elif kind == "s3":
        _s3(where, config)
    elif kind == "http":
        url = config.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            raise _fail(f"{where}: an http source needs config.url, an http:// or https:// URL.")
        path = config.get("records_path")
        if path is not None and not isinstance(path, str):
            raise _fail(f"{where}: config.records_path must be a string.")
    elif kind == "dataset":
        _dataset_name(where, config)
    else:
        raise _fail(
            f"{where}: source kind {shown(kind)} is not one Sluice can run ({', '.join(SOURCE_KINDS)})."
        )
    column = config.get("watermark_column")
    if column is not None and (not isinstance(column, str) or not column):
        raise _fail(f"{where}: config.watermark_column must be a column name.")


def _validate_target(where: str, config: dict[str, Any]) -> None:
    kind = config.get("kind")
    if kind == "dataset":
        _dataset_name(where, config)
        mode = config.get("mode", "overwrite")
        if mode not in WRITE_MODES:
            raise _fail(f"{where}: config.mode must be one of {', '.join(WRITE_MODES)}, not {shown(mode)}.")
        if mode == "merge":
            key = config.get("key")
            valid = (isinstance(key, str) and key) or (
                isinstance(key, list) and key and all(isinstance(k, str) and k for k in key)
            )
            if not valid:
                raise _fail(f"{where}: a merge target needs config.key, a column name or a list of them.")
    elif kind == "s3":
        _s3(where, config)
    else:
        raise _fail(
            f"{where}: target kind {shown(kind)} is not one Sluice can run ({', '.join(TARGET_KINDS)})."
        )


def _s3(where: str, config: dict[str, Any]) -> None:
    uri = config.get("uri")
    if not isinstance(uri, str) or not re.match(r"^s3://[^/\s]+", uri):
        raise _fail(f"{where}: config.uri must be an s3://bucket/key URI.")
    if config.get("format") not in FILE_FORMATS:
        raise _fail(f"{where}: config.format must be one of {', '.join(FILE_FORMATS)}.")


def _dataset_name(where: str, config: dict[str, Any]) -> None:
    name = config.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 150:
        raise _fail(f"{where}: config.name must name the dataset (1-150 characters).")


def _dialect(node: Node) -> str:
    dialect = node.config.get("dialect", DEFAULT_DIALECT)
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _fail(
            f"Node '{node.id}': dialect {shown(dialect)} is not a SQL dialect sqlglot knows."
        ) from exc
    return dialect


def find_cycle(graph: Graph) -> list[str]:
    """A cycle as a path that returns to its first node (empty when the graph is acyclic)."""
    targets: dict[str, list[str]] = {}
    for edge in graph.edges:
        targets.setdefault(edge.source, []).append(edge.target)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for start in (n.id for n in graph.nodes):
        if state.get(start):
            continue
        path: list[str] = [start]
        state[start] = 1
        stack = [iter(targets.get(start, ()))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return [*path[path.index(step) :], step]
            elif not state.get(step):
                state[step] = 1
                path.append(step)
                stack.append(iter(targets.get(step, ())))
    return []


# -- SQL -------------------------------------------------------------------------------------------
def _prepared(text: str) -> str:
    """`{{ ref('x') }}` is the relation x; `${var.KEY}` (filled at run time) parses as NULL."""
    text = REF_PATTERN.sub(lambda m: '"' + m.group(2).replace('"', '""') + '"', text)
    return VARIABLE_PATTERN.sub("NULL", text)


def _parse_error(node: Node, dialect: str, exc: errors.SqlglotError, what: str) -> ValidationFailed:
    if isinstance(exc, errors.ParseError) and exc.errors:
        first = exc.errors[0]
        reason = f"{first.get('description')} (line {first.get('line')}, column {first.get('col')})"
    else:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()[0]
    return _fail(f"Node '{node.id}': {what} does not parse as {dialect} SQL: {reason}.")


def parse_query(node: Node) -> exp.Expression:
    dialect = _dialect(node)
    try:
        statements = [s for s in sqlglot.parse(_prepared(node.config["sql"]), read=dialect) if s is not None]
    except errors.SqlglotError as exc:
        raise _parse_error(node, dialect, exc, "config.sql") from exc
    except RecursionError as exc:
        raise _fail(f"Node '{node.id}': config.sql is nested too deeply to parse.") from exc
    if len(statements) != 1:
        raise _fail(f"Node '{node.id}': config.sql must be one query, not {len(statements)} statements.")
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise _fail(f"Node '{node.id}': config.sql must be a query (SELECT ...), not {query.key.upper()}.")
    return query


def relations_read(expression: exp.Expression) -> list[str]:
    """The relations a query reads, minus the names of its own CTEs, as written (in order)."""
    own = {cte.alias_or_name.casefold() for cte in expression.find_all(exp.CTE)}
    found: list[str] = []
    for table in expression.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            function = table.this
            if isinstance(function, exp.Anonymous):
                name = str(function.name).lower()
            else:
                name = (function.sql_name() if isinstance(function, exp.Func) else function.key).lower()
            if isinstance(function, exp.GenerateSeries) or name in GENERATING_FUNCTIONS:
                continue
            found.append(function.sql())
            continue
        if not table.db and table.name.casefold() in own:
            continue
        written = ".".join(part for part in (table.catalog, table.db, table.name) if part)
        if written not in found:
            found.append(written)
    return found


def _check_reads(node: Node, expression: exp.Expression, upstream: Iterable[str]) -> None:
    allowed = {name.casefold() for name in upstream}
    for relation in relations_read(expression):
        if relation.casefold() not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise _fail(
                f"Node '{node.id}': its SQL reads {relation}, which is not one of its upstream nodes "
                f"({listed}); add an edge from that node or read an input."
            )


def check_sql_reads(node: Node, upstream: list[str]) -> None:
    _check_reads(node, parse_query(node), upstream)


def check_condition(node: Node, upstream: list[str]) -> None:
    dialect = _dialect(node)
    try:
        parsed = [
            c for c in sqlglot.parse(_prepared(node.config["condition"]), read=dialect) if c is not None
        ]
    except errors.SqlglotError as exc:
        raise _parse_error(node, dialect, exc, "config.condition") from exc
    except RecursionError as exc:
        raise _fail(f"Node '{node.id}': config.condition is nested too deeply to parse.") from exc
    condition = parsed[0] if len(parsed) == 1 else None
    if condition is None or isinstance(condition, exp.Query | exp.DDL | exp.DML | exp.Command | exp.Block):
        raise _fail(f"Node '{node.id}': config.condition must be a SQL boolean expression, not a statement.")
    _check_reads(node, condition, upstream)
