"""A pipeline's graph (SPEC 3, 3a): one model, read and rendered in both seeds' spellings, validated.

Seed 003 spells a graph as `nodes` + `edges`; seed 001 as `sources`, `transforms` and
`destinations`, each item `{name, type, ...config}` with transforms and destinations listing their
`inputs`. `Graph` is the one model both convert to and from. Conversion is lossless: node ids,
labels, positions, configs, edge labels and the order of each node's inputs survive either way.
Two normalisations make that exact: nodes are kept sources first, then transforms and filters, then
targets (each group in the order given), and edges grouped by target in that node order.

`validate_graph` refuses (422, naming the node and the reason) what Sluice could not run: unknown
node types, bad configs, edges to unknown nodes, cycles, targets without their one input, filters
without exactly one input, SQL that does not parse, and SQL that reads anything but its upstream
nodes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import ValidationFailed
from sluice.lazy import LazyModule

sqlglot = LazyModule("sqlglot")
exp = LazyModule("sqlglot.expressions")
errors = LazyModule("sqlglot.errors")

MAX_NODES = 500
MAX_EDGES = 2_000
MAX_LABEL_CHARS = 200
MAX_SQL_CHARS = 100_000
MAX_NODE_CONFIG_CHARS = 131_072  # one node's config as JSON (inline rows included)
NODE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")

SOURCE_KINDS = ("inline", "s3", "http", "dataset")
TARGET_KINDS = ("dataset", "s3")
FILE_FORMATS = ("csv", "json", "jsonl", "parquet")
WRITE_MODES = ("overwrite", "append", "merge")
NODE_TYPES = ("source", "transform", "filter", "target")
DEFAULT_DIALECT = "duckdb"
# Table functions that make rows without reading anything; every other one (read_csv, ...) would
# read data the graph does not declare, so it is refused like an undeclared relation.
GENERATING_FUNCTIONS = frozenset({"generate_series", "range"})

# Keys an item has in seed 001's spelling besides the node's config; a config may not use them.
ITEM_KEYS = ("name", "type", "inputs", "label", "position")
DATASET_KEY = "dataset"  # 001: the dataset a dataset node reads or writes, when not its own name
TRANSFORM_TYPES = ("sql", "recipe", "filter")  # 001's `type` of an item in `transforms`

_REF = re.compile(r"\{\{\s*ref\(\s*(['\"])(.*?)\1\s*\)\s*\}\}")
_VARIABLE = re.compile(r"\$\{var\.[A-Za-z0-9_.-]+\}")


# -- the model ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    id: str
    node_type: str
    config: dict[str, Any]
    label: str | None = None
    position: dict[str, Any] | None = None

    @property
    def kind(self) -> str | None:
        return self.config.get("kind")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str | None = None


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    _inputs: dict[str, list[Edge]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for edge in self.edges:
            self._inputs.setdefault(edge.target, []).append(edge)

    @property
    def empty(self) -> bool:
        return not self.nodes

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def inputs_of(self, node_id: str) -> list[Edge]:
        """The edges into a node, in the order given (the order of 001's `inputs`)."""
        return list(self._inputs.get(node_id, ()))

    # -- seed 003's spelling --------------------------------------------------------------------
    def nodes_and_edges(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "nodes": [
                {
                    "id": n.id,
                    "nodeType": n.node_type,
                    "label": n.label,
                    "config": _copy(n.config),
                    "position": _copy(n.position),
                }
                for n in self.nodes
            ],
            "edges": [{"source": e.source, "target": e.target, "label": e.label} for e in self.edges],
        }

    # -- seed 001's spelling --------------------------------------------------------------------
    def sources_transforms_destinations(self) -> dict[str, list[dict[str, Any]]]:
        spelled: dict[str, list[dict[str, Any]]] = {"sources": [], "transforms": [], "destinations": []}
        for node in self.nodes:
            config = _copy(node.config)
            if node.node_type in ("source", "target"):
                item_type = config.pop("kind", None)
                if item_type == "dataset":
                    dataset = config.pop("name", node.id)
                    if dataset != node.id:
                        config[DATASET_KEY] = dataset
            elif node.node_type == "filter":
                item_type = "filter"
            else:
                item_type = "recipe" if "recipe" in config and "sql" not in config else "sql"
            item: dict[str, Any] = {"name": node.id, "type": item_type, **config}
            if node.node_type != "source":
                item["inputs"] = [
                    e.source if e.label is None else {"name": e.source, "label": e.label}
                    for e in self.inputs_of(node.id)
                ]
            if node.label is not None:
                item["label"] = node.label
            if node.position is not None:
                item["position"] = _copy(node.position)
            group = {"source": "sources", "target": "destinations"}.get(node.node_type, "transforms")
            spelled[group].append(item)
        return spelled

    def both_spellings(self) -> dict[str, list[dict[str, Any]]]:
        return {**self.nodes_and_edges(), **self.sources_transforms_destinations()}

    # -- storage ----------------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """The stored form: seed 003's spelling (the other is derived on every read)."""
        return self.nodes_and_edges()

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> Graph:
        if not document:
            return cls()
        nodes = tuple(
            Node(
                id=n["id"],
                node_type=n["nodeType"],
                config=n.get("config") or {},
                label=n.get("label"),
                position=n.get("position"),
            )
            for n in document.get("nodes", ())
        )
        edges = tuple(Edge(e["source"], e["target"], e.get("label")) for e in document.get("edges", ()))
        return cls(nodes, edges)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value


# -- reading either spelling (structure only; validate_graph judges what it means) ----------------
def _fail(sentence: str) -> ValidationFailed:
    return ValidationFailed(sentence)


def _check_count(nodes: int) -> None:
    if nodes > MAX_NODES:
        raise _fail(f"A pipeline has at most {MAX_NODES} nodes; this one has {nodes}.")


def _node_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NODE_ID.match(value):
        raise _fail(
            f"{where}: a node id must be 1-128 letters, digits, '_' or '-', starting with a letter, "
            f"digit or '_' (got {_shown(value)})."
        )
    return value


def _label(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_LABEL_CHARS:
        raise _fail(f"{where}: label must be a string of at most {MAX_LABEL_CHARS} characters.")
    return value


def _position(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"x", "y"}
        or not all(_finite_number(value[axis]) for axis in ("x", "y"))
    ):
        raise _fail(f"{where}: position must be {{x: number, y: number}}.")
    return dict(value)


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _config(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"{where}: config must be an object.")
    if len(json.dumps(value, separators=(",", ":"), ensure_ascii=False)) > MAX_NODE_CONFIG_CHARS:
        raise _fail(f"{where}: config is larger than {MAX_NODE_CONFIG_CHARS} characters of JSON.")
    return dict(value)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def graph_from_nodes_and_edges(nodes: Any, edges: Any) -> Graph:
    """Seed 003's `nodes`/`edges` (edges default to none)."""
    if not isinstance(nodes, list):
        raise _fail("nodes must be a list of node objects.")
    _check_count(len(nodes))
    edges = [] if edges is None else edges
    if not isinstance(edges, list):
        raise _fail("edges must be a list of edge objects.")
    if len(edges) > MAX_EDGES:
        raise _fail(f"A pipeline has at most {MAX_EDGES} edges; this one has {len(edges)}.")
    read: list[Node] = []
    for index, raw in enumerate(nodes):
        if not isinstance(raw, dict):
            raise _fail(f"nodes[{index}] must be an object with id, nodeType and config.")
        where = f"Node {_shown(raw.get('id'))}" if isinstance(raw.get("id"), str) else f"nodes[{index}]"
        node_id = _node_id(raw.get("id"), where)
        where = f"Node '{node_id}'"
        node_type = raw.get("nodeType", raw.get("node_type"))
        if not isinstance(node_type, str):
            raise _fail(f"{where}: nodeType is required ({', '.join(NODE_TYPES)}).")
        config = _config(raw.get("config"), where)
        _refuse_item_keys(config, node_type, config.get("kind"), where)
        read.append(
            Node(
                node_id,
                node_type,
                _with_dataset_name(node_id, node_type, config),
                _label(raw.get("label"), where),
                _position(raw.get("position"), where),
            )
        )
    read_edges: list[Edge] = []
    for index, raw in enumerate(edges):
        if not isinstance(raw, dict):
            raise _fail(f"edges[{index}] must be an object with source and target.")
        where = f"edges[{index}]"
        read_edges.append(
            Edge(
                _node_id(raw.get("source"), f"{where} source"),
                _node_id(raw.get("target"), f"{where} target"),
                _label(raw.get("label"), where),
            )
        )
    return _normalised(read, read_edges)


def graph_from_sources(sources: Any, transforms: Any, destinations: Any) -> Graph:
    """Seed 001's `sources`/`transforms`/`destinations` (a missing list is an empty one)."""
    groups = {"sources": sources, "transforms": transforms, "destinations": destinations}
    for group, items in groups.items():
        if items is not None and not isinstance(items, list):
            raise _fail(f"{group} must be a list of objects with name and type.")
    _check_count(sum(len(items or ()) for items in groups.values()))
    nodes: list[Node] = []
    edges: list[Edge] = []
    for group, items in groups.items():
        for index, raw in enumerate(items or ()):
            if not isinstance(raw, dict):
                raise _fail(f"{group}[{index}] must be an object with name and type.")
            where = f"{group}[{index}]"
            node_id = _node_id(raw.get("name"), f"{where} name")
            where = f"Node '{node_id}'"
            item_type = raw.get("type")
            if not isinstance(item_type, str):
                raise _fail(f"{where}: type is required in {group}.")
            config = _config({k: v for k, v in raw.items() if k not in ITEM_KEYS}, where)
            if group == "sources":
                if "inputs" in raw:
                    raise _fail(f"{where}: a source takes no inputs.")
                node_type, config = "source", {"kind": item_type, **config}
            elif group == "destinations":
                node_type, config = "target", {"kind": item_type, **config}
            elif item_type == "filter":
                node_type = "filter"
            elif item_type in ("sql", "recipe"):
                node_type = "transform"
            else:
                raise _fail(
                    f"{where}: transform type '{item_type}' is not one Sluice can run "
                    f"({', '.join(TRANSFORM_TYPES)})."
                )
            if node_type in ("source", "target") and item_type == "dataset":
                config["name"] = config.pop(DATASET_KEY, node_id)
            _refuse_item_keys(config, node_type, config.get("kind"), where)
            nodes.append(
                Node(
                    node_id,
                    node_type,
                    config,
                    _label(raw.get("label"), where),
                    _position(raw.get("position"), where),
                )
            )
            if group == "sources":
                continue
            inputs = raw.get("inputs", [])
            if not isinstance(inputs, list):
                raise _fail(f"{where}: inputs must be a list of node names.")
            for entry in inputs:
                if isinstance(entry, dict):
                    source = _node_id(entry.get("name"), f"{where} input")
                    edges.append(Edge(source, node_id, _label(entry.get("label"), f"{where} input")))
                else:
                    edges.append(Edge(_node_id(entry, f"{where} input"), node_id))
    if len(edges) > MAX_EDGES:
        raise _fail(f"A pipeline has at most {MAX_EDGES} edges; this one has {len(edges)}.")
    return _normalised(nodes, edges)


def _refuse_item_keys(config: dict[str, Any], node_type: str, kind: Any, where: str) -> None:
    """Config keys that would collide with seed 001's item keys cannot be spelled both ways."""
    reserved = set(ITEM_KEYS) | {DATASET_KEY}
    if node_type in ("source", "target") and kind == "dataset":
        reserved.discard("name")  # the dataset read or written
    clash = sorted(reserved & set(config))
    if clash:
        raise _fail(
            f"{where}: config key '{clash[0]}' is reserved (seed 001's spelling puts config beside "
            f"{', '.join(ITEM_KEYS)})."
        )


def _with_dataset_name(node_id: str, node_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """A dataset node without a dataset name reads or writes the dataset named like the node."""
    if node_type in ("source", "target") and config.get("kind") == "dataset" and "name" not in config:
        return {**config, "name": node_id}
    return config


def _normalised(nodes: list[Node], edges: list[Edge]) -> Graph:
    rank = {"source": 0, "transform": 1, "filter": 1, "target": 2}
    ordered = sorted(nodes, key=lambda n: rank.get(n.node_type, 1))  # stable: given order within
    position = {n.id: i for i, n in enumerate(ordered)}
    grouped = sorted(edges, key=lambda e: position.get(e.target, len(position)))
    return Graph(tuple(ordered), tuple(grouped))


# -- validation ------------------------------------------------------------------------------------
def validate_graph(graph: Graph) -> None:
    """Refuse what Sluice could not run; every sentence names the node (or edge) and the reason."""
    _check_count(len(graph.nodes))
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
        has_sql, has_recipe = "sql" in config, "recipe" in config
        if has_sql == has_recipe:
            raise _fail(f"{where}: a transform needs exactly one of config.sql or config.recipe.")
        if has_sql:
            if not isinstance(config["sql"], str) or not config["sql"].strip():
                raise _fail(f"{where}: config.sql must be a non-empty SQL query.")
            if len(config["sql"]) > MAX_SQL_CHARS:
                raise _fail(f"{where}: config.sql is longer than {MAX_SQL_CHARS} characters.")
            _dialect(node)
        elif not isinstance(config["recipe"], dict):
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
            f"{where}: source kind {_shown(kind)} is not one Sluice can run ({', '.join(SOURCE_KINDS)})."
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
            raise _fail(f"{where}: config.mode must be one of {', '.join(WRITE_MODES)}, not {_shown(mode)}.")
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
            f"{where}: target kind {_shown(kind)} is not one Sluice can run ({', '.join(TARGET_KINDS)})."
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
            f"Node '{node.id}': dialect {_shown(dialect)} is not a SQL dialect sqlglot knows."
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
    text = _REF.sub(lambda m: '"' + m.group(2).replace('"', '""') + '"', text)
    return _VARIABLE.sub("NULL", text)


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
