"""Start-up, shutdown, half-close and socket activation of the server (LIFE-2, LIFE-5 to LIFE-7, SEC-1)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc import StartupError
from pixl_ipc._socket import activated_socket
from pixl_ipc.server import IPCServer
from server_helpers import RawClient, ServerThread, echo, run_serve
from support import process, start_server, wait_until

# --- start-up (LIFE-6) ----------------------------------------------------------


def test_refuses_to_start_where_a_server_answers_and_leaves_it_serving(
    server_factory: Callable[..., Any],
) -> None:
    first = server_factory()
    before = os.lstat(first.path)
    result = run_serve("--socket", first.path)
    assert result.returncode == 1
    assert "another server is accepting connections" in result.stderr
    assert "listening on" not in result.stderr
    after = os.lstat(first.path)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    with RawClient(first.path) as client:
        assert echo(client, "still mine")["data"] == "still mine"


def test_refuses_a_regular_file_and_leaves_it_untouched(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    with pytest.raises(StartupError, match="regular file"):
        IPCServer(sock_path).run()
    assert Path(sock_path).read_text() == "precious"


def test_refuses_a_directory_and_leaves_it_untouched(sock_path: str) -> None:
    os.mkdir(sock_path)
    (Path(sock_path) / "inside").write_text("x")
    with pytest.raises(StartupError, match="directory"):
        IPCServer(sock_path).run()
    assert (Path(sock_path) / "inside").read_text() == "x"


def test_refuses_a_symlink_without_following_it(short_tmp: Path) -> None:
    target = short_tmp / "target"
    target.write_text("keep")
    link = short_tmp / "link.sock"
    link.symlink_to(target)
    with pytest.raises(StartupError, match="symbolic link"):
        IPCServer(str(link)).run()
    assert link.is_symlink()
    assert target.read_text() == "keep"


def test_refuses_a_symlink_to_a_stale_socket(short_tmp: Path) -> None:
    stale = short_tmp / "stale.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(stale))
    sock.close()
    link = short_tmp / "l.sock"
    link.symlink_to(stale)
    with pytest.raises(StartupError):
        IPCServer(str(link)).run()
    assert link.is_symlink() and stale.exists()


def test_replaces_a_stale_socket(sock_path: str) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)  # bound, never listening: connecting is refused
    sock.close()
    with ServerThread(IPCServer(sock_path)), RawClient(sock_path) as client:
        assert echo(client, 1)["data"] == 1


_EARLY_PEER = """
import json, socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
print("connected", flush=True)
sock.sendall(b'{"ipcReqID": "early", "uri": "/ipcserver/test/echo", "data": 7}\\n')
print(sock.makefile("rb").readline().decode(), end="", flush=True)
"""


def test_a_peer_connecting_the_moment_the_socket_listens_is_served(
    sock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process connects between listen() and the server's check that
    # the path leads to its socket, so its connection is accepted first.
    early: list[subprocess.Popen[str]] = []
    listen = socket.socket.listen

    def listen_then_connect(self: socket.socket, *args: Any) -> None:
        listen(self, *args)
        if self.getsockname() == sock_path and not early:
            peer = subprocess.Popen(
                [sys.executable, "-c", _EARLY_PEER, sock_path],
                stdout=subprocess.PIPE,
                text=True,
            )
            early.append(peer)
            assert peer.stdout is not None and peer.stdout.readline() == "connected\n"

    monkeypatch.setattr(socket.socket, "listen", listen_then_connect)
    with ServerThread(IPCServer(sock_path)), RawClient(sock_path) as client:
        assert echo(client, 1)["data"] == 1
        out, _ = early[0].communicate(timeout=10)
    assert json.loads(out) == {"ipcReqID": "early", "data": 7}


# --- permissions (SEC-1) --------------------------------------------------------


@pytest.mark.parametrize(
    ("chmod", "mode"), [(None, 0o777), ("600", 0o600), ("660", 0o660)]
)
def test_socket_mode_is_applied_before_ready(
    sock_path: str, chmod: str | None, mode: int
) -> None:
    server = (
        IPCServer(sock_path)
        if chmod is None
        else IPCServer(sock_path, socket_chmod=chmod)
    )
    with ServerThread(server):
        assert stat.S_IMODE(os.lstat(sock_path).st_mode) == mode


def test_empty_chmod_keeps_the_umask_mode(sock_path: str) -> None:
    old = os.umask(0o077)
    try:
        with ServerThread(IPCServer(sock_path, socket_chmod="")):
            assert stat.S_IMODE(os.lstat(sock_path).st_mode) == 0o700
    finally:
        os.umask(old)


# --- shutdown (LIFE-7) --------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_answers_in_flight_requests_then_exits_0_and_removes_the_socket(
    server_factory: Callable[..., Any], sig: int
) -> None:
    server = server_factory()
    with RawClient(server.path) as client:
        client.send(
            b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":500}}\n'
        )
        echo(client, "in", "rq1")  # the delay request has been read
        server.proc.send_signal(sig)
        assert client.read_line() == b'{"ipcReqID":"rq0","data":{"delay":500}}'
        assert client.read_until_eof() == b""
    assert server.proc.wait(10) == 0
    assert not os.path.lexists(server.path)


def test_shutdown_gives_up_on_slow_requests_after_exit_timeout(short_tmp: Path) -> None:
    config = short_tmp / "c.json"
    config.write_text(json.dumps({"IPCServer": {"exit_timeout": 300}}))
    server = start_server(str(short_tmp / "t.sock"), "--config", str(config))
    try:
        with RawClient(server.path) as client:
            client.send(
                b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":60000}}\n'
            )
            echo(client, 1, "rq1")
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            assert client.read_until_eof(10) == b""  # closed without the 60 s answer
            assert server.proc.wait(10) == 0
            assert time.monotonic() - started < 5
    finally:
        server.stop(signal.SIGKILL)


def test_shutdown_does_not_remove_a_path_that_is_no_longer_its_socket(
    sock_path: str,
) -> None:
    running = ServerThread(IPCServer(sock_path)).start()
    os.unlink(sock_path)
    Path(sock_path).write_text("someone else's")
    running.stop()
    assert Path(sock_path).read_text() == "someone else's"


def test_shutdown_stops_accepting_and_removes_its_socket(sock_path: str) -> None:
    running = ServerThread(IPCServer(sock_path)).start()
    with RawClient(sock_path) as client:
        echo(client, 1)
    running.stop()
    assert not os.path.lexists(sock_path)
    with pytest.raises(OSError):
        RawClient(sock_path, timeout=2)


def test_a_stopped_server_starts_again_with_its_handlers_and_counters(
    sock_path: str,
) -> None:
    server = IPCServer(sock_path)
    server.add_uri_handler("/app", "app", lambda request: "app")
    for round_ in range(3):
        # A new event loop each time, as run() would make.
        running = ServerThread(server).start()
        with RawClient(sock_path) as client:
            assert client.request({"ipcReqID": "a", "uri": "/app"})["data"] == "app"
            echo(client, round_)
        running.stop()
        assert not running.thread.is_alive()
        assert not os.path.lexists(sock_path)
    assert server.get_stats()["totalRequests"] == 6


def test_shutdown_of_a_server_never_started_does_nothing(sock_path: str) -> None:
    server = IPCServer(sock_path)
    asyncio.run(server.shutdown())
    with ServerThread(server) as running, RawClient(sock_path) as client:
        echo(client, 1)
        assert running.thread.is_alive()
    assert not running.thread.is_alive()
    assert not os.path.lexists(sock_path)


def test_start_while_running_is_refused(sock_path: str) -> None:
    with ServerThread(IPCServer(sock_path)) as running:
        with pytest.raises(RuntimeError, match="running already"):
            running.run(running.server.start())
        with RawClient(sock_path) as client:
            echo(client, 1)


# --- half-close and vanished clients (LIFE-2, LIFE-5) ---------------------------


def test_half_close_answers_every_complete_request_then_closes(sock_path: str) -> None:
    with ServerThread(IPCServer(sock_path)), RawClient(sock_path) as client:
        client.send(
            b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":200}}\n'
            b'{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":1}\n'
            b'{"ipcReqID":"rq2","uri":"/ipcserver/te'  # partial line: discarded
        )
        client.sock.shutdown(socket.SHUT_WR)
        lines = client.read_until_eof().splitlines()
        assert sorted(json.loads(line)["ipcReqID"] for line in lines) == ["rq0", "rq1"]


def test_client_gone_mid_request_drops_the_response_and_the_server_keeps_serving(
    sock_path: str,
) -> None:
    # LIFE-5: the first answer finds the peer gone; the second is dropped, not written.
    server = IPCServer(sock_path)
    with ServerThread(server) as running:
        with RawClient(sock_path) as client:
            client.send(
                b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":100}}\n'
                b'{"ipcReqID":"rq1","uri":"/ipcserver/test/delay","data":{"delay":700}}\n'
            )
            echo(client, 1, "rq2")
        assert wait_until(
            lambda: running.call(server.get_stats)["droppedResponses"] >= 1, timeout=5
        )
        with RawClient(sock_path) as other:
            assert echo(other, 2)["data"] == 2
            assert running.call(server.get_stats)["connections"] == 1


# --- systemd socket activation ----------------------------------------------------

_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "pixl_ipc", "serve", "--socket", sys.argv[2]])
"""


def test_socket_activation_serves_the_inherited_socket_and_never_unlinks_it(
    short_tmp: Path,
) -> None:
    path = str(short_tmp / "act.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(16)
    os.chmod(path, 0o640)
    unused = str(short_tmp / "unused.sock")
    with process(
        [sys.executable, "-c", _ACTIVATE, str(listener.fileno()), unused],
        pass_fds=(listener.fileno(),),
        stderr=subprocess.PIPE,
    ) as proc:
        listener.close()
        ready = proc.stderr.readline().decode()
        assert ready == f"listening on {path}\n"
        with RawClient(path) as client:
            assert echo(client, "activated")["data"] == "activated"
        assert not os.path.lexists(unused)  # nothing was bound at --socket
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    # The socket belongs to the service manager: still there, mode unchanged.
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o640


def test_listen_variables_of_another_process_are_ignored() -> None:
    assert activated_socket({"LISTEN_FDS": "1", "LISTEN_PID": "1"}) is None
    assert activated_socket({"LISTEN_FDS": "0", "LISTEN_PID": str(os.getpid())}) is None
    assert activated_socket({"LISTEN_FDS": "x", "LISTEN_PID": "y"}) is None
    assert activated_socket({}) is None
