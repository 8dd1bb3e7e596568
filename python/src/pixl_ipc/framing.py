"""Line framing and JSON encoding: bytes in, lines out; values in, bytes out.

No sockets here. :class:`LineDecoder` turns a byte stream cut into arbitrary
chunks into complete lines (FRAME-1 to FRAME-3), enforcing the size limit as it
goes (LIMIT-2, LIMIT-3) so that its memory stays bounded by the limit whatever
it is fed. :func:`encode_line` and :func:`decode_json` (from :mod:`._codec`) are
the only places that turn values into wire bytes and back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._codec import decode_json, encode_line
from ._memory import release_free_memory

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ID_RECOVERY_BYTES",
    "MIN_MAX_MESSAGE_BYTES",
    "LineDecoder",
    "OversizeLine",
    "decode_json",
    "encode_line",
]

#: Default limit of one message, in bytes. The spec's floor is 16 MiB (LIMIT-1);
#: 64 MiB leaves room for bulk payloads while bounding a bad peer's cost.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The smallest limit a conforming receiver may use (LIMIT-1).
MIN_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: How much of an oversize line is kept to recover its id (CORR-6).
ID_RECOVERY_BYTES = 4096

_LF = b"\n"
# A read whose first line is shorter is cut with one split(), see LineDecoder.feed.
_SHORT_LINE = 1024
# A line joined from pieces adding up to this much frees them at once.
_TRIM_JOINED = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OversizeLine:
    """A line that passed the size limit; the rest of it is being discarded.

    Attributes:
        head: the first :data:`ID_RECOVERY_BYTES` bytes of the line.
        size: how many bytes of the line had been seen when it passed the limit.
        limit: the limit in force.
    """

    head: bytes
    size: int
    limit: int


class LineDecoder:
    """Split a byte stream into lines of at most ``max_line_bytes`` bytes.

    :meth:`feed` returns, in stream order, each complete line (``bytes`` without
    its LF, and without a CR just before it, FRAME-2) and an
    :class:`OversizeLine` for each line over the limit, reported as soon as the
    limit is passed; the rest of that line is dropped as it arrives (LIMIT-2).
    """

    __slots__ = ("_chunks", "_discarding", "_pending", "max_line_bytes")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        # Chunks of the unfinished line: joined once when its LF arrives, so a
        # line in N chunks costs O(size), not O(N * size).
        self._chunks: list[bytes] = []
        self._pending = 0
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held in memory (never over the limit)."""
        return self._pending

    def feed(self, data: bytes) -> list[bytes | OversizeLine]:
        """Add bytes from the stream and return the events they complete."""
        out: list[bytes | OversizeLine] = []
        if self._discarding:
            end = data.find(_LF)
            if end < 0:
                return out
            self._discarding = False
            data = data[end + 1 :]
        if not data:
            return out
        if self._chunks:
            end = data.find(_LF)
            if end < 0:
                self._add_partial(data, out)
                return out
            self._chunks.append(data[:end])
            line = b"".join(self._chunks)
            self._chunks = []
            self._pending = 0
            if len(line) >= _TRIM_JOINED:
                # The pieces just freed stay resident on the heap (see
                # _memory.warm_allocator): give them back before the line is
                # parsed beside them, or they add a copy to the peak.
                release_free_memory()
            self._emit(line, out)
            data = data[end + 1 :]
        limit = self.max_line_bytes
        find = data.find
        end = find(_LF)
        if end >= 0 and end == len(data) - 1:
            # One whole line: a request or an answer read on its own.
            self._emit(data[:end], out)
            return out
        # JSON text holds no raw CR, so a read without one, no longer than
        # the limit, needs no check per line: the common case, by far.
        plain = len(data) <= limit and b"\r" not in data
        if 0 <= end < _SHORT_LINE:
            # Short lines: one split() beats a Python loop of find() calls.
            parts = data.split(_LF)
            rest = parts.pop()
            if plain:
                out.extend(parts)
            else:
                for line in parts:
                    self._emit(line, out)
        else:
            # Long lines: split() compares byte by byte, find() runs on
            # memchr, over ten times faster; on a large message the
            # difference is most of the cost of framing.
            start = 0
            while end >= 0:
                if plain:
                    out.append(data[start:end])
                else:
                    self._emit(data[start:end], out)
                start = end + 1
                end = find(_LF, start)
            rest = data[start:] if start else data
        if rest:
            self._add_partial(rest, out)
        return out

    def _emit(self, line: bytes, out: list[bytes | OversizeLine]) -> None:
        if len(line) > self.max_line_bytes:
            out.append(OversizeLine(line[:ID_RECOVERY_BYTES], len(line), self.max_line_bytes))
            return
        if line[-1:] == b"\r":
            line = line[:-1]
        out.append(line)

    def _add_partial(self, data: bytes, out: list[bytes | OversizeLine]) -> None:
        size = self._pending + len(data)
        if size > self.max_line_bytes:
            out.append(OversizeLine(self._head(data), size, self.max_line_bytes))
            self._chunks = []
            self._pending = 0
            self._discarding = True
            if size - len(data) >= _TRIM_JOINED:
                release_free_memory()  # the pieces just dropped, as in feed
            return
        self._chunks.append(data)
        self._pending = size

    def _head(self, data: bytes) -> bytes:
        """The first ID_RECOVERY_BYTES of the pending pieces and ``data``, without joining them all."""
        parts: list[bytes] = []
        wanted = ID_RECOVERY_BYTES
        for piece in (*self._chunks, data):
            parts.append(piece[:wanted])
            wanted -= len(parts[-1])
            if wanted <= 0:
                break
        return b"".join(parts)
