"""Helpers for the server tests: a raw wire client and an in-process server thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

import uvloop
from pixl_ipc.server import IPCServer
from support import RawClient

T = TypeVar("T")


def echo(client: RawClient, data: Any, request_id: str = "rq0") -> Any:
    """Send one echo request and return the whole response."""
    return client.request(
        {"ipcReqID": request_id, "uri": "/ipcserver/test/echo", "data": data}
    )


class ServerThread:
    """Run an :class:`IPCServer` on an event loop (uvloop unless told) in a background thread."""

    def __init__(
        self,
        server: IPCServer,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop,
    ) -> None:
        self.server = server
        self.loop = loop_factory()
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
