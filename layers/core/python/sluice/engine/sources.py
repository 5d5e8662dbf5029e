"""Source nodes: rows given inline, S3 objects, an HTTP JSON API, or a dataset, read into the node's
output; optionally only the rows past the pipeline's watermark.

Incremental reads: with `watermark_column` and no `full_refresh`, a source keeps the rows whose
column is greater than the watermark passed in the run options (cast to the column's type), and
reports the new watermark, the largest value of that column among the rows it read (the old one
when it read none, so a watermark never goes back).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from sluice.engine import formats
from sluice.engine.artifacts import (
    ObjectMissing,
    StorageFailed,
    StoredObject,
    check_user_object,
    parse_s3_uri,
)
from sluice.engine.errors import NodeFailed
from sluice.engine.nodes import Materialized, NodeContext, ObjectCopy, Outcome
from sluice.engine.profile import render_value
from sluice.engine.workspace import quote_identifier, read_parquet

SOURCE_KINDS = ("inline", "s3", "http", "dataset")
HTTP_TIMEOUT_SECONDS = 5.0
HTTP_MAX_TIMEOUT_SECONDS = 30.0
HTTP_MAX_BYTES = 256 * 1024 * 1024
DOWNLOAD_THREADS = 8
SOURCE_VIEW = "__source_rows"


@dataclass(frozen=True)
class SourceRead:
    """The relation a source kind produced; `whole_object` when it is one Parquet object read as it
    is, which then becomes the node's output without re-encoding, copied inside S3."""

    relation: str
    whole_object: ObjectCopy | None = None


def read_source(ctx: NodeContext) -> Outcome:
    kind = ctx.config.choice("kind", SOURCE_KINDS)
    reader: Callable[[NodeContext], SourceRead] = {
        "inline": _inline_rows,
        "s3": _s3_objects,
        "http": _http_records,
        "dataset": _dataset_rows,
    }[kind]
    read = reader(ctx)
    ctx.workspace.create_view(SOURCE_VIEW, f"SELECT * FROM {read.relation}")
    column = ctx.config.get("watermark_column")
    if column is not None:
        return _incremental(ctx, column)
    if read.whole_object is not None and ctx.options.effective_row_limit is None:
        rows = int(ctx.workspace.value(f"SELECT count(*) FROM {SOURCE_VIEW}"))
        return Outcome(Materialized(read.whole_object.path, rows), copy_of=read.whole_object)
    return Outcome(ctx.materialize(f"SELECT * FROM {SOURCE_VIEW}"))


# -- incremental reads ----------------------------------------------------------------------------
def _incremental(ctx: NodeContext, column: Any) -> Outcome:
    if not isinstance(column, str) or not column:
        raise ctx.config.fail("config 'watermark_column' must be a column name")
    columns = ctx.workspace.columns(f"SELECT * FROM {SOURCE_VIEW}")
    found = next((c for c in columns if c.name == column), None) or next(
        (c for c in columns if c.name.lower() == column.lower()), None
    )
    if found is None:
        listed = ", ".join(c.name for c in columns)
        raise ctx.config.fail(
            f"watermark_column '{column}' is not a column of the source (columns: {listed})"
        )
    name = quote_identifier(found.name)
    previous = ctx.options.watermark
    query = f"SELECT * FROM {SOURCE_VIEW}"
    if previous is not None and not ctx.options.full_refresh:
        bound = _watermark_literal(ctx, previous, found.type, found.name)
        query += f" WHERE {name} > {bound}"
        ctx.log.info(f"Incremental read: rows with {found.name} > {previous}")
    elif ctx.options.full_refresh:
        ctx.log.info("Full refresh: reading every row, ignoring the watermark")
    output = ctx.materialize(query)
    newest = ctx.workspace.value(f"SELECT max({name}) FROM {read_parquet([output.path])}")
    watermark = render_value(newest) if newest is not None else previous
    if newest is None:
        ctx.log.info(f"No rows past the watermark; it stays at {previous}")
    return Outcome(output, watermark=watermark)


