"""Tune glibc's heap for message buffers, and give freed memory back.

:func:`warm_allocator` keeps buffers of up to a few MiB on the heap, so that
moving messages does not map and fault in fresh pages every time. The price
is that freed buffers stay resident: the process keeps its peak size
although nothing leaks. :func:`release_free_memory` (``malloc_trim(0)``)
returns those free pages; the server calls it shortly after large traffic,
off the hot path. Elsewhere than glibc (musl, macOS) neither does harm.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["release_free_memory", "warm_allocator"]

_WARM_BYTES = 4 * 1024 * 1024
_allocator_warmed = False


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


def warm_allocator() -> None:
    """Move glibc's dynamic malloc thresholds up, once per process.

    glibc serves blocks of 128 KiB and more with mmap and trims the top of the
    heap past 128 KiB of free space until a block it allocated with mmap is
    freed; then both thresholds move up to that block's size (mallopt(3),
    M_MMAP_THRESHOLD). Until that happens, a process that moves messages of
    100 KiB or more, or reads pipelined requests 64 KiB at a time, maps and
    unmaps, or grows and trims, memory for every read, one page fault per
    4 KiB: measured, 100 KiB round trips took three times as long, and the
    server spent 40% more CPU per pipelined 1 KiB request. Allocating and
    freeing one 4 MiB block (calloc'd, so no page is touched) moves the
    thresholds as any program that once read a large file already has.
    Elsewhere than glibc it only costs that block.
    """
    global _allocator_warmed
    if not _allocator_warmed:
        _allocator_warmed = True
        bytes(_WARM_BYTES)
