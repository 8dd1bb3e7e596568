"""Fixtures of the service tests: a stand-in for systemd's notification socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def notify_socket(short_tmp: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket where systemd's would be: (socket, NOTIFY_SOCKET value)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(short_tmp / "notify")
    sock.bind(path)
    sock.settimeout(20)
    yield sock, path
    sock.close()
