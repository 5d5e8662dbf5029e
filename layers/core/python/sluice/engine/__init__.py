"""The node execution core (SPEC 3a): one node of a run per call, on DuckDB, over Parquet in S3.

The orchestration layer calls `execute_node(NodeRun(...), Storage.s3())` from the node Lambda and
records the NodeResult or the NodeFailed; everything else here is how that call does its work.
"""

from importlib import import_module
from typing import Any

# Where each public name lives. Names load on first use (PEP 562), so an API area that only reads
# previews or logs does not import DuckDB and sqlglot at cold start.
_HOMES = {
    "ArtifactRef": "artifacts",
    "LocalObjectStore": "artifacts",
    "ObjectStore": "artifacts",
    "S3ObjectStore": "artifacts",
    "Storage": "artifacts",
    "node_artifact_key": "artifacts",
    "read_logs": "artifacts",
    "read_preview": "artifacts",
    "read_profile": "artifacts",
    "Datasets": "datasets",
    "DatasetVersion": "datasets",
    "NodeFailed": "errors",
    "execute_node": "execute",
    "LogLine": "logs",
    "Node": "nodes",
    "NodeResult": "nodes",
    "NodeRun": "nodes",
    "RunOptions": "nodes",
    "TargetWrite": "nodes",
    "Column": "workspace",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sluice.engine' has no attribute {name!r}")
    value = getattr(import_module(f"sluice.engine.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ArtifactRef",
    "Column",
    "DatasetVersion",
    "Datasets",
    "LocalObjectStore",
    "LogLine",
    "Node",
    "NodeFailed",
    "NodeResult",
    "NodeRun",
    "ObjectStore",
    "RunOptions",
    "S3ObjectStore",
    "Storage",
    "TargetWrite",
    "execute_node",
    "node_artifact_key",
    "read_logs",
    "read_preview",
    "read_profile",
]
