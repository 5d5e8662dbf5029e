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

    def measure_object(self, project: str, uri: str, build: Any) -> dict[str, Any]:
        """An S3 object a Watcher address names (parquet, CSV or JSON, by extension or content):
        downloaded once, its columns given to `build` for the SQL, which runs over it as `data`.
        The data bucket is readable only inside the project's own folder."""
        from sluice.engine import formats
        from sluice.engine.artifacts import check_user_object, parse_s3_uri
        from sluice.engine.workspace import Workspace

        bucket, key = parse_s3_uri(uri)
        check_user_object(self.storage, project, bucket, key, writing=False)
        with Workspace() as workspace:
            path = workspace.new_path("quality", "object")
            self.storage.objects.download(bucket, key, path)
            with path.open("rb") as handle:
                declared = _format_of(key, handle.read(4) == formats.PARQUET_MAGIC)
            if declared == "parquet":
                workspace.parquet_view("data", [path])
            else:
                workspace.create_view("data", f"SELECT * FROM {formats.reader([path], declared)}")
            columns = [c.name for c in workspace.columns("SELECT * FROM data")]
            return workspace.record(build(columns))


def _format_of(key: str, parquet_magic: bool) -> str:
    name = key.lower().removesuffix(".gz")
    for suffix, declared in ((".parquet", "parquet"), (".csv", "csv"), (".jsonl", "jsonl"),
                             (".ndjson", "jsonl"), (".json", "json")):  # fmt: skip
        if name.endswith(suffix):
            return declared
    return "parquet" if parquet_magic else "csv"
