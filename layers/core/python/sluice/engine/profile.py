"""What a person sees of a node's output without reading it: a 50-row preview and a per-column
profile, both JSON-safe.

Rendering, chosen so that nothing is lost silently: instants with an offset become ISO 8601 UTC with
`Z`, naive timestamps, dates and times ISO 8601 as they are; decimals become strings (exact, where a
float would round); bytes become base64; intervals ISO-ish `str()`; NaN and infinities the strings
"NaN", "Infinity", "-Infinity"; lists, structs and maps recursively.

Profile, per column: `type` (DuckDB's), `count` (non-null values), `nulls`, `distinct` (non-null
distinct values), `min`/`max` (orderable types), `mean` (numbers), `top_values` (up to 5
`{value, count}`, most frequent first, ties by value). One scan computes the aggregates of every
column; each column's top values is one more grouped scan, over a sample for large outputs (see
`profile`).
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
from sluice.engine.workspace import Column, Workspace, quote_identifier, read_parquet

PREVIEW_ROWS = 50
TOP_VALUES = 5
EXACT_PROFILE_ROWS = 100_000
SAMPLE_ROWS = 100_000
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

    Up to EXACT_PROFILE_ROWS rows every figure is exact. Past that, count, nulls, min, max and mean
    stay exact (one cheap scan) while `distinct` is a HyperLogLog estimate (within a few percent)
    and `top_values` are counted in a random sample of about SAMPLE_ROWS rows, so profiling a large
    output costs about one scan instead of one grouped scan per column; `approximate` says so.
    """
    source = read_parquet([path])
    exact = row_count <= EXACT_PROFILE_ROWS
    distinct = "count(DISTINCT {})" if exact else "approx_count_distinct({})"
    aggregates: list[str] = []
    for index, column in enumerate(columns):
        name = quote_identifier(column.name)
        aggregates += [f"count({name}) AS c{index}", f"{distinct.format(name)} AS d{index}"]
        if not is_nested(column.type):
            aggregates += [f"min({name}) AS lo{index}", f"max({name}) AS hi{index}"]
        if is_numeric(column.type):
            aggregates.append(f"avg({name}::DOUBLE) AS mean{index}")
    values = workspace.record(f"SELECT {', '.join(aggregates)} FROM {source}") if aggregates else {}
    counted_in = source
    if not exact:
        # Bernoulli, not reservoir: a third of the time on a million rows, for a sample of about
        # SAMPLE_ROWS rows rather than exactly.
        percent = 100.0 * SAMPLE_ROWS / row_count
        workspace.execute(
            f"CREATE OR REPLACE TEMP TABLE __profile_sample AS SELECT * FROM {source} "
            f"USING SAMPLE {percent:.6f}% (bernoulli, 7)"
        )
        counted_in = "__profile_sample"
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
    approximate = None
    if not exact:
        approximate = {
            "distinct": "HyperLogLog estimate",
            "top_values": f"counts in a random sample of about {SAMPLE_ROWS} rows",
        }
    return {"row_count": row_count, "approximate": approximate, "columns": entries}


def _top_values(workspace: Workspace, source: str, column: Column) -> list[dict[str, Any]]:
    name = quote_identifier(column.name)
    tie_break = "" if is_nested(column.type) else f", {name}"
    rows = workspace.execute(
        f"SELECT {name}, count(*) AS n FROM {source} WHERE {name} IS NOT NULL "
        f"GROUP BY {name} ORDER BY n DESC{tie_break} LIMIT {TOP_VALUES}"
    )
    return [{"value": render_value(value), "count": int(count)} for value, count in rows]
