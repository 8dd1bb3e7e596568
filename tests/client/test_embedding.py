"""A program that embeds the clients keeps its process settings: no malloc tuning.

glibc serves blocks of 128 KiB and more with mmap until the program itself
frees such a block, and then up to that block's size. A library that moved
it to several MiB behind the program's back (as the kit's clients once did
on connect) would change how the whole process uses memory. Checked in a
fresh process, through mallinfo2(): after both clients have connected and
sent, 1 MiB is still served by mmap.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, ctypes, json, os, socket, sys, tempfile, threading
    from pixl_ipc import AsyncIPCClient, IPCClient

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2

    def served_by_mmap(size):
        before = libc.mallinfo2().hblks
        block = bytearray(size)
        return libc.mallinfo2().hblks > before

    path = os.path.join(tempfile.mkdtemp(), "s.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)

    def serve():
        while True:
            conn, _ = listener.accept()
            for line in conn.makefile("rb"):
                request = json.loads(line)
                reply = {"ipcReqID": request["ipcReqID"], "data": request["data"]}
                conn.sendall(json.dumps(reply).encode() + b"\\n")

    threading.Thread(target=serve, daemon=True).start()
    with IPCClient(path) as client:
        assert client.send("/x", {"a": 1}) == {"a": 1}

    async def main():
        async with AsyncIPCClient(path) as client:
            assert await client.send("/x", [1]) == [1]

    asyncio.run(main())
    # Probed once: freeing the probe's own block moves the threshold.
    print(served_by_mmap(1 << 20))
    """
)


def test_clients_leave_the_processs_malloc_thresholds_alone() -> None:
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018
    except AttributeError:
        pytest.skip("not glibc 2.33 or later: no mallinfo2()")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True"]
