"""Options, the original's config block, and the serve command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc import ConfigError
from pixl_ipc.server import IPCServer
from server_helpers import RawClient, echo
from support import start_server

MIB = 1024 * 1024


def test_from_config_takes_the_originals_block_with_times_in_ms() -> None:
    server = IPCServer.from_config(
        {
            "socket_path": "/tmp/pixl.sock",
            "exit_timeout": 1500,
            "socket_chmod": "660",
            "log_stats_interval": "hour",
            "slow_threshold_ms": 50,
        }
    )
    assert server.socket_path == "/tmp/pixl.sock"
    assert server.exit_timeout == pytest.approx(1.5)
    assert server.socket_chmod == "660"
    assert server.log_stats_interval == "hour"
    assert server.slow_threshold == pytest.approx(0.05)


def test_from_config_takes_the_kits_keys() -> None:
    server = IPCServer.from_config(
        {
            "socket_path": "/tmp/p.sock",
            "max_message_bytes": 32 * MIB,
            "max_inflight_per_connection": 8,
            "max_threads": 3,
            "allowed_uids": [0, 1000],
            "allowed_gids": [],
            "name": "svc",
            "version": "9.9",
        }
    )
    assert server.max_message_bytes == 32 * MIB
    assert server.max_inflight_per_connection == 8
    assert server.max_threads == 3
    assert server.allowed_uids == frozenset({0, 1000})
    assert (server.name, server.version) == ("svc", "9.9")


def test_from_config_takes_the_budgets_and_the_close_grace() -> None:
    server = IPCServer.from_config(
        {
            "socket_path": "/tmp/p.sock",
            "max_connections": 64,
            "max_buffered_bytes": 32 * MIB,
            "close_grace_ms": 2500,
        }
    )
    assert (server.max_connections, server.max_buffered_bytes) == (64, 32 * MIB)
    assert server.close_grace == pytest.approx(2.5)


def test_budget_defaults_fit_a_small_machine_and_two_messages_of_the_limit() -> None:
    server = IPCServer("/tmp/p.sock")
    assert server.max_connections == 10_000
    assert 2 * server.max_message_bytes <= server.max_buffered_bytes <= 256 * MIB
    assert server.close_grace == 60.0


def test_defaults_are_the_originals() -> None:
    server = IPCServer.from_config({"socket_path": "/tmp/p.sock"})
    assert server.exit_timeout == 2.0
    assert server.socket_chmod == "777"
    assert server.log_stats_interval == "minute"
    assert server.slow_threshold == pytest.approx(0.020)
    assert server.max_message_bytes == 64 * MIB


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"socket_path": "/tmp/p.sock", "socket_mode": "777"}, "socket_mode"),
        ({"socket_path": "/tmp/p.sock", "exit_timeout": "2000"}, "exit_timeout"),
        ({"socket_path": "/tmp/p.sock", "exit_timeout": True}, "exit_timeout"),
        ({"socket_path": "/tmp/p.sock", "exit_timeout": -1}, "exit_timeout"),
        ({"socket_path": "/tmp/p.sock", "socket_chmod": 777}, "socket_chmod"),
        ({"socket_path": "/tmp/p.sock", "socket_chmod": "rwx"}, "socket_chmod"),
        (
            {"socket_path": "/tmp/p.sock", "log_stats_interval": "week"},
            "log_stats_interval",
        ),
        (
            {"socket_path": "/tmp/p.sock", "slow_threshold_ms": None},
            "slow_threshold_ms",
        ),
        ({"socket_path": "/tmp/p.sock", "max_message_bytes": MIB}, "max_message_bytes"),
        (
            {"socket_path": "/tmp/p.sock", "max_message_bytes": 20.5 * MIB},
            "max_message_bytes",
        ),
        (
            {"socket_path": "/tmp/p.sock", "max_inflight_per_connection": 0},
            "max_inflight_per_connection",
        ),
        ({"socket_path": "/tmp/p.sock", "max_threads": 0}, "max_threads"),
        ({"socket_path": "/tmp/p.sock", "max_threads": "4"}, "max_threads"),
        ({"socket_path": "/tmp/p.sock", "max_connections": 0}, "max_connections"),
        (
            {"socket_path": "/tmp/p.sock", "max_buffered_bytes": "1G"},
            "max_buffered_bytes",
        ),
        ({"socket_path": "/tmp/p.sock", "close_grace_ms": -1}, "close_grace_ms"),
        ({"socket_path": "/tmp/p.sock", "allowed_uids": "1000"}, "allowed_uids"),
        ({"socket_path": "/tmp/p.sock", "allowed_gids": [-1]}, "allowed_gids"),
        ({"socket_path": "/tmp/p.sock", "name": ""}, "name"),
        ({"socket_path": 42}, "socket_path"),
        ({"socket_path": "/" + "x" * 200}, "socket_path"),
        ({"exit_timeout": 100}, "socket_path"),
    ],
)
def test_from_config_rejects_unknown_keys_and_wrong_values_naming_the_key(
    block: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{key}:"):
        IPCServer.from_config(block)


def test_from_config_rejects_a_block_that_is_not_an_object() -> None:
    with pytest.raises(ConfigError):
        IPCServer.from_config(["socket_path"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"socket_chmod": "8"}, "socket_chmod"),
        ({"exit_timeout": float("inf")}, "exit_timeout"),
        ({"max_message_bytes": 16 * MIB - 1}, "max_message_bytes"),
        ({"max_inflight_per_connection": True}, "max_inflight_per_connection"),
        ({"max_threads": 0}, "max_threads"),
        ({"log_stats_interval": "Minute"}, "log_stats_interval"),
        ({"slow_threshold": -0.1}, "slow_threshold"),
        ({"allowed_uids": [1.5]}, "allowed_uids"),
    ],
)
def test_constructor_validates_its_options(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}:"):
        IPCServer("/tmp/p.sock", **kwargs)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        IPCServer("")


# --- the serve command line --------------------------------------------------------


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixl_ipc", "serve", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_config_file_with_an_ipcserver_block_needs_no_socket_flag(
    short_tmp: Path,
) -> None:
    path = str(short_tmp / "cfg.sock")
    config = short_tmp / "server.json"
    config.write_text(
        json.dumps(
            {
                "log_dir": "/var/log",
                "IPCServer": {"socket_path": path, "socket_chmod": "600"},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pixl_ipc", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stderr is not None
        # First the warning that log_dir is not read, then the ready line.
        assert (
            "ignored pixl-server settings: log_dir"
            in process.stderr.readline().decode()
        )
        assert process.stderr.readline().decode() == f"listening on {path}\n"
        assert (Path(path).stat().st_mode & 0o777) == 0o600
        with RawClient(path) as client:
            assert echo(client, 1)["data"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        if process.stderr is not None:
            process.stderr.close()


def test_flags_override_a_bare_config_block(short_tmp: Path) -> None:
    config = short_tmp / "bare.json"
    config.write_text(
        json.dumps(
            {
                "socket_path": str(short_tmp / "unused.sock"),
                "max_message_bytes": 20 * MIB,
            }
        )
    )
    server = start_server(
        str(short_tmp / "flag.sock"),
        "--config",
        str(config),
        "--max-message-bytes",
        str(30 * MIB),
    )
    try:
        with RawClient(server.path) as client:
            info = client.request({"ipcReqID": "rq0", "uri": "/ipcserver/info"})["data"]
            assert info["limits"]["max_message_bytes"] == 30 * MIB
        assert not (short_tmp / "unused.sock").exists()
    finally:
        assert server.stop() == 0


def serve_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``pixl-ipc serve`` in this process, for the cases that exit before serving."""
    from pixl_ipc.cli import main

    try:
        status = main(["serve", *args])
    except SystemExit as exc:  # argparse's own usage errors
        status = int(exc.code or 0)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), "--socket"),
        (("--socket", "/tmp/x.sock", "--chmod", "9"), "socket_chmod"),
        (
            ("--socket", "/tmp/x.sock", "--max-message-bytes", "1000"),
            "max_message_bytes",
        ),
        (("--socket", "/tmp/x.sock", "--max-threads", "0"), "max_threads"),
        (("--socket", "/tmp/x.sock", "--max-connections", "0"), "max_connections"),
        (
            ("--socket", "/tmp/x.sock", "--max-buffered-bytes", "0"),
            "max_buffered_bytes",
        ),
        (("--socket", "/tmp/x.sock", "--close-grace-ms", "-5"), "close_grace_ms"),
        (
            ("--socket", "/tmp/x.sock", "--config", "/nonexistent/c.json"),
            "cannot read config",
        ),
        (
            ("--socket", "/tmp/x.sock", "--handlers", "no_such_module_anywhere"),
            "cannot import handlers",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_one_line_reason(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], reason: str
) -> None:
    status, err = serve_main(capsys, *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], err


