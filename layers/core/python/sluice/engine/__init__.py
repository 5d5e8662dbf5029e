"""The node execution core (SPEC 3a): one node of a run per call, on DuckDB, over Parquet in S3.

The orchestration layer calls `execute_node(NodeRun(...), Storage.s3())` from the node Lambda and
records the NodeResult or the NodeFailed; everything else here is how that call does its work.
"""

from sluice.engine.artifacts import (
    ArtifactRef,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    Storage,
    node_artifact_key,
    read_logs,
    read_preview,
    read_profile,
)
from sluice.engine.datasets import Datasets, DatasetVersion
from sluice.engine.errors import NodeFailed
from sluice.engine.execute import execute_node
from sluice.engine.logs import LogLine
from sluice.engine.nodes import Node, NodeResult, NodeRun, RunOptions, TargetWrite
from sluice.engine.workspace import Column

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
