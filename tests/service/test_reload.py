"""IPCServer.reload (SIGHUP): reload hooks, a replaced handler table, new allow-lists."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pixl_ipc import ConfigError, IPCClient, IPCServer
from support import RawClient, wait_until


def answer_of(path: Path, uri: str) -> object:
    with RawClient(str(path)) as client:
        client.send_json({"ipcReqID": "r", "uri": uri, "data": None})
        return client.read_message()


def test_replace_handlers_keeps_the_builtins_first(short_tmp: Path) -> None:
    server = IPCServer(short_tmp / "h.sock")
    server.add_uri_handler("/app/old", "old", lambda request: "old")
    server.set_default_handler(lambda request: "default")

    def register(target: IPCServer) -> None:
        target.add_uri_handler("/app/new", "new", lambda request: "new")

    server.replace_handlers(register)
    assert server.handler_names == ["echo", "delay", "info", "stats", "new"]

    async def main() -> None:
        async with server:
            assert (
                await asyncio.to_thread(IPCClient(server.address).send, "/app/new")
            ) == "new"
            missing = await asyncio.to_thread(
                answer_of, short_tmp / "h.sock", "/app/old"
            )
            assert missing["data"]["code"] == "no_handler_found"  # type: ignore[index]

    asyncio.run(main())


def test_a_failing_registration_leaves_the_table_as_it_was(short_tmp: Path) -> None:
    server = IPCServer(short_tmp / "f.sock")
    server.add_uri_handler("/app/old", "old", lambda request: "old")

    def broken(target: IPCServer) -> None:
        target.add_uri_handler("/app/half", "half", lambda request: "half")
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        server.replace_handlers(broken)
    assert server.handler_names == ["echo", "delay", "info", "stats", "old"]


def test_new_allow_lists_apply_to_the_next_connections(short_tmp: Path) -> None:
    path = short_tmp / "a.sock"
    server = IPCServer(path)

    async def main() -> None:
        async with server:
            served = await asyncio.to_thread(answer_of, path, "/ipcserver/test/echo")
            assert "code" not in served  # type: ignore[operator]
            server.set_allowed_peers(allowed_uids=[os.getuid() + 1])
            refused = await asyncio.to_thread(answer_of, path, "/ipcserver/test/echo")
            assert refused["code"] == "access_denied"  # type: ignore[index]
            server.set_allowed_peers(allowed_gids=[os.getgid()])
            again = await asyncio.to_thread(answer_of, path, "/ipcserver/test/echo")
            assert "code" not in again  # type: ignore[operator]

    asyncio.run(main())
    with pytest.raises(ConfigError, match="allowed_uids"):
        server.set_allowed_peers(allowed_uids=["root"])  # type: ignore[list-item]


def test_reload_calls_every_hook_and_logs_one_that_fails(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = IPCServer(short_tmp / "r.sock")
    assert server.reload().startswith("nothing to reload")
    called: list[str] = []

    def failing() -> None:
        raise OSError("config gone")

    server.add_reload_hook(failing)
    server.add_reload_hook(lambda: called.append("second"))
    assert server.reload().endswith("2 reload hook(s) called, 1 failed")
    assert called == ["second"]
    assert "OSError: config gone" in caplog.text
    with pytest.raises(TypeError):
        server.add_reload_hook("not callable")  # type: ignore[arg-type]


HOOKED_SERVER = """
import sys
from pixl_ipc import IPCServer

server = IPCServer(sys.argv[1])
server.add_reload_hook(lambda: print("reloaded", flush=True))
server.run(on_ready=lambda: print("ready", flush=True))
"""


def test_sighup_calls_the_reload_hooks_of_run(short_tmp: Path) -> None:
    path = short_tmp / "hup.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOOKED_SERVER, str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout.readline() == "reloaded\n"
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout.readline() == "reloaded\n"
        assert IPCClient(path).send("/ipcserver/test/echo", "still") == "still"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert wait_until(lambda: not os.path.lexists(path), 5)
