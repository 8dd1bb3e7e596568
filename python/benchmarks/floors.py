"""The floors: the least work a pixl-ipc echo can cost in Python on this machine.

Run as a process, like the reference server, and print ``listening on PATH``
to stderr when ready::

    python floors.py blocking --socket PATH   # floor (a), the server side
    python floors.py asyncio --socket PATH    # floor (b)

Floor (a) is two processes with blocking AF_UNIX sockets and orjson: this
server reads lines, parses each and writes ``{"ipcReqID": id, "data": data}``
back; its client is :class:`workload.RawClient`. It serves one connection at a
time, which is all a sequential round trip needs.

Floor (b) is the best an asyncio server can do: an ``asyncio.Protocol`` on
uvloop (when installed) that splits lines in ``data_received``, parses each
with orjson and answers the same reply, with no routing, no stats and no
limits. Anything the reference server does beyond that is its overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any, cast

import orjson
from workload import LineReader, warm_heap

_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE


def _reply(line: bytes) -> bytes:
    message = orjson.loads(line)
    return orjson.dumps(
        {"ipcReqID": message.get("ipcReqID"), "data": message.get("data")}, option=_APPEND_NEWLINE
    )


def _listen(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(511)
    return listener


def serve_blocking(path: str) -> None:
    """Floor (a): answer one connection at a time with blocking calls."""
    listener = _listen(path)
    print(f"listening on {path}", file=sys.stderr, flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            reader = LineReader(conn)
            try:
                while (line := reader.readline()) is not None:
                    if line:
                        conn.sendall(_reply(line))
            except OSError:
                pass  # the client went away; wait for the next one


class _EchoProtocol(asyncio.Protocol):
    """Floor (b): split lines, parse, answer; nothing else."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if b"\n" not in data:
            self.chunks.append(data)
            return
        if self.chunks:
            self.chunks.append(data)
            data = b"".join(self.chunks)
            self.chunks = []
        # find() runs on memchr; split() would compare byte by byte.
        out = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if end > start:
                out.append(_reply(data[start:end]))
            start = end + 1
        if start < len(data):
            self.chunks.append(data[start:])
        assert self.transport is not None
        self.transport.write(b"".join(out))


async def _serve_asyncio(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(_EchoProtocol, path, backlog=511)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"listening on {path}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


def serve_asyncio(path: str) -> None:
    """Floor (b): the bare asyncio echo server, on uvloop when installed."""
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    runner(_serve_asyncio(path))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one floor server until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=["blocking", "asyncio"])
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    warm_heap()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if args.kind == "blocking":
            serve_blocking(args.socket)
        else:
            serve_asyncio(args.socket)
    except KeyboardInterrupt:
        pass
    finally:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
