"""Resource counting and a full listen backlog, for the client tests."""

from __future__ import annotations

import os
import socket
import threading


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
