"""What a node run is: the node, its inputs and the run's options going in (NodeRun), what came out
(NodeResult), and the per-invocation context the node kinds work through (NodeContext)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.engine.artifacts import OUTPUT, ArtifactRef, ObjectMissing, Storage
from sluice.engine.datasets import Datasets, DatasetWrite
from sluice.engine.errors import NodeFailed
from sluice.engine.logs import LogLine, NodeLog
from sluice.engine.workspace import Column, Workspace, quote_identifier

NODE_TYPES = ("source", "transform", "filter", "target")
DRY_RUN_ROWS = 10


@dataclass(frozen=True)
class Node:
    """One node of a pipeline graph, in seed 003's spelling (`nodeType` or `type`, and `config`)."""

    id: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Node:
        node_id = data.get("id")
        if not isinstance(node_id, str) or not node_id:
            raise NodeFailed("a node needs an 'id'")
        node_type = data.get("nodeType") or data.get("type")
        if node_type not in NODE_TYPES:
            raise NodeFailed(f"node '{node_id}' has type {node_type!r}; Sluice runs {', '.join(NODE_TYPES)}")
        config = data.get("config") or {}
        if not isinstance(config, Mapping):
            raise NodeFailed(f"node '{node_id}': config must be an object")
        return cls(node_id, node_type, dict(config), data.get("label"))


@dataclass(frozen=True)
class RunOptions:
    """The run's options as one node sees them.

    `watermark` is the pipeline's stored watermark, which an incremental source compares its
    `watermark_column` against. `row_limit` caps every node's output; a dry run without one gets 10.
    """

    full_refresh: bool = False
    dry_run: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    watermark: Any = None
    row_limit: int | None = None

    @property
    def effective_row_limit(self) -> int | None:
        if self.row_limit is not None:
            return self.row_limit
        return DRY_RUN_ROWS if self.dry_run else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunOptions:
        data = data or {}
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise NodeFailed("the run's params must be an object")
        row_limit = data.get("row_limit")
        if row_limit is not None and (
            not isinstance(row_limit, int) or isinstance(row_limit, bool) or row_limit < 0
        ):
            raise NodeFailed("row_limit must be a non-negative integer")
        return cls(
            full_refresh=bool(data.get("full_refresh", False)),
            dry_run=bool(data.get("dry_run", False)),
            params=dict(params),
            watermark=data.get("watermark"),
            row_limit=row_limit,
        )


@dataclass(frozen=True)
class NodeRun:
    """One invocation: run `node` of `run_id` in `project` over its upstream outputs."""

    project: str
    run_id: str
    node: Node
    inputs: Mapping[str, ArtifactRef] = field(default_factory=dict)
    options: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeRun:
        """The Lambda event's shape: {project, run_id, node, inputs: {id: {key}}, options}."""
        inputs = data.get("inputs") or {}
        return cls(
            project=str(data["project"]),
            run_id=str(data["run_id"]),
            node=Node.from_dict(data["node"]),
            inputs={str(name): ArtifactRef.from_dict(ref) for name, ref in inputs.items()},
            options=RunOptions.from_dict(data.get("options")),
        )


@dataclass(frozen=True)
class TargetWrite:
    """What a target wrote: a dataset (name, mode, version) or an object (uri, format)."""

    kind: str
    rows_written: int
    inserts: int
    updates: int
    dataset: str | None = None
    mode: str | None = None
    version: int | None = None
    uri: str | None = None
    format: str | None = None
    persisted: bool = True

    @classmethod
    def of_dataset(cls, write: DatasetWrite) -> TargetWrite:
        return cls(
            "dataset", write.rows_written, write.inserts, write.updates, write.name, write.mode, write.version
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "rows_written": self.rows_written,
            "inserts": self.inserts,
            "updates": self.updates,
            "persisted": self.persisted,
        }
        if self.kind == "dataset":
            data.update(dataset=self.dataset, mode=self.mode, version=self.version)
        else:
            data.update(uri=self.uri, format=self.format)
        return data


@dataclass(frozen=True)
class NodeResult:
    """A node run that succeeded. `to_dict()` is JSON-safe; `summary()` drops preview, profile and
    logs (stored beside the output) for a Step Functions state, which holds at most 256 KB."""

    node_id: str
    node_type: str
    output: ArtifactRef
    row_count: int
    duration_ms: int
    started_at: str
    finished_at: str
    columns: list[Column]
    preview: dict[str, Any]
    profile: dict[str, Any]
    logs: list[LogLine]
    compiled_sql: str | None = None
    watermark: Any = None
    datasets_read: list[str] = field(default_factory=list)
    written: TargetWrite | None = None

    @property
    def rows_written(self) -> int:
        return self.written.rows_written if self.written else 0

    def summary(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "node_type": self.node_type,
            "status": "success",
            "output": self.output.to_dict(),
            "row_count": self.row_count,
            "duration_ms": self.duration_ms,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "columns": [column.to_dict() for column in self.columns],
            "compiled_sql": self.compiled_sql,
            "watermark": self.watermark,
            "datasets_read": list(self.datasets_read),
            "written": self.written.to_dict() if self.written else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "preview": self.preview,
            "profile": self.profile,
            "logs": [line.to_dict() for line in self.logs],
        }