def test_bad_config_exits_2_from_the_real_command(short_tmp: Path) -> None:
    config = short_tmp / "c.json"
    config.write_text(
        json.dumps(
            {
                "IPCServer": {
                    "socket_path": str(short_tmp / "s.sock"),
                    "sokcet_chmod": "7",
                }
            }
        )
    )
    result = run_serve("--config", str(config))
    assert result.returncode == 2
    assert "sokcet_chmod" in result.stderr
    assert not (short_tmp / "s.sock").exists()


def test_config_that_is_not_json_exits_2(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = short_tmp / "c.json"
    config.write_text("{not json")
    status, err = serve_main(capsys, "--config", str(config))
    assert status == 2 and "not valid JSON" in err


def test_bad_argparse_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        serve_main(capsys, "--socket", "/tmp/x.sock", "--max-message-bytes", "lots")[0]
        == 2
    )
    assert (
        serve_main(capsys, "--socket", "/tmp/x.sock", "--log-level", "chatty")[0] == 2
    )


HANDLERS = """
from pixl_ipc.server import IPCServer, Request


def register(server: IPCServer) -> None:
    @server.uri("/app/hello")
    def hello(request: Request) -> str:
        return "hello " + str(request.data)
"""


def test_handlers_file_is_imported_and_registered(
    server_factory: Callable[..., Any], short_tmp: Path
) -> None:
    module = short_tmp / "myhandlers.py"
    module.write_text(HANDLERS)
    server = server_factory("--handlers", str(module))
    with RawClient(server.path) as client:
        assert (
            client.request({"ipcReqID": "rq0", "uri": "/app/hello", "data": "you"})[
                "data"
            ]
            == "hello you"
        )


