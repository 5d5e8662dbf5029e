"""Sluice-managed datasets: named tables a pipeline writes (a `dataset` target) and later reads (a
`dataset` source or a `ref()`), kept as Parquet in the data bucket under the project.

A dataset is a manifest, `projects/<p>/datasets/<name>/manifest.json` `{name, version, files,
schema, row_count, updated_at, run_id, node_id}`, listing immutable data files
(`.../data/<uuid>.parquet`). Writing uploads new files first and then swaps the manifest with a
*conditional S3 write* (`If-Match` on the ETag read, `If-None-Match: *` for the first version): a
reader sees the old version or the new one, never half of one, and of two concurrent writers the
loser re-reads and redoes its write (append adds its file to the new list, merge merges again), up
to WRITE_ATTEMPTS times. S3 was chosen over a DynamoDB version item so that the engine needs one
store and a dataset is whole in one folder.

Files that no manifest lists any more (the old version after an overwrite) are kept, so a reader
that read the previous manifest still finds its files; a purge job may delete data files older than
a day that the current manifest does not list. Appends compact the file list into one file once it
reaches COMPACT_AT files, so reading stays one download per few files.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from sluice import timeutil
from sluice.engine.artifacts import (
    ObjectMissing,
    Storage,
    WriteConflict,
    dataset_file_key,
    dataset_manifest_key,
)
from sluice.engine.errors import NodeFailed
from sluice.engine.workspace import Column, Workspace, quote_identifier, read_parquet

MODES = ("overwrite", "append", "merge")
WRITE_ATTEMPTS = 5
COMPACT_AT = 64


@dataclass(frozen=True)
class DatasetVersion:
    """One manifest: what a dataset is at one version."""

    name: str
    version: int
    files: tuple[str, ...]
    columns: tuple[Column, ...]
    row_count: int
    updated_at: str
    run_id: str | None = None
    node_id: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "version": self.version,
                "files": list(self.files),
                "schema": [column.to_dict() for column in self.columns],
                "row_count": self.row_count,
                "updated_at": self.updated_at,
                "run_id": self.run_id,
                "node_id": self.node_id,
            }
        ).encode("utf-8")

    @classmethod
    def from_json(cls, body: bytes) -> DatasetVersion:
        data = json.loads(body)
        return cls(
            name=data["name"],
            version=int(data["version"]),
            files=tuple(data["files"]),
            columns=tuple(Column(item["name"], item["type"]) for item in data["schema"]),
            row_count=int(data["row_count"]),
            updated_at=data["updated_at"],
            run_id=data.get("run_id"),
            node_id=data.get("node_id"),
        )


@dataclass(frozen=True)
class DatasetWrite:
    """What a dataset target did: the orchestration layer records it (lineage, Watcher metrics)."""

    name: str
    mode: str
    version: int
    rows_written: int
    inserts: int
    updates: int
    row_count: int


class Datasets:
    """The datasets of one project in one storage."""

    def __init__(self, storage: Storage, project: str):
        self.storage = storage
        self.project = project

    def current(self, name: str) -> tuple[DatasetVersion | None, str | None]:
        """The current version and its manifest's ETag, or (None, None) for a dataset never written."""
        try:
            body, etag = self.storage.objects.read(
                self.storage.bucket, dataset_manifest_key(self.project, name)
            )
        except ObjectMissing:
            return None, None
        return DatasetVersion.from_json(body), etag

    def exists(self, name: str) -> bool:
        return self.current(name)[0] is not None

    def load(self, workspace: Workspace, view: str, name: str) -> DatasetVersion:
        """Download the current version's files and make them the relation `view`."""
        version, _ = self.current(name)
        if version is None:
            raise NodeFailed(
                f"dataset '{name}' does not exist in project '{self.project}': a dataset target must write it first"
            )
        workspace.parquet_view(view, self._download(workspace, version))
        return version

    def _download(self, workspace: Workspace, version: DatasetVersion) -> list[Path]:
        paths = []
        for number, key in enumerate(version.files, start=1):
            path = workspace.new_path(
                "datasets", f"{version.name}.parquet", origin=f"dataset '{version.name}' file {number}"
            )
            self.storage.objects.download(self.storage.bucket, key, path)
            paths.append(path)
        return paths

    def write(
        self,
        workspace: Workspace,
        name: str,
        mode: str,
        rows: Path,
        *,
        key: list[str] | None = None,
        run_id: str | None = None,
        node_id: str | None = None,
    ) -> DatasetWrite:
        """Make `rows` (a local Parquet file) the dataset's next version by `mode`; see the module docstring."""
        incoming_columns = workspace.columns(f"SELECT * FROM {read_parquet([rows])}")
        incoming_count = int(workspace.value(f"SELECT count(*) FROM {read_parquet([rows])}"))
        if mode == "merge":
            _check_merge_key(workspace, rows, incoming_columns, key or [])
        uploaded: dict[tuple[str, ...], tuple[str, int]] = {}
        for _attempt in range(WRITE_ATTEMPTS):
            current, etag = self.current(name)
            if current is not None and mode != "overwrite":
                _check_same_columns(name, current.columns, incoming_columns)
            files, row_count, inserts, updates = self._next_files(
                workspace, name, mode, rows, incoming_count, current, key or [], uploaded
            )
            manifest = DatasetVersion(
                name=current.name if current else name,
                version=(current.version + 1) if current else 1,
                files=tuple(files),
                columns=tuple(current.columns if current and mode != "overwrite" else incoming_columns),
                row_count=row_count,
                updated_at=timeutil.iso(timeutil.now()) or "",
                run_id=run_id,
                node_id=node_id,
            )
            try:
                self.storage.objects.write(
                    self.storage.bucket,
                    dataset_manifest_key(self.project, name),
                    manifest.to_json(),
                    if_match=etag,
                    if_absent=etag is None,
                )
            except WriteConflict:
                continue
            return DatasetWrite(name, mode, manifest.version, incoming_count, inserts, updates, row_count)
        raise NodeFailed(
            f"dataset '{name}' kept changing while this node wrote it ({WRITE_ATTEMPTS} concurrent writes won); "
            "run the node again"
        )

    def _upload(
        self,
        workspace: Workspace,
        name: str,
        query: str,
        uploaded: dict[tuple[str, ...], tuple[str, int]],
        memo: tuple[str, ...],
    ) -> tuple[str, int]:
        """Write `query` as a new data file, once per distinct `memo` (a retry after a lost manifest
        swap reuses what it can); its key and row count."""
        if memo not in uploaded:
            path = workspace.new_path("dataset-out", f"{name}.parquet")
            rows = workspace.write_parquet(query, path)
            file_key = dataset_file_key(self.project, name, uuid.uuid4().hex)
            self.storage.objects.upload(path, self.storage.bucket, file_key)
            uploaded[memo] = (file_key, rows)
        return uploaded[memo]

    def _next_files(
        self,
        workspace: Workspace,
        name: str,
        mode: str,
        rows: Path,
        incoming_count: int,
        current: DatasetVersion | None,
        key: list[str],
        uploaded: dict[tuple[str, ...], tuple[str, int]],
    ) -> tuple[list[str], int, int, int]:
        """(files, row_count, inserts, updates) of the next version."""
        target_columns = list(current.columns) if current and mode != "overwrite" else None
        incoming = _conformed(rows, target_columns)
        if mode == "overwrite" or current is None:
            file_key, _ = self._upload(
                workspace, name, incoming, uploaded, ("incoming", repr(target_columns))
            )
            return [file_key], incoming_count, incoming_count, 0
        if mode == "append":
            if len(current.files) + 1 >= COMPACT_AT:
                existing = read_parquet(self._download(workspace, current))
                everything = f"SELECT * FROM {existing} UNION ALL {incoming}"
                file_key, total = self._upload(
                    workspace, name, everything, uploaded, ("compacted", *current.files)
                )
                return [file_key], total, incoming_count, 0
            file_key, _ = self._upload(
                workspace, name, incoming, uploaded, ("incoming", repr(target_columns))
            )
            return [*current.files, file_key], current.row_count + incoming_count, incoming_count, 0
        existing = read_parquet(self._download(workspace, current))
        using = ", ".join(quote_identifier(column) for column in key)
        workspace.create_view("__incoming", incoming)
        workspace.create_view("__existing", f"SELECT * FROM {existing}")
        updates = int(
            workspace.value(f"SELECT count(*) FROM __incoming SEMI JOIN __existing USING ({using})")
        )
        merged = f"SELECT * FROM __existing ANTI JOIN __incoming USING ({using}) UNION ALL SELECT * FROM __incoming"
        file_key, total = self._upload(workspace, name, merged, uploaded, ("merged", *current.files))
        return [file_key], total, incoming_count - updates, updates


