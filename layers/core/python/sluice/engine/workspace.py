"""A node invocation's private scratch space: a temporary folder and a DuckDB connection in it.

DuckDB here has no httpfs (and Lambda no network for extensions), so objects are moved with boto3
into this folder and DuckDB reads and writes files only inside it: `allowed_directories` plus
`enable_external_access=false`, locked, so a pipeline's SQL cannot read `/proc/self/environ` (the
Lambda's credentials) or another file on the machine. `memory_limit` and `temp_directory` bound a
large job: past the limit DuckDB spills to disk instead of growing.

Opening a DuckDB database costs ~15 ms, a large share of a small node, so a small pool keeps
sandboxed databases (each with its own root folder, the only one it may touch) and every
workspace takes one for itself, opens a fresh connection to it with a fresh folder under that
root, and gives it back when the node ends. Nothing of one node reaches the next: its views and
tables are TEMP (gone with its connection), a node's SQL can only be one SELECT (sql.py), so it
cannot create anything lasting, and its folder is deleted when it ends. A Lambda container runs
one invocation at a time; the local stack runs concurrent nodes on many threads, and a database
belongs to one workspace at a time whichever thread runs it. The pool holds at most `POOL_SIZE`
idle databases; one given back beyond that is closed and its folder removed, so threads that come
and go (the local stack's) leave nothing behind. A database DuckDB has invalidated (a fatal
error) is closed instead of given back. Root folders are named after the process, so a process
killed with its databases open leaves folders that `remove_abandoned_folders` recognises.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from sluice.engine.errors import NodeFailed

DEFAULT_MEMORY_LIMIT = "1GB"
POOL_SIZE = 4  # idle sandboxed databases kept for the next nodes
ROOT_PREFIX = "sluice-engine-"
# DuckDB's share of a Lambda's memory; the rest is Python, boto3 transfers and result rendering.
LAMBDA_MEMORY_SHARE = 0.6


def memory_limit() -> str:
    """SLUICE_ENGINE_MEMORY_LIMIT if set, else a share of the Lambda's memory, else 1GB."""
    configured = os.environ.get("SLUICE_ENGINE_MEMORY_LIMIT")
    if configured:
        return configured
    lambda_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if lambda_mb and lambda_mb.isdigit():
        return f"{int(int(lambda_mb) * LAMBDA_MEMORY_SHARE)}MB"
    return DEFAULT_MEMORY_LIMIT


