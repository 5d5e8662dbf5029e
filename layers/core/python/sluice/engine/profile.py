"""What a person sees of a node's output without reading it: a 50-row preview and a per-column
profile, both JSON-safe.

Rendering, chosen so that nothing is lost silently: instants with an offset become ISO 8601 UTC with
`Z`, naive timestamps, dates and times ISO 8601 as they are; decimals become strings (exact, where a
float would round); bytes become base64; intervals ISO-ish `str()`; NaN and infinities the strings
"NaN", "Infinity", "-Infinity"; lists, structs and maps recursively.

Profile, per column: `type` (DuckDB's), `count` (non-null values), `nulls`, `distinct` (non-null
distinct values), `min`/`max` (orderable types), `mean` (numbers), `top_values` (up to 5
`{value, count}`, most frequent first, ties by value). One scan computes the aggregates of every
column; each column's top values is one more grouped scan, over blocks of rows for large outputs
(see `profile`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from sluice import timeutil
from sluice.engine.workspace import Column, Workspace, quote_identifier, quote_literal, read_parquet

PREVIEW_ROWS = 50
TOP_VALUES = 5
EXACT_PROFILE_ROWS = 100_000
SAMPLE_ROWS = 100_000
SAMPLE_BLOCKS = 8
NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
NESTED_MARKERS = ("[", "STRUCT(", "MAP(", "UNION(")


def render_value(value: Any) -> Any:
    """One DuckDB value as JSON: see the module docstring for the rules."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, _dt.datetime):
        return timeutil.iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(key): render_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(item) for item in value]
    if isinstance(value, uuid.UUID | _dt.timedelta):
        return str(value)
    return str(value)


def is_numeric(type_name: str) -> bool:
    return type_name.split("(")[0] in NUMERIC_TYPES


def is_nested(type_name: str) -> bool:
    return any(marker in type_name for marker in NESTED_MARKERS)


def preview(
    workspace: Workspace, path: Path, columns: list[Column], limit: int = PREVIEW_ROWS
) -> dict[str, Any]:
    """`{columns, rows}`: the first `limit` rows, each an object keyed by column name."""
    names = [column.name for column in columns]
    fetched = workspace.execute(f"SELECT * FROM {read_parquet([path])} LIMIT {int(limit)}")
    rows = [{name: render_value(value) for name, value in zip(names, row, strict=True)} for row in fetched]
    return {"columns": names, "rows": rows}


def profile(workspace: Workspace, path: Path, columns: list[Column], row_count: int) -> dict[str, Any]:
    """`{row_count, approximate, columns: [...]}`, one entry per column in output order.

    Up to EXACT_PROFILE_ROWS rows every figure is exact, in one scan plus one grouped scan per
    column. Past that the profile costs a fraction of a scan per column, not a grouped scan each:
    count, nulls, min and max stay exact (DuckDB answers them from the Parquet footer's
    statistics), mean stays exact (one scan of the numeric columns, with the HyperLogLog estimate of
    `distinct`), and `top_values` are counted in SAMPLE_BLOCKS evenly spaced blocks of rows, about
    SAMPLE_ROWS in all, which DuckDB reads without decoding the row groups in between;
    `approximate` says so.
    """
    source = read_parquet([path])
    if row_count <= EXACT_PROFILE_ROWS:
        values = _aggregates(workspace, source, columns, exact=True)
        counted_in, approximate = source, None
    else:
        values = _aggregates(workspace, source, columns, exact=False)
        counted_in = _blocks(path, columns, row_count)
        approximate = {
            "distinct": "HyperLogLog estimate",
            "top_values": f"counts in {SAMPLE_BLOCKS} evenly spaced blocks of rows, about {SAMPLE_ROWS} rows",
        }
    entries = []
    for index, column in enumerate(columns):
        count = int(values.get(f"c{index}") or 0)
        entries.append(
            {
                "name": column.name,
                "type": column.type,
                "count": count,
                "nulls": row_count - count,
                "distinct": min(int(values.get(f"d{index}") or 0), count),
                "min": render_value(values.get(f"lo{index}")),
                "max": render_value(values.get(f"hi{index}")),
                "mean": render_value(values.get(f"mean{index}")) if is_numeric(column.type) else None,
                "top_values": _top_values(workspace, counted_in, column) if count else [],
            }
        )
    return {"row_count": row_count, "approximate": approximate, "columns": entries}


def _aggregates(workspace: Workspace, source: str, columns: list[Column], *, exact: bool) -> dict[str, Any]:
    """count (c), distinct (d), min (lo), max (hi) and mean of every column, by index.

    Exact: one query. Estimated: count/min/max alone in one query, which DuckDB can answer from the
    file's statistics without reading the data, and the HyperLogLog estimates and means in another.
    """
    counts: list[str] = []
    spreads: list[str] = []
    distinct = "count(DISTINCT {})" if exact else "approx_count_distinct({})"
    for index, column in enumerate(columns):
        name = quote_identifier(column.name)
        counts.append(f"count({name}) AS c{index}")
        if not is_nested(column.type):
            counts += [f"min({name}) AS lo{index}", f"max({name}) AS hi{index}"]
        spreads.append(f"{distinct.format(name)} AS d{index}")
        if is_numeric(column.type):
            spreads.append(f"avg({name}::DOUBLE) AS mean{index}")
    if not columns:
        return {}
    if exact:
        return workspace.record(f"SELECT {', '.join(counts + spreads)} FROM {source}")
    values = workspace.record(f"SELECT {', '.join(counts)} FROM {source}")
    values.update(workspace.record(f"SELECT {', '.join(spreads)} FROM {source}"))
    return values


def _blocks(path: Path, columns: list[Column], row_count: int) -> str:
    """A relation over SAMPLE_BLOCKS blocks of consecutive rows spread evenly through the file."""
    if any(column.name.lower() == "file_row_number" for column in columns):
        # The output has a column of that name: a Bernoulli sample instead (a full scan).
        percent = 100.0 * SAMPLE_ROWS / row_count
        return f"(SELECT * FROM {read_parquet([path])} USING SAMPLE {percent:.6f}% (bernoulli, 7))"
    size = max(1, SAMPLE_ROWS // SAMPLE_BLOCKS)
    step = row_count // SAMPLE_BLOCKS
    ranges = " OR ".join(
        f"file_row_number BETWEEN {block * step} AND {block * step + size - 1}"
        for block in range(SAMPLE_BLOCKS)
    )
    files = quote_literal(str(path))
    return f"(SELECT * FROM read_parquet([{files}], file_row_number = true) WHERE {ranges})"


def _top_values(workspace: Workspace, source: str, column: Column) -> list[dict[str, Any]]:
    name = quote_identifier(column.name)
    tie_break = "" if is_nested(column.type) else f", {name}"
    rows = workspace.execute(
        f"SELECT {name}, count(*) AS n FROM {source} WHERE {name} IS NOT NULL "
        f"GROUP BY {name} ORDER BY n DESC{tie_break} LIMIT {TOP_VALUES}"
    )
    return [{"value": render_value(value), "count": int(count)} for value, count in rows]
