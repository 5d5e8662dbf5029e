"""The node engine (sluice.engine, DuckDB over Parquet in S3) as the run engine's NodeExecutor, and
what node runs left in the data bucket (logs, preview, profile) as its RunArtifacts."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any


class OnDataBucket:
    """An adapter over the engine's Storage: the one given (tests), else the data bucket's, made
    on first use so that importing a function does not import the engine (cold starts)."""

    def __init__(self, storage: Any = None):
        self._storage = storage

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from sluice.engine import Storage

            self._storage = Storage.s3()
        return self._storage


class EngineExecutor(OnDataBucket):
    """sluice.engine on the data bucket."""

    def run(self, project: str, artifact_run: str, node: dict, inputs: dict[str, str], options: dict) -> Any:
        from sluice.engine import ArtifactRef, NodeRun, RunOptions, execute_node
        from sluice.engine import Node as EngineNode

        run = NodeRun(
            project,
            artifact_run,
            EngineNode.from_dict(node),
            {name: ArtifactRef(key) for name, key in inputs.items()},
            RunOptions.from_dict(options),
        )
        return execute_node(run, self.storage)

    def dry_run(
        self, project: str, nodes: list[tuple[dict, list[str]]], options: dict
    ) -> list[tuple[str, Any]]:
        """Each node on its first rows in one scratch folder, so downstream nodes find upstream
        outputs there; a node whose input failed is skipped (None)."""
        from sluice.engine import (
            ArtifactRef,
            NodeFailed,
            NodeRun,
            RunOptions,
            execute_node,
            node_artifact_key,
        )
        from sluice.engine import Node as EngineNode

        folder = scratch_folder()
        scratch = self.storage.scratch(folder)
        done: dict[str, bool] = {}
        outcomes: list[tuple[str, Any]] = []
        try:
            for spec, upstream in nodes:
                node_id = spec["id"]
                if not all(done.get(u) for u in upstream):
                    done[node_id] = False
                    outcomes.append((node_id, None))
                    continue
                inputs = {
                    u: ArtifactRef(node_artifact_key(project, "dry-run", u, "output.parquet"))
                    for u in upstream
                }
                try:
                    node = EngineNode.from_dict(spec)
                    result = execute_node(
                        NodeRun(project, "dry-run", node, inputs, RunOptions.from_dict(options)), scratch
                    )
                except NodeFailed as failed:
                    done[node_id] = False
                    outcomes.append((node_id, failed))
                    continue
                done[node_id] = True
                outcomes.append((node_id, result))
        finally:
            drop_folder(folder)
        return outcomes


def scratch_folder() -> str:
    return tempfile.mkdtemp(prefix="sluice-dry-run-")


def drop_folder(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class S3RunArtifacts(OnDataBucket):
    """Log lines, output previews and profiles of node runs, read from the data bucket."""

    def logs(self, project: str, artifact_run: str, node_id: str) -> list[dict[str, Any]]:
        from sluice.engine import read_logs

        return read_logs(self.storage, project, artifact_run, node_id)

    def preview(self, project: str, artifact_run: str, node_id: str) -> dict[str, Any]:
        from sluice.engine import read_preview

        return read_preview(self.storage, project, artifact_run, node_id)

    def profile(self, project: str, artifact_run: str, node_id: str) -> dict[str, Any]:
        from sluice.engine import read_profile

        return read_profile(self.storage, project, artifact_run, node_id)

    # -- what the platform counts and purges (issue 12) ----------------------------------------------
    def node_bytes(self, project: str, artifact_run: str, node_id: str) -> int:
        """The bytes a node run left in the bucket (output, preview, profile, logs): one List."""
        from sluice.engine.artifacts import node_prefix

        return sum(
            o.size
            for o in self.storage.objects.list(
                self.storage.bucket, node_prefix(project, artifact_run, node_id)
            )
        )

    def delete_run(self, project: str, artifact_run: str) -> int:
        """Delete everything under the run's folder; the bytes deleted."""
        from sluice.engine.artifacts import run_prefix

        freed = 0
        for found in self.storage.objects.list(self.storage.bucket, run_prefix(project, artifact_run)):
            self.storage.objects.delete(self.storage.bucket, found.key)
            freed += found.size
        return freed
