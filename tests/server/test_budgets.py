"""The server's inside without sockets: budgets, the registry, counters, logging, peers.

LIMIT-7 (server-wide budgets), SEC-2 (supplementary groups), the requests
counter, the log escaping of peer-supplied values, and the heap settings.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pixl_ipc._logging import Throttle, format_failure, printable
from pixl_ipc._peer import AccessRule, PeerCredentials
from pixl_ipc.budget import DEFAULT_MAX_BUFFERED_BYTES, ServerBudget
from pixl_ipc.context import ServerContext, ServerLimits
from pixl_ipc.errors import ErrorCode
from pixl_ipc.routing import Router
from pixl_ipc.stats import ServerStats

MIB = 1024 * 1024

# --- ServerBudget and the registry -----------------------------------------------------------------


def test_the_byte_budget_refuses_input_past_it_but_counts_output_and_wakes_waiters() -> (
    None
):
    budget = ServerBudget(10, 100)
    assert budget.reserve(60)
    assert not budget.reserve(41)
    budget.add(50)  # answers are never refused
    assert budget.spent and budget.buffered == 110
    woken: list[str] = []
    budget.wait("a", lambda: woken.append("a"))
    budget.wait("b", lambda: woken.append("b"))
    budget.forget("b")
    budget.release(5)
    assert woken == []  # still spent
    budget.release(60)
    assert woken == ["a"]
    budget.release(45)
    assert woken == ["a"]  # once
    assert DEFAULT_MAX_BUFFERED_BYTES >= 2 * 64 * MIB


class Member:
    def __init__(self, name: str) -> None:
        self.name = name
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def context(max_connections: int, access: AccessRule | None = None) -> ServerContext:
    return ServerContext(
        router=Router(),
        stats=ServerStats(),
        budget=ServerBudget(max_connections, 1000),
        access=access or AccessRule(),
        limits=ServerLimits(16 * MIB, 8, 1.0),
        executor=lambda: pytest.fail("no executor here"),
        on_large_read=lambda: None,
    )


PEER = PeerCredentials(1, 1000, 1000)


def test_a_full_connection_budget_closes_the_oldest_half_closed_connection_first() -> (
    None
):
    ctx = context(3)
    a, b, c, d, e = (Member(n) for n in "abcde")
    for conn in (a, b, c):
        assert ctx.admit(conn, PEER) is None
        ctx.opened(conn)
    ctx.linger(c)
    ctx.linger(b)
    assert ctx.admit(d, PEER) is None  # c was half-closed first: it goes
    assert c.aborted and not b.aborted and ctx.budget.connections == 3
    assert ctx.admit(e, PEER) is None
    assert b.aborted
    refusal = ctx.admit(Member("f"), PEER)  # nothing half-closed is left
    assert refusal is not None and refusal[0] == ErrorCode.SERVER_BUSY


def test_a_refused_newcomer_is_counted_until_released_and_counted_as_busy() -> None:
    ctx = context(1)
    first, second = Member("1"), Member("2")
    assert ctx.admit(first, PEER) is None
    ctx.opened(first)
    refusal = ctx.admit(second, PEER)
    assert refusal is not None and refusal[0] == ErrorCode.SERVER_BUSY
    assert ctx.budget.connections == 2
    ctx.release(second)
    ctx.release(second)  # idempotent
    assert ctx.budget.connections == 1
    ctx.release(first)
    assert ctx.budget.connections == 0 and ctx.connections == {}
    stats = ctx.stats.report(connections=0, handlers=0, inflight=0, interval="minute")
    assert stats["serverBusy"] == 1 and stats["totalClientClose"] == 1


def test_access_is_checked_before_the_budget() -> None:
    ctx = context(5, AccessRule(uids=frozenset({0})))
    assert ctx.admit(Member("x"), PEER) == (
        ErrorCode.ACCESS_DENIED,
        "access denied: this peer is not allowed",
    )


def test_allowed_gids_match_the_primary_or_a_supplementary_group() -> None:
    rule = AccessRule(uids=frozenset({0}), gids=frozenset({50}))
    assert rule.allows(PeerCredentials(1, 0, 1))
    assert rule.allows(PeerCredentials(1, 7, 50))
    assert rule.allows(PeerCredentials(1, 7, 7, (3, 50)))
    assert not rule.allows(PeerCredentials(1, 7, 7, (3, 4)))
    assert AccessRule().allows(PeerCredentials(None, None, None))


# --- ServerStats ------------------------------------------------------------------------------------


def test_requests_count_records_received_and_protocol_replies_their_own_counters() -> (
    None
):
    stats = ServerStats(slow_threshold=0.010)
    stats.current.requests += 1  # as the request loop counts a request routed
    stats.record_protocol_reply("no_uri")  # a record: counted as a request
    stats.record_protocol_reply("bad_json")  # not a record
    stats.record_protocol_reply("message_too_large")
    stats.record_protocol_reply("server_busy")
    stats.record_answer(0.005)
    stats.record_answer(0.050)
    stats.record_open(3)
    stats.roll(3)
    report = stats.report(connections=3, handlers=4, inflight=0, interval="minute")
    assert report["requests"] == report["totalRequests"] == 2
    assert (
        report["badMessages"],
        report["oversizeMessages"],
        report["serverBusy"],
    ) == (2, 1, 1)
    assert report["slowResponses"] == 1 and report["duration"] == pytest.approx(55.0)
    assert report["maxConnections"] == 3 and report["clientOpen"] == 1
    assert list(report)[:2] == ["connections", "handlers"]


# --- logging what peers send -------------------------------------------------------------------------


def test_printable_escapes_control_characters_and_cuts_long_values() -> None:
    assert printable("/a\nb\r\x1b[31m\u2028c") == "/a\\x0ab\\x0d\\x1b[31m\\u2028c"
    assert printable("é/ü") == "é/ü"
    assert printable("x" * 300, 10) == "x" * 10 + "... (290 more characters)"
    assert printable(42) == "42"


def test_a_failure_is_written_with_every_line_indented() -> None:
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 CRITICAL forged\x1b")
    except ValueError as exc:
        text = format_failure(exc)
    assert all(line.startswith("    | ") for line in text.splitlines())
    assert "    | 2026-01-01 00:00:00,000 CRITICAL forged\\x1b" in text.splitlines()


def test_throttle_lets_one_message_through_per_interval_and_counts_the_rest() -> None:
    throttle = Throttle(3600)
    assert throttle.ready() == 0
    assert throttle.ready() is None
    assert throttle.ready() is None
    throttle._next = 0.0
    assert throttle.ready() == 2


# --- the heap is the program's own -------------------------------------------------------------------


def test_creating_and_starting_a_server_leaves_the_allocator_alone(
    tmp_path: Any,
) -> None:
    # warm_allocator() changes glibc's malloc thresholds for the whole
    # process: `pixl-ipc serve` does it, a server embedded in a program must not.
    script = (
        "import asyncio, sys, tempfile, os\n"
        "from pixl_ipc import _memory\n"
        "from pixl_ipc.server import IPCServer\n"
        "d = tempfile.mkdtemp(prefix='pxl-')\n"
        "async def main():\n"
        "    server = IPCServer(os.path.join(d, 's.sock'))\n"
        "    await server.start()\n"
        "    await server.shutdown()\n"
        "asyncio.run(main())\n"
        "print(_memory._allocator_warmed)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
