"""``pixl-ipc-conformance compare``: two live servers, the same inputs, where the answers differ.

Against the reference server and the model of the original
(tests/original/original_model.js), every recorded input differs exactly as
its row of PROTOCOL.md's table "Differences from the original" declares, and
no input recorded as answered alike, nor any case that encodes the original's
behaviour, differs. Against a server with a planted defect the difference is
found, and the run fails. A server that dies or stays silent is reported for
that input, and the run goes on. The comparison itself (VER-2: values, not
bytes) is checked on outcomes built by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc_conformance.cli import main
from pixl_ipc_conformance.compare import CompareVerdict, compare_outcomes
from pixl_ipc_conformance.compare_inputs import (
    Input,
    case_inputs,
    delay_wait_ms,
    load_inputs_file,
    recorded_inputs,
)
from pixl_ipc_conformance.compare_replay import End, Outcome
from pixl_ipc_conformance.model import CaseFileError, load_cases

REPO = Path(__file__).resolve().parent.parent.parent
KIT = f"{sys.executable} -m pixl_ipc serve --socket {{socket}}"
NODE = shutil.which("node")
MODEL = (
    f"{NODE} {REPO / 'tests' / 'original' / 'original_model.js'} --socket {{socket}}"
)
BROKEN = f"{sys.executable} -m pixl_ipc_conformance.brokenpeers.broken_server --socket {{socket}}"
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the model of the original needs it"
)
#: A server that accepts connections, reads everything and never answers.
SILENT_SERVER = """\
import socket, sys, threading
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(16)
def drain(conn):
    while conn.recv(65536):
        pass
while True:
    threading.Thread(target=drain, args=(listener.accept()[0],), daemon=True).start()
