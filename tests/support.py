"""Helpers shared by every test directory: servers in subprocesses, a raw client, /proc readings.

A server's stderr is drained by a thread once it is ready, so that a server
that logs a lot under faults never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

#: The server's ready line: ``listening on PATH``.
READY_PREFIX = "listening on "


@dataclass
class Server:
    """A ``pixl-ipc serve`` subprocess with its stderr kept in memory."""

    path: str
    proc: subprocess.Popen[bytes]
    stderr_lines: list[str] = field(default_factory=list)
    _drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        """Resident set size in bytes (VmRSS)."""
        return rss_bytes(self.proc.pid)

    def fds(self) -> int:
        """How many file descriptors the server holds open."""
        return fd_count(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` unless it has exited; wait for the exit; return its status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        if self._drain is not None:
            self._drain.join(5)
        return status

    def log(self) -> str:
        """The server's stderr so far, for assertion messages."""
        return "\n".join(self.stderr_lines[-40:])


#: ``server_factory`` (tests/conftest.py): starts servers that are stopped after the test.
ServerFactory = Callable[..., Server]


def serve_command() -> list[str]:
    """``python -m pixl_ipc serve``, or what ``PIXL_SERVE_CMD`` says instead.

    With ``PIXL_SERVE_CMD`` the same tests run against another server that has
    the ``serve --socket PATH`` command line.
    """
    return shlex.split(os.environ.get("PIXL_SERVE_CMD", "")) or [
        sys.executable,
        "-m",
        "pixl_ipc",
        "serve",
    ]


def start_server(
    path: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    prefix: Sequence[str] = (),
) -> Server:
    """Start :func:`serve_command` ``--socket path *args`` and wait until it is ready.

    ``prefix`` goes before the command, e.g. ``["prlimit", "--nofile=256", "--"]``.
    """
    proc = subprocess.Popen(
        [*prefix, *serve_command(), "--socket", path, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    server = Server(path, proc)
    assert proc.stderr is not None
    stream = proc.stderr
    deadline = time.monotonic() + timeout
    ready = False
    while time.monotonic() < deadline:
        raw = stream.readline()
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip("\n")
        server.stderr_lines.append(line)
        if line == READY_PREFIX + path:
            ready = True
            break
    if not ready:
        server.stop(signal.SIGKILL)
        raise RuntimeError(
            f"server did not start on {path}: {server.stderr_lines[-20:]}"
        )

    def drain() -> None:
        for raw in stream:
            server.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))
            if len(server.stderr_lines) > 5000:
                del server.stderr_lines[:1000]

    server._drain = threading.Thread(target=drain, daemon=True)
    server._drain.start()
    return server


@contextlib.contextmanager
def process(args: Sequence[str], **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """``subprocess.Popen(args, **popen)``, killed if it still runs afterwards, its pipes closed.

    stdin is ``/dev/null`` unless ``popen`` says otherwise.
    """
    popen.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen(args, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def rss_bytes(pid: int) -> int:
    """The VmRSS of a process, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    """How many file descriptors a process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@contextlib.contextmanager
def serve_in_tempdir(*args: str) -> Iterator[Server]:
    """A subprocess server on a socket in a fresh short directory, stopped afterwards."""
    directory = tempfile.mkdtemp(prefix="pxl-")
    try:
        server = start_server(os.path.join(directory, "s.sock"), *args)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class RawClient:
    """A blocking AF_UNIX connection that speaks bytes, to see exactly what a server sends."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                # EAGAIN: the listen backlog is full; wait for room.
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise
                time.sleep(0.01)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def send_request(self, request_id: str, uri: str, data: Any = None) -> None:
        """Send one well-formed request without waiting for its answer."""
        self.send_json({"ipcReqID": request_id, "uri": uri, "data": data})

    def read_line(self, timeout: float | None = None) -> bytes:
        """One line, without its LF; raises TimeoutError, or EOFError at end of stream."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        end = self.buffer.find(b"\n")
        if end < 0:
            # Chunks are joined once: a long line costs O(size), not O(size^2).
            chunks = [self.buffer]
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise EOFError(
                        f"connection closed; unfinished: {chunks[0][:200]!r}"
                    )
                chunks.append(chunk)
                if b"\n" in chunk:
                    break
            self.buffer = b"".join(chunks)
            end = self.buffer.find(b"\n")
        line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
        return line

    def read_json(self, timeout: float | None = None) -> Any:
        return json.loads(self.read_line(timeout))

    def read_message(self, timeout: float | None = None) -> dict[str, Any]:
        """Read one line and parse it as a JSON object."""
        value = self.read_json(timeout)
        assert isinstance(value, dict), value
        return value

    def request(self, message: dict[str, Any]) -> Any:
        """Send a message and return the next one read."""
        self.send_json(message)
        return self.read_json()

    def read_until_id(
        self, request_id: Any, timeout: float = 10.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read messages until the one answering ``request_id``; return it and those before it."""
        deadline = time.monotonic() + timeout
        before: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no answer to {request_id!r} within {timeout} s; got {before[-5:]}"
                )
            message = self.read_message(left)
            if message.get("ipcReqID") == request_id:
                return message, before
            before.append(message)

    def read_until_eof(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes (raises TimeoutError if it does not)."""
        self.sock.settimeout(timeout)
        data = self.buffer
        self.buffer = b""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
