"""A pipeline's graph (SPEC 3, 3a): one model, read and rendered in both seeds' spellings, validated.

Seed 003 spells a graph as `nodes` + `edges`; seed 001 as `sources`, `transforms` and
`destinations`, each item `{name, type, ...config}` with transforms and destinations listing their
`inputs`. `Graph` is the one model both convert to and from. Conversion is lossless: node ids,
labels, positions, configs, edge labels and the order of each node's inputs survive either way.
Two normalisations make that exact: nodes are kept sources first, then transforms and filters, then
targets (each group in the order given), and edges grouped by target in that node order.

What a graph may hold to be run is graph_validation.py's (`validate_graph`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import ValidationFailed

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

REF_PATTERN = re.compile(r"\{\{\s*ref\(\s*(['\"])(.*?)\1\s*\)\s*\}\}")
VARIABLE_PATTERN = re.compile(r"\$\{var\.[A-Za-z0-9_.-]+\}")


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


def check_node_count(nodes: int) -> None:
    if nodes > MAX_NODES:
        raise _fail(f"A pipeline has at most {MAX_NODES} nodes; this one has {nodes}.")


def _node_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NODE_ID.match(value):
        raise _fail(
            f"{where}: a node id must be 1-128 letters, digits, '_' or '-', starting with a letter, "
            f"digit or '_' (got {shown(value)})."
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


def shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def graph_from_nodes_and_edges(nodes: Any, edges: Any) -> Graph:
    """Seed 003's `nodes`/`edges` (edges default to none)."""
    if not isinstance(nodes, list):
        raise _fail("nodes must be a list of node objects.")
    check_node_count(len(nodes))
    edges = [] if edges is None else edges
    if not isinstance(edges, list):
        raise _fail("edges must be a list of edge objects.")
    if len(edges) > MAX_EDGES:
        raise _fail(f"A pipeline has at most {MAX_EDGES} edges; this one has {len(edges)}.")
    read: list[Node] = []
    for index, raw in enumerate(nodes):
        if not isinstance(raw, dict):
            raise _fail(f"nodes[{index}] must be an object with id, nodeType and config.")
        where = f"Node {shown(raw.get('id'))}" if isinstance(raw.get("id"), str) else f"nodes[{index}]"
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
    check_node_count(sum(len(items or ()) for items in groups.values()))
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