def quote_identifier(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    name: str
    type: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


class _SandboxedDatabase:
    """One DuckDB database confined to `root`, configured once and locked."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-")).resolve()
        (self.root / "spill").mkdir()
        config: dict[str, Any] = {
            "memory_limit": memory_limit(),
            "temp_directory": str(self.root / "spill"),
            "threads": max(1, os.cpu_count() or 1),
            # DuckDB keeps what it read of each file in a cache (an object per file) while the
            # database lives, and pooled databases live long: every node reads files of its own,
            # read once, so the cache only grew (~1.6 KB a node, gone files included).
            "enable_external_file_cache": False,
        }
        try:
            self.connection = duckdb.connect(":memory:", config=config)
            self.connection.execute(f"SET allowed_directories = [{quote_literal(str(self.root) + '/')}]")
            self.connection.execute("SET enable_external_access = false")
            self.connection.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            raise NodeFailed(f"DuckDB could not start: {exc}") from exc

    def usable(self) -> bool:
        return self.root.is_dir()

    def close(self) -> None:
        try:
            self.connection.close()
        except duckdb.Error:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_idle: list[_SandboxedDatabase] = []
_idle_lock = threading.Lock()


def _take_database() -> _SandboxedDatabase:
    with _idle_lock:
        while _idle:
            database = _idle.pop()
            if database.usable():
                return database
            database.close()
    return _SandboxedDatabase()


def _give_back(database: _SandboxedDatabase, broken: bool) -> None:
    if not broken and database.usable():
        with _idle_lock:
            if len(_idle) < POOL_SIZE:
                _idle.append(database)
                return
    database.close()


def close_idle_databases() -> int:
    """Close every idle database and remove its folder (at exit; tests). Returns how many."""
    with _idle_lock:
        closing = list(_idle)
        _idle.clear()
    for database in closing:
        database.close()
    return len(closing)


atexit.register(close_idle_databases)


def remove_abandoned_folders(prefix: str = ROOT_PREFIX) -> int:
    """Remove the temporary folders named `<prefix><pid>-...` of processes that no longer run
    (killed before their exit hook): the engine's, by default."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        match = re.fullmatch(rf"{re.escape(prefix)}(\d+)-.*", folder.name)
        if not match or not folder.is_dir():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # its process still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # someone else's process
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


class Workspace:
    """Use as a context manager: the folder and the connection are gone when the node ends."""

    def __init__(self) -> None:
        self._origins: dict[str, str] = {}
        self._counter = 0
        self._broken = False
        database = _take_database()
        try:
            self.connection = database.connection.cursor()
        except duckdb.Error:  # invalidated since the last node: once more on a new database
            database.close()
            database = _SandboxedDatabase()
            self.connection = database.connection.cursor()
        self.database: _SandboxedDatabase | None = database
        self._database_root = database.root
        self.root = Path(tempfile.mkdtemp(prefix="node-", dir=database.root)).resolve()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        database, self.database = self.database, None
        if database is None:
            return
        try:
            self.connection.close()
        except duckdb.Error:
            self._broken = True
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _give_back(database, self._broken)

    def new_path(self, folder: str, name: str, *, origin: str | None = None) -> Path:
        """A fresh file path in `folder`; `origin` (an s3:// URI, an artifact key) replaces the local
        path in any error message, since the path means nothing to the pipeline's author."""
        self._counter += 1
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:] or "file"
        directory = self.root / folder
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self._counter:05d}-{safe}"
        if origin:
            self._origins[str(path)] = origin
        return path

    def explain(self, message: str) -> str:
        """A DuckDB message with local paths put back as the objects they came from."""
        for local, origin in sorted(self._origins.items(), key=lambda item: -len(item[0])):
            message = message.replace(local, origin)
        return message.replace(str(self.root) + "/", "").replace(str(self._database_root) + "/", "")

    def execute(self, sql: str, *, compiled_sql: str | None = None) -> list[tuple[Any, ...]]:
        """Run SQL and fetch all of its rows; a DuckDB error becomes NodeFailed with DuckDB's message.

        Fetching everything is deliberate: DuckDB 2 refuses new work on a connection whose last
        result was not read to the end.
        """
        try:
            return self.connection.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise self._failed(exc, compiled_sql) from exc

    def _failed(self, exc: duckdb.Error, compiled_sql: str | None) -> NodeFailed:
        if isinstance(exc, duckdb.FatalException):
            self._broken = True  # DuckDB invalidated the database: closed, not given back
        return NodeFailed(self.explain(str(exc)), compiled_sql=compiled_sql)

    def value(self, sql: str) -> Any:
        """The first column of the first row (None for no rows)."""
        rows = self.execute(sql)
        return rows[0][0] if rows else None

    def record(self, sql: str) -> dict[str, Any]:
        """The first row as {column: value}."""
        try:
            cursor = self.connection.execute(sql)
            names = [item[0] for item in cursor.description]
            rows = cursor.fetchall()
        except duckdb.Error as exc:
            raise self._failed(exc, None) from exc
        return dict(zip(names, rows[0], strict=True)) if rows else {}

    def create_view(self, name: str, query: str) -> None:
        self.execute(f"CREATE OR REPLACE TEMP VIEW {quote_identifier(name)} AS {query}")

    def parquet_view(self, name: str, paths: list[Path]) -> None:
        self.create_view(name, f"SELECT * FROM {read_parquet(paths)}")

    def columns(self, query: str) -> list[Column]:
        rows = self.execute(f"DESCRIBE {query}")
        return [Column(str(row[0]), str(row[1])) for row in rows]

    def write_parquet(
        self, query: str, path: Path, *, limit: int | None = None, compiled_sql: str | None = None
    ) -> int:
        """Materialise a query (its first `limit` rows) as one Parquet file; the number of rows written.

        Through DuckDB's relation API rather than COPY: an error then quotes the author's query, not
        a COPY statement wrapped around it.
        """
        try:
            relation = self.connection.sql(query)
            if limit is not None:
                relation = relation.limit(int(limit))
            relation.to_parquet(str(path))
        except duckdb.Error as exc:
            raise self._failed(exc, compiled_sql) from exc
        return int(self.value(f"SELECT count(*) FROM {read_parquet([path])}"))


def read_parquet(paths: list[Path]) -> str:
    files = ", ".join(quote_literal(str(path)) for path in paths)
    return f"read_parquet([{files}], union_by_name = true)"
