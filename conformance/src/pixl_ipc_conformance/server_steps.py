"""The basic steps of server cases: connections, writes, and what must come back.

``connect``        open the named connection (``conn``, default ``main``;
                   a connection also opens on its first use), or one to a
                   server the case started (``server``)
``send``           write a payload (:mod:`.payloads`); ``chunk``,
                   ``chunk_pause_s``, ``peer_may_close``
``expect``         read until every matcher in ``responses`` (and with
                   ``generated`` every generated request's answer) is matched
                   exactly once; ``order`` any|exact; ``within_s``;
                   ``not_before_s``
``expect_none``    nothing but pushes for ``for_s`` seconds (``why``: what
                   an answer there would mean)
``expect_closed``  the server ends the stream within ``within_s``
``shutdown_write`` half-close; ``close`` close (a connection, or the
                   connections a ``fanout`` kept under that name); ``sleep``
                   wait ``s`` seconds
``probe``          a fresh connection gets an echo answered: the server is alive
``replay_answers`` every entry of ``spec/vectors/original-answers.json`` that
                   the kit answers as the original, each on a fresh
                   connection, gets the original's recorded answer (VER-2)

A message without an ``ipcReqID`` member is a push (PUSH-1): it is set
aside. Any other message that no matcher expects fails the step.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .compare import matches_recorded
from .compare_inputs import Input, agreed_inputs
from .compare_replay import Bounds, Outcome, replay
from .matchers import capture, describe, mismatch
from .payloads import send_payload
from .server_context import DEFAULT_CONN, Conn, ServerCaseContext, StepFailed, is_push
from .wire import WireClosed, WireError, WireTimeout
from .wirekit import echo_line, json_equal

__all__ = ["STEPS"]


def op_connect(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    name = step.get("conn", DEFAULT_CONN)
    if name in ctx.conns:
        ctx.conns[name].wire.close()
    path = ctx.spawned[step["server"]].path if "server" in step else None
    ctx.conns[name] = Conn(ctx.connect(path, name=name))


def op_send(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    conn = ctx.conn(step)
    data = send_payload(conn.pending, step, ctx.variables)
    try:
        conn.wire.send_bytes(
            data,
            ctx.deadline,
            chunk=step.get("chunk"),
            pause_s=step.get("chunk_pause_s", 0.002 if step.get("chunk") else 0.0),
        )
    except WireTimeout as exc:
        raise StepFailed(
            "the server to read the request", "it stopped reading within the time bound"
        ) from exc
    except WireClosed as exc:
        if not step.get("peer_may_close"):
            raise StepFailed("the server to read the request", str(exc)) from exc
    except WireError as exc:
        raise StepFailed("the server to read the request", str(exc)) from exc


def op_expect(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    conn = ctx.conn(step)
    deadline = ctx.bound(step.get("within_s"))
    matchers: list[dict[str, Any]] = list(step.get("responses", []))
    generated = bool(step.get("generated"))
    exact = step.get("order", "any") == "exact"
    not_before = step.get("not_before_s")
    sent_at = conn.wire.last_send_at
    while matchers or (generated and conn.pending):
        waiting_for = _waiting_for(ctx, matchers, conn.pending if generated else {})
        received = ctx.read(conn, deadline, waiting_for)
        message = received.value
        if is_push(message):
            conn.pushes.append(message.get("data"))  # PUSH-1: set aside
            continue
        if not_before is not None and received.at - sent_at < not_before:
            raise StepFailed(
                f"no answer before {not_before} s",
                f"{ctx.clip(message)} after {received.at - sent_at:.3f} s",
            )
        if generated and _generated_answer(ctx, conn, message):
            continue
        candidates = matchers[:1] if exact else matchers
        for matcher in candidates:
            if mismatch(matcher, message, ctx.options.schemas, ctx.variables) is None:
                matchers.remove(matcher)
                ctx.variables.update(capture(matcher, message))
                break
        else:
            raise StepFailed(*_explain(ctx, matchers, message, exact))


def _generated_answer(ctx: ServerCaseContext, conn: Conn, message: Any) -> bool:
    """Check ``message`` as the answer to a generated request; False when it is not one."""
    if not isinstance(message, dict):
        return False
    request_id = message.get("ipcReqID")
    if isinstance(request_id, str) and request_id in conn.pending:
        expected = conn.pending.pop(request_id)
        conn.answered.add(request_id)
        if message.get("data") is None and "code" in message:
            raise StepFailed(f"the echo of request {request_id}", f"an error: {ctx.clip(message)}")
        if not json_equal(message.get("data"), expected):
            raise StepFailed(
                f"the echo of request {request_id} with its data unchanged",
                f"data {ctx.clip(message.get('data'))}",
            )
        return True
    if isinstance(request_id, str) and request_id in conn.answered:
        raise StepFailed("each request answered exactly once (RESP-1)", f"a second answer to {request_id}")
    return False


def _waiting_for(ctx: ServerCaseContext, matchers: list[dict[str, Any]], pending: dict[Any, Any]) -> str:
    parts = [describe(m, ctx.variables) for m in matchers[:3]]
    if len(matchers) > 3:
        parts.append(f"{len(matchers) - 3} more")
    if pending:
        ids = list(pending)
        parts.append(f"answers to {len(ids)} more requests (first {ctx.clip(ids[0], 60)})")
    return "; ".join(parts)


def _explain(
    ctx: ServerCaseContext, matchers: list[dict[str, Any]], message: Any, exact: bool
) -> tuple[str, str, str]:
    if not matchers:
        return "no further message", ctx.clip(message), ""
    candidates = matchers[:1] if exact else matchers
    same_id = [
        m
        for m in candidates
        if isinstance(message, dict) and json_equal(m.get("ipcReqID"), message.get("ipcReqID"))
    ]
    best = (same_id or candidates)[0]
    reason = mismatch(best, message, ctx.options.schemas, ctx.variables) or ""
    expected = describe(best, ctx.variables)
    if exact and len(matchers) > 1:
        expected += " first"
    return expected, ctx.clip(message), reason


def op_expect_none(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    conn = ctx.conn(step)
    # A quiet window is not a time bound: stretching it (timeout_scale)
    # would make the case slower, not more lenient.
    window_end = time.monotonic() + step["for_s"]
    deadline = min(ctx.deadline, window_end)
    while True:
        try:
            received = conn.wire.read_message(deadline)
        except WireTimeout as exc:
            if window_end > ctx.deadline:
                # Cut short: the quiet window was not watched in full.
                raise StepFailed(
                    f"no reply for {step['for_s']:g} s", "the case's time bound passed first"
                ) from exc
            return
        except WireError as exc:
            raise StepFailed("no message and the connection open", str(exc)) from exc
        if received is None:
            raise StepFailed("no message and the connection open", "the server closed the connection")
        ctx.check_schema(received)
        if is_push(received.value):
            conn.pushes.append(received.value.get("data"))
            continue
        if "why" in step:
            raise StepFailed(f"no reply for {step['for_s']:g} s", ctx.clip(received.value), step["why"])
        raise StepFailed("no reply", ctx.clip(received.value))


def op_expect_closed(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    conn = ctx.conn(step)
    deadline = ctx.bound(step.get("within_s"))
    try:
        received = conn.wire.read_message(deadline)
    except WireTimeout as exc:
        raise StepFailed("the server to close the connection", "it stayed open") from exc
    except WireClosed:
        return
    except WireError as exc:
        raise StepFailed("the server to close the connection", str(exc)) from exc
    if received is not None:
        ctx.check_schema(received)
        raise StepFailed("the server to close the connection", f"another message: {ctx.clip(received.value)}")


def op_shutdown_write(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    try:
        ctx.conn(step).wire.shutdown_write()
    except WireError as exc:
        raise StepFailed("a half-close", str(exc)) from exc


def op_close(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    name = step.get("conn", DEFAULT_CONN)
    if name in ctx.conns:
        ctx.conns.pop(name).wire.close()
    for wire in ctx.crowds.pop(name, []):
        wire.close()


def op_sleep(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    time.sleep(max(0.0, min(step["s"] * ctx.scale, ctx.deadline - time.monotonic())))


def op_probe(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    ctx.probes += 1
    request_id = f"probe{ctx.probes}"
    path = ctx.spawned[step["server"]].path if "server" in step else ctx.path
    waiting = "the server alive (an echo on a new connection)"
    within = step.get("within_s", 5.0)
    wire = ctx.connect(path, name=request_id, within_s=within)
    try:
        deadline = ctx.bound(within)
        try:
            wire.send_bytes(echo_line(request_id, {"probe": ctx.probes}) + b"\n", deadline)
        except WireError as exc:
            raise StepFailed(waiting, str(exc)) from exc
        matcher = {"ipcReqID": request_id, "data": {"probe": ctx.probes}}
        conn = Conn(wire)
        while True:
            received = ctx.read(conn, deadline, waiting)
            if is_push(received.value):
                continue
            reason = mismatch(matcher, received.value, ctx.options.schemas, ctx.variables)
            if reason is not None:
                raise StepFailed(waiting, ctx.clip(received.value), reason)
            return
    finally:
        wire.close()


#: Recorded entries replayed at once, each on a connection of its own.
_REPLAY_WORKERS = 8
#: How long the answers to an entry may take, at most (times the timeout scale).
_REPLAY_ANSWER_S = 5.0
#: How long to keep reading after an entry's answers (a quiet window: not scaled).
_REPLAY_SETTLE_S = 0.1


def op_replay_answers(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    agreed = agreed_inputs()

    def run(item: Input) -> Outcome | None:
        left = ctx.deadline - time.monotonic()
        if left <= 0:
            return None
        answer_s = min(_REPLAY_ANSWER_S * ctx.scale, max(0.0, left - item.wait_s))
        return replay(ctx.path, item, Bounds(answer_s=answer_s, settle_s=_REPLAY_SETTLE_S, connect_s=left))

    with ThreadPoolExecutor(_REPLAY_WORKERS) as pool:
        outcomes = list(pool.map(run, [item for item, _ in agreed]))
    wanted = f"the original's recorded answer to each of the {len(agreed)} entries the kit answers alike"
    wrong = []
    for (item, original), outcome in zip(agreed, outcomes, strict=True):
        if outcome is None:
            raise StepFailed(wanted, f"the case's time bound passed before entry {item.id}")
        if not matches_recorded(original, outcome):
            got = [ctx.clip(line, 160) for line in outcome.lines] or ["nothing"]
            if outcome.detail:
                got.append(f"({outcome.end}: {outcome.detail})")
            recorded = "the connection lost" if original.get("connection_lost") else original["lines"]
            wrong.append(f"{item.id}: {item.title} Recorded: {ctx.clip(recorded, 240)}; got {' '.join(got)}")
    if wrong:
        raise StepFailed(
            wanted,
            f"{len(wrong)} answered otherwise, first {wrong[0].split(':', 1)[0]}",
            " | ".join(wrong[:3]),
        )


STEPS = {
    "connect": op_connect,
    "send": op_send,
    "expect": op_expect,
    "expect_none": op_expect_none,
    "expect_closed": op_expect_closed,
    "shutdown_write": op_shutdown_write,
    "close": op_close,
    "sleep": op_sleep,
    "probe": op_probe,
    "replay_answers": op_replay_answers,
}
