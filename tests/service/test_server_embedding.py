"""IPCServer inside someone else's program: ``async with``, ``run()`` on a thread, paths, logging."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pixl_ipc import IPCClient, IPCServer, RemoteError, Request
from support import READY_PREFIX, wait_until


def test_async_with_starts_and_shuts_down(short_tmp: Path) -> None:
    path = short_tmp / "aw.sock"

    async def main() -> None:
        async with IPCServer(path) as server:
            assert server.address == str(path)
            assert os.path.exists(path)
            answer = await asyncio.to_thread(
                lambda: IPCClient(path).send("/ipcserver/test/echo", "in the block")
            )
            assert answer == "in the block"
        assert not os.path.lexists(path)

    asyncio.run(main())


def test_serve_forever_returns_after_stop(short_tmp: Path) -> None:
    path = short_tmp / "sf.sock"

    async def main() -> None:
        server = IPCServer(path)
        asyncio.get_running_loop().call_later(0.2, server.stop)
        async with server:
            await asyncio.wait_for(server.serve_forever(), 20)
        assert not os.path.lexists(path)

    asyncio.run(main())


def test_run_on_another_thread_serves_and_stop_ends_it(short_tmp: Path) -> None:
    path = short_tmp / "th.sock"
    server = IPCServer(str(path))

    @server.uri("/app/thread")
    def where(request: Request) -> str:
        return threading.current_thread().name

    ready = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(on_ready=ready.set)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=serve, name="ipc-server")
    thread.start()
    try:
        assert ready.wait(20), errors
        with IPCClient(path) as client:
            assert client.send("/app/thread") == "ipc-server"
    finally:
        server.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert errors == []
    assert not os.path.lexists(path)
    # The main thread's signal handling is the program's, untouched.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


def test_stop_before_run_has_started_ends_the_run_once_started(short_tmp: Path) -> None:
    path = short_tmp / "early.sock"
    server = IPCServer(path)
    server.stop()
    started = time.monotonic()
    thread = threading.Thread(target=server.run)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert time.monotonic() - started < 20
    assert not os.path.lexists(path)


def test_run_removes_its_socket_when_on_ready_raises(short_tmp: Path) -> None:
    path = short_tmp / "rd.sock"

    def broken() -> None:
        raise RuntimeError("on_ready failed")

    with pytest.raises(RuntimeError, match="on_ready failed"):
        IPCServer(path).run(on_ready=broken)
    assert not os.path.lexists(path)


def test_a_path_object_is_a_socket_path(short_tmp: Path) -> None:
    server = IPCServer(short_tmp / "p.sock")
    assert server.socket_path == str(short_tmp / "p.sock")
    assert isinstance(server.address, str)


@pytest.mark.slow
def test_mypy_accepts_a_path_for_the_server_and_the_clients(tmp_path: Path) -> None:
    program = tmp_path / "uses_paths.py"
    program.write_text(
        "from pathlib import Path\n"
        "from pixl_ipc import AsyncIPCClient, IPCClient, IPCServer\n"
        "path = Path('/run/app.sock')\n"
        "server = IPCServer(path)\n"
        "client = IPCClient(path)\n"
        "aio = AsyncIPCClient(path)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(program)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


README_SERVER = """
from pixl_ipc import IPCServer

server = IPCServer({path!r})

@server.uri("/myapp/hello")
def hello(request):
    return {{"hello": request.data["name"]}}

server.run()
"""


def test_the_readme_server_shows_a_failing_handlers_traceback(short_tmp: Path) -> None:
    # As the README runs it: no logging configured by the program.
    path = str(short_tmp / "app.sock")
    proc = subprocess.Popen(
        [sys.executable, "-c", README_SERVER.format(path=path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: os.path.exists(path), 20)
        with IPCClient(path, code_to_err=True) as client:
            assert client.send("/myapp/hello", {"name": "x"}) == {"hello": "x"}
            with pytest.raises(RemoteError) as failed:
                client.send("/myapp/hello", {"no name": 1})
        assert failed.value.code == "handler_error"
        assert "the server log has the details" in failed.value.message
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    log = proc.stderr.read()
    proc.stderr.close()
    assert " ERROR pixl_ipc.server: handler for /myapp/hello failed:" in log
    assert "KeyError: 'name'" in log
    assert not log.startswith(READY_PREFIX)
    assert not os.path.lexists(path)