"""


def _compare(
    *args: str, json_path: Path | None = None
) -> tuple[int, str, dict[str, Any] | None]:
    """Run ``compare`` with these arguments; the exit status, stdout, and the JSON report."""
    extra = ["--json", str(json_path)] if json_path is not None else []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        return_code = main(["compare", "--quiet", *extra, *args])
    report = None
    if json_path is not None and json_path.exists():
        report = json.loads(json_path.read_text(encoding="utf-8"))
    return return_code, out.getvalue(), report


@pytest.fixture(scope="module")
def kit_against_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, str, dict[str, Any], float]]:
    if NODE is None:
        pytest.skip("node is not installed: the model of the original needs it")
    report = tmp_path_factory.mktemp("compare") / "kit-model.json"
    started = time.monotonic()
    status, out, document = _compare("--start", KIT, "--start", MODEL, json_path=report)
    assert document is not None
    yield status, out, document, time.monotonic() - started


def _by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in document["inputs"]}


@needs_node
def test_reference_and_original_differ_only_as_the_recorded_rows_declare(
    kit_against_model: tuple[int, str, dict[str, Any], float],
) -> None:
    _, out, document, _ = kit_against_model
    found = _by_id(document)
    entries = json.loads(
        (REPO / "spec" / "vectors" / "original-answers.json").read_text(
            encoding="utf-8"
        )
    )["entries"]
    assert {e["id"] for e in entries} <= set(found)
    for entry in entries:
        got = found[entry["id"]]
        if "difference" in entry:
            assert got["verdict"] == "declared", (entry["id"], got)
            assert got["declared_as"] == {"A": "kit", "B": "original"}, entry["id"]
            assert got["difference"] == entry["difference"]
        else:
            assert got["verdict"] in ("same", "equal"), (entry["id"], got)
    # The row is shown next to the difference, on the terminal too.
    assert re.search(r"^delay-without-data +declared D7$", out, re.MULTILINE)
    assert "A answers as the kit, B as the original" in out


@needs_node
def test_cases_that_encode_the_original_are_answered_alike(
    kit_against_model: tuple[int, str, dict[str, Any], float],
) -> None:
    _, _, document, _ = kit_against_model
    cases = {c.id: c for c in load_cases("server")}
    replayed = [i for i in document["inputs"] if i["source"].startswith("case ")]
    assert replayed, "no server case was replayed"
    declared = {}
    for item in replayed:
        case = cases[item["source"].removeprefix("case ")]
        if "original" in case.tags:
            assert item["verdict"] in ("same", "equal"), item["id"]
        elif item["verdict"] == "declared":
            # The kit answers as the case expects, the original does not.
            assert item["declared_as"] == {"A": "case", "B": "other"}, item["id"]
            assert item["difference"] == ", ".join(case.differences), item["id"]
            declared[case.id] = item["difference"]
        else:
            assert item["verdict"] in ("same", "equal"), item["id"]
    # Where the kit goes beyond the original (bad_json answers, big lines,
    # /ipcserver/info, the delay built-in without data), the case names the row.
    assert declared["S-BAD-JSON"] == "D4"
    assert declared["S-INFO"] == "D10"
    assert declared["S-SIZE-1MIB"] == "D5"
    assert declared["S-ERR-NO-DETAILS"] == "D3, D4, D6"
    assert {c.id for c in cases.values() if c.differences} <= set(declared)


@needs_node
def test_the_reference_and_the_original_differ_only_where_declared(
    kit_against_model: tuple[int, str, dict[str, Any], float],
) -> None:
    status, out, document, _ = kit_against_model
    assert {i["verdict"] for i in document["inputs"]} <= {"same", "equal", "declared"}
    assert status == document["exit_status"] == 0
    assert re.search(r"^S-DELAY-NO-DATA +declared D7$", out, re.MULTILINE)
    assert (
        'declared in spec/PROTOCOL.md, "Differences from the original": A answers as'
        " case S-DELAY-NO-DATA expects of the kit, B does not" in out
    )


@needs_node
def test_a_server_that_dies_is_restarted_and_reported_for_that_input(
    kit_against_model: tuple[int, str, dict[str, Any], float],
) -> None:
    status, out, document, elapsed = kit_against_model
    died = _by_id(document)["delay-without-data"]["B"]
    assert died["end"] == "connection lost"
    assert "exited with status" in died["server"] and "started again" in died["server"]
    assert "note: B: the server process exited with status" in out
    # The inputs after it were answered by the model started again.
    assert _by_id(document)["delay-out-of-order"]["B"]["end"] == "answered"
    assert status == document["exit_status"]
    # Every input has both outcomes and its bytes.
    for item in document["inputs"]:
        assert {"A", "B", "verdict", "input"} <= set(item)
    # It must stay a quick check (about 15 s on an idle 2-core machine).
    assert elapsed < 120


@needs_node
def test_declared_differences_alone_do_not_fail_the_run(tmp_path: Path) -> None:
    status, out, report = _compare(
        "--start",
        KIT,
        "--start",
        MODEL,
        "--case",
        "delay-without-data,echo-prefix-*,numbers-past-2-53",
        json_path=tmp_path / "r.json",
    )
    assert report is not None
    assert [i["verdict"] for i in report["inputs"]] == [
        "same",
        "same",
        "declared",
        "declared",
    ]
    assert status == 0, out
    assert "4 inputs: 2 same, 0 equal, 2 declared, 0 differ" in out


def test_a_planted_defect_is_found_and_fails_the_run(tmp_path: Path) -> None:
    status, out, report = _compare(
        "--start",
        KIT,
        "--start",
        f"{BROKEN} --defect no-uri-in-data",
        "--case",
        "no-uri-*,echo-prefix-echo2",
        json_path=tmp_path / "r.json",
    )
    assert report is not None
    verdicts = {i["id"]: i["verdict"] for i in report["inputs"]}
    assert verdicts == {
        "no-uri-id-true": "differ",
        "no-uri-falsy": "differ",
        "no-uri-id-falsy": "differ",
        "echo-prefix-echo2": "same",
    }
    assert status == 1
    # The input's bytes and both answers are on the terminal.
    assert re.search(r"^no-uri-id-true +DIFFERS$", out, re.MULTILINE)
    assert '    input   {"ipcReqID":true}\\n' in out
    assert (
        '    A only  {"ipcReqID":true,"code":"no_uri","message":"Missing required uri parameter from request"}'
        in out
    )
    assert '    B only  {"ipcReqID":true,"data":{"code":"no_uri"' in out


def test_a_server_given_by_its_socket_that_dies_is_reported_and_the_run_goes_on(
    short_tmp: Path,
) -> None:
    path = short_tmp / "b.sock"
    command = [*BROKEN.replace("{socket}", str(path)).split(), "--defect", "crash-deep"]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        status, out, report = _compare(
            "--start",
            KIT,
            "--socket",
            str(path),
            "--case",
            "echo-prefix-echo2,deep-nesting,S-ECHO",
            json_path=short_tmp / "r.json",
        )
    finally:
        proc.kill()
        proc.wait()
    assert report is not None
    verdicts = [(i["id"], i["verdict"]) for i in report["inputs"]]
    # Dying on deep nesting is what the original does: that difference is declared.
    assert verdicts == [
        ("echo-prefix-echo2", "same"),
        ("deep-nesting", "declared"),
        ("S-ECHO", "not compared"),
    ]
    assert "the server stopped serving" in report["inputs"][1]["B"]["server"]
    assert "no connection: cannot connect" in out
    assert "note: B: the server stopped serving during deep-nesting" in out
    assert status == 1


def test_no_answer_within_the_bound_is_an_answer_to_compare(short_tmp: Path) -> None:
    script = short_tmp / "silent.py"
    script.write_text(SILENT_SERVER)
    status, out, report = _compare(
        "--start",
        KIT,
        "--start",
        f"{{python}} {script} {{socket}}",
        "--answer-timeout",
        "1",
        "--case",
        "echo-without-data",
        json_path=short_tmp / "r.json",
    )
    assert report is not None
    silent = report["inputs"][0]["B"]
    assert silent["end"] == "no answer" and silent["answers"] == []
    assert report["inputs"][0]["verdict"] == "differ"
    assert (
        "B ended  no answer: no answer to the echo that followed the input within 1 s"
        in out
    )
    assert status == 1


def test_answers_the_delay_built_in_holds_back_are_waited_for(tmp_path: Path) -> None:
    status, _, report = _compare(
        "--start",
        KIT,
        "--start",
        BROKEN,
        "--settle-ms",
        "0",
        "--case",
        "delay-out-of-order,S-OUT-OF-ORDER",
        json_path=tmp_path / "r.json",
    )
    assert report is not None
    for item in report["inputs"]:
        assert item["verdict"] == "same", item["id"]
        assert len(item["A"]["answers"]) == 2, item["id"]
        assert max(a["at_s"] for a in item["A"]["answers"]) >= 0.24, item["id"]
    assert status == 0


def test_inputs_of_ones_own_are_replayed_and_listed(tmp_path: Path) -> None:
    mine = tmp_path / "mine.json"
    entries = [
        {
            "id": "my-status",
            "fact": "our status request",
            "input": [
                {
                    "text": '{"ipcReqID":"s1","uri":"/ipcserver/test/echo","data":{"ok":1}}\n'
                }
            ],
        },
        {
            "id": "my-two-lines",
            "input": [
                {"text": '{"ipcReqID":"a","uri":"/ipcserver/test/echo","data":1.0}\n'},
                {
                    "text": '{"ipcReqID":"b","uri":"/ipcserver/test/echo","data":"\\u00e9"}\n'
                },
            ],
        },
    ]
    mine.write_text(json.dumps({"entries": entries}))
    status, _, report = _compare(
        "--start",
        KIT,
        "--start",
        BROKEN,
        "--inputs",
        str(mine),
        "--case",
        "my-*",
        json_path=tmp_path / "r.json",
    )
    assert report is not None
    assert [(i["id"], i["source"], i["verdict"]) for i in report["inputs"]] == [
        ("my-status", "mine.json", "same"),
        ("my-two-lines", "mine.json", "same"),
    ]
    assert [a["text"] for a in report["inputs"][1]["A"]["answers"]] == [
        '{"ipcReqID":"a","data":1.0}',
        '{"ipcReqID":"b","data":"é"}',
    ]
    assert status == 0
    assert main(["compare", "--list", "--inputs", str(mine), "--case", "my-*"]) == 0


# -- usage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--start", KIT],
        ["--socket", "/a", "--socket", "/b", "--start", KIT],
        ["--socket", "/a", "--socket", "/b", "--case", "no-such-input"],
        ["--start", KIT, "--start", f"{sys.executable} -c pass"],
        ["--socket", "/nonexistent/a.sock", "--start", KIT],
    ],
    ids=["one-server", "three-servers", "nothing-selected", "start-fails", "no-socket"],
)
def test_a_compare_that_cannot_run_as_given_exits_2(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server given by a socket path where nothing listens: do not wait 5 s.
    monkeypatch.setattr("pixl_ipc_conformance.compare_replay._SOCKET_WAIT_S", 0.2)
    assert main(["compare", "--quiet", *args]) == 2


def test_an_inputs_file_that_is_not_of_the_format_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"entries": [{"id": "x", "input": "not parts"}]}))
    with pytest.raises(CaseFileError, match="entries/0/input"):
        load_inputs_file(bad)
    twice = tmp_path / "twice.json"
    entry = {"id": "x", "input": [{"text": "{}\n"}]}
    twice.write_text(json.dumps({"entries": [entry, entry]}))
    with pytest.raises(CaseFileError, match="'x' is used more than once"):
        load_inputs_file(twice)
    assert (
        main(["compare", "--socket", "/a", "--socket", "/b", "--inputs", str(bad)]) == 2
    )
    # original-answers.json itself is such a file.
    assert len(
        load_inputs_file(REPO / "spec" / "vectors" / "original-answers.json")
    ) == len(recorded_inputs())


# -- the comparison, without servers ---------------------------------------------------

ITEM = Input(id="x", source="test", title="", writes=((0.0, b"{}\n"),))


def _answered(*lines: str) -> Outcome:
    return Outcome(End.ANSWERED, [line.encode() for line in lines], [0.0] * len(lines))


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        (['{"ipcReqID":1,"data":[1,2]}'], ['{"ipcReqID":1,"data":[1,2]}'], "same"),
        (['{"a":1,"b":2}', '{"c":3}'], ['{"c":3}', '{"a":1,"b":2}'], "same"),
        (['{"a":1,"b":2}'], ['{"b":2,"a":1}'], "equal"),
        (['{"n":[1.0,1e2,-0.0,"\\u00e9"]}'], ['{"n":[1,100,0,"é"]}'], "equal"),
        (['{"n":9007199254740993}'], ['{"n":9007199254740992}'], "differ"),
        (['{"n":1e400}'], ['{"n":1e401}'], "differ"),
        (['{"n":1}'], ['{"n":true}'], "differ"),
        (['{"n":null}'], ['{"m":null}'], "differ"),
        (['{"a":1}', '{"a":1}'], ['{"a":1}'], "differ"),
        (["not json"], ["not json"], "same"),
        (["not json"], ["not  json"], "differ"),
        (
            ['{"ipcReqID":1,"code":"bad_json","message":"one text"}'],
            ['{"ipcReqID":1,"code":"bad_json","message":"another"}'],
            "equal",
        ),
        (
            ['{"ipcReqID":1,"code":"no_uri","message":"one text"}'],
            ['{"ipcReqID":1,"code":"no_uri","message":"another"}'],
            "differ",
        ),
    ],
)
def test_answers_compare_as_json_values(
    a: list[str], b: list[str], verdict: str
) -> None:
    assert compare_outcomes(ITEM, _answered(*a), _answered(*b)).verdict == verdict


def test_free_text_messages_compare_exactly_when_asked() -> None:
    a = _answered('{"code":"bad_json","message":"one"}')
    b = _answered('{"code":"bad_json","message":"two"}')
    assert (
        compare_outcomes(ITEM, a, b, exact_messages=True).verdict
        is CompareVerdict.DIFFER
    )


def test_how_an_exchange_ended_is_compared_and_a_missing_server_is_not_compared() -> (
    None
):
    lost = Outcome(End.CLOSED, [], [], "reset")
    assert compare_outcomes(ITEM, _answered(), lost).verdict is CompareVerdict.DIFFER
    assert (
        compare_outcomes(ITEM, lost, Outcome(End.CLOSED, [], [], "eof")).verdict
        == "same"
    )
    gone = Outcome(End.UNREACHABLE, [], [], "refused")
    assert (
        compare_outcomes(ITEM, _answered(), gone).verdict is CompareVerdict.NOT_COMPARED
    )


def test_a_declared_difference_is_one_where_each_server_answers_as_recorded() -> None:
    recorded = {
        "original": {"connection_lost": True},
        "kit": {"lines": ['{"ipcReqID":"d8","data":{"delay":0}}']},
    }
    item = Input(
        id="d",
        source="t",
        title="",
        writes=ITEM.writes,
        differences=("D7",),
        recorded=recorded,
    )
    kit = _answered('{"data":{"delay":0},"ipcReqID":"d8"}')
    lost = Outcome(End.CLOSED, [], [], "eof")
    assert compare_outcomes(item, kit, lost).declared_as == {
        "A": "kit",
        "B": "original",
    }
    assert compare_outcomes(item, lost, kit).declared_as == {
        "A": "original",
        "B": "kit",
    }
    other = _answered('{"ipcReqID":"d8","data":{"delay":1}}')
    assert compare_outcomes(item, other, lost).verdict is CompareVerdict.DIFFER


def test_a_case_declares_a_difference_where_one_server_answers_as_it_expects() -> None:
    (item,) = [i for i in case_inputs(load_cases("server", "S-BAD-JSON"))[0]]
    assert item.differences == ("D4",) and item.expected is not None
    kit = _answered(
        '{"ipcReqID":"bj1","code":"bad_json","message":"cut short"}',
        '{"ipcReqID":"ok","data":{"next":true}}',
    )
    silent = _answered('{"ipcReqID":"ok","data":{"next":true}}')
    comparison = compare_outcomes(item, silent, kit)
    assert comparison.verdict is CompareVerdict.DECLARED
    assert comparison.declared_as == {"A": "other", "B": "case"}
    # Neither answers as the case expects (a wrong code): an undeclared difference.
    wrong = _answered(
        '{"ipcReqID":"bj1","code":"no_uri","message":"x"}',
        '{"ipcReqID":"ok","data":{"next":true}}',
    )
    assert compare_outcomes(item, silent, wrong).verdict is CompareVerdict.DIFFER
    # Both answer as it expects, differently (the id null, then "bj1"): no row covers that.
    null_id = _answered(
        '{"ipcReqID":null,"code":"bad_json","message":"x"}',
        '{"ipcReqID":"ok","data":{"next":true}}',
    )
    assert compare_outcomes(item, null_id, kit).verdict is CompareVerdict.DIFFER
    # A case without rows declares nothing.
    (echo,) = case_inputs(load_cases("server", "S-ECHO"))[0]
    assert echo.expected is None
    other = _answered('{"ipcReqID":"e1","data":1}')
    assert compare_outcomes(echo, other, silent).verdict is CompareVerdict.DIFFER


def test_server_cases_become_inputs_and_the_others_are_set_aside() -> None:
    inputs, skipped = case_inputs(load_cases("server"))
    by_id = {i.id: i for i in inputs}
    # Each connection of a case is an input of its own; the PHP client's two writes stay two.
    php = by_id["S-ORIGINAL-CLIENT-BYTES/php"]
    assert len(php.writes) == 10 and php.data.count(b"\n") == 5
    assert by_id["S-HALF-CLOSE"].half_close
    assert len(by_id["S-FRAME-SPLIT"].writes) == len(by_id["S-FRAME-SPLIT"].data)
    reasons = dict(skipped)
    assert reasons["S-LIFE-SHUTDOWN"] == "starts, signals or stops servers of its own"
    assert reasons["S-LIMIT-OVER"] == "depends on the server's message limit"
    assert reasons["S-CLIENT-GONE"] == "closes a connection before its answers are read"
    assert reasons["S-STATS"].startswith("asks /ipcserver/stats")
    assert not set(reasons) & {i.group for i in inputs}


@pytest.mark.parametrize(
    ("line", "wait"),
    [
        ('{"uri":"/ipcserver/test/delay","data":{"delay":300}}', 300),
        ('{"uri":"/ipcserver/test/delayX","data":{"delay":" 250 "}}', 250),
        ('{"uri":"/ipcserver/test/delay","data":{"delay":[120]}}', 120),
        ('{"uri":"/ipcserver/test/delay","data":{"delay":"soon"}}', 0),
        ('{"uri":"/ipcserver/test/delay","data":{"delay":2147483648}}', 0),
        ('{"uri":"/ipcserver/test/echo","data":{"delay":300}}', 0),
    ],
)
def test_the_wait_an_input_asks_of_the_delay_built_in(line: str, wait: float) -> None:
    assert delay_wait_ms(line.encode() + b"\n") == wait
