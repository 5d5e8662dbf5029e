"""Data-quality measurements on DuckDB: the Measurer of sluice.domain.quality over the Parquet a
target node wrote to the data bucket (its output artifact: exactly the rows the run wrote)."""

from __future__ import annotations

from typing import Any


class DuckDbMeasurer:
    def __init__(self, storage: Any = None):
        self._storage = storage

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from sluice.engine import Storage

            self._storage = Storage.s3()
        return self._storage

    def measure(self, project: str, output_key: str, sql: str) -> dict[str, Any]:
        """Download the object once, expose it as the view `data`, run the one query, return its row."""
        from sluice.engine.workspace import Workspace

        with Workspace() as workspace:
            path = workspace.new_path("quality", "data.parquet")
            self.storage.objects.download(self.storage.bucket, output_key, path)
            workspace.parquet_view("data", [path])
            return workspace.record(sql)
