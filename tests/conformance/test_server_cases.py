"""The server cases against the reference server, and the runner's own behaviour.

The reference server runs in a subprocess (``python -m pixl_ipc serve``), the
suite drives it through the runner's API; every case must pass. The runner's
behaviour (time bounds, verdicts, reports, CLI exit status) is checked against
tiny in-test servers and the conformance kit's broken server.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc_conformance.cli import main
from pixl_ipc_conformance.matchers import describe, mismatch
from pixl_ipc_conformance.model import (
    Case,
    CaseResult,
    RunOptions,
    Verdict,
    apply_expected_failures,
    exit_status,
    load_cases,
    not_run,
)
from pixl_ipc_conformance.report import Reporter, summary_line, write_json, write_junit
from pixl_ipc_conformance.schemas import SpecSchemas
from pixl_ipc_conformance.server_process import running_server
from pixl_ipc_conformance.server_runner import run_server_case, run_server_cases

LIMIT = 16 * 1024 * 1024
#: The machine is shared: when it is loaded, the time bounds stretch (up to 3x)
#: so that a slow but working server is not taken for a hung one.
LOAD_SCALE = min(3.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
APP_HANDLERS = (
    Path(__file__).resolve().parents[2] / "conformance" / "app" / "pixl_ipc_python.py"
)
REFERENCE = (
    "{python} -m pixl_ipc serve --socket {socket} --max-message-bytes 16777216"
    f" --chmod {{chmod}} --config {{access_config}} --handlers {APP_HANDLERS}"
)
BROKEN = "{python} -m pixl_ipc_conformance.brokenpeers.broken_server --socket {socket}"
SERVER_CASES = load_cases("server")


@pytest.fixture(scope="module")
def schemas() -> SpecSchemas:
    return SpecSchemas()


def _run_reference(cases: list[Case], schemas: SpecSchemas) -> list[CaseResult]:
    options = RunOptions(
        schemas=schemas,
        timeout_scale=LOAD_SCALE,
        max_message_bytes=LIMIT,
        start_command=REFERENCE,
        server_capabilities=["app_handlers"],
    )
    with running_server(REFERENCE) as server:
        return run_server_cases(cases, server, options)


@pytest.fixture(scope="module")
def reference_results(schemas: SpecSchemas) -> dict[str, CaseResult]:
    """Every server case against the reference server; the cases are shared
    among three servers run side by side, to keep the wall time down."""
    shares = [SERVER_CASES[i::3] for i in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parts = list(pool.map(lambda cases: _run_reference(cases, schemas), shares))
    return {r.case_id: r for part in parts for r in part}


@pytest.mark.parametrize("case_id", [c.id for c in SERVER_CASES])
def test_reference_server_passes(
    case_id: str, reference_results: dict[str, CaseResult]
) -> None:
    result = reference_results[case_id]
    assert result.verdict is Verdict.PASS, (
        f"expected {result.expected}; got {result.got} ({result.detail})"
    )


# --------------------------------------------------------------------------
# Tiny servers for the runner's own checks
# --------------------------------------------------------------------------


class FakeServer:
    """A listening socket whose connections are handed to ``handler`` in threads."""

    def __init__(self, path: str, handler: Callable[[socket.socket], None]) -> None:
        self.path = path
        self.handler = handler
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def fake_server(
    sock_path: str,
) -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    servers: list[FakeServer] = []

    def start(handler: Callable[[socket.socket], None]) -> str:
        servers.append(FakeServer(sock_path, handler))
        return sock_path

    yield start
    for server in servers:
        server.close()


def _case(case_id: str) -> Case:
    return next(c for c in SERVER_CASES if c.id == case_id)


def _silent(conn: socket.socket) -> None:
    while conn.recv(65536):
        pass


def _answer_with(line: bytes) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        while conn.recv(65536):
            conn.sendall(line)

    return handler


def test_a_hung_server_fails_within_the_case_bound(
    fake_server: Callable[..., str], schemas: SpecSchemas
) -> None:
    path = fake_server(_silent)
    case = _case("S-ECHO")
    started = time.monotonic()
    result = run_server_case(case, path, RunOptions(schemas=schemas))
    elapsed = time.monotonic() - started
    assert result.verdict is Verdict.FAIL
    assert "nothing within" in result.got
    assert elapsed < case.timeout_s + 2


def test_nothing_listening_fails_promptly(sock_path: str, schemas: SpecSchemas) -> None:
    started = time.monotonic()
    result = run_server_case(_case("S-ECHO"), sock_path, RunOptions(schemas=schemas))
    assert result.verdict is Verdict.FAIL
    assert "cannot connect" in result.got
    assert time.monotonic() - started < 2


def test_a_server_that_hangs_up_fails(
    fake_server: Callable[..., str], schemas: SpecSchemas
) -> None:
    path = fake_server(lambda conn: conn.close())
    result = run_server_case(_case("S-ECHO"), path, RunOptions(schemas=schemas))
    assert result.verdict is Verdict.FAIL
    assert "closed" in result.got or "reset" in result.got or "closed" in result.detail


@pytest.mark.parametrize("may_close", [True, False])
def test_a_send_to_a_server_that_already_hung_up_fails_unless_the_step_allows_it(
    fake_server: Callable[..., str], schemas: SpecSchemas, may_close: bool
) -> None:
    def deny(conn: socket.socket) -> None:
        conn.sendall(b'{"ipcReqID":null,"code":"access_denied","message":"no"}\n')
        conn.close()

    path = fake_server(deny)
    send: dict[str, Any] = {"op": "send", "message": {"ipcReqID": "a", "uri": "/x"}}
    if may_close:
        send["peer_may_close"] = True
    case = Case(
        id="S-TEST-MAY-CLOSE",
        kind="server",
        rules=["SEC-2"],
        level="MUST",
        title="",
        description="",
        expect="",
        timeout_s=5,
        steps=[
            {"op": "connect"},
            {"op": "sleep", "s": 0.2},  # the server has hung up before the write
            send,
            {
                "op": "expect",
                "responses": [{"ipcReqID": None, "code": "access_denied"}],
            },
            {"op": "expect_closed"},
        ],
    )
    result = run_server_case(case, path, RunOptions(schemas=schemas))
    if may_close:
        assert result.verdict is Verdict.PASS, result.detail
    else:
        assert result.verdict is Verdict.FAIL
        assert "while it was written to" in result.got


def test_a_message_against_the_schema_fails_even_when_the_case_would_match(
    fake_server: Callable[..., str], schemas: SpecSchemas
) -> None:
    # ipcReqID true is no valid response id (RESP-2); a top-level code with data breaks ERR-2.
    path = fake_server(_answer_with(b'{"ipcReqID":"e1","data":1,"code":"x"}\n'))
    result = run_server_case(_case("S-ECHO"), path, RunOptions(schemas=schemas))
    assert result.verdict is Verdict.FAIL
    assert "schema" in result.expected
    assert "error-response" in result.detail


def test_a_line_that_is_not_json_fails(
    fake_server: Callable[..., str], schemas: SpecSchemas
) -> None:
    path = fake_server(_answer_with(b"{oops\n"))
    result = run_server_case(_case("S-ECHO"), path, RunOptions(schemas=schemas))
    assert result.verdict is Verdict.FAIL
    assert "not JSON" in result.got


def test_a_failed_should_case_is_a_warning(
    fake_server: Callable[..., str], schemas: SpecSchemas
) -> None:
    path = fake_server(_silent)
    case = _case("S-STATS")
    assert case.level == "SHOULD"
    result = run_server_case(case, path, RunOptions(schemas=schemas, timeout_scale=0.2))
    assert result.verdict is Verdict.WARN
    assert exit_status([result]) == 0


def test_a_case_needing_the_limit_is_skipped_without_it(
    sock_path: str, schemas: SpecSchemas
) -> None:
    result = run_server_case(
        _case("S-LIMIT-OVER"), sock_path, RunOptions(schemas=schemas)
    )
    assert result.verdict is Verdict.SKIP
    assert "max-message-bytes" in result.detail


def test_a_lifecycle_case_is_skipped_without_a_start_command(
    sock_path: str, schemas: SpecSchemas
) -> None:
    result = run_server_case(
        _case("S-LIFE-SHUTDOWN"), sock_path, RunOptions(schemas=schemas)
    )
    assert result.verdict is Verdict.SKIP
    assert "--start" in result.detail


def test_a_push_is_set_aside(
    fake_server: Callable[..., str], schemas: SpecSchemas
) -> None:
    def handler(conn: socket.socket) -> None:
        buffer = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                conn.sendall(b'{"data":{"push":1}}\n')  # PUSH-1: no ipcReqID
                answer = {"ipcReqID": request["ipcReqID"], "data": request.get("data")}
                conn.sendall(json.dumps(answer).encode() + b"\n")

    path = fake_server(handler)
    result = run_server_case(_case("S-ECHO"), path, RunOptions(schemas=schemas))
    assert result.verdict is Verdict.PASS, result


# --------------------------------------------------------------------------
# Matchers
# --------------------------------------------------------------------------


def _why(matcher: dict[str, Any], message: Any, schemas: SpecSchemas) -> str | None:
    return mismatch(matcher, message, schemas, {})


def test_a_matcher_allows_members_it_does_not_name(schemas: SpecSchemas) -> None:
    message = {"ipcReqID": "a", "data": 1, "extra": True}
    assert _why({"ipcReqID": "a", "data": 1}, message, schemas) is None


def test_an_exact_matcher_refuses_any_other_member(schemas: SpecSchemas) -> None:
    matcher = {"ipcReqID": "a", "data": {"x": 1}, "exact": True}
    assert _why(matcher, {"ipcReqID": "a", "data": {"x": 1}}, schemas) is None
    reason = _why(matcher, {"ipcReqID": "a", "data": {"x": 1}, "server": "x"}, schemas)
    assert reason is not None and "server" in reason
    # Members inside data are compared by data itself, exactly.
    assert _why(matcher, {"ipcReqID": "a", "data": {"x": 1, "y": 2}}, schemas)


def test_an_exact_matcher_allows_what_it_names_in_any_form(
    schemas: SpecSchemas,
) -> None:
    matcher = {
        "ipcReqID_in": ["a", None],
        "code": "no_uri",
        "message_not_pattern": "Traceback",
        "members": {"limit": 5},
        "exact": True,
    }
    message = {"ipcReqID": None, "code": "no_uri", "message": "m", "limit": 5}
    assert _why(matcher, message, schemas) is None
    assert _why(matcher, {**message, "data": None}, schemas) is not None
    assert describe(matcher).endswith("no other member")


def test_a_list_check_looks_at_both_ends_of_the_pointed_list(
    schemas: SpecSchemas,
) -> None:
    message = {"ipcReqID": "i", "data": {"handlers": ["echo", "delay", "app1", "app2"]}}
    pointer = "/data/handlers"
    ends = {
        "ipcReqID": "i",
        "list": {"pointer": pointer, "ends_with": ["app1", "app2"]},
    }
    assert _why(ends, message, schemas) is None
    both = {
        "list": {"pointer": pointer, "starts_with": ["echo"], "ends_with": ["app2"]}
    }
    assert _why(both, message, schemas) is None
    swapped = {"data": {"handlers": ["app1", "app2", "echo", "delay"]}}
    reason = _why(ends, {"ipcReqID": "i", **swapped}, schemas)
    assert reason is not None and "does not end with" in reason
    starts = {"list": {"pointer": pointer, "starts_with": ["delay"]}}
    assert "does not start with" in (_why(starts, message, schemas) or "")
    longer = {
        "list": {
            "pointer": pointer,
            "ends_with": ["x", "echo", "delay", "app1", "app2"],
        }
    }
    assert _why(longer, message, schemas) is not None
    missing = {"list": {"pointer": "/data/nothing", "ends_with": [1]}}
    assert "missing" in (_why(missing, message, schemas) or "")
    assert "ending with" in describe(ends)


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------


def _results() -> list[CaseResult]:
    return [
        CaseResult("S-A", "MUST", Verdict.PASS, "", "", "", ["FRAME-1"], 0.1),
        CaseResult(
            "S-B",
            "MUST",
            Verdict.FAIL,
            "step 2 (expect)",
            "an echo",
            "nothing",
            ["FRAME-3"],
            0.2,
        ),
        CaseResult(
            "S-C",
            "SHOULD",
            Verdict.WARN,
            "",
            "answers first",
            "closed",
            ["LIFE-2"],
            0.3,
        ),
        CaseResult(
            "S-D", "MUST", Verdict.SKIP, "needs the limit", "", "", ["LIMIT-2"], 0.0
        ),
    ]


def test_summary_line_counts_warnings_apart_and_what_was_not_verified() -> None:
    assert summary_line(_results()) == "1 passed, 1 warned, 1 failed, 1 not verified"
    assert summary_line(_results()[:3]) == "1 passed, 1 warned, 1 failed"


def test_reporter_prints_table_and_summary() -> None:
    out, progress = StringIO(), StringIO()
    reporter = Reporter(out, progress)
    results = _results()
    reporter.start(len(results))
    for result in results:
        reporter.case_finished(result)
    summary = "1 passed, 1 warned, 1 failed, 1 not verified"
    assert reporter.finish(results) == summary
    text = out.getvalue()
    assert "expected an echo; got nothing" in text
    assert "WARN" in text and "SKIP" in text
    assert "not verified (1):\n  needs the limit: S-D\n" in text
    assert text.rstrip().splitlines()[-1] == summary
    assert "[4/4] S-D SKIP" in progress.getvalue()


def test_expected_failures_do_not_fail_the_run() -> None:
    results = apply_expected_failures(
        _results(), {"S-B": "known defect", "S-A": "fixed since"}
    )
    assert exit_status(_results()) == 1
    assert exit_status(results) == 0
    assert (
        summary_line(results)
        == "1 passed, 1 warned, 0 failed, 1 not verified, 1 expected to fail"
    )
    out = StringIO()
    Reporter(out, None).finish(results)
    assert "XFAIL" in out.getvalue() and "XPASS" in out.getvalue()


def test_json_and_junit_reports(tmp_path: Path) -> None:
    results = _results()
    write_json(results, tmp_path / "r.json", meta={"name": "x"})
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["summary"] == "1 passed, 1 warned, 1 failed, 1 not verified"
    assert document["not_verified"] == [{"reason": "needs the limit", "cases": ["S-D"]}]
    assert [r["verdict"] for r in document["results"]] == [
        "PASS",
        "FAIL",
        "WARN",
        "SKIP",
    ]
    write_junit(results, tmp_path / "r.xml")
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert (
        root.get("tests") == "4"
        and root.get("failures") == "1"
        and root.get("skipped") == "1"
    )
    failed = root.find("testcase[@name='S-B']")
    assert failed is not None and failed.find("failure") is not None


def test_a_case_that_could_not_run_is_an_error_everywhere(tmp_path: Path) -> None:
    case = _case("S-ECHO")
    results = [*_results(), not_run(case, "the server stopped serving during S-B")]
    assert exit_status(results[:1]) == 0 and exit_status([results[-1]]) == 1
    assert summary_line(results).startswith("1 passed, 1 warned, 1 failed, 1 not run, ")
    out = StringIO()
    Reporter(out, None).finish(results)
    assert "S-ECHO  MUST    ERROR" in out.getvalue()
    assert "not run: the server stopped serving during S-B" in out.getvalue()
    write_junit(results, tmp_path / "r.xml")
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert root.get("errors") == "1"
    error = root.find("testcase[@name='S-ECHO']/error")
    assert error is not None and "stopped serving" in (error.get("message") or "")


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def test_cli_exit_status_follows_must_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = f"{BROKEN} --defect crlf-bad-json"
    argv = ["server", "--start", broken, "--case", "S-FRAME-CRLF,S-ECHO", "--quiet"]
    assert (
        main(
            [
                *argv,
                "--report-json",
                str(tmp_path / "r.json"),
                "--junit",
                str(tmp_path / "r.xml"),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == "1 passed, 0 warned, 1 failed"
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["failed"] == 1
    known = tmp_path / "xf.json"
    known.write_text(
        json.dumps(
            {"expected_failures": [{"case": "S-FRAME-CRLF", "reason": "CR kept"}]}
        )
    )
    assert main([*argv, "--expect-fail", str(known)]) == 0
    assert "XFAIL" in capsys.readouterr().out


def test_cli_should_failure_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "server",
        "--start",
        f"{BROKEN} --defect half-close-drop",
        "--case",
        "S-HALF-CLOSE",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "WARN" in capsys.readouterr().out


def test_cli_list_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "server", "--level", "should"]) == 0
    listing = capsys.readouterr().out
    assert "S-OUT-OF-ORDER" in listing and "S-ECHO " not in listing
    assert (
        main(["server", "--socket", "/nonexistent.sock", "--spec-dir", str(tmp_path)])
        == 2
    )
    assert "schema" in capsys.readouterr().err
    assert (
        main(["server", "--start", f"{sys.executable} -c pass", "--start-timeout", "3"])
        == 2
    )
    assert "exited" in capsys.readouterr().err
