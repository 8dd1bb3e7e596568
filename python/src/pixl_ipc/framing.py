"""Line framing and JSON encoding: bytes in, lines out; values in, bytes out.

No sockets here. :class:`LineDecoder` turns a byte stream cut into arbitrary
chunks into complete lines (FRAME-1 to FRAME-3), enforcing the size limit as it
goes (LIMIT-2, LIMIT-3) so that its memory stays bounded by the limit whatever
it is fed. :func:`encode_line` and :func:`decode_json` (from :mod:`._codec`) are
the only places that turn values into wire bytes and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ._codec import decode_json, encode_line
from ._memory import release_free_memory

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ID_RECOVERY_BYTES",
    "MIN_MAX_MESSAGE_BYTES",
    "LineDecoder",
    "ByteBudget",
    "Line",
    "OversizeLine",
    "RefusedLine",
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


@dataclass(frozen=True, slots=True)
class RefusedLine:
    """A line refused because the byte budget it shares with other connections is spent.

    The rest of the line is being discarded, as for an :class:`OversizeLine`
    (the server answers ``server_busy``, LIMIT-7).

    Attributes:
        head: the first :data:`ID_RECOVERY_BYTES` bytes of the line.
        size: how many bytes of the line had been seen when it was refused.
    """

    head: bytes
    size: int


class ByteBudget(Protocol):
    """Bytes that several decoders (and writers) share; see :class:`LineDecoder`."""

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes if they fit; False (nothing taken) if not."""

    def release(self, size: int) -> None:
        """Give back ``size`` bytes taken with :meth:`reserve`."""


#: What :meth:`LineDecoder.feed` and :meth:`LineDecoder.next_lines` return, in stream order.
Line = bytes | OversizeLine | RefusedLine


