"""Helpers shared by every test directory: reference servers in subprocesses, /proc readings.

A server's stderr is drained by a thread once it is ready, so that a server
that logs a lot under faults never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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
