"""A race on the socket path: an attacker swaps a symlink in for the socket while the server starts.

``python socket_race.py attack PATH VICTIM SECONDS`` watches PATH's directory
with inotify and, the moment an entry named like PATH is created, renames a
symlink to VICTIM over it (prints how many swaps it made).

``python socket_race.py start PATH VICTIM SECONDS`` starts and stops an
IPCServer on PATH with mode 666, again and again, for SECONDS; it prints, as
JSON, how many starts succeeded or were refused and how many times VICTIM's
mode (600) changed, restoring it each time.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import sys
import time

_IN_CREATE = 0x100


def attack(path: str, victim: str, seconds: float) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    libc.inotify_add_watch(fd, os.path.dirname(path).encode(), _IN_CREATE)
    spare = path + ".swap"
    name = os.path.basename(path).encode() + b"\0"
    swaps = 0
    spins = 0
    end = time.monotonic() + seconds
    while True:
        if not os.path.lexists(spare):
            os.symlink(victim, spare)
        spins += 1
        if spins % 1024 == 0 and time.monotonic() > end:
            return swaps
        try:
            events = os.read(fd, 4096)
        except BlockingIOError:
            continue  # a busy loop: the window after bind is a few microseconds
        if name in events:
            try:
                os.rename(spare, path)
                swaps += 1
            except OSError:
                pass


def start(path: str, victim: str, seconds: float) -> dict[str, int]:
    from pixl_ipc.errors import StartupError
    from pixl_ipc.server import IPCServer

    counts = {"started": 0, "refused": 0, "victim_changed": 0}
    messages: set[str] = set()

    async def cycle() -> None:
        server = IPCServer(path, socket_chmod="666", exit_timeout=0)
        try:
            await server.start()
        except StartupError as exc:
            counts["refused"] += 1
            messages.add(str(exc).replace(path, "PATH"))
            return
        counts["started"] += 1
        await server.shutdown()

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.islink(path):
            os.unlink(path)  # the attacker's last swap
        asyncio.run(cycle())
        if os.stat(victim).st_mode & 0o777 != 0o600:
            counts["victim_changed"] += 1
            os.chmod(victim, 0o600)
    print(json.dumps({**counts, "messages": sorted(messages)}))
    return counts


if __name__ == "__main__":
    command, path_arg, victim_arg, seconds_arg = sys.argv[1:5]
    if command == "attack":
        print(attack(path_arg, victim_arg, float(seconds_arg)))
    else:
        start(path_arg, victim_arg, float(seconds_arg))
