"""Raw client connections to a server under test (spec sections 1-2), with deadlines.

:class:`WireConnection` is a plain blocking AF_UNIX socket with a deadline on
every operation: it writes bytes exactly as told (whole, in chunks, or many
messages coalesced in one write) and reads LF-terminated lines (FRAME-1,
FRAME-2: a CR before the LF is dropped), decoding each as JSON. Every wait
takes an absolute deadline (``time.monotonic()``), so that a hung peer costs
a bounded time. What it writes and reads goes into the case's
:class:`~.transcript.Transcript` when it has one. Cutting lines and decoding
them is :mod:`.wirekit`'s; nothing is shared with the implementations under
test.
"""

from __future__ import annotations

import errno
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .transcript import Transcript
from .wirekit import LineSplitter, Oversize, decode_line, strip_cr

__all__ = [
    "MAX_RECEIVED_LINE",
    "Received",
    "WireClosed",
    "WireConnection",
    "WireError",
    "WireTimeout",
    "describe_os_error",
]

#: The longest line the suite accepts from a peer: above the spec's 16 MiB
#: floor with room for the 64 MiB reference default and the response overhead.
MAX_RECEIVED_LINE = 96 * 1024 * 1024
_RECV_SIZE = 1 << 20


class WireError(Exception):
    """A connection could not do what was asked; the text says what happened."""


class WireTimeout(WireError):
    """A deadline passed."""


class WireClosed(WireError):
    """The peer closed (or reset) the connection."""


@dataclass(frozen=True)
class Received:
    """One line received from the peer.

    Attributes:
        raw: the line without its LF (and without a CR before it).
        value: the decoded JSON value, or None when ``error`` is set.
        error: why the line is not JSON (None when it is).
        at: ``time.monotonic()`` when the line was complete.
    """

    raw: bytes
    value: Any
    error: str | None
    at: float

    @classmethod
    def of(cls, raw: bytes) -> Received:
        """A line just received, decoded."""
        value, error = decode_line(raw)
        return cls(raw, value, error, time.monotonic())


def describe_os_error(exc: OSError) -> str:
    """What an error of the socket means for the server under test, in words."""
    if exc.errno == errno.ECONNRESET:
        return (
            "the server reset the connection (it closed it with data unread, or ran out of"
            " resources such as file descriptors)"
        )
    if exc.errno == errno.EPIPE:
        return "the server had closed the connection"
    if exc.errno == errno.ECONNREFUSED:
        return "nothing accepts connections there (connection refused: the server is gone)"
    if exc.errno == errno.ENOENT:
        return "no socket at the path (no such file)"
    if exc.errno == errno.EMFILE:
        return "the runner ran out of file descriptors"
    return exc.strerror or str(exc)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise WireTimeout("the deadline passed")
    return left


