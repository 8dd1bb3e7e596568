"""``pixl-ipc send | info | stats | ping`` against a reference server."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
from pixl_ipc.cli import main
from pixl_ipc.cli.call import format_table
from support import serve_in_tempdir


@pytest.fixture(scope="module")
def server_path() -> Iterator[str]:
    """One reference server for the whole module (starting one costs about a second)."""
    with serve_in_tempdir() as server:
        yield server.path


def test_send_prints_the_response_data_as_json(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "send",
            "--socket",
            server_path,
            "/ipcserver/test/echo",
            '{"a": [1, "é"], "b": null}',
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert json.loads(out) == {"a": [1, "é"], "b": None}
    assert out == '{"a":[1,"é"],"b":null}\n'
    assert err == ""


def test_send_pretty_and_without_data(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "send",
                "--socket",
                server_path,
                "--pretty",
                "/ipcserver/test/echo",
                '{"k": 1}',
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == '{\n  "k": 1\n}\n'
    assert main(["send", "--socket", server_path, "/ipcserver/test/echo"]) == 0
    assert capsys.readouterr().out == "null\n"


def test_send_reads_data_from_stdin(
    server_path: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('[1, 2, {"x": "y"}]\n'))
    assert main(["send", "--socket", server_path, "/ipcserver/test/echo", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == [1, 2, {"x": "y"}]


def test_send_remote_error_prints_code_and_message_exit_1(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "--socket", server_path, "", "{}"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err.strip() == "pixl-ipc: no_uri: Missing required uri parameter from request"
    )


def test_send_error_inside_data_is_printed_as_data(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the original clients do (codeToErr off): the caller reads data.code.
    assert main(["send", "--socket", server_path, "/no/such/uri"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "code": "no_handler_found",
        "message": "No handler found for /no/such/uri",
    }


def test_send_code_to_err_makes_an_error_inside_data_exit_1(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "--socket", server_path, "--code-to-err", "/no/such/uri"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err.strip() == "pixl-ipc: no_handler_found: No handler found for /no/such/uri"
    )


def test_send_invalid_json_argument_exit_2(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["send", "--socket", server_path, "/ipcserver/test/echo", "{not json"])
        == 2
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert "invalid JSON data" in err


def test_send_connect_failure_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    directory = tempfile.mkdtemp(prefix="pxl-")
    try:
        assert (
            main(["send", "--socket", os.path.join(directory, "none.sock"), "/x"]) == 3
        )
    finally:
        shutil.rmtree(directory)
    err = capsys.readouterr().err
    assert "cannot connect" in err and "no socket at that path" in err


def test_send_timeout_exit_4(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    status = main(
        [
            "send",
            "--socket",
            server_path,
            "--timeout",
            "0.3",
            "/ipcserver/test/delay",
            '{"delay": 3000}',
        ]
    )
    assert status == 4
    assert time.monotonic() - started < 5  # not after the 10 s delay
    assert (
        "no response to /ipcserver/test/delay within 0.3 s" in capsys.readouterr().err
    )


def test_bad_timeout_exit_2(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "--socket", server_path, "--timeout", "-1", "/x"]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_info_table_and_json(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", "--socket", server_path]) == 0
    table = capsys.readouterr().out
    rows = dict(line.split(None, 1) for line in table.splitlines())
    assert rows["protocol"] == "1.1"
    assert int(rows["limits.max_message_bytes"]) >= 16 * 1024 * 1024
    assert "echo" in rows["handlers"]
    assert main(["info", "--socket", server_path, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["protocol"] == "1.1"
    assert set(info) >= {"server", "limits", "handlers", "extensions"}


def test_stats_table_and_json(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", "--socket", server_path, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    for key in (
        "connections",
        "handlers",
        "requests",
        "clientOpen",
        "clientClose",
        "maxConnections",
    ):
        assert isinstance(stats[key], (int, float)), key
    assert main(["stats", "--socket", server_path]) == 0
    table = capsys.readouterr().out
    assert any(line.split()[0] == "connections" for line in table.splitlines())


def test_ping_prints_each_round_trip_and_a_summary(
    server_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "ping",
            "--socket",
            server_path,
            "--count",
            "3",
            "--size",
            "200",
            "--interval",
            "0.05",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0] == f"PING {server_path}: 200 data bytes"
    for seq, line in enumerate(out[1:4]):
        assert line.startswith(
            f"200 bytes from s.sock: seq={seq} time="
        ) and line.endswith(" ms")
    assert out[4] == f"--- {server_path} ping statistics ---"
    assert out[5] == "3 requests sent, 3 answers received, 0% loss"
    low, median, high = (float(x) for x in out[6].split("=")[1].split()[0].split("/"))
    assert 0 < low <= median <= high


def test_ping_counts_timeouts_as_lost(capsys: pytest.CaptureFixture[str]) -> None:
    # A peer that accepts and never answers: every ping times out.
    import socket

    directory = tempfile.mkdtemp(prefix="pxl-")
    path = os.path.join(directory, "mute.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    try:
        status = main(
            ["ping", "--socket", path, "-c", "2", "-i", "0", "--timeout", "0.2"]
        )
    finally:
        listener.close()
        shutil.rmtree(directory)
    out = capsys.readouterr().out
    assert status == 1
    assert "request timeout for seq=0" in out and "request timeout for seq=1" in out
    assert "2 requests sent, 0 answers received, 100% loss" in out


def test_ping_connect_failure_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "--socket", "/nonexistent-dir/s.sock", "-c", "1"]) == 3
    assert "cannot connect" in capsys.readouterr().err


def test_ping_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "--socket", "/x.sock", "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_format_table_flattens_nested_values() -> None:
    table = format_table(
        {"a": {"b": 1, "c": [1, 2]}, "long_key": "text", "empty": {}, "n": None}
    )
    assert table.splitlines() == [
        "a.b       1",
        "a.c       1, 2",
        "long_key  text",
        "empty     {}",
        "n         null",
    ]


def test_python_m_pixl_ipc_send_in_a_subprocess(server_path: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixl_ipc",
            "send",
            "--socket",
            server_path,
            "/ipcserver/test/echo",
            '{"n": 42}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 42}
    assert proc.stderr == ""


def test_ping_reconnects_when_the_server_hangs_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket
    import threading

    directory = tempfile.mkdtemp(prefix="pxl-")
    path = os.path.join(directory, "flaky.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)
    connections = []

    def serve() -> None:
        # Each connection answers one echo, then the server hangs up on it.
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            with conn:
                line = conn.makefile("rb").readline()
                if line:
                    request = json.loads(line)
                    conn.sendall(
                        json.dumps(
                            {"ipcReqID": request["ipcReqID"], "data": request["data"]}
                        ).encode()
                        + b"\n"
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        status = main(
            ["ping", "--socket", path, "-c", "3", "-i", "0.3", "--timeout", "5"]
        )
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept; close() alone does not
        listener.close()
        thread.join(5)
        shutil.rmtree(directory)
    assert not thread.is_alive()
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("64 bytes from flaky.sock: seq=2 time="), (
        lines
    )  # reconnected
    assert len(connections) >= 2
    assert status in (0, 1)
