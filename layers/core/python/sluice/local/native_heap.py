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
import threading
from typing import Any

_lock = threading.Lock()
_libc: Any = None
_looked_up = False


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
        return _libc


def available() -> bool:
    return _malloc_trim() is not None


def trim() -> bool:
    """Return the C heap's free pages to the system; True if any were returned."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False
