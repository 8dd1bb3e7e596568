"""The server's counters, by stats interval as the original keeps them, and since start.

:class:`ServerStats` owns every counter; connections and the server only call
its ``record_*`` methods. The original reports the counters of the last
*completed* interval (``log_stats_interval``); this kit adds running totals
under their own keys (BUILTIN-5).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["ServerStats"]


class _Counters:
    """The counters of one stats interval (the original's keys, then this kit's); duration in seconds."""

    __slots__ = (
        "accessDenied",
        "badMessages",
        "clientClose",
        "clientOpen",
        "droppedResponses",
        "duration",
        "handlerErrors",
        "maxConnections",
        "outOfMemory",
        "oversizeMessages",
        "readPauses",
        "requests",
        "serverBusy",
        "slowResponses",
        "streamBackpressure",
    )

    def __init__(self, connections: int = 0) -> None:
        self.requests = 0
        self.clientOpen = 0
        self.clientClose = 0
        self.maxConnections = connections
        self.duration = 0.0
        self.slowResponses = 0
        self.streamBackpressure = 0
        self.badMessages = 0
        self.oversizeMessages = 0
        self.handlerErrors = 0
        self.accessDenied = 0
        self.serverBusy = 0
        self.readPauses = 0
        self.droppedResponses = 0
        self.outOfMemory = 0


# Keys reported for the last completed interval (the original's).
_ORIGINAL_KEYS = (
    "requests",
    "clientOpen",
    "clientClose",
    "maxConnections",
    "duration",
    "slowResponses",
    "streamBackpressure",
)
# Counter -> the key of its total since start.
_TOTAL_KEYS = {
    "requests": "totalRequests",
    "clientOpen": "totalClientOpen",
    "clientClose": "totalClientClose",
    "slowResponses": "totalSlowResponses",
    "streamBackpressure": "totalStreamBackpressure",
    "badMessages": "badMessages",
    "oversizeMessages": "oversizeMessages",
    "handlerErrors": "handlerErrors",
    "accessDenied": "accessDenied",
    "serverBusy": "serverBusy",
    "readPauses": "readPauses",
    "droppedResponses": "droppedResponses",
    "outOfMemory": "outOfMemory",
}
# Protocol replies (reason -> counter). Records that parse as JSON objects
# count as requests received (as the original counts records).
_REPLY_COUNTERS = {
    "message_too_large": "oversizeMessages",
    "server_busy": "serverBusy",
}
_RECORDS = frozenset({"no_uri", "bad_request"})


class ServerStats:
    """Counters of the current interval, the last completed one, and since start.

    Args:
        slow_threshold: answers slower than this many seconds count as slow.

    Attributes:
        current: the counters of the interval in progress. A connection's
            request loop adds to ``requests``, ``duration`` and
            ``slowResponses`` itself, as :meth:`record_request` and
            :meth:`record_answer` do, to spare two calls per request.
    """

    __slots__ = ("_last", "_started", "_totals", "current", "slow_threshold")

    def __init__(self, slow_threshold: float = 0.020) -> None:
        self.slow_threshold = slow_threshold
        self.current = _Counters()
        self._last = _Counters()
        self._totals = _Counters()
        self._started = time.monotonic()

    # --- recording -------------------------------------------------------------

    def record_request(self) -> None:
        """A request record reached the dispatcher."""
        self.current.requests += 1

    def record_answer(self, elapsed: float) -> None:
        """A handler answered after ``elapsed`` seconds."""
        current = self.current
        current.duration += elapsed
        if elapsed > self.slow_threshold:
            current.slowResponses += 1

    def record_protocol_reply(self, reason: str) -> None:
        """The server answered a line itself (``bad_json``, ``no_uri``, ``server_busy``...)."""
        current = self.current
        if reason in _RECORDS:
            current.requests += 1
        name = _REPLY_COUNTERS.get(reason, "badMessages")
        setattr(current, name, getattr(current, name) + 1)

    def record_open(self, connections: int) -> None:
        """A connection was accepted; ``connections`` are open now."""
        current = self.current
        current.clientOpen += 1
        if connections > current.maxConnections:
            current.maxConnections = connections

    def record_close(self) -> None:
        """An accepted connection ended."""
        self.current.clientClose += 1

    def record_backpressure(self) -> None:
        """A write filled a connection's buffer."""
        self.current.streamBackpressure += 1

    def record_read_pause(self) -> None:
        """Reading from a connection paused (LIMIT-5)."""
        self.current.readPauses += 1

    def record_handler_error(self) -> None:
        """A handler failed, or its result could not be encoded (ERR-3)."""
        self.current.handlerErrors += 1

    def record_access_denied(self) -> None:
        """A peer was refused by the access rule (SEC-2)."""
        self.current.accessDenied += 1

    def record_busy(self) -> None:
        """A connection was refused ``server_busy`` by the connection budget (LIMIT-7)."""
        self.current.serverBusy += 1

    def record_dropped_response(self) -> None:
        """An answer could not be delivered: its connection had ended (LIFE-5)."""
        self.current.droppedResponses += 1

    def record_out_of_memory(self) -> None:
        """A connection was closed because memory ran out while serving it."""
        self.current.outOfMemory += 1

    # --- reporting -------------------------------------------------------------

    def roll(self, connections: int) -> None:
        """End the current interval: its counters become the reported ones."""
        current = self.current
        totals = self._totals
        for key in _TOTAL_KEYS:
            setattr(totals, key, getattr(totals, key) + getattr(current, key))
        self._last = current
        self.current = _Counters(connections)

    def restart_clock(self) -> None:
        """Count ``uptime`` from now (the server started)."""
        self._started = time.monotonic()

    def report(self, *, connections: int, handlers: int, inflight: int, interval: str) -> dict[str, Any]:
        """The statistics, with the original's keys first (BUILTIN-5).

        ``requests`` to ``streamBackpressure`` are the last completed
        interval's (``duration`` in ms); the other counters are totals since
        start.
        """
        last = self._last
        stats: dict[str, Any] = {"connections": connections, "handlers": handlers}
        for key in _ORIGINAL_KEYS:
            stats[key] = getattr(last, key)
        stats["duration"] = round(last.duration * 1000.0, 3)
        current = self.current
        totals = self._totals
        for key, total_key in _TOTAL_KEYS.items():
            stats[total_key] = getattr(totals, key) + getattr(current, key)
        stats["inflight"] = inflight
        stats["uptime"] = round(time.monotonic() - self._started, 3)
        stats["statsInterval"] = interval
        return stats
