"""Shared fixtures: short temporary socket paths and reference servers in subprocesses.

Socket paths are made under a fresh short directory because AF_UNIX paths are
limited to 107 bytes, which pytest's own tmp_path can exceed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A fresh directory with a short path, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pxl-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(short_tmp: Path) -> str:
    """A socket path nobody uses yet."""
    return str(short_tmp / "s.sock")


@dataclass
class ServerProcess:
    """A reference server running in a subprocess (``pixl-ipc serve``)."""

    path: str
    proc: subprocess.Popen[bytes]
    stderr_lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_server(
    path: str, *args: str, env: dict[str, str] | None = None, timeout: float = 15.0
) -> ServerProcess:
    """Start ``pixl-ipc serve --socket path *args`` and wait for its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixl_ipc", "serve", "--socket", path, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    server = ServerProcess(path, proc)
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = proc.stderr.readline()
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip("\n")
        server.stderr_lines.append(line)
        if line == f"listening on {path}":
            return server
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not start on {path}: {server.stderr_lines}")


@pytest.fixture
def server_factory(short_tmp: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start reference servers in subprocesses; every one is stopped afterwards.

    Call it as ``server_factory(*extra_args, path=None)``.
    """
    started: list[ServerProcess] = []

    def factory(
        *args: str, path: str | None = None, env: dict[str, str] | None = None
    ) -> ServerProcess:
        server = start_server(
            path or str(short_tmp / f"s{len(started)}.sock"), *args, env=env
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """One reference server with the built-in handlers."""
    return server_factory()
