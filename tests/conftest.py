"""Shared fixtures: short temporary socket paths and reference servers in subprocesses.

The helpers behind them live in ``support.py``, importable from every test.

Socket paths are made under a fresh short directory because AF_UNIX paths are
limited to 107 bytes, which pytest's own tmp_path can exceed.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from support import Server, start_server

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


@pytest.fixture
def server_factory(short_tmp: Path) -> Iterator[Callable[..., Server]]:
    """Start reference servers in subprocesses; every one is stopped afterwards.

    Call it as ``server_factory(*extra_args, path=None, env=None, prefix=())``
    (see :func:`support.start_server`).
    """
    started: list[Server] = []

    def factory(
        *args: str,
        path: str | None = None,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> Server:
        server = start_server(
            path or str(short_tmp / f"s{len(started)}.sock"),
            *args,
            env=env,
            prefix=prefix,
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def server(server_factory: Callable[..., Server]) -> Server:
    """One reference server with the built-in handlers."""
    return server_factory()