class LineDecoder:
    """Split a byte stream into lines of at most ``max_line_bytes`` bytes.

    :meth:`feed` returns, in stream order, each complete line (``bytes`` without
    its LF, and without a CR just before it, FRAME-2) and an
    :class:`OversizeLine` for each line over the limit, reported as soon as the
    limit is passed; the rest of that line is dropped as it arrives (LIMIT-2).

    A reader that must not take every line of a read at once (a server
    serving many peers) calls :meth:`push` and then :meth:`next_lines` with a
    maximum, as often as :attr:`has_unread` says.

    With a ``budget``, the bytes of an unfinished line are reserved in it as
    they arrive and given back when the line ends; a line whose next piece
    does not fit is reported as a :class:`RefusedLine` and the rest of it is
    dropped (LIMIT-7). Call :meth:`close` when the stream ends, to give back
    what an unfinished line still holds.

    Attributes:
        buffered: bytes of an unfinished line held in memory (never over the limit).
        has_unread: True while bytes given to :meth:`push` have not all been
            cut into lines.
    """

    # buffered and has_unread are plain attributes, not properties: readers
    # check them on every read, and a property costs a function call.
    __slots__ = (
        "_budget",
        "_chunks",
        "_discarding",
        "_unread",
        "_unread_pos",
        "buffered",
        "has_unread",
        "max_line_bytes",
    )

    def __init__(
        self, max_line_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, *, budget: ByteBudget | None = None
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self._budget = budget
        # Chunks of the unfinished line: joined once when its LF arrives, so a
        # line in N chunks costs O(size), not O(N * size).
        self._chunks: list[bytes] = []
        self.buffered = 0
        self._discarding = False
        # Bytes pushed but not yet cut into lines, from _unread_pos on.
        self._unread = b""
        self._unread_pos = 0
        self.has_unread = False

    def feed(self, data: bytes) -> list[Line]:
        """Add bytes from the stream and return every event they complete."""
        if not self._chunks and not self._discarding:
            # One whole line read on its own, the usual answer to a request:
            # no CR before its LF (FRAME-2), within the limit.
            end = data.find(_LF)
            if end == len(data) - 1 and 0 < end <= self.max_line_bytes and data[end - 1] != 0x0D:
                return [data[:end]]
        out: list[Line] = []
        self._cut(data, 0, 0, out)
        return out

    def push(self, data: bytes) -> None:
        """Add bytes from the stream without cutting them yet (see :meth:`next_lines`)."""
        if self.has_unread:
            self._unread = self._unread[self._unread_pos :] + data
        else:
            self._unread = data
        self._unread_pos = 0
        self.has_unread = len(self._unread) > 0

    def next_lines(self, max_lines: int) -> list[Line]:
        """Cut at most ``max_lines`` lines from the bytes pushed; the rest waits for the next call.

        Returns:
            The events, as :meth:`feed` returns them (an empty list when
            nothing is left to cut).
        """
        if max_lines < 1:
            raise ValueError("max_lines must be positive")
        if not self.has_unread:
            return []
        data = self._unread
        start = self._unread_pos
        if not start and not self._chunks and not self._discarding:
            # One whole line read on its own (as in feed).
            end = data.find(_LF)
            if end == len(data) - 1 and 0 < end <= self.max_line_bytes and data[end - 1] != 0x0D:
                self._unread = b""
                self.has_unread = False
                return [data[:end]]
        out: list[Line] = []
        stop = self._cut(data, start, max_lines, out)
        if stop < len(data):
            self._unread_pos = stop
        else:
            self._unread = b""
            self._unread_pos = 0
            self.has_unread = False
        return out

    def close(self) -> None:
        """Drop the unfinished line and whatever was pushed, giving their bytes back to the budget."""
        self._drop_partial()
        self._discarding = False
        self._unread = b""
        self._unread_pos = 0
        self.has_unread = False

    def _cut(self, data: bytes, start: int, max_lines: int, out: list[Line]) -> int:
        """Cut the lines of ``data[start:]`` into ``out``, at most ``max_lines`` of them (0: all).

        Returns:
            Where it stopped: ``len(data)`` once all of it is taken (its
            unfinished end kept as the pending line), less when ``max_lines``
            lines came out before the end.
        """
        size = len(data)
        if self._discarding:
            end = data.find(_LF, start)
            if end < 0:
                return size
            self._discarding = False
            start = end + 1
        if start >= size:
            return size
        count = 0
        if self._chunks:
            end = data.find(_LF, start)
            if end < 0:
                self._add_partial(data[start:] if start else data, out)
                return size
            self._chunks.append(data[start:end])
            line = b"".join(self._chunks)
            self._chunks = []
            self._release_pending()
            if len(line) >= _TRIM_JOINED:
                # The pieces just freed stay resident on the heap (see
                # _memory.warm_allocator): give them back before the line is
                # parsed beside them, or they add a copy to the peak.
                release_free_memory()
            self._emit(line, out)
            start = end + 1
            if start >= size:
                return size
            count = 1
        find = data.find
        end = find(_LF, start)
        if start == 0 and end == size - 1:
            # One whole line: a request or an answer read on its own.
            self._emit(data[:end], out)
            return size
        # JSON text holds no raw CR, so a read without one, no longer than
        # the limit, needs no check per line: the common case, by far.
        plain = size - start <= self.max_line_bytes and data.find(b"\r", start) < 0
        left = max_lines - count if max_lines else 0
        if max_lines and left <= 0:
            return start
        if start == 0 and 0 <= end < _SHORT_LINE:
            # Short lines: one split() beats a Python loop of find() calls.
            parts = data.split(_LF, left) if left else data.split(_LF)
            rest = parts.pop()
            if left and len(parts) == left and _LF in rest:
                stop = size - len(rest)  # more lines than asked for: they wait
                rest = b""
            else:
                stop = size
            if plain:
                out.extend(parts)
            else:
                for line in parts:
                    self._emit(line, out)
        else:
            # Long lines: split() compares byte by byte, find() runs on
            # memchr, over ten times faster; on a large message the
            # difference is most of the cost of framing.
            stop = size
            while end >= 0:
                if plain:
                    out.append(data[start:end])
                else:
                    self._emit(data[start:end], out)
                start = end + 1
                end = find(_LF, start)
                if left:
                    left -= 1
                    if not left and end >= 0:
                        stop = start
                        break
            rest = data[start:] if start else data
            if stop < size:
                rest = b""
        if rest:
            self._add_partial(rest, out)
        return stop

    def _emit(self, line: bytes, out: list[Line]) -> None:
        if len(line) > self.max_line_bytes:
            out.append(OversizeLine(line[:ID_RECOVERY_BYTES], len(line), self.max_line_bytes))
            return
        if line[-1:] == b"\r":
            line = line[:-1]
        out.append(line)

    def _add_partial(self, data: bytes, out: list[Line]) -> None:
        size = self.buffered + len(data)
        if size > self.max_line_bytes:
            out.append(OversizeLine(self._head(data), size, self.max_line_bytes))
        elif self._budget is not None and not self._budget.reserve(len(data)):
            out.append(RefusedLine(self._head(data), size))  # LIMIT-7
        else:
            self._chunks.append(data)
            self.buffered = size
            return
        held = self.buffered
        self._drop_partial()
        self._discarding = True
        if held >= _TRIM_JOINED:
            release_free_memory()  # the pieces just dropped, as in _cut

    def _release_pending(self) -> None:
        if self._budget is not None and self.buffered:
            self._budget.release(self.buffered)
        self.buffered = 0

    def _drop_partial(self) -> None:
        self._chunks = []
        self._release_pending()

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
