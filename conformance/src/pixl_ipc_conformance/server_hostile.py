"""Server case steps that play a hostile local peer: what any server should survive.

The socket of a server is usually open to every local user, so no peer may
take it down or hold it. These steps attack it the way such a peer could,
with bounded work, and check what the other clients see.

``storm``       ``cycles`` times: connect, send a delay request that outlasts
                the case (every other cycle an echo before it), close at
                once. Such a peer is gone for good: its connection should be
                freed at once, not kept until its requests finish (LIFE-5);
                a later ``expect_fds`` sees whether it was
``tiny_flood``  one write of ``lines`` ``{`` lines (each a malformed message,
                each answered ``bad_json``) on one connection, whose answers
                are read, while another connection sends echoes one after
                another: each echo must be answered within
                ``answer_within_s`` (LIMIT-6), and every flood line once
                (FRAME-6, RESP-1)
"""

from __future__ import annotations

import contextlib
import selectors
import time
from typing import Any

from .matchers import mismatch
from .payloads import DELAY_URI
from .server_context import ServerCaseContext, StepFailed, is_push
from .wire import Received, WireConnection, WireError
from .wirekit import echo_line, encode_message

__all__ = ["STEPS"]

#: How long a storm's delays outlast the case, in seconds.
STORM_OUTLAST_S = 5.0
#: The longest delay a delay request may ask for (BUILTIN-2: setTimeout's bound).
MAX_DELAY_MS = 2**31 - 1
#: What every line of a tiny flood must be answered with (FRAME-6: no id to recover).
FLOOD_ANSWER = {"ipcReqID": None, "code": "bad_json"}
#: The pause between two echoes of the watching connection.
WATCH_PAUSE_S = 0.005