def test_handlers_module_by_name_is_imported(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (short_tmp / "named_handlers_mod.py").write_text(HANDLERS)
    monkeypatch.setenv("PYTHONPATH", f"{short_tmp}:{os.environ.get('PYTHONPATH', '')}")
    server = start_server(str(short_tmp / "n.sock"), "--handlers", "named_handlers_mod")
    try:
        with RawClient(server.path) as client:
            assert (
                client.request({"ipcReqID": "rq0", "uri": "/app/hello", "data": 1})[
                    "data"
                ]
                == "hello 1"
            )
    finally:
        server.stop()


def test_handlers_without_register_or_failing_exit_2(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = short_tmp / "empty.py"
    empty.write_text("x = 1\n")
    status, err = serve_main(
        capsys, "--socket", str(short_tmp / "s.sock"), "--handlers", str(empty)
    )
    assert status == 2 and "register(server)" in err
    broken = short_tmp / "broken.py"
    broken.write_text("raise RuntimeError('cannot load')\n")
    status, err = serve_main(
        capsys, "--socket", str(short_tmp / "s.sock"), "--handlers", str(broken)
    )
    assert status == 2 and "cannot load" in err
    assert not (short_tmp / "s.sock").exists()


def test_log_level_info_logs_to_stderr_and_the_ready_line_is_printed_once(
    short_tmp: Path,
) -> None:
    server = start_server(str(short_tmp / "l.sock"), "--log-level", "info")
    try:
        with RawClient(server.path) as client:
            echo(client, 1)
    finally:
        server.stop()
    # The ready line is the only line that mentions "listening on", even with logs on.
    assert [line for line in server.stderr_lines if "listening on" in line] == [
        f"listening on {server.path}"
    ]
    assert any("INFO" in line for line in server.stderr_lines)
