"""The command line as a user in their own project runs it.

Commands given with ``--start`` and ``--adapter`` run in the caller's working
directory (or ``--cwd``), the commands of a matrix file in that file's
directory. A run never passes by accident: a selection that matches nothing is
a usage error, the summary counts warnings and what was not verified, and
``--strict`` makes a warning fail the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from pixl_ipc_conformance.cli import main

#: An adapter that answers ``start`` and refuses to connect: C-CONNECT-MISSING passes.
CONNECT_REFUSING_ADAPTER = """\
import json, sys
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["cmd"] == "start":
        result = {"name": "x", "language": "python", "version": "1", "capabilities": []}
        answer = {"id": cmd["id"], "ok": True, "result": result}
    else:
        error = {"kind": "connect", "message": "no such file"}
        answer = {"id": cmd["id"], "ok": False, "error": error}
    print(json.dumps(answer), flush=True)
"""
#: A server script of the user's own: the conformance kit's broken server, no defect.
SERVER = """\
import runpy
runpy.run_module("pixl_ipc_conformance.brokenpeers.broken_server", run_name="__main__")
"""


@pytest.fixture
def project(short_tmp: Path) -> Path:
    """A user's project directory holding an adapter and a server script."""
    directory = short_tmp / "project"
    directory.mkdir()
    (directory / "my_adapter.py").write_text(CONNECT_REFUSING_ADAPTER)
    (directory / "my_server.py").write_text(SERVER)
    return directory


@pytest.fixture
def elsewhere(short_tmp: Path) -> Path:
    directory = short_tmp / "elsewhere"
    directory.mkdir()
    return directory


ADAPTER_RUN = [
    "client",
    "--adapter",
    "{python} my_adapter.py",
    "--case",
    "C-CONNECT-MISSING",
    "--quiet",
]
SERVER_RUN = [
    "server",
    "--start",
    "{python} my_server.py --socket {socket}",
    "--case",
    "S-ECHO",
    "--quiet",
]


def test_an_adapter_command_runs_in_the_callers_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert main(ADAPTER_RUN) == 0


