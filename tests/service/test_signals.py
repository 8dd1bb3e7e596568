"""``pixl-ipc serve`` as a daemon: SIGHUP reloads, logs as JSON lines and in files.

Each test runs the command in a subprocess and sends it real signals: SIGHUP
reopens ``--log-file`` and reloads the config's allow-lists and log level and
the handler modules; log records are read back and parsed as JSON.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import RawClient, Server, wait_until

VERSION_HANDLERS = """
def register(server):
    server.add_uri_handler("/app/version", "version", lambda request: {version})
"""

FAILING_HANDLERS = """
def register(server):
    @server.uri("/app/fail")
    def fail(request):
        raise ZeroDivisionError("the handler divided by zero")
"""


def call(path: str, uri: str, data: Any = None) -> dict[str, Any]:
    with RawClient(path) as client:
        client.send_json({"ipcReqID": "r", "uri": uri, "data": data})
        return client.read_message()


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The log records among the lines: all but the ``listening on`` line."""
    records = []
    for line in lines:
        if line and not line.startswith("listening on "):
            records.append(json.loads(line))
    return records


def logged(server: Server, text: str) -> bool:
    return any(text in line for line in server.stderr_lines)


def hang_up(server: Server, text: str) -> None:
    """Send SIGHUP and wait for the line that shows it was handled."""
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: logged(server, text), 20), server.log()


def test_hup_reopens_the_log_file_after_rotation(
    short_tmp: Path, server_factory: Callable[..., Server]
) -> None:
    log = short_tmp / "pixl-ipc.log"
    server = server_factory(
        "--log-file", str(log), "--log-format", "json", "--log-level", "INFO"
    )
    assert wait_until(lambda: "accepting connections" in log.read_text(), 10)
    log.rename(short_tmp / "pixl-ipc.log.1")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: log.exists() and "received SIGHUP" in log.read_text(), 20)
    rotated = json_lines((short_tmp / "pixl-ipc.log.1").read_text().splitlines())
    current = json_lines(log.read_text().splitlines())
    assert any("accepting connections" in r["message"] for r in rotated)
    assert [r["message"] for r in current] == [
        "received SIGHUP: 1 log file(s) reopened, 0 reload hook(s) called"
    ]
    assert call(server.path, "/ipcserver/test/echo", 1)["data"] == 1
    assert server.stop() == 0
    assert "stopped" in [r["message"] for r in json_lines(log.read_text().splitlines())]
    assert server.stderr_lines == [f"listening on {server.path}"]


def test_hup_with_nothing_to_reload_says_so(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory()
    hang_up(server, "received SIGHUP: nothing to reload")
    assert server.proc.poll() is None
    assert server.stop() == 0


def test_hup_reloads_allow_lists_and_log_level_from_the_config(
    short_tmp: Path, server_factory: Callable[..., Server]
) -> None:
    config = short_tmp / "config.json"
    uid = os.getuid()
    config.write_text(json.dumps({"IPCServer": {"allowed_uids": [uid + 1]}}))
    server = server_factory("--config", str(config))
    assert call(server.path, "/ipcserver/test/echo", 1)["code"] == "access_denied"

    block = {"allowed_uids": [uid], "log_level": "info", "socket_chmod": "600"}
    config.write_text(json.dumps({"IPCServer": block}))
    hang_up(server, "received SIGHUP")
    assert call(server.path, "/ipcserver/test/echo", 2)["data"] == 2
    # The new level shows INFO lines; a key that needs a restart is named.
    assert wait_until(lambda: logged(server, "reloaded allowed_uids"), 10)
    assert logged(server, "socket_chmod changed in")
    assert server.stop() == 0


def test_hup_keeps_the_old_settings_when_the_config_is_broken(
    short_tmp: Path, server_factory: Callable[..., Server]
) -> None:
    config = short_tmp / "config.json"
    config.write_text(json.dumps({"IPCServer": {"allowed_uids": [os.getuid()]}}))
    server = server_factory("--config", str(config))
    config.write_text('{"IPCServer": {"allowed_uids": [')
    hang_up(server, "the config's settings are left as they were")
    assert call(server.path, "/ipcserver/test/echo", 3)["data"] == 3
    assert server.stop() == 0


def test_hup_imports_the_handler_modules_again(
    short_tmp: Path, server_factory: Callable[..., Server]
) -> None:
    handlers = short_tmp / "handlers.py"
    handlers.write_text(VERSION_HANDLERS.format(version=1))
    server = server_factory("--handlers", str(handlers), "--log-level", "INFO")
    assert call(server.path, "/app/version")["data"] == 1

    handlers.write_text(
        VERSION_HANDLERS.format(version=2)
        + '    server.add_uri_handler("/app/new", "new", lambda request: "new")\n'
    )
    hang_up(server, "reloaded handlers: echo, delay, info, stats, version, new")
    assert call(server.path, "/app/version")["data"] == 2
    assert call(server.path, "/app/new")["data"] == "new"

    handlers.write_text(
        "def register(server):\n    raise RuntimeError('half written')\n"
    )
    hang_up(server, "the handlers are left as they were")
    assert call(server.path, "/app/version")["data"] == 2
    assert server.stop() == 0


def test_a_failing_handlers_traceback_is_one_json_log_record(
    short_tmp: Path, server_factory: Callable[..., Server]
) -> None:
    handlers = short_tmp / "failing.py"
    handlers.write_text(FAILING_HANDLERS)
    server = server_factory("--handlers", str(handlers), "--log-format", "json")
    answer = call(server.path, "/app/fail")
    assert answer["data"]["code"] == "handler_error"
    # What the client is told is true: the log has the details.
    assert "the server log has the details" in answer["data"]["message"]
    assert wait_until(lambda: logged(server, "ZeroDivisionError"), 10), server.log()
    assert server.stop() == 0
    records = json_lines(server.stderr_lines)
    (failure,) = [r for r in records if "/app/fail" in r["message"]]
    assert failure["level"] == "ERROR"
    assert failure["logger"].startswith("pixl_ipc")
    # The traceback is in the one record, each of its lines indented.
    lines = failure["message"].splitlines()
    assert lines[1].endswith("Traceback (most recent call last):")
    assert lines[-1].endswith("ZeroDivisionError: the handler divided by zero")


def test_stats_are_logged_as_the_object_ipcserver_stats_answers(
    short_tmp: Path, server_factory: Callable[..., Server]
) -> None:
    config = short_tmp / "config.json"
    config.write_text(
        json.dumps({"IPCServer": {"log_stats_interval": "second"}, "log_dir": "/x"})
    )
    server = server_factory(
        "--config", str(config), "--log-format", "json", "--log-level", "INFO"
    )
    answered = call(server.path, "/ipcserver/stats")["data"]
    assert wait_until(lambda: logged(server, '"stats": {'), 10), server.log()
    server.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: logged(server, "received SIGUSR1"), 10)
    assert server.stop() == 0
    records = json_lines(server.stderr_lines)
    rolled = [r for r in records if r["message"].startswith("stats: ")]
    asked = [r for r in records if r["message"].startswith("received SIGUSR1")]
    assert rolled and asked
    for record in (rolled[0], asked[0]):
        assert set(record["stats"]) == set(answered)
        assert record["stats"]["statsInterval"] == "second"
    (ignored,) = [r for r in records if "ignored pixl-server settings" in r["message"]]
    assert ignored["level"] == "WARNING" and "log_dir" in ignored["message"]