def op_storm(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    cycles: int = step["cycles"]
    deadline = ctx.bound(step.get("within_s"))
    # Each delay outlasts the case: a server that keeps a gone peer's
    # connection until its requests finish still holds it when the case looks.
    delay_ms = min(MAX_DELAY_MS, round((ctx.deadline - time.monotonic() + STORM_OUTLAST_S) * 1000))
    delay = encode_message({"ipcReqID": "storm", "uri": DELAY_URI, "data": {"delay": delay_ms}}) + b"\n"
    # With an echo first, its answer may be unread when the socket closes:
    # the server then sees a reset rather than an end of stream.
    with_echo = echo_line("storm-echo", "s") + b"\n" + delay
    ctx.transcript.event("storm", f"{cycles} cycles of connect, send a {delay_ms} ms delay, close")
    for n in range(cycles):
        try:
            wire = WireConnection(ctx.path, deadline, name="storm")
        except WireError as exc:
            raise StepFailed(
                f"{cycles} cycles of connect, send, close to be accepted", f"cycle {n + 1}: {exc}"
            ) from exc
        with contextlib.suppress(OSError):  # a server may refuse a connection (LIMIT-7)
            wire.sock.sendall(with_echo if n % 2 else delay)
        wire.close()


class _Watcher:
    """A well-behaved client on its own connection: one echo at a time, each timed."""

    def __init__(self, ctx: ServerCaseContext, wire: WireConnection, bound_s: float) -> None:
        self.ctx = ctx
        self.wire = wire
        self.bound_s = bound_s
        self.count = 0
        self.sent_at: float | None = None  # None: no echo waiting
        self.next_at = 0.0

    def send(self) -> None:
        self.count += 1
        line = echo_line(f"watch{self.count}", self.count) + b"\n"
        try:
            sent = self.wire.send_some(line)
        except OSError as exc:
            raise StepFailed("the watching connection to be served", str(exc)) from exc
        if sent != len(line):  # a few bytes into an empty socket buffer
            raise StepFailed("the watching connection to take its echo request", f"{sent} bytes taken")
        self.sent_at = time.monotonic()

    def overdue(self, now: float, flood_state: str) -> None:
        if self.sent_at is not None and now - self.sent_at > self.bound_s:
            raise StepFailed(
                f"each echo on another connection answered within {self.bound_s:g} s (LIMIT-6)",
                f"echo watch{self.count} unanswered after {now - self.sent_at:.2f} s, while {flood_state}",
            )

    def readable(self) -> None:
        try:
            self.wire.recv_some()
        except BlockingIOError:
            return
        except WireError as exc:
            raise StepFailed("the watching connection to be served", str(exc)) from exc
        if self.wire.at_eof:
            raise StepFailed("the watching connection to be served", "the server closed it")
        while (received := self.wire.poll_message()) is not None:
            self.ctx.check_schema(received)
            if is_push(received.value):
                continue
            wanted = {"ipcReqID": f"watch{self.count}", "data": self.count}
            reason = mismatch(wanted, received.value, self.ctx.options.schemas, {})
            if self.sent_at is None or reason is not None:
                got = self.ctx.clip(received.value)
                raise StepFailed(f"the echo of watch{self.count}", got, reason or "")
            self.sent_at = None
            self.next_at = time.monotonic() + WATCH_PAUSE_S


def op_tiny_flood(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    lines: int = step["lines"]
    deadline = ctx.bound(step.get("within_s"))
    flood = ctx.connect(name="flood")
    watcher = _Watcher(ctx, ctx.connect(name="watch"), step.get("answer_within_s", 1.0) * ctx.scale)
    payload = b"{\n" * lines
    written = answered = 0
    checked: set[bytes] = set()  # the answers are alike: each kind is checked once
    selector = selectors.DefaultSelector()
    try:
        for wire in (flood, watcher.wire):
            wire.sock.setblocking(False)
        selector.register(flood.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, flood)
        selector.register(watcher.wire.sock, selectors.EVENT_READ, watcher)
        watcher.send()
        while answered < lines or watcher.sent_at is not None:
            now = time.monotonic()
            state = f"{written} of {len(payload)} flood bytes written, {answered} of {lines} lines answered"
            watcher.overdue(now, state)
            if now >= deadline:
                raise StepFailed(
                    f"an answer to each of the {lines} malformed lines (FRAME-6, RESP-1)",
                    f"{state} within the time bound",
                )
            if watcher.sent_at is None and answered < lines and now >= watcher.next_at:
                watcher.send()
            wake = watcher.sent_at + watcher.bound_s if watcher.sent_at is not None else watcher.next_at
            for key, events in selector.select(max(0.0, min(deadline, wake) - now)):
                if key.data is watcher:
                    watcher.readable()
                    continue
                if events & selectors.EVENT_WRITE and written < len(payload):
                    try:
                        written += flood.send_some(payload[written:])
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        raise StepFailed("the server to read the flood", str(exc)) from exc
                    if written == len(payload):
                        selector.modify(flood.sock, selectors.EVENT_READ, flood)
                if events & selectors.EVENT_READ:
                    answered += _flood_answers(ctx, flood, checked)
        if answered > lines:
            raise StepFailed(f"one answer to each of the {lines} lines (RESP-1)", f"{answered} answers")
    finally:
        selector.close()
        flood.close()
        watcher.wire.close()


def _flood_answers(ctx: ServerCaseContext, flood: WireConnection, checked: set[bytes]) -> int:
    """Read what the flooding connection has; the number of flood answers it held."""
    try:
        flood.recv_some()
    except BlockingIOError:
        return 0
    except WireError as exc:
        raise StepFailed("the flooding connection to be answered", str(exc)) from exc
    if flood.at_eof:
        raise StepFailed("the flooding connection to be answered", "the server closed it")
    count = 0
    while (raw := flood.poll_line()) is not None:
        if raw not in checked:
            received = Received.of(raw)
            ctx.check_schema(received)
            if is_push(received.value):
                continue
            reason = mismatch(FLOOD_ANSWER, received.value, ctx.options.schemas, {})
            if reason is not None:
                expected = "bad_json with ipcReqID null for a { line (FRAME-6)"
                raise StepFailed(expected, ctx.clip(received.value), reason)
            checked.add(raw)
        count += 1
    return count


STEPS = {"storm": op_storm, "tiny_flood": op_tiny_flood}
