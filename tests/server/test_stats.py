"""Statistics by interval, as the original keeps them, and the kit's running totals (BUILTIN-5)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc.server import IPCServer
from server_helpers import RawClient, ServerThread, echo
from support import wait_until


def test_original_counters_are_those_of_the_last_completed_interval(
    short_tmp: Path,
) -> None:
    path = str(short_tmp / "st.sock")
    # A day-long interval does not roll over by itself during the test; it is
    # rolled over by hand, as the timer does, to get exact counts.
    server = IPCServer(path, log_stats_interval="day", slow_threshold=0.010)
    with ServerThread(server) as running:
        with RawClient(path) as first, RawClient(path) as second:
            for i in range(4):
                echo(first, i)
            second.request(
                {
                    "ipcReqID": "rq0",
                    "uri": "/ipcserver/test/delay",
                    "data": {"delay": 30},
                }
            )
            second.send(b"{broken\n")
            second.read_json()
            # Nothing completed yet: the original's counters are still zero.
            assert running.call(server.get_stats)["requests"] == 0
            assert running.call(server.get_stats)["connections"] == 2
        assert wait_until(
            lambda: running.call(server.get_stats)["totalClientClose"] == 2
        )
        running.call(server._roll_stats)
        stats = running.call(server.get_stats)
        assert stats["requests"] == 5
        assert stats["clientOpen"] == 2
        assert stats["clientClose"] == 2
        assert stats["maxConnections"] == 2
        assert stats["slowResponses"] == 1
        assert stats["duration"] >= 30  # ms, the delay request alone
        assert stats["badMessages"] == 1
        assert stats["connections"] == 0
        # The next interval had no traffic: the original's counters, not the totals, are reset.
        running.call(server._roll_stats)
        stats = running.call(server.get_stats)
        assert (stats["requests"], stats["clientOpen"], stats["maxConnections"]) == (
            0,
            0,
            0,
        )
        assert stats["totalRequests"] == 5
        assert stats["totalClientOpen"] == 2
        assert stats["uptime"] > 0


def test_counters_roll_over_by_themselves_every_interval(short_tmp: Path) -> None:
    path = str(short_tmp / "rl.sock")
    server = IPCServer(path, log_stats_interval="second")
    with ServerThread(server) as running:
        with RawClient(path) as client:
            for i in range(3):
                echo(client, i)
        # The requests show up in a completed interval, then a quiet one follows.
        assert wait_until(
            lambda: running.call(server.get_stats)["requests"] >= 1, timeout=5
        )
        assert wait_until(
            lambda: running.call(server.get_stats)["requests"] == 0, timeout=5
        )


def test_stats_are_logged_every_interval(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(short_tmp / "lg.sock")
    with (
        caplog.at_level(logging.INFO, logger="pixl_ipc"),
        ServerThread(IPCServer(path, log_stats_interval="second")),
    ):
        assert wait_until(
            lambda: any(r.getMessage().startswith("stats: ") for r in caplog.records),
            timeout=5,
        )


QUIET_SCRIPT = """
import asyncio, socket, sys
from pixl_ipc.server import IPCServer


def boom(request):
    raise RuntimeError("quiet please")


async def main(path):
    server = IPCServer(path)
    server.add_uri_handler("/boom", "boom", boom)
    await server.start()

    def client():
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        sock.sendall(b'{"ipcReqID":"rq0","uri":"/boom"}\\n')
        return sock.recv(1000)

    print((await asyncio.to_thread(client)).decode(), end="")
    await server.shutdown()


asyncio.run(main(sys.argv[1]))
"""


def test_nothing_is_logged_unless_the_application_configures_logging(
    short_tmp: Path,
) -> None:
    # Quiet by default: a handler failure is logged to the "pixl_ipc" logger,
    # which prints nothing until the application configures logging.
    result = subprocess.run(
        [sys.executable, "-c", QUIET_SCRIPT, str(short_tmp / "q.sock")],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert '"code":"handler_error"' in result.stdout
    assert result.stderr == ""


UVLOOP_PROBE = """
import asyncio


def register(server):
    server.add_uri_handler("/loop", "loop", lambda request: type(asyncio.get_running_loop()).__module__)
"""


def test_run_uses_uvloop_when_it_is_installed(
    server_factory: Callable[..., Any], short_tmp: Path
) -> None:
    probe = short_tmp / "probe.py"
    probe.write_text(UVLOOP_PROBE)
    server = server_factory("--handlers", str(probe))
    with RawClient(server.path) as client:
        assert client.request({"ipcReqID": "rq0", "uri": "/loop"})["data"].startswith(
            "uvloop"
        )


class _RecordingLoop:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def call_later(self, delay: float, callback: Any) -> None:
        self.delays.append(delay)


def test_a_timer_that_fires_early_does_not_roll_over_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = IPCServer("/tmp/unused.sock", log_stats_interval="minute")
    loop = _RecordingLoop()
    server._loop = loop  # type: ignore[assignment]
    monkeypatch.setattr("pixl_ipc.server.time.time", lambda: 6000.5)
    server._schedule_stats()
    assert loop.delays[-1] == pytest.approx(59.5)  # to the next minute boundary, 6060
    # The timer fires 1 ms before 6060: the next roll-over is at 6120, not at once.
    monkeypatch.setattr("pixl_ipc.server.time.time", lambda: 6059.999)
    server._schedule_stats()
    assert loop.delays[-1] == pytest.approx(60.001)
