"""Hostile peers that any pixl-ipc server should survive, as plain functions over a socket path.

Each probe speaks the wire with the standard library only and imports nothing
from the server it attacks, so that it can check any implementation (and can
become a case of the conformance suite). A probe returns what it saw; the
caller decides what to assert, usually together with a reading of the
server's memory or descriptors.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ECHO = "/ipcserver/test/echo"
DELAY = "/ipcserver/test/delay"


def connect(path: str, timeout: float = 10.0) -> socket.socket:
    """A blocking connection; waits while the listen backlog is full (EAGAIN)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
        except BaseException:
            sock.close()
            raise


def request_line(request_id: Any, uri: Any, data: Any = None) -> bytes:
    """One request, LF included."""
    message = {"ipcReqID": request_id, "uri": uri}
    if data is not None:
        message["data"] = data
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class LineReader:
    """Reads LF-terminated JSON messages from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def message(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message; EOFError at end of stream, TimeoutError if none comes."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        value = json.loads(line)
        assert isinstance(value, dict), line[:200]
        return value

    def until(
        self, request_id: Any, timeout: float = 10.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Messages up to the answer to ``request_id``: that answer and those before it."""
        deadline = time.monotonic() + timeout
        before: list[dict[str, Any]] = []
        while True:
            message = self.message(max(0.01, deadline - time.monotonic()))
            if message.get("ipcReqID") == request_id:
                return message, before
            before.append(message)


def echo_round_trip(path: str, token: str, timeout: float = 10.0) -> float:
    """One echo on a fresh connection; its round-trip time in seconds.

    Raises:
        AssertionError: the answer is not the echo of ``token``.
        OSError, EOFError, TimeoutError: the server did not answer.
    """
    started = time.monotonic()
    with connect(path, timeout) as sock:
        sock.sendall(request_line(token, ECHO, {"t": token}))
        answer, _ = LineReader(sock).until(token, timeout)
    assert answer == {"ipcReqID": token, "data": {"t": token}}, answer
    return time.monotonic() - started


@dataclass
class LatencyWatch:
    """Round trips of a well-behaved client, measured in a thread while something else happens."""

    path: str
    interval: float = 0.005
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            sock = connect(self.path)
        except OSError as exc:
            self.errors.append(f"connect: {exc}")
            return
        reader = LineReader(sock)
        with sock:
            n = 0
            while not self._stop.is_set():
                token = f"watch{n}"
                n += 1
                started = time.monotonic()
                try:
                    sock.sendall(request_line(token, ECHO, token))
                    answer, before = reader.until(token, 30)
                except (OSError, EOFError, TimeoutError, AssertionError) as exc:
                    self.errors.append(f"{token}: {exc!r}")
                    return
                if answer != {"ipcReqID": token, "data": token} or before:
                    self.errors.append(
                        f"{token}: answered {answer!r} after {before[:3]!r}"
                    )
                    return
                self.samples.append(time.monotonic() - started)
                time.sleep(self.interval)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples)
        return (
            ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
            if ordered
            else float("nan")
        )


@contextmanager
def watching_latency(path: str) -> Iterator[LatencyWatch]:
    """A :class:`LatencyWatch` running for the duration of the ``with`` block."""
    watch = LatencyWatch(path)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch._stop.set()
        thread.join(40)


# --- the probes ---------------------------------------------------------------


def connect_send_close_storm(path: str, cycles: int, delay_ms: int = 60_000) -> int:
    """Connect, send a long delay request, close at once; ``cycles`` times.

    A server that keeps a closed connection until its handlers finish runs
    out of descriptors. Returns how many cycles could connect.
    """
    line = request_line("storm", DELAY, {"delay": delay_ms})
    connected = 0
    for _ in range(cycles):
        try:
            sock = connect(path, 5)
        except OSError:
            continue
        connected += 1
        try:
            sock.sendall(line)
        except OSError:
            pass
        sock.close()
    return connected


def tiny_line_flood(path: str, size: int = 256 * 1024) -> tuple[int, float]:
    """Write ``size`` bytes of ``{`` lines (each a malformed message) in one go, and read the answers.

    A server that parses a whole read before serving anyone else stalls
    every other client meanwhile. Returns how many answers came back and the
    seconds from the write to the last of them (the flood's own duration).
    For a flood whose sender does not read, see :func:`pipelined_without_reading`.
    """
    sock = connect(path, 30)
    payload = b"{\n" * (size // 2)
    started = time.monotonic()
    sender = threading.Thread(target=_send_quietly, args=(sock, payload), daemon=True)
    sender.start()
    lines = 0
    last = started
    sock.settimeout(5.0)
    try:
        while lines < size // 2:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            count = chunk.count(b"\n")
            if count:
                lines += count
                last = time.monotonic()
    finally:
        sender.join(30)
        sock.close()
    return lines, last - started


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    # The caller may close the socket before all is sent.
    try:
        sock.sendall(data)
    except OSError:
        pass


def pipelined_without_reading(path: str, count: int, line: bytes) -> socket.socket:
    """Send ``count`` copies of ``line`` from a thread and read nothing; returns the socket.

    The caller reads (or closes) it later. A server that buffers every answer
    of a peer that does not read grows without bound.
    """
    sock = connect(path, 30)
    sock.settimeout(120)
    threading.Thread(
        target=_send_quietly, args=(sock, line * count), daemon=True
    ).start()
    return sock


def partial_lines(
    path: str, connections: int, size: int, request_id: str = "hoard", uri: str = ECHO
) -> list[socket.socket]:
    """Open ``connections`` connections, each writing ``size`` bytes of one unfinished request line.

    The line of connection N has the id ``{request_id}N`` and ends inside a
    string: the caller sends ``"}`` and LF to finish it. Returns the sockets.
    """
    socks = []
    for index in range(connections):
        sock = connect(path, 30)
        sock.settimeout(60)
        socks.append(sock)
        head = json.dumps({"ipcReqID": f"{request_id}{index}", "uri": uri, "data": ""})[
            :-2
        ].encode()
        sock.sendall(head + b"x" * (size - len(head)))
    return socks


def straddling_id_line(request_id: int, at: int = 4096) -> bytes:
    """A malformed line whose numeric ``"ipcReqID"`` starts just before byte ``at`` and ends after it."""
    digits = str(request_id).encode()
    member = b'"ipcReqID":'
    prefix = b'{"uri":"/ipcserver/test/echo","pad":"'
    pad = at - len(prefix) - len(b'",') - len(member) - len(digits) // 2
    line = prefix + b"p" * pad + b'",' + member + digits + b',"broken":}'
    start = line.index(member) + len(member)
    assert start < at < start + len(digits), (start, at)
    return line + b"\n"