@dataclass(frozen=True)
class Materialized:
    """A node's output rows as a local Parquet file."""

    path: Path
    rows: int


@dataclass(frozen=True)
class ObjectCopy:
    """An S3 object that is, unchanged, the node's output (local copy at `path`): stored with a
    server-side copy guarded by its ETag instead of an upload."""

    bucket: str
    key: str
    etag: str
    path: Path


@dataclass
class Outcome:
    """What a node kind hands back to execute_node, which adds timing, preview and profile."""

    output: Materialized
    compiled_sql: str | None = None
    watermark: Any = None
    written: TargetWrite | None = None
    copy_of: ObjectCopy | None = None


class NodeContext:
    """Everything one node kind needs in one invocation: config, inputs, workspace, log, storage."""

    def __init__(self, run: NodeRun, storage: Storage, workspace: Workspace, log: NodeLog):
        self.run = run
        self.storage = storage
        self.workspace = workspace
        self.log = log
        self.config = NodeConfig(run.node)
        self.datasets = Datasets(storage, run.project)
        self.datasets_read: list[str] = []
        self._views: dict[str, str] = {}

    @property
    def node(self) -> Node:
        return self.run.node

    @property
    def options(self) -> RunOptions:
        return self.run.options

    def input_names(self) -> list[str]:
        return list(self.run.inputs)

    def find_input(self, name: str) -> str | None:
        """The input whose node id is `name`, as DuckDB resolves names: exact, else without case."""
        if name in self.run.inputs:
            return name
        matches = [node_id for node_id in self.run.inputs if node_id.lower() == name.lower()]
        return matches[0] if len(matches) == 1 else None

    def use_input(self, node_id: str) -> str:
        """Download an upstream node's output and make it the relation named by its id."""
        if node_id not in self._views:
            ref = self.run.inputs[node_id]
            path = self.workspace.new_path(
                "inputs", f"{node_id}.parquet", origin=f"output of node '{node_id}'"
            )
            try:
                self.storage.objects.download(self.storage.bucket, ref.key, path)
            except ObjectMissing as exc:
                raise NodeFailed(f"the output of upstream node '{node_id}' ({ref.key}) is missing") from exc
            self.workspace.parquet_view(node_id, [path])
            self._views[node_id] = quote_identifier(node_id)
        return self._views[node_id]

    def use_dataset(self, name: str) -> str:
        """Make the current version of a dataset the relation named `name`."""
        if name not in self._views:
            version = self.datasets.load(self.workspace, name, name)
            self.datasets_read.append(version.name)
            self.log.info(
                f"Read dataset '{version.name}' version {version.version} ({version.row_count} rows)"
            )
            self._views[name] = quote_identifier(name)
        return self._views[name]

    def single_input(self) -> str:
        """The one upstream relation of a filter or target."""
        names = self.input_names()
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise NodeFailed(f"a {self.node.type} node takes exactly one input, not {len(names)} ({listed})")
        return self.use_input(names[0])

    def materialize(self, query: str, *, compiled_sql: str | None = None) -> Materialized:
        """Write the node's output rows (at most the run's row limit) as local Parquet."""
        path = self.workspace.new_path("output", OUTPUT)
        rows = self.workspace.write_parquet(
            query, path, limit=self.options.effective_row_limit, compiled_sql=compiled_sql
        )
        return Materialized(path, rows)


_MISSING = object()


class NodeConfig:
    """Reads a node's config, failing with a sentence that names the node and the key."""

    def __init__(self, node: Node):
        self.node = node
        self.values = node.config

    def fail(self, message: str) -> NodeFailed:
        return NodeFailed(f"{self.node.type} node '{self.node.id}': {message}")

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self.values.get(key, default)
        if value is _MISSING or value is None:
            raise self.fail(f"config needs '{key}'")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"config '{key}' must be a non-empty string")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.values.get(key, default)
        if value is _MISSING or value is None:
            raise self.fail(f"config needs '{key}' ({', '.join(options)})")
        if value not in options:
            raise self.fail(f"config '{key}' must be one of {', '.join(options)}, not {value!r}")
        return value

    def names(self, key: str) -> list[str]:
        """A column name or a list of them."""
        value = self.values.get(key)
        if isinstance(value, str) and value.strip():
            return [value]
        if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
            return list(value)
        raise self.fail(f"config '{key}' must be a column name or a list of column names")
