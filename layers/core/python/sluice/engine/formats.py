"""File formats a node reads and writes (csv, json, jsonl, parquet): checking that a file is what it
was declared to be, and the DuckDB reader and writer for each.

The check looks at a file's first and last bytes before DuckDB does, because DuckDB's own complaint
about a Parquet file read as CSV ("Invalid unicode...") does not tell the author what went wrong.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from sluice.engine.errors import NodeFailed
from sluice.engine.workspace import quote_literal

FORMATS = ("csv", "json", "jsonl", "parquet")
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 * 1024


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, SNIFF_BYTES)
        except zlib.error:
            return b""
    return head


def _tail(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 4))
        return handle.read(4)


def _first_character(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return chr(text[0]) if text else ""


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        return exc.start >= len(head) - 3
    return True


def looks_like(path: Path) -> str:
    """What a file appears to be, for messages: 'parquet', 'JSON', 'CSV or other text' or 'binary'."""
    head = _head(path)
    if head.startswith(PARQUET_MAGIC):
        return "a parquet file"
    if _first_character(head) in ("{", "["):
        return "JSON"
    if _is_text(head):
        return "CSV or other text"
    return "binary data"


def check_format(path: Path, declared: str, origin: str) -> None:
    """NodeFailed unless the file plausibly is `declared`; `origin` names it in the message."""
    head = _head(path)
    if declared == "parquet":
        fits = head.startswith(PARQUET_MAGIC) and _tail(path) == PARQUET_MAGIC
    elif declared == "json":
        fits = _is_text(head) and _first_character(head) in ("[", "{")
    elif declared == "jsonl":
        first = _first_character(head)
        if first == "[":
            raise NodeFailed(f"{origin} is a JSON array document, not JSON lines: declare format 'json'")
        fits = _is_text(head) and first == "{"
    else:
        fits = not head.startswith(PARQUET_MAGIC) and _is_text(head)
    if not fits:
        raise NodeFailed(f"{origin} is not a {declared} file: it looks like {looks_like(path)}")


def is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def reader(paths: list[Path], declared: str, *, csv_header: bool = True) -> str:
    """The DuckDB table function reading these files (all of one format) as one relation."""
    files = "[" + ", ".join(quote_literal(str(path)) for path in paths) + "]"
    compressed = paths and all(is_gzip(path) for path in paths)
    compression = ", compression = 'gzip'" if compressed and declared != "parquet" else ""
    if declared == "parquet":
        return f"read_parquet({files}, union_by_name = true)"
    if declared == "csv":
        header = "true" if csv_header else "false"
        return f"read_csv({files}, header = {header}, union_by_name = true{compression})"
    layout = "newline_delimited" if declared == "jsonl" else "auto"
    return f"read_json({files}, format = '{layout}', union_by_name = true{compression})"


def writer_options(declared: str) -> str:
    """COPY options writing `declared`; json is one array document, jsonl one object a line."""
    return {
        "csv": "(FORMAT csv, HEADER true)",
        "json": "(FORMAT json, ARRAY true)",
        "jsonl": "(FORMAT json)",
        "parquet": "(FORMAT parquet)",
    }[declared]