def test_an_adapter_command_runs_in_the_directory_given_by_cwd(
    project: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(elsewhere)
    assert main([*ADAPTER_RUN, "--cwd", str(project)]) == 0
    assert main(ADAPTER_RUN) == 1  # my_adapter.py is not in elsewhere/


def test_a_start_command_runs_in_the_callers_directory_or_cwd(
    project: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert main(SERVER_RUN) == 0
    monkeypatch.chdir(elsewhere)
    assert main([*SERVER_RUN, "--cwd", str(project)]) == 0


def test_a_cwd_that_is_not_a_directory_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ADAPTER_RUN, "--cwd", str(project / "my_adapter.py")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_matrix_commands_run_in_the_matrix_files_directory(
    project: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The adapter notes where it runs, then fails its start: every case is cut short.
    (project / "where.py").write_text(
        "import os, pathlib, sys\n"
        "pathlib.Path(sys.argv[1]).write_text(os.getcwd())\n"
        "sys.exit(3)\n"
    )
    matrices = project / "matrices"
    matrices.mkdir()
    note = elsewhere / "cwd.txt"
    entry = {"name": "c", "kind": "client", "command": f"{{python}} ../where.py {note}"}
    (matrices / "matrix.json").write_text(json.dumps({"implementations": [entry]}))
    monkeypatch.chdir(elsewhere)
    argv = ["matrix", "--matrix-file", "../project/matrices/matrix.json"]
    assert main([*argv, "--out", str(elsewhere / "out"), "--quiet"]) == 1
    assert note.read_text() == str(matrices)


# -- no accidental pass ------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["client", "--adapter", "x", "--case", "C-TIMEOUT-*"], "'C-TIMEOUT-*'"),
        (["server", "--socket", "/x.sock", "--case", "S-ECHO,S-NOPE"], "'S-NOPE'"),
        (["list", "client", "--case", "S-ECHO"], "'S-ECHO'"),
        (["list", "--level", "should", "--case", "S-ECHO"], "--level should"),
    ],
)
def test_a_selection_of_nothing_is_a_usage_error_naming_the_pattern(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert named in captured.err
    assert captured.out == ""


def test_a_warning_is_counted_apart_and_fails_a_strict_run(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    start = "{python} my_server.py --socket {socket} --defect half-close-drop"
    argv = ["server", "--start", start, "--case", "S-HALF-CLOSE,S-ECHO", "--quiet"]
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == (
        "1 passed, 1 warned, 0 failed"
    )
    assert main([*argv, "--strict"]) == 1


def test_cases_not_verified_are_listed_by_reason_in_the_summary_and_report(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(project)
    report = project / "report.json"
    argv = ["server", "--start", "{python} my_server.py --socket {socket}", "--quiet"]
    argv += ["--case", "S-ECHO,S-LIMIT-OVER,S-SEC-SOCKET-MODE"]
    assert main([*argv, "--report-json", str(report)]) == 0
    out = capsys.readouterr().out
    assert (
        out.rstrip().splitlines()[-1] == "1 passed, 0 warned, 0 failed, 2 not verified"
    )
    assert "not verified (2):" in out
    assert "--max-message-bytes is not known to the runner: S-LIMIT-OVER" in out
    assert "{chmod} placeholder" in out and "S-SEC-SOCKET-MODE" in out
    document = json.loads(report.read_text())
    assert [entry["cases"] for entry in document["not_verified"]] == [
        ["S-LIMIT-OVER"],
        ["S-SEC-SOCKET-MODE"],
    ]
    assert document["meta"]["exit_status"] == 0


# -- wire transcripts --------------------------------------------------------------


def test_a_failed_case_reports_its_wire_transcript(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    report = project / "report.json"
    start = "{python} my_server.py --socket {socket} --defect crlf-bad-json"
    argv = ["server", "--start", start, "--case", "S-FRAME-CRLF,S-ECHO", "--quiet"]
    assert main([*argv, "--report-json", str(report)]) == 1
    assert "wire transcript" not in capsys.readouterr().out
    results = {r["case"]: r for r in json.loads(report.read_text())["results"]}
    assert "transcript" not in results["S-ECHO"]  # passed: nothing to show
    entries = results["S-FRAME-CRLF"]["transcript"]["entries"]
    sent = [e for e in entries if e["dir"] == "out"]
    read = [e for e in entries if e["dir"] == "in"]
    assert sent[0]["data"].endswith("\r\n") and sent[0]["bytes"] == len(sent[0]["data"])
    assert '"code":"bad_json"' in read[0]["data"]
    assert 0 <= sent[0]["t"] <= read[0]["t"]
    assert {"connected", "the runner closed the connection"} <= {
        e["data"] for e in entries
    }
    assert main([*argv, "--transcript"]) == 1
    out = capsys.readouterr().out
    assert "wire transcript (> the suite wrote, < it read, = an event):" in out
    assert "> main (" in out and '\\r\\n"' in out and "< main (" in out


def test_a_transcript_keeps_its_ends_and_cuts_each_entry() -> None:
    from pixl_ipc_conformance.transcript import Transcript

    transcript = Transcript(keep_each_end=3, entry_bytes=4)
    for n in range(10):
        transcript.record("out", "main", f"message {n}".encode())
    kept = transcript.to_json()
    assert kept["omitted"] == 4
    assert [e["data"] for e in kept["entries"]][:2] == [
        "mess... (5 more bytes)",
        "mess... (5 more bytes)",
    ]
    assert len(kept["entries"]) == 6 and kept["entries"][-1]["bytes"] == 9
    assert "... 4 entries omitted ..." in transcript.format()


# -- a server under test that dies -------------------------------------------------


def test_a_server_the_runner_started_that_dies_is_named_once_and_restarted(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    report = project / "report.json"
    start = "{python} my_server.py --socket {socket} --defect crash-deep"
    argv = ["server", "--start", start, "--case", "S-DEEP-NESTING,S-ECHO,S-ID-*"]
    assert main([*argv, "--quiet", "--report-json", str(report)]) == 1
    out = capsys.readouterr().out
    assert out.count("exited with status 70") == 2  # the case's row and the note
    assert (
        "note: the server exited with status 70 during S-DEEP-NESTING; restarted" in out
    )
    document = json.loads(report.read_text())
    verdicts = {r["case"]: r["verdict"] for r in document["results"]}
    assert verdicts.pop("S-DEEP-NESTING") == "FAIL"
    assert set(verdicts.values()) == {"PASS"}
    assert len(document["notes"]) == 1


def test_a_server_at_a_socket_that_dies_leaves_the_rest_not_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixl_ipc_conformance.server_process import running_server

    command = (
        f"{{python}} {project / 'my_server.py'} --socket {{socket}} --defect crash-deep"
    )
    with running_server(command) as server:
        argv = ["server", "--socket", server.path, "--quiet"]
        assert main([*argv, "--case", "S-DEEP-NESTING,S-ECHO,S-ID-MISSING"]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == "0 passed, 0 warned, 1 failed, 2 not run"
    assert out.count("not run: the server stopped serving during S-DEEP-NESTING") == 2
    assert (
        "note: the server stopped serving during S-DEEP-NESTING (nothing accepts" in out
    )


def test_nothing_at_the_socket_is_said_once(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(short_tmp / "none.sock")
    assert main(["server", "--socket", path, "--case", "S-ECHO,S-ID-*", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"note: no server serves at {path}: there is no socket at {path}" in out
    assert out.rstrip().splitlines()[-1].startswith("0 passed, 0 warned, 0 failed, ")


# -- what the runner writes ----------------------------------------------------------

#: A case whose failure quotes a lone surrogate both ways: the server echoes one
#: (valid JSON, FRAME-8) and the case expects another.
SURROGATE_CASE = {
    "id": "S-MY-SURROGATE",
    "kind": "server",
    "rules": ["FRAME-8"],
    "level": "MUST",
    "title": "a lone surrogate comes back",
    "description": "An echo of a lone surrogate, expected back as another one.",
    "expect": "the other surrogate",
    "timeout_s": 3,
    "steps": [
        {
            "op": "send",
            "text": '{"ipcReqID":"s1","uri":"/ipcserver/test/echo","data":"\\ud800"}\n',
        },
        {"op": "expect", "responses": [{"ipcReqID": "s1", "data": "\udbff"}]},
    ],
}


def test_a_failure_that_quotes_a_lone_surrogate_is_printed_and_reported(
    project: Path,
) -> None:
    cases = project / "cases"
    cases.mkdir()
    (cases / "S-MY-SURROGATE.json").write_text(json.dumps(SURROGATE_CASE))
    command = [sys.executable, "-m", "pixl_ipc_conformance", "server", "--quiet"]
    command += ["--start", "{python} my_server.py --socket {socket}"]
    command += ["--cases-dir", str(cases), "--case", "S-MY-SURROGATE"]
    command += ["--report-json", "report.json", "--junit", "report.xml"]
    # A strict UTF-8 stdout, as a terminal or a pipe has.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    run = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout.rstrip().splitlines()[-1] == "0 passed, 0 warned, 1 failed"
    assert 'data "\\udbff"' in run.stdout and '"\\ud800"' in run.stdout
    (result,) = json.loads((project / "report.json").read_text())["results"]
    assert "\\ud800" in result["got"] and result["verdict"] == "FAIL"
    failure = ElementTree.parse(project / "report.xml").find("testcase/failure")
    assert failure is not None and "\\udbff" in failure.get("message", "")


def test_texts_xml_cannot_carry_are_escaped_in_the_junit_report(
    tmp_path: Path,
) -> None:
    from pixl_ipc_conformance.model import CaseResult, Verdict
    from pixl_ipc_conformance.report import write_junit

    text = "nul \x00, surrogate \ud800, U+FFFE \ufffe"
    result = CaseResult(
        "S-X", "MUST", Verdict.FAIL, text, "this", text, ["FRAME-8"], 0.1
    )
    write_junit([result], tmp_path / "r.xml")
    failure = ElementTree.parse(tmp_path / "r.xml").find("testcase/failure")
    assert failure is not None
    assert "nul \\u0000, surrogate \\ud800, U+FFFE \\ufffe" in (failure.text or "")


def test_output_closed_early_ends_the_run_quietly() -> None:
    read_end, write_end = os.pipe()
    # A small pipe: the listing cannot be all written before the reader goes away.
    fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, 4096)
    with subprocess.Popen(
        [sys.executable, "-m", "pixl_ipc_conformance", "list"],
        stdout=write_end,
        stderr=subprocess.PIPE,
    ) as proc:
        os.close(write_end)
        assert os.read(read_end, 2) == b"S-"
        os.close(read_end)  # as `| head -1` does
        assert proc.stderr is not None
        errors = proc.stderr.read()
    assert errors == b""
    assert proc.returncode == 141
