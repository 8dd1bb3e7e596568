"""Helpers for the server tests: a raw wire client and an in-process server thread."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

import uvloop
from pixl_ipc.server import IPCServer

T = TypeVar("T")


class RawClient:
    """A blocking AF_UNIX client that speaks bytes, to see exactly what a server sends."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Connect in blocking mode: a non-blocking AF_UNIX connect fails with
        # EAGAIN instead of waiting when the listen backlog is full.
        self.sock.connect(path)
        self.sock.settimeout(timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def read_line(self, timeout: float | None = None) -> bytes:
        """One line from the server, without its LF; raises EOFError at end of stream."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        end = self.buffer.find(b"\n")
        if end < 0:
            # Chunks are joined once: a long line costs O(size), not O(size^2).
            chunks = [self.buffer]
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise EOFError(
                        f"connection closed; unfinished: {chunks[0][:200]!r}"
                    )
                chunks.append(chunk)
                if b"\n" in chunk:
                    break
            self.buffer = b"".join(chunks)
            end = self.buffer.find(b"\n")
        line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
        return line

    def read_json(self, timeout: float | None = None) -> Any:
        return json.loads(self.read_line(timeout))

    def request(self, message: dict[str, Any]) -> Any:
        self.send_json(message)
        return self.read_json()

    def read_until_eof(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes (raises TimeoutError if it does not)."""
        self.sock.settimeout(timeout)
        data = self.buffer
        self.buffer = b""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo(client: RawClient, data: Any, request_id: str = "rq0") -> Any:
    """Send one echo request and return the whole response."""
    return client.request(
        {"ipcReqID": request_id, "uri": "/ipcserver/test/echo", "data": data}
    )


class ServerThread:
    """Run an :class:`IPCServer` on an event loop in a background thread."""

    def __init__(self, server: IPCServer) -> None:
        self.server = server
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._error: Exception | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except Exception as exc:  # noqa: BLE001 - re-raised in the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_until_complete(self.server.serve_forever())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def start(self) -> ServerThread:
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Call ``fn`` on the server's loop and wait for its result."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.run(self.server.shutdown(), timeout=30)
            self.thread.join(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