def _conformed(rows: Path, target_columns: list[Column] | None) -> str:
    """The incoming rows in the dataset's column order and types (a failing cast fails the node)."""
    source = read_parquet([rows])
    if target_columns is None:
        return f"SELECT * FROM {source}"
    casts = ", ".join(
        f"CAST({quote_identifier(column.name)} AS {column.type}) AS {quote_identifier(column.name)}"
        for column in target_columns
    )
    return f"SELECT {casts} FROM {source}"


def _check_same_columns(name: str, existing: tuple[Column, ...], incoming: list[Column]) -> None:
    have = {column.name.lower() for column in existing}
    given = {column.name.lower() for column in incoming}
    if have != given:
        missing = ", ".join(sorted(have - given)) or "none"
        extra = ", ".join(sorted(given - have)) or "none"
        raise NodeFailed(
            f"the rows do not have dataset '{name}''s columns (missing: {missing}; not in the dataset: {extra}); "
            "use mode 'overwrite' to change its schema"
        )


def _check_merge_key(workspace: Workspace, rows: Path, columns: list[Column], key: list[str]) -> None:
    """A merge key must name columns and identify each incoming row: no nulls, no duplicates."""
    if not key:
        raise NodeFailed("mode 'merge' needs 'key': the column(s) that identify a row")
    names = {column.name.lower() for column in columns}
    unknown = [column for column in key if column.lower() not in names]
    if unknown:
        raise NodeFailed(f"merge key column(s) {', '.join(unknown)} are not columns of the rows")
    source = read_parquet([rows])
    listed = ", ".join(quote_identifier(column) for column in key)
    any_null = " OR ".join(f"{quote_identifier(column)} IS NULL" for column in key)
    nulls = int(workspace.value(f"SELECT count(*) FROM {source} WHERE {any_null}"))
    if nulls:
        raise NodeFailed(
            f"merge key ({', '.join(key)}) is null in {nulls} row(s): a key must identify each row"
        )
    duplicates = workspace.execute(
        f"SELECT {listed}, count(*) AS n FROM {source} GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC LIMIT 3"
    )
    if duplicates:
        shown = "; ".join(
            ", ".join(str(value) for value in row[:-1]) + f" ({row[-1]} rows)" for row in duplicates
        )
        raise NodeFailed(f"merge key ({', '.join(key)}) is not unique in the rows: {shown}")
