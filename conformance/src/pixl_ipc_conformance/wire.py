"""Raw client connections: the suite's own implementation of the wire (spec sections 1-2).

:class:`WireConnection` is a plain blocking AF_UNIX socket with deadlines on
every operation: it writes bytes exactly as told (whole, in chunks, or many
messages coalesced in one write) and reads LF-terminated lines (FRAME-1,
FRAME-2: a CR before the LF is dropped), decoding each as JSON. Nothing is
shared with the implementations under test. Every wait takes an absolute
deadline (``time.monotonic()``), so that a hung peer costs a bounded time.

:func:`encode_message` writes compact JSON (FRAME-1); :func:`decode_line`
reads one received line; :func:`json_equal` compares JSON values strictly
(``true`` is not ``1``).
"""

from __future__ import annotations

import json
import math
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_RECEIVED_LINE",
    "Received",
    "WireClosed",
    "WireConnection",
    "WireError",
    "WireTimeout",
    "decode_line",
    "encode_message",
    "json_equal",
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


def encode_message(value: Any, *, ascii: bool = False) -> bytes:
    """Serialize one value as a compact JSON text, UTF-8, without the LF (FRAME-1).

    Args:
        value: any JSON value.
        ascii: escape every non-ASCII character (the receiver must read both forms).

    Returns:
        The bytes.
    """
    return json.dumps(value, ensure_ascii=ascii, separators=(",", ":"), allow_nan=False).encode(
        "utf-8", "surrogatepass"
    )


def decode_line(raw: bytes) -> tuple[Any, str | None]:
    """Decode one received line as strict JSON (UTF-8, no NaN/Infinity).

    Returns:
        ``(value, None)`` or ``(None, reason)``.
    """

    def no_constants(name: str) -> Any:
        raise ValueError(f"non-finite number {name} (FRAME-9)")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 (FRAME-9): {exc}"
    try:
        return json.loads(text, parse_constant=no_constants), None
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON: {exc}"


def json_equal(a: Any, b: Any) -> bool:
    """Strict JSON equality: booleans are not numbers, ``1`` equals ``1.0``.

    Returns:
        True when both values are the same JSON value.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b and not (isinstance(a, float) and math.isnan(a))
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return False


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

    Raises:
        WireError: the connection could not be made (the text says why).
    """

    def __init__(self, path: str, deadline: float) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = bytearray()
        self._scanned = 0
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
            raise WireError(f"cannot connect to {path}: {exc.strerror or exc}") from exc
        except WireTimeout:
            self.sock.close()
            raise

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
        except TimeoutError as exc:
            raise WireTimeout("the server did not read what was sent before the deadline") from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WireClosed(
                f"the server closed the connection while it was written to ({exc.strerror})"
            ) from exc
        except OSError as exc:
            raise WireClosed(f"writing failed: {exc.strerror or exc}") from exc
        finally:
            self.last_send_at = time.monotonic()

    def shutdown_write(self) -> None:
        """Half-close: shut down the sending side (LIFE-2)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise WireClosed(f"shutdown failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self.sock.close()

    def _take_line(self) -> bytes | None:
        index = self._buffer.find(b"\n", self._scanned)
        if index < 0:
            self._scanned = len(self._buffer)
            return None
        line = bytes(self._buffer[:index])
        del self._buffer[: index + 1]
        self._scanned = 0
        # FRAME-2: a CR immediately before the LF is not part of the line.
        return line[:-1] if line.endswith(b"\r") else line

    def read_line(self, deadline: float) -> bytes | None:
        """Read the next complete line.

        Returns:
            The line, or None at end of stream (a partial line there is dropped).

        Raises:
            WireTimeout: no complete line before the deadline.
            WireClosed: the connection was reset.
            WireError: the peer sent a line longer than :data:`MAX_RECEIVED_LINE`.
        """
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if self._eof:
                return None
            if len(self._buffer) > MAX_RECEIVED_LINE:
                raise WireError(f"the server sent a line longer than {MAX_RECEIVED_LINE} bytes")
            try:
                self.sock.settimeout(_remaining(deadline))
                data = self.sock.recv(_RECV_SIZE)
            except TimeoutError as exc:
                raise WireTimeout("nothing more arrived before the deadline") from exc
            except ConnectionResetError as exc:
                raise WireClosed("the server reset the connection") from exc
            except OSError as exc:
                raise WireClosed(f"reading failed: {exc.strerror or exc}") from exc
            if not data:
                self._eof = True
            else:
                self._buffer += data

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
            value, error = decode_line(raw)
            return Received(raw, value, error, time.monotonic())

    def poll_message(self) -> Received | None:
        """A complete line already buffered, without reading the socket (or None)."""
        raw = self._take_line()
        if raw is None:
            return None
        value, error = decode_line(raw)
        return Received(raw, value, error, time.monotonic())

    def feed(self, data: bytes) -> None:
        """Add bytes read elsewhere (by a selector loop) to the buffer; b"" marks EOF."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def at_eof(self) -> bool:
        """True once the peer has closed its side and the buffer holds no full line."""
        return self._eof and self._buffer.find(b"\n") < 0
