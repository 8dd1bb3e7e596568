"""The floors, and the peers: what a pixl-ipc echo costs in Python without the kit.

Run as a process, like the reference server, and print ``listening on PATH``
to stderr when ready::

    python floors.py blocking --socket PATH   # floor (a), the server side
    python floors.py asyncio --socket PATH    # floor (b)
    python floors.py mpc --socket PATH        # peer: multiprocessing.connection
    python floors.py zmq-rep --socket PATH    # peer: pyzmq REP over ipc://PATH
    python floors.py zmq-router --socket PATH # peer: pyzmq ROUTER over ipc://PATH

Floor (a) is two processes with blocking AF_UNIX sockets and orjson: this
server reads lines, parses each and writes ``{"ipcReqID": id, "data": data}``
back; its client is :class:`workload.RawClient`. It serves one connection at a
time, which is all a sequential round trip needs.

Floor (b) is the best an asyncio server can do: an ``asyncio.Protocol`` on
uvloop (when installed) that splits lines in ``data_received``, parses each
with orjson and answers the same reply, with no routing, no stats and no
limits. Anything the reference server does beyond that is its overhead.

The peers are what a Python user would pick instead of pixl-ipc for local
request and reply, each answering the same reply to the same request bytes:
``multiprocessing.connection`` (a Listener on AF_UNIX, length-prefixed
messages, orjson payloads), pyzmq REQ/REP for one request at a time, and
pyzmq ROUTER for DEALER clients that keep many requests in flight.
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


def serve_mpc(path: str) -> None:
    """Peer: multiprocessing.connection, one connection at a time, as floor (a)."""
    from multiprocessing.connection import Listener

    with Listener(path, family="AF_UNIX") as listener:
        print(f"listening on {path}", file=sys.stderr, flush=True)
        while True:
            with listener.accept() as conn:
                try:
                    while True:
                        conn.send_bytes(_reply(conn.recv_bytes()))
                except (EOFError, OSError):
                    pass  # the client went away; wait for the next one


def serve_zmq(path: str, kind: str) -> None:
    """Peer: pyzmq REP (one request at a time) or ROUTER (any number in flight)."""
    import zmq

    context = zmq.Context()
    sock = context.socket(zmq.REP if kind == "zmq-rep" else zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(f"ipc://{path}")
    print(f"listening on {path}", file=sys.stderr, flush=True)
    if kind == "zmq-rep":
        while True:
            sock.send(_reply(sock.recv()))
    while True:
        # A DEALER's request arrives as [identity, payload]; the reply goes back
        # to that identity.
        identity, payload = sock.recv_multipart()
        sock.send_multipart([identity, _reply(payload)])


def main(argv: Sequence[str] | None = None) -> int:
    """Run one floor or peer server until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=["blocking", "asyncio", "mpc", "zmq-rep", "zmq-router"])
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    warm_heap()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if args.kind == "blocking":
            serve_blocking(args.socket)
        elif args.kind == "asyncio":
            serve_asyncio(args.socket)
        elif args.kind == "mpc":
            serve_mpc(args.socket)
        else:
            serve_zmq(args.socket, args.kind)
    except KeyboardInterrupt:
        pass
    finally:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
