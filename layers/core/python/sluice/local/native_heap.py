"""Giving the C heap's free memory back to the system (glibc's `malloc_trim`).

Python frees its objects into the C allocator, and glibc keeps what is freed: the main heap only
shrinks from its top, and every other arena (moto's Step Functions interpreter runs each state on a
thread of its own, and threads get arenas) keeps its freed pages mapped. A long-running `sluice dev`
so grows by what its busiest moment needed, again and again as pieces stay pinned. `malloc_trim(0)`
walks every arena and returns its free pages (madvise), which is what `trim` does; on a C library
without it (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from typing import Any

_lock = threading.Lock()
_libc: Any = None
_mallinfo2: Any = None
_looked_up = False


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (2.33+): every field a size_t, summed over all arenas."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
        + ("uordblks", "fordblks", "keepcost")
    ]


def _malloc_trim() -> Any:
    global _libc, _looked_up
    with _lock:
        if not _looked_up:
            _looked_up = True
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _libc = libc.malloc_trim
                _libc.argtypes = [ctypes.c_size_t]
                _libc.restype = ctypes.c_int
            except (OSError, AttributeError):
                _libc = None
            else:
                _find_mallinfo2(libc)
        return _libc


def _find_mallinfo2(libc: Any) -> None:
    global _mallinfo2
    try:
        _mallinfo2 = libc.mallinfo2
    except AttributeError:  # glibc before 2.33
        return
    _mallinfo2.argtypes = []
    _mallinfo2.restype = _MallInfo2


def available() -> bool:
    return _malloc_trim() is not None


def trim() -> bool:
    """Return the C heap's free pages to the system; True if any were returned."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False


def usage() -> dict[str, int | None]:
    """Where the process's heap memory is, for `/_local/stats`: the C heap's bytes in use (small
    chunks plus mmapped blocks), its free bytes still mapped (what `trim` can give back, or
    fragmentation), and the interpreter's live small blocks (pymalloc). Telling these apart is what
    says whether a growing RSS is live objects, native allocations or freed memory kept."""
    _malloc_trim()
    python_blocks = sys.getallocatedblocks()
    if _mallinfo2 is None:
        return {"c_in_use": None, "c_free": None, "c_mmapped": None, "python_blocks": python_blocks}
    info = _mallinfo2()
    return {
        "c_in_use": info.uordblks + info.hblkhd,
        "c_free": info.fordblks,
        "c_mmapped": info.hblkhd,
        "python_blocks": python_blocks,
    }
