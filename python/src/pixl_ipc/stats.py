"""The server's counters, by stats interval as the original keeps them, and since start.

:class:`ServerStats` owns every counter; connections and the server only call
its methods. The original reports the counters of the last
*completed* interval (``log_stats_interval``); this kit adds running totals
under their own keys (BUILTIN-5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Counter", "ServerStats"]


@dataclass(slots=True)
class _Counters:
    """The counters of one stats interval (the original's keys, then this kit's); duration in seconds."""

    requests: int = 0
    clientOpen: int = 0
    clientClose: int = 0
    maxConnections: int = 0
    duration: float = 0.0
    slowResponses: int = 0
    streamBackpressure: int = 0
    badMessages: int = 0
    oversizeMessages: int = 0
    handlerErrors: int = 0
    accessDenied: int = 0
    serverBusy: int = 0
    readPauses: int = 0
    droppedResponses: int = 0
    outOfMemory: int = 0


#: A counter that :meth:`ServerStats.count` adds one to, and what it counts.
Counter = Literal[
    "clientClose",  # an accepted connection ended
    "streamBackpressure",  # a write filled a connection's buffer
    "readPauses",  # reading from a connection paused (LIMIT-5)
    "handlerErrors",  # a handler failed, or its result could not be encoded (ERR-3)
    "accessDenied",  # a peer was refused by the access rule (SEC-2)
    "serverBusy",  # a connection or a line was refused server_busy (LIMIT-7)
    "droppedResponses",  # an answer's connection had ended (LIFE-5)
    "outOfMemory",  # a connection was closed because memory ran out while serving it
]

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
# Protocol replies (reason -> counter); the others count as badMessages.
_REPLY_COUNTERS = {
    "message_too_large": "oversizeMessages",
    "server_busy": "serverBusy",
}


class ServerStats:
    """Counters of the current interval, the last completed one, and since start.

    Args:
        slow_threshold: answers slower than this many seconds count as slow.

    Attributes:
        current: the counters of the interval in progress. A connection's
            request loop adds one to ``requests`` for each request routed,
            and to ``duration`` and ``slowResponses`` as
            :meth:`record_answer` does, itself, to spare two calls per
            request.
    """

    __slots__ = ("_last", "_started", "_totals", "current", "slow_threshold")

    def __init__(self, slow_threshold: float = 0.020) -> None:
        self.slow_threshold = slow_threshold
        self.current = _Counters()
        self._last = _Counters()
        self._totals = _Counters()
        self._started = time.monotonic()

    # --- recording -------------------------------------------------------------

    def count(self, counter: Counter) -> None:
        """Add one to ``counter`` of the interval in progress."""
        current = self.current
        setattr(current, counter, getattr(current, counter) + 1)

    def record_answer(self, elapsed: float) -> None:
        """A handler answered after ``elapsed`` seconds."""
        current = self.current
        current.duration += elapsed
        if elapsed > self.slow_threshold:
            current.slowResponses += 1

    def record_protocol_reply(self, reason: str) -> None:
        """The server answered a line itself (``bad_json``, ``no_uri``, ``server_busy``...)."""
        current = self.current
        if reason == "no_uri":  # a record that parsed: a request received
            current.requests += 1
        name = _REPLY_COUNTERS.get(reason, "badMessages")
        setattr(current, name, getattr(current, name) + 1)

    def record_open(self, connections: int) -> None:
        """A connection was accepted; ``connections`` are open now."""
        current = self.current
        current.clientOpen += 1
        if connections > current.maxConnections:
            current.maxConnections = connections

    # --- reporting -------------------------------------------------------------

    def roll(self, connections: int) -> None:
        """End the current interval: its counters become the reported ones."""
        current = self.current
        totals = self._totals
        for key in _TOTAL_KEYS:
            setattr(totals, key, getattr(totals, key) + getattr(current, key))
        self._last = current
        self.current = _Counters(maxConnections=connections)

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
