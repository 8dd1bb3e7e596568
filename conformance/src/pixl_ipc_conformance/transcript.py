"""The wire transcript of one case: the bytes each way, with timestamps, capped in size.

A failed case's report carries what went over the wire, as Autobahn's do:
each write and each read of the suite on each connection (and, in client
cases, each command to the adapter and each answer), stamped with the time
since the case started. Only the first and the last entries are kept, each
cut to a few KiB, so that a case that moves many MiB still gives a short
report. No I/O here: the connections call :meth:`Transcript.record`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "Transcript"]

#: Entries kept at each end of a transcript; those between are counted, not kept.
KEEP_EACH_END = 150
#: Bytes of one write or read kept in its entry.
ENTRY_BYTES = 2048
#: Arrows of the text form: what the suite wrote, what it read, what happened.
ARROWS = {"out": ">", "in": "<", "event": "="}


@dataclass(frozen=True)
class Entry:
    """One write, read or event.

    Attributes:
        at: seconds since the transcript started.
        direction: ``out`` (the suite wrote), ``in`` (it read) or ``event``.
        channel: the connection (``main``, ``conn#0``) or ``adapter``.
        size: the bytes written or read (0 for an event).
        text: the bytes as text (undecodable bytes as ``\\xNN``), cut to
            :data:`ENTRY_BYTES`; an event's description.
    """

    at: float
    direction: str
    channel: str
    size: int
    text: str

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict."""
        return {
            "t": round(self.at, 4),
            "dir": self.direction,
            "conn": self.channel,
            "bytes": self.size,
            "data": self.text,
        }

    def format(self) -> str:
        """One line: ``+0.0123s > main (42 bytes) "{\"ipcReqID\":...}\n"``."""
        if self.direction == "event":
            return f"+{self.at:.4f}s = {self.channel} {self.text}"
        text = json.dumps(self.text, ensure_ascii=False)
        return f"+{self.at:.4f}s {ARROWS[self.direction]} {self.channel} ({self.size} bytes) {text}"


class Transcript:
    """What went over the wire during one case.

    Args:
        keep_each_end: entries kept at the start and at the end.
        entry_bytes: bytes kept of each write or read.
    """

    def __init__(self, keep_each_end: int = KEEP_EACH_END, entry_bytes: int = ENTRY_BYTES) -> None:
        self.started = time.monotonic()
        self.entry_bytes = entry_bytes
        self.keep_each_end = keep_each_end
        self._head: list[Entry] = []
        self._tail: deque[Entry] = deque(maxlen=keep_each_end)
        self.omitted = 0

    def _add(self, entry: Entry) -> None:
        if len(self._head) < self.keep_each_end:
            self._head.append(entry)
            return
        if len(self._tail) == self._tail.maxlen:
            self.omitted += 1
        self._tail.append(entry)

    def record(self, direction: str, channel: str, data: bytes) -> None:
        """Note bytes written (``out``) or read (``in``) on a channel."""
        kept = data[: self.entry_bytes].decode("utf-8", "backslashreplace")
        if len(data) > self.entry_bytes:
            kept += f"... ({len(data) - self.entry_bytes} more bytes)"
        self._add(Entry(time.monotonic() - self.started, direction, channel, len(data), kept))

    def event(self, channel: str, text: str) -> None:
        """Note what happened on a channel (connected, end of stream, reset, closed)."""
        self._add(Entry(time.monotonic() - self.started, "event", channel, 0, text))

    @property
    def entries(self) -> list[Entry]:
        """The entries kept, in order."""
        return [*self._head, *self._tail]

    def to_json(self) -> dict[str, Any]:
        """``{"entries": [...], "omitted": N}`` (N entries between head and tail were dropped)."""
        return {"entries": [e.to_json() for e in self.entries], "omitted": self.omitted}

    def format(self) -> str:
        """The transcript as text, one entry a line."""
        lines = [e.format() for e in self._head]
        if self.omitted:
            lines.append(f"... {self.omitted} entries omitted ...")
        lines.extend(e.format() for e in self._tail)
        return "\n".join(lines)
