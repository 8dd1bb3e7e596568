"""Proof that the client cases can fail: each planted client defect is caught, nothing else is.

The broken adapter (pixl_ipc_conformance.brokenpeers.broken_adapter) drives a
small client written from the spec; without a defect it must pass every client
case. With a defect, the cases listed in ``EXPECTED`` must fail (FAIL for MUST
cases, WARN for SHOULD cases), the cases in ``WIRE_WARN`` must WARN (a SHOULD
rule broken on the wire inside a MUST case), and the other cases run must pass.
Finally every client case must be caught by at least one defect: a case no
broken client can fail checks nothing.

To stay within a minute, each defect runs against its expected cases plus a few
control cases that it must not disturb; ``PIXL_CONFORMANCE_FULL=1`` runs every
defect against the whole suite instead, and the clean adapter against the big
cases too. Cases tagged ``big`` (many MiB each) run
only against the defects aimed at them. Failing bounds are halved
(``timeout_scale``) so that caught cases give up sooner.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pixl_ipc_conformance.brokenpeers.broken_adapter import DEFECTS
from pixl_ipc_conformance.client_runner import run_client_cases
from pixl_ipc_conformance.model import Case, CaseResult, RunOptions, Verdict, load_cases
from pixl_ipc_conformance.schemas import SpecSchemas

ADAPTER = f"{sys.executable} -m pixl_ipc_conformance.brokenpeers.broken_adapter"
SCALE = 0.5
#: A truncated big line is dropped, so its case waits out its whole bound;
#: moving 16 MiB here takes well under a second, so a seventh of it still holds.
SCALE_FOR = {"truncate_1mib": 0.15}
FULL = os.environ.get("PIXL_CONFORMANCE_FULL") == "1"
AS_ROOT = os.geteuid() == 0
#: File modes do not stop root, so this case is skipped when the tests run as root.
ROOT_SKIPS = {"C-CONNECT-DENIED"} if AS_ROOT else set()

#: Big cases the clean adapter runs too: it stops reading at its limit and closes
#: while the scripted server is still writing, which the cases must accept (LIMIT-3).
CLOSES_AT_LIMIT = {
    "C-TOO-LARGE",
    "C-TOO-LARGE-CLOSES",
    "C-TOO-LARGE-CR",
    "C-TOO-LARGE-NO-ID",
    "C-TOO-LARGE-NO-LF",
}

#: Cases every sequential client touches; a defect must leave those it does not target passing.
CONTROLS = ["C-ECHO", "C-ERR-NO-URI", "C-CLOSE-PENDING"]

#: Every case that sends two requests one after the other on one connection.
SEQUENTIAL_REQUESTS = {
    "C-BLANK-LINES",
    "C-COALESCED-PUSH",
    "C-CRLF",
    "C-DATA-UNICODE",
    "C-DATA-VARIANTS",
    "C-ERR-BAD-JSON",
    "C-ERR-BAD-REQUEST",
    "C-ERR-CODE-TRUTHY",
    "C-ERR-IN-DATA-REPORTED",
    "C-ERR-NO-URI",
    "C-ERR-TOO-LARGE-REMOTE",
    "C-ERR-UNKNOWN-CODE",
    "C-INTROSPECT-ANSWERED",
    "C-MALFORMED-LINE",
    "C-NON-OBJECT-LINES",
    "C-ORIGINAL-SERVER",
    "C-PUSH-DELIVERED",
    "C-RECONNECT",
    "C-RESP-EXTRA-MEMBERS",
    "C-RESP-NO-DATA",
    "C-SPLIT-BYTES",
    "C-UNKNOWN-ID",
}

#: For each defect, the cases it must make fail (FAIL, or WARN for SHOULD cases).
EXPECTED: dict[str, set[str]] = {
    # Reusing a timed-out request's id breaks CORR-5 (FAIL); reusing an answered
    # one only breaks CORR-1's SHOULD (WARN, see WIRE_WARN).
    "reuse_ids": {
        "C-ID-RESERVED-AFTER-TIMEOUT",
        "C-INTROSPECT-TIMED-OUT",
        "C-LATE-ANSWER",
        "C-TIMEOUT",
        "C-ID-UNIQUE",
    },
    "late_to_next": {"C-LATE-ANSWER", "C-UNKNOWN-ID"},
    "hang_on_close": {
        "C-CLIENT-CLOSE-PENDING",
        "C-CLOSE-MANY-PENDING",
        "C-CLOSE-PENDING",
        "C-RECONNECT",
    },
    "match_by_order": {
        "C-COALESCED-RESPONSES",
        "C-LATE-ANSWER",
        "C-OUT-OF-ORDER",
        "C-PIPELINE",
        "C-UNKNOWN-ID",
    },
    "first_line_only": {
        "C-BLANK-LINES",
        "C-COALESCED-PUSH",
        "C-COALESCED-RESPONSES",
        "C-CONCURRENT-WRITES",
        "C-PIPELINE",
    },
    "push_as_response": {
        "C-COALESCED-PUSH",
        "C-ERR-NULL-ID",
        "C-PUSH-BEFORE-RESPONSE",
        "C-PUSH-NULL-ID",
    },
    "drop_pushes": {
        "C-COALESCED-PUSH",
        "C-ERR-NULL-ID",
        "C-PUSH-BEFORE-RESPONSE",
        "C-PUSH-DELIVERED",
        "C-PUSH-NULL-ID",
        "C-RESP-EXTRA-MEMBERS",
    },
    "strict_lines": {"C-NON-OBJECT-LINES"},
    "no_crlf": {"C-CRLF"},
    "choke_malformed": {"C-MALFORMED-LINE"},
    "blank_fatal": {"C-BLANK-LINES"},
    "truncate_1mib": {"C-BIG-1100K", "C-BIG-8M", "C-BIG-16M"},
    "no_reassembly": {"C-SPLIT-BYTES"},
    "splitlines": {"C-DATA-UNICODE"},
    "null_for_errors": {
        "C-ERR-BAD-JSON",
        "C-ERR-BAD-REQUEST",
        "C-ERR-CODE-TRUTHY",
        "C-ERR-NO-URI",
        "C-ERR-TOO-LARGE-REMOTE",
        "C-ERR-UNKNOWN-CODE",
        "C-INTROSPECT-ANSWERED",
        "C-RESP-EXTRA-MEMBERS",
    },
    "unknown_code_ok": {"C-ERR-CODE-TRUTHY", "C-ERR-UNKNOWN-CODE"},
    "code_to_err": {"C-ERR-IN-DATA"},
    "missing_data_fatal": {"C-RESP-NO-DATA"},
    "strict_members": {"C-ERR-TOO-LARGE-REMOTE", "C-RESP-EXTRA-MEMBERS"},
    "deep_limit": {"C-DEEP-NESTING"},
    "empty_as_null": {"C-DATA-VARIANTS"},
    "no_metadata": {"C-REQ-METADATA"},
    # Requests over several lines are not requests: everything that sends fails.
    "pretty_print": {"*"},
    "unlocked_writes": {"C-CONCURRENT-WRITES"},
    "serialize_sends": {
        "C-CLOSE-MANY-PENDING",
        "C-COALESCED-RESPONSES",
        "C-CONCURRENT-WRITES",
        "C-OUT-OF-ORDER",
        "C-PIPELINE",
    },
    "no_timeout": {
        "C-ID-RESERVED-AFTER-TIMEOUT",
        "C-INTROSPECT-TIMED-OUT",
        "C-LATE-ANSWER",
        "C-TIMEOUT",
    },
    "lazy_connect": {
        "C-CONNECT-DENIED",
        "C-CONNECT-MISSING",
        "C-CONNECT-REFUSED",
        "C-CONNECT-TIMEOUT",
    },
    "no_reconnect": {"C-AUTO-RECONNECT", "C-RECONNECT"},
    "ignore_max": {
        "C-TOO-LARGE",
        "C-TOO-LARGE-CLOSES",
        "C-TOO-LARGE-CR",
        "C-TOO-LARGE-NO-ID",
        "C-TOO-LARGE-NO-LF",
    },
    "requires_info": {"C-ORIGINAL-SERVER"},
    "bad_start": {"C-ADAPTER-SESSION"},
    "null_error_to_oldest": {"C-ERR-NULL-ID"},
    "close_keeps_socket": {"C-CLOSE-ENDS-STREAM"},
    "leak_timed_out": {"C-INTROSPECT-TIMED-OUT"},
    "leak_on_error": {"C-INTROSPECT-ANSWERED"},
    "connect_timeout_kind": {"C-CONNECT-TIMEOUT"},
    "send_after_close_hangs": {"C-SEND-AFTER-CLOSE"},
    "data_required": {"C-SEND-NO-DATA"},
    "ignore_code_to_err": {"C-ERR-IN-DATA-REPORTED"},
    "too_large_oldest_only": {"C-TOO-LARGE-NO-ID"},
    "limit_excludes_cr": {"C-TOO-LARGE-CR"},
    "limit_at_lf": {"C-TOO-LARGE-NO-LF"},
    "php_truthy_code": {"C-ERR-CODE-TRUTHY"},
    "code_member_is_error": {"C-ERR-CODE-TRUTHY"},
    "reconnect_at_once": {"C-AUTO-RECONNECT"},
    "too_large_unreported": CLOSES_AT_LIMIT,
}

#: Defects that break a MUST rule on the wire in every request: FAIL even in SHOULD cases.
WIRE_FAIL = {"pretty_print"}
#: For ``"*"``: the cases that send nothing, so a broken request cannot show
#: (this client refuses a send after close without writing).
SENDS_NOTHING = {
    "C-CONNECT-DENIED",
    "C-CONNECT-MISSING",
    "C-CONNECT-REFUSED",
    "C-CONNECT-TIMEOUT",
    "C-SEND-AFTER-CLOSE",
}

#: Cases a defect makes WARN through the wire checks (a SHOULD rule broken in a MUST case).
WIRE_WARN: dict[str, set[str]] = {"reuse_ids": SEQUENTIAL_REQUESTS - {"C-ID-UNIQUE"}}

#: Cases a defect may or may not disturb, depending on how the kernel groups
#: writes into the client's reads, or on whether a push is read before the
#: next send starts.
MAY_ALSO_FAIL: dict[str, set[str]] = {
    "first_line_only": {
        "C-ERR-NULL-ID",
        "C-PUSH-DELIVERED",
        "C-NON-OBJECT-LINES",
        "C-MALFORMED-LINE",
        "C-UNKNOWN-ID",
    },
    "push_as_response": {"C-PUSH-DELIVERED", "C-RESP-EXTRA-MEMBERS"},
    # C-CRLF also writes an answer in 7-byte pieces; a slow reader may get them whole.
    "no_reassembly": {"C-CRLF"},
}


def _expected(defect: str, cases: list[Case]) -> set[str]:
    wanted = EXPECTED[defect]
    if "*" in wanted:
        return {c.id for c in cases if "big" not in c.tags} - SENDS_NOTHING
    return set(wanted)


def _clean_cases(cases: list[Case]) -> list[Case]:
    return [c for c in cases if FULL or "big" not in c.tags or c.id in CLOSES_AT_LIMIT]


def _cases_for(defect: str | None, cases: list[Case]) -> list[Case]:
    if defect is None:
        return _clean_cases(cases)
    expected = _expected(defect, cases)
    touched = expected | WIRE_WARN.get(defect, set()) | MAY_ALSO_FAIL.get(defect, set())
    chosen = []
    for case in cases:
        if "big" in case.tags:
            if case.id in expected:
                chosen.append(case)
        elif FULL or case.id in touched or case.id in CONTROLS:
            chosen.append(case)
    return chosen


def _run(
    defect: str | None, cases: list[Case], schemas: SpecSchemas
) -> list[CaseResult]:
    command = ADAPTER + (f" --defect {defect}" if defect else "")
    chosen = _cases_for(defect, cases)
    if defect is None:
        return run_client_cases(chosen, command, RunOptions(schemas=schemas))
    # The cases meant to fail give up sooner (a shorter bound); the others keep
    # their full bounds, so that a loaded machine cannot make them fail.
    expected = _expected(defect, cases)
    groups = [
        (
            SCALE_FOR.get(defect, SCALE),
            [c for c in chosen if c.id in expected and "big" in c.tags],
        ),
        (SCALE, [c for c in chosen if c.id in expected and "big" not in c.tags]),
        (1.0, [c for c in chosen if c.id not in expected]),
    ]
    by_id: dict[str, CaseResult] = {}
    for scale, group in groups:
        if not group:
            continue
        options = RunOptions(schemas=schemas, timeout_scale=scale)
        by_id.update((r.case_id, r) for r in run_client_cases(group, command, options))
    return [by_id[c.id] for c in chosen]


@pytest.fixture(scope="module")
def client_cases() -> list[Case]:
    return load_cases("client")


@pytest.fixture(scope="module")
def runs(client_cases: list[Case]) -> Iterator[dict[str | None, list[CaseResult]]]:
    """Every defect's results (and the clean adapter's), a few at a time."""
    schemas = SpecSchemas()
    defects: list[str | None] = [None, *DEFECTS]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(
            zip(
                defects,
                pool.map(lambda d: _run(d, client_cases, schemas), defects),
                strict=True,
            )
        )
    yield results


def _not_passed(results: list[CaseResult]) -> dict[str, CaseResult]:
    return {
        r.case_id: r
        for r in results
        if r.verdict is not Verdict.PASS and r.case_id not in ROOT_SKIPS
    }


def _why(result: CaseResult) -> str:
    return f"{result.verdict}: expected {result.expected}; got {result.got} ({result.detail[:400]})"


def test_every_defect_has_an_expectation() -> None:
    assert set(EXPECTED) == set(DEFECTS)


def test_broken_adapter_without_defect_passes_every_client_case(
    runs: dict[str | None, list[CaseResult]], client_cases: list[Case]
) -> None:
    results = runs[None]
    assert [r.case_id for r in results] == [c.id for c in _clean_cases(client_cases)]
    assert {cid: _why(r) for cid, r in _not_passed(results).items()} == {}
    for result in results:
        if result.case_id in ROOT_SKIPS:
            assert result.verdict is Verdict.SKIP and "root" in result.detail


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_fails_exactly_its_cases(
    defect: str, runs: dict[str | None, list[CaseResult]], client_cases: list[Case]
) -> None:
    results = runs[defect]
    caught = _not_passed(results)
    expected = _expected(defect, client_cases) - ROOT_SKIPS
    wire_warn = WIRE_WARN.get(defect, set())
    allowed = expected | wire_warn | MAY_ALSO_FAIL.get(defect, set())
    unexpected = {cid: _why(r) for cid, r in caught.items() if cid not in allowed}
    missed = sorted((expected | wire_warn) - set(caught))
    assert unexpected == {}, f"{defect}: cases failed that should pass"
    assert missed == [], f"{defect}: cases passed that should catch it"
    for cid, result in caught.items():
        assert result.got, result
        if cid in wire_warn:
            assert result.verdict is Verdict.WARN, _why(result)
        elif defect in WIRE_FAIL:
            assert result.verdict is Verdict.FAIL, _why(result)
        elif cid in expected:
            # A failed SHOULD case is a WARN, a failed MUST case a FAIL; never a SKIP.
            # A MUST rule broken on the wire fails even a SHOULD case.
            must_on_wire = "(MUST)" in result.detail and "wire: " in result.detail
            wanted = (
                Verdict.FAIL if result.level == "MUST" or must_on_wire else Verdict.WARN
            )
            assert result.verdict is wanted, _why(result)
    ran = {r.case_id for r in results}
    assert set(CONTROLS) - expected - MAY_ALSO_FAIL.get(defect, set()) <= ran


def test_every_client_case_is_caught_by_some_defect(
    runs: dict[str | None, list[CaseResult]], client_cases: list[Case]
) -> None:
    caught = {cid for defect in DEFECTS for cid in _not_passed(runs[defect])}
    uncaught = sorted(
        c.id for c in client_cases if c.id not in caught and c.id not in ROOT_SKIPS
    )
    assert uncaught == []
    # Where the run cannot show it (root), the table still names a defect for it.
    for case_id in ROOT_SKIPS:
        assert any(case_id in wanted for wanted in EXPECTED.values())
