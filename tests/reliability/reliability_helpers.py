"""Shared tools of the reliability tests: servers in subprocesses, raw sockets, /proc readings.

The server's stderr is drained by a thread once it is ready, so that a server
that logs a lot under faults never blocks on a full pipe.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

#: The server's ready line (COMMON: ``listening on PATH``).
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


def start_server(
    path: str, *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Server:
    """Start ``python -m pixl_ipc serve --socket path *args`` and wait until it is ready.

    ``PIXL_SERVE_CMD`` in the environment replaces ``python -m pixl_ipc serve``,
    so that the same tests can be run against another server with that CLI.
    """
    command = shlex.split(os.environ.get("PIXL_SERVE_CMD", "")) or [
        sys.executable,
        "-m",
        "pixl_ipc",
        "serve",
    ]
    proc = subprocess.Popen(
        [*command, "--socket", path, *args],
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
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class RawConn:
    """A blocking AF_UNIX connection that speaks bytes, for tests that break the protocol."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                # EAGAIN: the listen backlog is full; a blocking connect would wait.
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise
                time.sleep(0.01)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, request_id: str, uri: str, data: Any = None) -> None:
        """Send one well-formed request."""
        self.send(
            json.dumps({"ipcReqID": request_id, "uri": uri, "data": data}).encode()
            + b"\n"
        )

    def read_line(self, timeout: float | None = None) -> bytes:
        """Read one line (without LF); raises TimeoutError, or EOFError when the server closed."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError(
                    f"connection closed with {len(self._buffer)} bytes of a partial line"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read_message(self, timeout: float | None = None) -> dict[str, Any]:
        """Read one line and parse it as a JSON object."""
        value = json.loads(self.read_line(timeout))
        assert isinstance(value, dict), value
        return value

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

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def server_module_ready() -> bool:
    """True when the reference server and the CLI ``serve`` command can be imported."""
    if os.environ.get("PIXL_SERVE_CMD"):
        return True
    try:
        importlib.import_module("pixl_ipc.server")
        importlib.import_module("pixl_ipc.cli.serve")
    except ImportError:
        return False
    return True
