"""Both clients against the reference server (``pixl-ipc serve`` in a subprocess)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc import AsyncIPCClient, IPCClient, RemoteError, ServerClosed

HANDLERS = """
def register(server):
    @server.uri("/test/push")
    def push(request):
        server.push(request.connection, {"echo": request.data})
        return "pushed"

    @server.uri("/test/fail")
    def fail(request):
        raise ValueError("secret detail")
"""


@pytest.fixture
def push_server(server_factory: Callable[..., Any], short_tmp: Path) -> Any:
    """A reference server with a handler that pushes and one that fails."""
    module = short_tmp / "handlers.py"
    module.write_text(HANDLERS)
    return server_factory("--handlers", str(module))


def test_blocking_client_with_the_reference_server(push_server: Any) -> None:
    pushes: list[dict[str, Any]] = []
    with IPCClient(push_server.path, on_push=pushes.append) as client:
        assert client.send("/ipcserver/test/echo", {"a": [1, 2]}) == {"a": [1, 2]}
        assert client.send("/ipcserver/test/delay", {"delay": 10}) == {"delay": 10}
        with pytest.raises(RemoteError) as info:
            client.send("", {})
        assert info.value.code == "no_uri"
        assert client.send("/nope")["code"] == "no_handler_found"
        assert client.send("/test/fail")["code"] == "handler_error"
        assert client.send("/test/push", 7) == "pushed"
        # The push is written before the answer, so it is read first (PUSH-2).
        assert pushes == [{"data": {"echo": 7}}]
        big = {"blob": "b" * (5 * 1024 * 1024)}
        assert client.send("/ipcserver/test/echo", big) == big
        info_data = client.send("/ipcserver/info")
        assert info_data["protocol"] == "1.1"
    with IPCClient(push_server.path, code_to_err=True) as client:
        with pytest.raises(RemoteError) as info:
            client.send("/test/fail")
        assert info.value.code == "handler_error"
        assert "secret detail" not in info.value.message  # ERR-5


def test_blocking_client_shared_by_threads(server: Any) -> None:
    results: dict[int, Any] = {}
    with IPCClient(server.path) as client:

        def call(i: int) -> None:
            # Delays in reverse order: answers come back out of order (RESP-5).
            results[i] = client.send("/ipcserver/test/delay", {"delay": (8 - i) * 20})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert results == {i: {"delay": (8 - i) * 20} for i in range(8)}


def test_asyncio_client_with_the_reference_server(push_server: Any) -> None:
    pushes: list[dict[str, Any]] = []

    async def main() -> None:
        async with AsyncIPCClient(push_server.path, on_push=pushes.append) as client:
            answers = await asyncio.gather(
                client.send("/ipcserver/test/delay", {"delay": 200}),
                *(client.send("/ipcserver/test/echo", i) for i in range(300)),
            )
            assert answers == [{"delay": 200}, *range(300)]
            assert await client.send("/test/push", "x") == "pushed"
            assert pushes == [{"data": {"echo": "x"}}]
            with pytest.raises(RemoteError):
                await client.send("")

    asyncio.run(main())


def test_blocking_client_reconnects_after_a_server_restart(
    server_factory: Callable[..., Any], short_tmp: Path
) -> None:
    path = str(short_tmp / "restart.sock")
    first = server_factory(path=path)
    with IPCClient(path) as client:
        assert client.send("/ipcserver/test/echo", 1) == 1
        first.stop(signal.SIGKILL)
        server_factory(path=path)
        # The old connection is gone before this request: it goes out on a new one.
        assert client.send("/ipcserver/test/echo", 2) == 2


def test_killed_server_fails_pending_requests_at_once(
    server_factory: Callable[..., Any],
) -> None:
    srv = server_factory()
    outcome: list[BaseException] = []

    async def main() -> None:
        async with AsyncIPCClient(srv.path, auto_reconnect=0) as client:
            pending = [
                asyncio.ensure_future(
                    client.send("/ipcserver/test/delay", {"delay": 8000})
                )
                for _ in range(3)
            ]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            srv.stop(signal.SIGKILL)
            results = await asyncio.gather(*pending, return_exceptions=True)
            assert time.monotonic() - started < 5  # LIFE-3
            outcome.extend(r for r in results if isinstance(r, BaseException))

    asyncio.run(main())
    assert len(outcome) == 3 and all(isinstance(r, ServerClosed) for r in outcome)


def test_asyncio_client_reconnects_by_itself_after_a_server_restart(
    server_factory: Callable[..., Any], short_tmp: Path
) -> None:
    path = str(short_tmp / "again.sock")
    first = server_factory(path=path)

    async def main() -> None:
        async with AsyncIPCClient(path, auto_reconnect=0.2) as client:
            assert await client.send("/ipcserver/test/echo", 1) == 1
            first.stop(signal.SIGKILL)
            while client.connected:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(server_factory, path=path)
            deadline = time.monotonic() + 5
            while not client.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert client.connected
            assert await client.send("/ipcserver/test/echo", 2) == 2

    asyncio.run(main())
