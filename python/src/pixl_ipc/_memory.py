"""Give the heap memory freed after large messages back to the system (glibc).

After a multi-MiB message is freed, glibc raises its mmap threshold, so later
large buffers come from the heap and their pages stay resident once freed:
the process keeps its peak size although nothing leaks. ``malloc_trim(0)``
returns those free pages; the server calls it shortly after large traffic,
off the hot path. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["release_free_memory"]


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the system; True if the platform can."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
