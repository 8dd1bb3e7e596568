"""Proof that the server cases can fail: each planted defect is caught, nothing else is.

The broken server (pixl_ipc_conformance.brokenpeers.broken_server) is written
from the spec; without a defect it must pass every server case. With a defect,
exactly the cases listed in ``EXPECTED`` must fail (FAIL for MUST cases, WARN
for SHOULD cases) and every other case must pass. Finally every server case
must be caught by at least one defect: a case no broken peer can fail checks
nothing.

The runs go through the runner's API, several defects at a time.
Cases tagged ``big`` (many MiB each), ``heavy`` (hundreds of messages),
``lifecycle`` (they start servers of their own) or ``app`` (they use the
conformance application handlers) run against the clean server and against
the defects that must fail them, not against the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pixl_ipc_conformance.brokenpeers.broken_server import DEFECTS
from pixl_ipc_conformance.model import Case, CaseResult, RunOptions, Verdict, load_cases
from pixl_ipc_conformance.schemas import SpecSchemas
from pixl_ipc_conformance.server_process import running_server
from pixl_ipc_conformance.server_runner import run_server_cases

LIMIT = 16 * 1024 * 1024
#: The machine is shared: when it is loaded, the time bounds stretch (up to 3x)
#: so that a slow but working server is not taken for a hung one.
LOAD_SCALE = min(3.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
BROKEN = (
    f"{sys.executable} -m pixl_ipc_conformance.brokenpeers.broken_server"
    " --socket {socket} --chmod {chmod} --app-handlers --access-config {access_config}"
)

#: For each defect, the cases it must make fail (or WARN, for SHOULD cases).
EXPECTED: dict[str, set[str]] = {
    "drop-over-1mib": {
        "S-SIZE-1MIB",
        "S-SIZE-8MIB",
        "S-SIZE-16MIB",
        "S-LIMIT-OVER",
        "S-LIMIT-OVER-ID",
    },
    "in-order": {"S-OUT-OF-ORDER"},
    "first-line-only": {
        "S-BAD-JSON-ID",
        "S-BAD-JSON-ID-FIRST",
        "S-DATA-ABSENT",
        "S-DATA-EMPTY-ARRAY",
        "S-DATA-SCALAR",
        "S-DELAY",
        "S-DELAY-INVALID",
        "S-DELAY-NO-DATA",
        "S-DELAY-ZERO",
        "S-ERR-NO-DETAILS",
        "S-FRAME-CHUNKED",
        "S-FRAME-COALESCED",
        "S-HALF-CLOSE",
        "S-ID-FALSY",
        "S-ID-FALSY-ERROR",
        "S-ID-NUMERIC",
        "S-ID-WRONG-TYPE",
        "S-NO-URI-FALSY",
        "S-NON-FINITE",
        "S-ORIGINAL-STRING-ZERO",
        "S-ORIGINAL-VALUES",
        "S-OUT-OF-ORDER",
        "S-PIPELINE-1000",
        "S-ROUTE-ANCHORED",
        "S-ROUTE-PREFIX",
        "S-SCHEMA-VALID",
        "S-UNKNOWN-MEMBERS",
        "S-URI-WRONG-TYPE",
    },
    # The nested lines of 200 KB are longer than one read.
    "no-reassembly": {
        "S-DEEP-NESTING",
        "S-ERR-NO-DETAILS",
        "S-FRAME-CHUNKED",
        "S-FRAME-SPLIT",
    },
    "silent-bad-json": {
        "S-BAD-JSON",
        "S-BAD-JSON-ID",
        "S-BAD-JSON-ID-FIRST",
        "S-DEEP-NESTING",
        "S-ERR-NO-DETAILS",
        "S-HOSTILE-ID-STRADDLE",
        "S-INVALID-UTF8",
        "S-NON-FINITE",
        "S-SCHEMA-VALID",
    },
    "reply-non-object": {
        "S-DEEP-NESTING-BARE",
        "S-FRAME-BLANK",
        "S-FRAME-NON-JSON-TEXT",
        "S-NOT-OBJECT",
    },
    "bad-json-null-id": {"S-BAD-JSON-ID", "S-LIMIT-OVER-ID"},
    "crlf-bad-json": {"S-FRAME-CRLF"},
    "half-close-drop": {"S-HALF-CLOSE", "S-HOSTILE-HALF-CLOSE-BACKLOG"},
    "deep-close": {
        "S-DEEP-NESTING",
        "S-ERR-NO-DETAILS",
    },
    # The runner starts it again after each crash: only these cases fail.
    "crash-deep": {"S-DEEP-NESTING", "S-ERR-NO-DETAILS"},
    "leak-fd": {"S-HOSTILE-STORM", "S-RES-FD-LEAK"},
    "info-wrong-limit": {"S-INFO-LIMIT"},
    "no-inflight-cap": {"S-LIMIT-INFLIGHT"},
    "stats-connections-stuck": {"S-STATS-CONNECTIONS"},
    "unlink-any-path": {"S-LIFE-SHUTDOWN-REPLACED"},
    "falsy-id-on-errors": {"S-ID-FALSY-ERROR"},
    "limit-ignores-cr": {"S-LIMIT-CR"},
    # Hostile peers.
    "eof-as-half-close": {"S-HOSTILE-STORM", "S-RES-FD-LEAK"},
    "whole-read-at-once": {"S-HOSTILE-FLOOD-LATENCY"},
    "mark-skips-errors": {"S-HOSTILE-FLOOD-UNREAD"},
    "eof-drops-backlog": {"S-HOSTILE-HALF-CLOSE-BACKLOG"},
    "cut-id-at-4096": {
        "S-BAD-JSON-ID-FIRST",
        "S-HOSTILE-ID-STRADDLE",
        "S-HOSTILE-ID-STRADDLE-OVERSIZE",
    },
    # The server dies in the case; the runner starts it again for the rest.
    "uri-cache-oom": {"S-HOSTILE-URI-CHURN"},
    "no-info": {"S-INFO", "S-STATS", "S-STATS-CONNECTIONS"},
    "mangle-unicode": {
        "S-ORIGINAL-VALUES",
        "S-UNICODE-NUL",
        "S-UNICODE-RAW",
        "S-UNICODE-SURROGATE-PAIRS",
    },
    "splitlines": {"S-UNICODE-LINE-SEPARATORS"},
    "lose-pipelined": {"S-PIPELINE-1000"},
    "no-limit-reply": {"S-LIMIT-OVER", "S-LIMIT-OVER-ID"},
    "close-after-error": {
        "S-BAD-JSON",
        "S-BAD-JSON-ID",
        "S-BAD-JSON-ID-FIRST",
        "S-DEEP-NESTING",
        "S-ERR-NO-DETAILS",
        "S-INVALID-UTF8",
        "S-LIMIT-OVER",
        "S-LIMIT-OVER-ID",
        "S-NON-FINITE",
        "S-SCHEMA-VALID",
    },
    # The 8 MiB limit also shows in /ipcserver/info, below the spec's floor.
    "limit-8mib": {
        "S-INFO",
        "S-INFO-LIMIT",
        "S-LIMIT-CR",
        "S-LIMIT-OVER",
        "S-LIMIT-OVER-ID",
        "S-SIZE-16MIB",
    },
    "falsy-id-echo": {"S-ID-FALSY", "S-ID-FALSY-ERROR"},
    "numeric-id-string": {"S-ID-NUMERIC"},
    "missing-id-omitted": {"S-ID-MISSING"},
    "no-uri-in-data": {
        "S-ID-FALSY-ERROR",
        "S-ID-WRONG-TYPE",
        "S-NO-URI",
        "S-NO-URI-FALSY",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-SCHEMA-VALID",
    },
    "no-handler-top": {
        "S-ID-FALSY-ERROR",
        "S-NO-HANDLER",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-ORIGINAL-STRING-ZERO",
        "S-ROUTE-ANCHORED",
        "S-SCHEMA-VALID",
        "S-URI-WRONG-TYPE",
    },
    "reject-unknown-members": {"S-UNKNOWN-MEMBERS"},
    "drop-falsy-data": {
        "S-DATA-EMPTY-ARRAY",
        "S-DATA-EMPTY-OBJECT",
        "S-DATA-SCALAR",
        "S-ORIGINAL-CLIENT-BYTES",
    },
    "absent-data-object": {"S-DATA-ABSENT", "S-ORIGINAL-CLIENT-BYTES"},
    "delay-ignored": {"S-DELAY", "S-OUT-OF-ORDER"},
    "delay-zero-waits": {"S-DELAY-NO-DATA", "S-DELAY-ZERO", "S-ROUTE-PREFIX"},
    "delay-invalid-zero": {
        "S-DELAY",
        "S-DELAY-INVALID",
        "S-ORIGINAL-STRING-ZERO",
    },
    "strict-types": {"S-ID-WRONG-TYPE", "S-URI-WRONG-TYPE"},
    "exact-builtins": {"S-ROUTE-PREFIX"},
    "full-close-on-shutdown": {"S-LIFE-CLOSE-HALF"},
    "max-100-connections": {"S-FANOUT-200"},
    "disconnect-closes-all": {"S-CLIENT-GONE"},
    "error-with-data": {
        "S-BAD-JSON",
        "S-BAD-JSON-ID",
        "S-BAD-JSON-ID-FIRST",
        "S-DEEP-NESTING",
        "S-ERR-NO-DETAILS",
        "S-HOSTILE-ID-STRADDLE",
        "S-ID-FALSY-ERROR",
        "S-ID-WRONG-TYPE",
        "S-INVALID-UTF8",
        "S-NO-URI",
        "S-NO-URI-FALSY",
        "S-NON-FINITE",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-SCHEMA-VALID",
    },
    "nesting-limit-100": {"S-NESTING-256"},
    "accept-nan": {
        "S-ERR-NO-DETAILS",
        "S-NON-FINITE",
    },
    "lossy-big-int": {"S-BIG-INT"},
    "invalid-utf8-close": {"S-ERR-NO-DETAILS", "S-INVALID-UTF8"},
    "cross-connection": {"S-RESP-OWN-CONNECTION"},
    "unanchored-routes": {"S-ROUTE-ANCHORED", "S-ROUTE-STRING-ANCHORED"},
    "leaky-errors": {"S-ERR-NO-DETAILS"},
    "extra-members": {
        "S-DATA-ABSENT",
        "S-ID-WRONG-TYPE",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-ORIGINAL-STRING-ZERO",
        "S-ORIGINAL-VALUES",
        "S-ROUTE-ANCHORED",
        "S-ROUTE-PREFIX",
        "S-URI-WRONG-TYPE",
    },
    "info-app-first": {"S-BUILTIN-FIRST", "S-INFO"},
    "leaky-too-large": {"S-LIMIT-OVER"},
    "unbounded-buffering": {
        "S-HOSTILE-FLOOD-UNREAD",
        "S-LIMIT-BACKPRESSURE",
        "S-LIMIT-INFLIGHT",
    },
    "steal-path": {"S-LIFE-START-LIVE", "S-LIFE-START-NOT-A-SOCKET"},
    "no-stale-replace": {"S-LIFE-START-STALE"},
    "keep-socket-file": {
        "S-LIFE-CLOSE-HALF",
        "S-LIFE-SHUTDOWN",
        "S-LIFE-SHUTDOWN-ANSWERS",
    },
    "drop-on-shutdown": {"S-LIFE-SHUTDOWN-ANSWERS"},
    "chmod-late": {"S-SEC-SOCKET-MODE"},
    "handler-error-leak": {"S-ROUTE-HANDLER-ERROR"},
    "handler-error-detail-member": {"S-ROUTE-HANDLER-ERROR"},
    "string-zero-falsy": {"S-ORIGINAL-ANSWERS", "S-ORIGINAL-STRING-ZERO"},
    "python-number-text": {"S-ORIGINAL-ANSWERS"},
    "id-past-null": {"S-BAD-JSON-ID-FIRST"},
    "acl-trusts-claims": {"S-SEC-PEER-REFUSED"},
    # The application's delay handler shadows the built-in one.
    "builtins-last": {
        "S-BUILTIN-FIRST",
        "S-DELAY",
        "S-DELAY-INVALID",
        "S-DELAY-NO-DATA",
        "S-DELAY-ZERO",
        "S-HALF-CLOSE",
        "S-INFO",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-ORIGINAL-STRING-ZERO",
        "S-OUT-OF-ORDER",
        "S-RESP-OWN-CONNECTION",
        "S-SCHEMA-VALID",
    },
    # Closing after one answer breaks every case that asks twice on one connection.
    "one-request-per-connection": {
        "S-BAD-JSON",
        "S-BAD-JSON-ID",
        "S-BAD-JSON-ID-FIRST",
        "S-BIG-INT",
        "S-DATA-ABSENT",
        "S-DATA-EMPTY-ARRAY",
        "S-DATA-EMPTY-OBJECT",
        "S-DATA-SCALAR",
        "S-DEEP-NESTING",
        "S-DEEP-NESTING-BARE",
        "S-DELAY",
        "S-DELAY-INVALID",
        "S-DELAY-NO-DATA",
        "S-DELAY-ZERO",
        "S-ECHO",
        "S-ERR-NO-DETAILS",
        "S-FRAME-BLANK",
        "S-FRAME-CHUNKED",
        "S-FRAME-COALESCED",
        "S-FRAME-CRLF",
        "S-FRAME-NON-JSON-TEXT",
        "S-FRAME-SPLIT",
        "S-HALF-CLOSE",
        "S-ID-FALSY",
        "S-ID-FALSY-ERROR",
        "S-ID-MISSING",
        "S-ID-NUMERIC",
        "S-ID-WRONG-TYPE",
        "S-INFO",
        "S-INVALID-UTF8",
        "S-NESTING-256",
        "S-NO-HANDLER",
        "S-NO-URI",
        "S-NO-URI-FALSY",
        "S-NON-FINITE",
        "S-NOT-OBJECT",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-ORIGINAL-STRING-ZERO",
        "S-ORIGINAL-VALUES",
        "S-OUT-OF-ORDER",
        "S-PIPELINE-1000",
        "S-RESP-OWN-CONNECTION",
        "S-ROUTE-ANCHORED",
        "S-ROUTE-PREFIX",
        "S-SCHEMA-VALID",
        "S-STATS",
        "S-UNICODE-LINE-SEPARATORS",
        "S-UNICODE-NUL",
        "S-UNICODE-RAW",
        "S-UNICODE-SURROGATE-PAIRS",
        "S-UNKNOWN-MEMBERS",
        "S-URI-WRONG-TYPE",
    },
}


#: Cases a defect may or may not make fail, depending on how the kernel groups
#: two writes into the server's reads (a server that handles only the first
#: line of each read loses the second write only when both arrive together).
MAY_ALSO_FAIL: dict[str, set[str]] = {
    "first-line-only": {
        "S-DEEP-NESTING-BARE",
        "S-FRAME-BLANK",
        "S-FRAME-CRLF",
        "S-FRAME-NON-JSON-TEXT",
        "S-FRAME-SPLIT",
        "S-NOT-OBJECT",
        "S-ORIGINAL-CLIENT-BYTES",
        "S-RESP-OWN-CONNECTION",
    },
    # The PHP client's LF comes in a second write: lost when it is read apart.
    "no-reassembly": {"S-ORIGINAL-CLIENT-BYTES"},
}


def _cases_for(cases: list[Case], defect: str | None) -> list[Case]:
    if defect is None:
        return cases
    costly = {c.id for c in cases if {"big", "heavy", "lifecycle", "app"} & set(c.tags)}
    return [c for c in cases if c.id not in costly or c.id in EXPECTED[defect]]


def _run(
    defect: str | None, batches: list[tuple[list[Case], float]], schemas: SpecSchemas
) -> list[CaseResult]:
    """Run batches of cases, each with its time-bound scale, on one broken server."""
    command = BROKEN + (f" --defect {defect}" if defect else "")
    results: list[CaseResult] = []
    with running_server(command) as server:
        for cases, scale in batches:
            options = RunOptions(
                schemas=schemas,
                timeout_scale=scale,
                max_message_bytes=LIMIT,
                start_command=command,
                server_capabilities=["app_handlers"],
            )
            results += run_server_cases(cases, server, options)
    return results


@pytest.fixture(scope="module")
def server_cases() -> list[Case]:
    return load_cases("server")


@pytest.fixture(scope="module")
def runs(server_cases: list[Case]) -> Iterator[dict[str | None, list[CaseResult]]]:
    """Every defect's results (and the clean server's), many runs at a time.

    The runs mostly wait on sockets, and a failing case waits out its time
    bound. So a defect's cases run on several servers with that defect, side
    by side: the cases it must fail with the plain time bounds (stretching
    them would only make the wait longer), the others with the bounds
    stretched by the machine's load, so that slowness is not taken for a
    fault. The longest runs start first.
    """
    schemas = SpecSchemas()
    work: list[tuple[str | None, list[tuple[list[Case], float]]]] = []
    for defect in [None, *sorted(DEFECTS, key=lambda d: -len(EXPECTED[d]))]:
        chosen = _cases_for(server_cases, defect)
        if defect is None:
            work += [(None, [(chosen[i::4], LOAD_SCALE)]) for i in range(4)]
            continue
        aimed = [c for c in chosen if c.id in EXPECTED[defect]]
        others = [c for c in chosen if c.id not in EXPECTED[defect]]
        if len(aimed) <= 3:
            # One server for both: each server process costs CPU too.
            work.append((defect, [(aimed, 1.0), (others, LOAD_SCALE)]))
            continue
        shares = 1 + len(aimed) // 5
        work += [(defect, [(aimed[i::shares], 1.0)]) for i in range(shares)]
        work.append((defect, [(others, LOAD_SCALE)]))
    with ThreadPoolExecutor(max_workers=12) as pool:
        parts = list(pool.map(lambda item: _run(item[0], item[1], schemas), work))
    order = {case.id: n for n, case in enumerate(server_cases)}
    results: dict[str | None, list[CaseResult]] = {}
    for (defect, _), part in zip(work, parts, strict=True):
        results.setdefault(defect, []).extend(part)
    for part in results.values():
        part.sort(key=lambda r: order[r.case_id])
    yield results


def _not_passed(results: list[CaseResult]) -> dict[str, CaseResult]:
    return {r.case_id: r for r in results if r.verdict is not Verdict.PASS}


def test_every_defect_has_an_expectation() -> None:
    assert set(EXPECTED) == set(DEFECTS)


def test_broken_server_without_defect_passes_every_case(
    runs: dict[str | None, list[CaseResult]], server_cases: list[Case]
) -> None:
    results = runs[None]
    assert [r.case_id for r in results] == [c.id for c in server_cases]
    failures = {
        cid: f"{r.verdict}: expected {r.expected}; got {r.got} ({r.detail})"
        for cid, r in _not_passed(results).items()
    }
    assert failures == {}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_fails_exactly_its_cases(
    defect: str, runs: dict[str | None, list[CaseResult]]
) -> None:
    results = runs[defect]
    caught = _not_passed(results)
    allowed = EXPECTED[defect] | MAY_ALSO_FAIL.get(defect, set())
    unexpected = {
        cid: f"{r.verdict}: {r.got} ({r.detail})"
        for cid, r in caught.items()
        if cid not in allowed
    }
    missed = sorted(EXPECTED[defect] - set(caught))
    assert unexpected == {}, f"{defect}: cases failed that should pass"
    assert missed == [], f"{defect}: cases passed that should catch it"
    for result in caught.values():
        # A failed SHOULD case is a WARN, a failed MUST case a FAIL; never a
        # SKIP. A case during which the server died is a FAIL (LIMIT-4).
        died = "the server process exited" in result.got + result.detail
        assert result.verdict is (
            Verdict.FAIL if result.level == "MUST" or died else Verdict.WARN
        ), result
        assert result.got, result


def test_every_server_case_is_caught_by_some_defect(
    runs: dict[str | None, list[CaseResult]], server_cases: list[Case]
) -> None:
    caught = {cid for defect in DEFECTS for cid in _not_passed(runs[defect])}
    assert sorted(c.id for c in server_cases if c.id not in caught) == []