class WireConnection:
    """A raw client connection to a server's socket.

    Args:
        path: the socket path.
        deadline: when connecting must have succeeded (``time.monotonic()``).
        name: the connection's name in the transcript.
        transcript: where to note what is written and read, if anywhere.

    Raises:
        WireError: the connection could not be made (the text says why).
    """

    def __init__(
        self, path: str, deadline: float, *, name: str = "main", transcript: Transcript | None = None
    ) -> None:
        self.path = path
        self.name = name
        self.transcript = transcript
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._splitter = LineSplitter(MAX_RECEIVED_LINE)
        self._lines: deque[bytes] = deque()
        self._eof = False
        self.closed = False
        self.last_send_at = time.monotonic()
        try:
            while True:
                self.sock.settimeout(_remaining(deadline))
                try:
                    self.sock.connect(path)
                    break
                except BlockingIOError:
                    # EAGAIN: the listen backlog is full. A blocking connect
                    # would wait for the server to accept; so do we, briefly.
                    time.sleep(min(0.005, _remaining(deadline)))
        except TimeoutError as exc:
            self.sock.close()
            raise WireTimeout(f"connecting to {path} timed out") from exc
        except OSError as exc:
            self.sock.close()
            raise WireError(f"cannot connect to {path}: {describe_os_error(exc)}") from exc
        except WireTimeout:
            self.sock.close()
            raise
        self._note_event("connected")

    def _note(self, direction: str, data: bytes) -> None:
        if self.transcript is not None:
            self.transcript.record(direction, self.name, data)

    def _note_event(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.event(self.name, text)

    def fileno(self) -> int:
        """The socket's file descriptor (for selectors)."""
        return self.sock.fileno()

    def send_bytes(
        self, data: bytes, deadline: float, *, chunk: int | None = None, pause_s: float = 0.0
    ) -> None:
        """Write bytes, whole or in pieces of ``chunk`` bytes ``pause_s`` apart.

        Raises:
            WireTimeout: the peer did not take the bytes before the deadline.
            WireClosed: the peer closed the connection.
        """
        pieces = [data] if not chunk else [data[i : i + chunk] for i in range(0, len(data), chunk)]
        try:
            for index, piece in enumerate(pieces):
                if index and pause_s:
                    time.sleep(min(pause_s, _remaining(deadline)))
                self.sock.settimeout(_remaining(deadline))
                self.sock.sendall(piece)
                self._note("out", piece)
        except TimeoutError as exc:
            raise WireTimeout("the server did not read what was sent before the deadline") from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._note_event(f"write failed: {exc.strerror}")
            raise WireClosed(
                f"the server closed the connection while it was written to ({exc.strerror})"
            ) from exc
        except OSError as exc:
            raise WireClosed(f"writing failed: {describe_os_error(exc)}") from exc
        finally:
            self.last_send_at = time.monotonic()

    def send_some(self, data: bytes) -> int:
        """One non-blocking write (the socket must be non-blocking); the bytes taken.

        Raises:
            BlockingIOError: the peer takes nothing now.
            OSError: the write failed.
        """
        sent = self.sock.send(data)
        self._note("out", data[:sent])
        self.last_send_at = time.monotonic()
        return sent

    def shutdown_write(self) -> None:
        """Half-close: shut down the sending side (LIFE-2)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise WireClosed(f"shutdown failed: {describe_os_error(exc)}") from exc
        self._note_event("the runner shut down its sending side")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self.sock.close()
            self._note_event("the runner closed the connection")

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket (here or by a selector loop); b"" marks EOF.

        Raises:
            WireError: the peer sent a line longer than :data:`MAX_RECEIVED_LINE`.
        """
        if not data:
            if not self._eof:
                self._note_event("end of stream from the server")
            self._eof = True
            return
        self._note("in", data)
        for line in self._splitter.feed(data):
            if isinstance(line, Oversize):
                raise WireError(f"the server sent a line longer than {MAX_RECEIVED_LINE} bytes")
            self._lines.append(strip_cr(line)[0])  # FRAME-2

    def recv_some(self) -> None:
        """One read of the socket into the buffer (non-blocking use by selector loops).

        Raises:
            BlockingIOError: nothing to read now.
            WireClosed: the connection was reset.
        """
        try:
            data = self.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError, TimeoutError):
            raise
        except OSError as exc:
            self._note_event(f"read failed: {describe_os_error(exc)}")
            raise WireClosed(describe_os_error(exc)) from exc
        self.feed(data)

    def read_line(self, deadline: float) -> bytes | None:
        """Read the next complete line.

        Returns:
            The line, or None at end of stream (a partial line there is dropped).

        Raises:
            WireTimeout: no complete line before the deadline.
            WireClosed: the connection was reset.
            WireError: the peer sent a line longer than :data:`MAX_RECEIVED_LINE`.
        """
        while not self._lines:
            if self._eof:
                return None
            try:
                self.sock.settimeout(_remaining(deadline))
                self.recv_some()
            except TimeoutError as exc:
                raise WireTimeout("nothing more arrived before the deadline") from exc
        return self._lines.popleft()

    def read_message(self, deadline: float) -> Received | None:
        """Read the next non-blank line and decode it as JSON.

        Returns:
            The :class:`Received` line, or None at end of stream.

        Raises:
            WireTimeout, WireClosed, WireError: as :meth:`read_line`.
        """
        while True:
            raw = self.read_line(deadline)
            if raw is None:
                return None
            if not raw.strip(b" \t\r"):
                continue  # FRAME-4: a blank line is no message
            return Received.of(raw)

    def poll_line(self) -> bytes | None:
        """A complete line already buffered, undecoded, without reading the socket (or None)."""
        return self._lines.popleft() if self._lines else None

    def poll_message(self) -> Received | None:
        """A complete line already buffered, decoded, without reading the socket (or None)."""
        raw = self.poll_line()
        return None if raw is None else Received.of(raw)

    @property
    def at_eof(self) -> bool:
        """True once the peer has closed its side and no complete line is left."""
        return self._eof and not self._lines
