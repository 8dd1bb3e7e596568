"""The exit statuses of ``pixl-ipc send | info | stats | ping``, as a shell sees them.

Each status is produced by the installed ``pixl-ipc`` command in a subprocess:
0 ok, 1 remote error or refusal, 2 usage, 3 cannot connect, 4 timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Server, serve_in_tempdir, start_server

# The console script next to the interpreter, as a user runs it.
PIXL_IPC = str(Path(sys.executable).with_name("pixl-ipc"))


def pixl_ipc(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PIXL_IPC_SOCKET"}
    return subprocess.run(
        [PIXL_IPC, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve_in_tempdir() as server:
        yield server


def test_exit_0_with_the_answer_on_stdout(server: Server) -> None:
    proc = pixl_ipc("send", "--socket", server.path, "/ipcserver/test/echo", "[1]")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "[1]\n", "")


def test_exit_1_on_a_remote_error(server: Server) -> None:
    proc = pixl_ipc("send", "--socket", server.path, "", "{}")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pixl-ipc: no_uri: ")


def test_exit_1_when_the_server_refuses_the_peer(short_tmp: Path) -> None:
    config = short_tmp / "config.json"
    config.write_text(json.dumps({"allowed_uids": [os.getuid() + 1]}))
    refusing = start_server(str(short_tmp / "s.sock"), "--config", str(config))
    try:
        proc = pixl_ipc("stats", "--socket", refusing.path)
    finally:
        refusing.stop()
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("pixl-ipc: access_denied: "), proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["send", "--no-such-option", "/x"],
        ["send"],
        ["send", "--socket", "/x.sock", "/x", "{not json"],
        ["bogus-command"],
    ],
)
def test_exit_2_on_bad_usage(args: list[str]) -> None:
    proc = pixl_ipc(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr


def test_exit_2_without_a_socket_names_the_variable() -> None:
    proc = pixl_ipc("info")
    assert proc.returncode == 2
    assert "PIXL_IPC_SOCKET" in proc.stderr


@pytest.mark.parametrize("command", ["send", "info", "stats", "ping"])
def test_exit_3_when_nothing_listens(short_tmp: Path, command: str) -> None:
    extra = ["/ipcserver/test/echo"] if command == "send" else []
    proc = pixl_ipc(command, "--socket", str(short_tmp / "none.sock"), *extra)
    assert proc.returncode == 3
    assert "cannot connect" in proc.stderr


def test_exit_4_on_a_timeout(server: Server) -> None:
    proc = pixl_ipc(
        "send",
        "--socket",
        server.path,
        "--timeout",
        "0.3",
        "/ipcserver/test/delay",
        '{"delay": 5000}',
    )
    assert proc.returncode == 4
    assert "within 0.3 s" in proc.stderr


def test_the_environment_supplies_the_socket(server: Server) -> None:
    env = {"PIXL_IPC_SOCKET": server.path}
    proc = pixl_ipc("send", "/ipcserver/test/echo", '"env"', env=env)
    assert (proc.returncode, proc.stdout) == (0, '"env"\n')
    proc = pixl_ipc("info", "--json", env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["protocol"]


def test_socket_option_wins_over_the_environment(
    server: Server, short_tmp: Path
) -> None:
    env = {"PIXL_IPC_SOCKET": str(short_tmp / "none.sock")}
    proc = pixl_ipc("send", "--socket", server.path, "/ipcserver/test/echo", env=env)
    assert (proc.returncode, proc.stdout) == (0, "null\n")
    proc = pixl_ipc("send", "/ipcserver/test/echo", env=env)
    assert proc.returncode == 3


@pytest.mark.parametrize("command", [[], ["send"], ["info"], ["stats"], ["ping"]])
def test_help_shows_examples_and_every_exit_status(command: list[str]) -> None:
    proc = pixl_ipc(*command, "--help")
    assert proc.returncode == 0
    text = proc.stdout
    assert "examples:\n  pixl-ipc " in text
    for status in range(5):
        assert f"\n  {status}  " in text, f"exit status {status} missing"
