"""Fixtures for client tests: scripted peers and resource counting."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer import Script, ScriptedPeer


@pytest.fixture
def peer_factory(short_tmp: Path) -> Iterator[Callable[..., ScriptedPeer]]:
    """Start scripted peers on fresh socket paths; all are stopped afterwards."""
    peers: list[ScriptedPeer] = []

    def factory(script: Script | None = None, path: str | None = None) -> ScriptedPeer:
        peer = ScriptedPeer(
            path or str(short_tmp / f"p{len(peers)}.sock"),
            *([script] if script else []),
        )
        peer.__enter__()
        peers.append(peer)
        return peer

    yield factory
    for peer in peers:
        peer.stop()
    errors = [e for peer in peers for e in peer.errors]
    assert not errors, errors


def open_sockets() -> set[str]:
    """The sockets this process holds open, as ``socket:[inode]`` names."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            names.add(target)
    return names


def socket_name(fd: int) -> str:
    """The ``socket:[inode]`` name of an open socket descriptor."""
    return os.readlink(f"/proc/self/fd/{fd}")


def settles(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` (a peer's thread may lag)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def thread_count() -> int:
    """Live threads of this process."""
    return threading.active_count()


class FullBacklog:
    """A listener that never accepts, with its listen backlog filled up."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(0)
        self.held: list[socket.socket] = []
        while True:
            sock = socket.socket(socket.AF_UNIX)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:
                sock.close()
                break
            self.held.append(sock)

    def close(self) -> None:
        for sock in self.held:
            sock.close()
        self.listener.close()