def _watermark_literal(ctx: NodeContext, value: Any, type_name: str, column: str) -> str:
    """The stored watermark as a value of the column's type, or a failure saying it cannot be one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise NodeFailed(f"the watermark {value!r} is not a string or a number")
    literal = str(value) if isinstance(value, int | float) else "'" + value.replace("'", "''") + "'"
    cast = f"TRY_CAST({literal} AS {type_name})"
    if ctx.workspace.value(f"SELECT {cast}") is None:
        raise NodeFailed(
            f"the watermark {value!r} cannot be read as {type_name}, the type of column {column}"
        )
    return cast


# -- inline ---------------------------------------------------------------------------------------
def _records_file(ctx: NodeContext, records: list[Any], origin: str) -> str:
    """Records as JSON lines read by DuckDB: the same type inference as a JSON file."""
    if not records:
        raise NodeFailed(f"{origin} has no rows; Sluice needs at least one row to know the columns")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise NodeFailed(
                f"{origin}: row {index} is {type(record).__name__}, not an object of column values"
            )
    path = ctx.workspace.new_path("source", "records.jsonl", origin=origin)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, default=str) + "\n")
    return formats.reader([path], "jsonl")


def _inline_rows(ctx: NodeContext) -> SourceRead:
    rows = ctx.config.get("rows")
    if not isinstance(rows, list):
        raise ctx.config.fail("config 'rows' must be a list of objects")
    ctx.log.info(f"Read {len(rows)} inline rows")
    return SourceRead(_records_file(ctx, rows, "the inline rows"))


# -- s3 -------------------------------------------------------------------------------------------
def _is_data_object(key: str, prefix: str) -> bool:
    """Folder markers and hidden or marker files (`_SUCCESS`, `.crc`) are not data."""
    if key.endswith("/"):
        return False
    name = PurePosixPath(key[len(prefix) :]).name
    return not name.startswith(("_", "."))


def _s3_objects(ctx: NodeContext) -> SourceRead:
    uri = ctx.config.text("uri")
    declared = ctx.config.choice("format", formats.FORMATS)
    try:
        bucket, key = parse_s3_uri(uri)
        check_user_object(ctx.storage, ctx.run.project, bucket, key, writing=False)
    except ValueError as exc:
        raise ctx.config.fail(str(exc)) from exc
    objects = _data_objects(ctx, bucket, key, uri)
    keys = [item.key for item in objects]
    paths: list[Path] = []
    for object_key in keys:
        origin = f"s3://{bucket}/{object_key}"
        paths.append(ctx.workspace.new_path("source", PurePosixPath(object_key).name, origin=origin))

    def download(pair: tuple[str, Path]) -> None:
        ctx.storage.objects.download(bucket, pair[0], pair[1])

    try:
        with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS) as pool:
            list(pool.map(download, zip(keys, paths, strict=True)))
    except (ObjectMissing, StorageFailed) as exc:
        raise NodeFailed(str(exc)) from exc
    for object_key, path in zip(keys, paths, strict=True):
        formats.check_format(path, declared, f"s3://{bucket}/{object_key}")
    size = sum(path.stat().st_size for path in paths)
    ctx.log.info(f"Read {len(paths)} object(s), {size} bytes, from {uri} as {declared}")
    header = ctx.config.get("header", True)
    relation = formats.reader(paths, declared, csv_header=bool(header))
    try:
        # DuckDB sniffs here: a file that passed the byte check but still is not `declared` fails now.
        ctx.workspace.execute(f"SELECT * FROM {relation} LIMIT 0")
    except NodeFailed as exc:
        raise NodeFailed(f"could not read {uri} as {declared}: {exc.detail}") from exc
    if declared == "parquet" and len(objects) == 1:
        return SourceRead(relation, ObjectCopy(bucket, objects[0].key, objects[0].etag, paths[0]))
    return SourceRead(relation)


def _data_objects(ctx: NodeContext, bucket: str, key: str, uri: str) -> list[StoredObject]:
    """The object itself, or every data object under the prefix (a key ending in '/' is a prefix)."""
    try:
        listed = ctx.storage.objects.list(bucket, key)
    except ObjectMissing as exc:
        raise NodeFailed(str(exc)) from exc
    exact = [item for item in listed if item.key == key]
    if key and not key.endswith("/") and exact:
        return exact
    prefix = key if not key or key.endswith("/") else key + "/"
    found = [
        item
        for item in listed
        if item.key.startswith(prefix) and item.size > 0 and _is_data_object(item.key, prefix)
    ]
    if not found:
        raise NodeFailed(f"{uri} names no object, and no data objects are under it")
    return sorted(found, key=lambda item: item.key)


# -- http -----------------------------------------------------------------------------------------
def _http_records(ctx: NodeContext) -> SourceRead:
    url = ctx.config.text("url")
    if not url.lower().startswith(("http://", "https://")):
        raise ctx.config.fail(f"url '{shown_url(url)}' must be http:// or https://")
    headers = ctx.config.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ctx.config.fail("config 'headers' must be an object of strings")
    timeout = ctx.config.get("timeout_seconds", HTTP_TIMEOUT_SECONDS)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= HTTP_MAX_TIMEOUT_SECONDS
    ):
        raise ctx.config.fail(
            f"config 'timeout_seconds' must be a number in (0, {HTTP_MAX_TIMEOUT_SECONDS:g}]"
        )
    document = fetch_json(url, headers, float(timeout))
    records_path = ctx.config.get("records_path")
    records = records_at(document, records_path, url)
    shown = shown_url(url)
    ctx.log.info(f"GET {shown}: {len(records)} records" + (f" at '{records_path}'" if records_path else ""))
    return SourceRead(_records_file(ctx, records, f"the answer of GET {shown}"))


def shown_url(url: str) -> str:
    """A URL fit for log lines and errors: `${var.KEY}` substitution may have put a token in its
    password or query, and node logs are readable by every viewer of the project."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{name}=***" if value else name for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def fetch_json(url: str, headers: dict[str, str], timeout: float) -> Any:
    """GET a JSON document. `timeout` bounds connecting and each read; the whole request gets twice
    that, on a thread, so neither a slow name lookup nor a server trickling bytes can hang a node."""
    outcome: dict[str, Any] = {}
    shown = shown_url(url)

    def get() -> None:
        request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                body = response.read(HTTP_MAX_BYTES + 1)
            outcome["body"] = body
        except urllib.error.HTTPError as exc:
            outcome["error"] = f"GET {shown} answered {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            outcome["error"] = f"GET {shown} failed: {getattr(exc, 'reason', exc)}"
        except TimeoutError:
            outcome["error"] = f"GET {shown} did not answer within {timeout:g} s"
        except (OSError, ValueError) as exc:
            outcome["error"] = f"GET {shown} failed: {exc}"

    worker = threading.Thread(target=get, name="sluice-http-source", daemon=True)
    worker.start()
    worker.join(timeout * 2)
    if worker.is_alive():
        raise NodeFailed(f"GET {shown} did not finish within {timeout * 2:g} s")
    if "error" in outcome:
        raise NodeFailed(outcome["error"])
    body = outcome["body"]
    if len(body) > HTTP_MAX_BYTES:
        raise NodeFailed(f"GET {shown} answered more than {HTTP_MAX_BYTES // (1024 * 1024)} MB")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NodeFailed(f"GET {shown} did not answer JSON: {exc}") from exc


def records_at(document: Any, path: Any, url: str) -> list[Any]:
    """The records at a dotted path (`data.items`; a number indexes a list); an object is one record."""
    found = document
    if path not in (None, ""):
        if not isinstance(path, str):
            raise NodeFailed("config 'records_path' must be a dotted path such as 'data.items'")
        walked: list[str] = []
        for part in path.split("."):
            if isinstance(found, dict) and part in found:
                found = found[part]
            elif isinstance(found, list) and part.isdigit() and int(part) < len(found):
                found = found[int(part)]
            else:
                at = ".".join(walked) or "the top"
                keys = ", ".join(map(str, found)) if isinstance(found, dict) else type(found).__name__
                raise NodeFailed(f"the answer of GET {shown_url(url)} has no '{path}' (at {at}: {keys})")
            walked.append(part)
    if isinstance(found, dict):
        return [found]
    if not isinstance(found, list):
        raise NodeFailed(
            f"the records of GET {shown_url(url)} are a {type(found).__name__}, not a list of objects"
        )
    return found


# -- dataset --------------------------------------------------------------------------------------
def _dataset_rows(ctx: NodeContext) -> SourceRead:
    return SourceRead(ctx.use_dataset(ctx.config.text("name")))
