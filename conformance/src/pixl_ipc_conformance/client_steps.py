"""The steps of client cases: what each ``op`` of ``$defs/client_step`` does.

:func:`run_steps` executes a case's steps against a :class:`StepContext`: the
adapter (:class:`~.adapter_driver.AdapterDriver`) on one side, the
:class:`~.scripted_server.ScriptedServer` on the other. A step whose
expectation fails raises :class:`StepFailed`; :mod:`.client_runner` turns that
into the case's verdict.

Step vocabulary (``$defs/client_step`` of ``case.schema.json``)
    Adapter side:
    ``connect``   ``{"options", "socket", "expect", "within_s"}``; socket is
                  ``server`` (default), ``stale`` (a socket file nobody listens
                  on), ``missing`` (no such path), ``denied`` (mode 000; the
                  case is skipped when the runner is root) or ``full`` (a
                  listener whose backlog is full: connecting waits)
    ``send``      ``{"as", "uri", "data" | "data_string_bytes" | "omit_data",
                  "timeout_ms"}`` sends and does not wait
    ``answer``    ``{"send", "expect", "within_s", "not_before_s"}`` waits for the
                  answer of a send (``within_s`` from the step's start,
                  ``not_before_s`` from the send) and checks it
    ``silent``    ``{"send", "for_s"}`` the send has no answer for that long
    ``pushes``    ``{"expect": [...]}`` or ``{"count": N}`` the ``pushes`` command
    ``close``     the ``close`` command
    ``introspect`` ``{"pending", "within_s"}`` asks ``introspect`` until the
                  client reports that many pending entries, within the bound
    ``command``   ``{"command", "expect"}`` any raw command
    ``check_start`` the ``start`` result has the fields ADAPTER.md lists

    Server side:
    ``request``   ``{"as", "uri", "data" | "data_string_bytes", "has",
                  "within_s", "same_connection_as", "new_connection"}`` takes
                  the client's next request (with several sends in flight, the
                  one matching uri and data) and checks it
    ``write``     ``{"parts", "to", "delay_s", "chunk" | "pieces",
                  "chunk_pause_s", "peer_may_close"}`` writes the parts in
                  one write, or split; with ``peer_may_close`` the client
                  may close the connection before it has read them all
    ``drop``      closes the client's connections (the server keeps listening)
    ``stop_server`` / ``start_server``  stop listening (and drop) / listen again
    ``connection`` ``{"within_s", "not_before_s"}`` a new connection arrives
                  (a reconnect), and no sooner than ``not_before_s`` after
                  the last ``drop`` or ``stop_server``
    ``eof``       ``{"within_s", "of"}`` the client ends the stream of its
                  latest connection (or of the one request ``of`` came on)
    ``echo_server`` from now on the server answers each request itself, with
                  its data, as the echo built-in does
    ``original_server`` from now on the server answers the probes
                  ``/ipcserver/info`` and ``/ipcserver/stats`` as the original
                  does (``no_handler_found`` in data, VER-5) instead of as an
                  extended server
    ``sleep``     ``{"s"}``

    Any step may carry ``"if": CAPABILITY``: it runs only when the adapter has it.

    The write parts and the checks of the adapter's answers are in
    :mod:`.client_parts`; the context the steps share is in :mod:`.client_context`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from .adapter_driver import PendingCommand
from .client_context import (
    DEFAULT_ANSWER_GRACE_S,
    DEFAULT_COMMAND_WITHIN_S,
    DEFAULT_REQUEST_WITHIN_S,
    KNOWN_CAPABILITIES,
    POLL_S,
    CaseScriptError,
    CaseSkipped,
    StepContext,
    StepFailed,
)
from .client_parts import build_part, check_answer, describe_expect
from .scripted_server import ClientConnection, ReceivedRequest, fill_backlog, make_stale_socket
from .wirekit import json_equal, padded_string, show

__all__ = [
    "KNOWN_CAPABILITIES",
    "STEPS",
    "STEP_OPS",
    "CaseScriptError",
    "CaseSkipped",
    "StepContext",
    "StepFailed",
    "run_steps",
]


# -- steps ------------------------------------------------------------------------


async def _step_connect(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    target = step.get("socket", "server")
    if target == "server":
        path = ctx.server.path
    elif target == "stale":
        path = str(ctx.directory / "stale.sock")
        make_stale_socket(path)
    elif target == "missing":
        path = str(ctx.directory / "missing" / "none.sock")
    elif target == "denied":
        if os.geteuid() == 0:
            raise CaseSkipped("the runner runs as root, which file permissions do not stop")
        path = str(ctx.directory / "denied.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        ctx.closers.append(listener.close)
        os.chmod(path, 0)
    elif target == "full":
        path = str(ctx.directory / "full.sock")
        ctx.closers.extend(fill_backlog(path))
    else:
        raise CaseScriptError(f"unknown socket {target!r}")
    pending = await _submit(ctx, {"cmd": "connect", "socket": path, "options": step.get("options", {})})
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    answer = await ctx.driver.wait(pending, within)
    if answer is None:
        raise StepFailed(index, f"an answer to connect within {within:g} s", "none")
    check_answer(ctx, index, answer, step.get("expect", {}))


async def _submit(ctx: StepContext, command: dict[str, Any]) -> PendingCommand:
    if "concurrent" not in ctx.capabilities and ctx.driver.outstanding:
        raise CaseScriptError("two commands in flight but the adapter lacks the concurrent capability")
    return await ctx.driver.submit(command)


async def _step_send(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    command = {"cmd": "send", "uri": step["uri"], "timeout_ms": int(step.get("timeout_ms", 10000))}
    if not step.get("omit_data"):
        command["data"] = _step_data(step)
    ctx.sends[step["as"]] = await _submit(ctx, command)


async def _step_answer(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    pending = ctx.pending_send(step["send"])
    if "within_s" in step:
        within = float(step["within_s"]) * ctx.scale
    else:
        within = pending.command.get("timeout_ms", 10000) / 1000 + DEFAULT_ANSWER_GRACE_S * ctx.scale
    answer = await ctx.driver.wait(pending, within)
    if answer is None:
        raise StepFailed(
            index,
            f"{describe_expect(ctx, step.get('expect', {}))} for send {step['send']!r} within {within:g} s",
            "no answer",
            _server_view(ctx),
        )
    if not answer.ok and answer.error.get("kind") == "timeout":
        _note_timed_out(ctx, pending)
    check_answer(ctx, index, answer, step.get("expect", {}))
    if "not_before_s" in step:
        elapsed = answer.at - pending.sent_at
        if elapsed < float(step["not_before_s"]):
            raise StepFailed(
                index,
                f"the answer to send {step['send']!r} no sooner than {step['not_before_s']} s after the send",
                f"it came after {elapsed:.3f} s",
            )


def _note_timed_out(ctx: StepContext, pending: PendingCommand) -> None:
    """Tell the scripted server which request a timed-out send wrote (the one
    with its uri and data), so that a reuse of its id is named CORR-5."""
    command = pending.command
    for request in [*ctx.requests.values(), *ctx.stash]:
        message = request.message
        if message.get("uri") == command.get("uri") and json_equal(message.get("data"), command.get("data")):
            request.connection.mark_timed_out(request.id)


async def _step_silent(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    pending = ctx.pending_send(step["send"])
    answer = await ctx.driver.wait(pending, float(step["for_s"]))
    if answer is not None:
        raise StepFailed(
            index, f"no answer to send {step['send']!r} yet (its response was not written)", answer.describe()
        )


def _step_data(step: dict[str, Any]) -> Any:
    """The data a send or request step names: ``data`` or ``data_string_bytes``."""
    if "data_string_bytes" in step:
        return padded_string(int(step["data_string_bytes"]))
    return step.get("data")


def _request_mismatch(step: dict[str, Any], request: ReceivedRequest) -> str:
    """Why ``request`` is not the one ``step`` waits for, or ''."""
    message = request.message
    if "uri" in step and message.get("uri") != step["uri"]:
        return f"uri {show(message.get('uri'))}"
    if "data" in step or "data_string_bytes" in step:
        want = _step_data(step)
        if "data" not in message and want is not None:
            return "no data member"
        if not json_equal(message.get("data"), want):
            return f"data {show(message.get('data'))}"
    return ""


def _wanted_request(step: dict[str, Any]) -> str:
    parts = []
    if "uri" in step:
        parts.append(f"uri {step['uri']!r}")
    if "data" in step or "data_string_bytes" in step:
        parts.append(f"data {show(_step_data(step))}")
    return "a request" + (" with " + " and ".join(parts) if parts else "")


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str) and bool(v),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


async def _step_request(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_REQUEST_WITHIN_S)) * ctx.scale
    deadline = time.monotonic() + within
    wanted = _wanted_request(step)
    request: ReceivedRequest | None = None
    # Concurrent sends may reach the server in any order: take the request
    # this step describes, and keep the others for the steps that want them.
    for candidate in ctx.stash:
        if not _request_mismatch(step, candidate):
            request = candidate
            ctx.stash.remove(candidate)
            break
    while request is None:
        remaining = deadline - time.monotonic()
        arrived = await ctx.server.next_request(max(0.0, min(remaining, POLL_S)))
        if arrived is None and remaining > POLL_S:
            broken = [v for v in ctx.server.violations if v.level == "MUST"]
            if broken:
                # The client wrote something that is not a request: waiting
                # longer only delays the FAIL the wire check already decided.
                raise StepFailed(index, f"{wanted} (FRAME-1)", str(broken[0]))
            continue
        if arrived is None:
            seen = "; ".join(_request_mismatch(step, r) for r in ctx.stash)
            raise StepFailed(
                index,
                f"{wanted} (REQ-4) from the client within {within:g} s",
                "none" + (f" (other requests: {seen})" if seen else "") + _adapter_view(ctx),
            )
        mismatch = _request_mismatch(step, arrived)
        if not mismatch:
            request = arrived
        elif ctx.driver.outstanding <= 1:
            # Only one send in flight: this request can only be that one.
            raise StepFailed(index, f"{wanted} (REQ-4)", f"a request with {mismatch}")
        else:
            ctx.stash.append(arrived)
    ctx.requests[step["as"]] = request
    message = request.message
    for member, kind in step.get("has", {}).items():
        if member not in message or not _TYPE_CHECKS[kind](message[member]):
            raise StepFailed(
                index,
                f"a request whose {member} is a {kind}",
                f"{member} {show(message.get(member, '(absent)'))}",
            )
    if "same_connection_as" in step:
        other = ctx.request(step["same_connection_as"])
        if other.connection is not request.connection:
            raise StepFailed(
                index,
                f"the request on the same connection as {step['same_connection_as']!r}",
                f"it came on a new connection (#{request.connection.number})",
            )
    if step.get("new_connection") and request.connection.number < ctx.connections_seen:
        raise StepFailed(index, "the request on a new connection", f"connection #{request.connection.number}")


async def _step_write(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    if step.get("delay_s"):
        await asyncio.sleep(float(step["delay_s"]))
    chunks: list[bytes] = []
    answered: list[ReceivedRequest] = []
    for part in step["parts"]:
        data, request = build_part(ctx, part)
        chunks.append(data)
        if request is not None:
            answered.append(request)
    connection: ClientConnection | None
    if "to" in step:
        connection = ctx.request(step["to"]).connection
    elif answered:
        connection = answered[0].connection
    else:
        connection = ctx.server.latest_connection()
    if connection is None:
        raise StepFailed(index, "a client connection to write to", "the client never connected")
    payload = b"".join(chunks)
    chunk = step.get("chunk")
    if "pieces" in step:
        chunk = -(-len(payload) // int(step["pieces"]))
    ok = await connection.write(payload, chunk=chunk, pause_s=float(step.get("chunk_pause_s", 0.0)))
    if not ok and not step.get("peer_may_close"):
        raise StepFailed(
            index,
            "the client's connection open to read the server's write",
            "the client had closed it" + _adapter_view(ctx),
        )
    for request in answered:
        request.connection.mark_answered(request.id)


async def _step_connection(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_REQUEST_WITHIN_S)) * ctx.scale
    deadline = time.monotonic() + within
    while len(ctx.server.connections) <= ctx.connections_seen:
        if time.monotonic() >= deadline:
            raise StepFailed(index, f"a new connection from the client within {within:g} s", "none")
        await asyncio.sleep(0.02)
    if "not_before_s" in step and ctx.dropped_at is not None:
        # A lower bound only: load makes a client later, never earlier.
        after = ctx.server.connections[ctx.connections_seen].opened_at - ctx.dropped_at
        if after < float(step["not_before_s"]):
            raise StepFailed(
                index,
                f"the client to connect again no sooner than {step['not_before_s']:g} s after the"
                " connection dropped (auto_reconnect_ms, ADAPTER.md)",
                f"it connected again after {after:.3f} s",
            )


async def _step_pushes(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    answer = await ctx.driver.wait(await _submit(ctx, {"cmd": "pushes"}), within)
    if answer is None:
        raise StepFailed(index, f"an answer to pushes within {within:g} s", "none")
    if not answer.ok:
        raise StepFailed(index, "the pushes received", answer.describe())
    got = answer.result.get("pushes")
    if "count" in step:
        if not isinstance(got, list) or len(got) != step["count"]:
            raise StepFailed(index, f"{step['count']} pushes (PUSH-2)", f"pushes {show(got)}")
    elif not json_equal(got, step["expect"]):
        raise StepFailed(index, f"pushes {show(step['expect'])} (PUSH-2)", f"pushes {show(got)}")


async def _step_close(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    answer = await ctx.driver.wait(await ctx.driver.submit({"cmd": "close"}), within)
    if answer is None:
        raise StepFailed(index, f"an answer to close within {within:g} s", "none")
    check_answer(ctx, index, answer, step.get("expect", {}))


async def _step_command(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    answer = await ctx.driver.wait(await _submit(ctx, dict(step["command"])), within)
    if answer is None:
        raise StepFailed(index, f"an answer to {show(step['command'])} within {within:g} s", "none")
    check_answer(ctx, index, answer, step.get("expect", {}))


async def _step_introspect(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    deadline = time.monotonic() + within
    wanted = step["pending"]
    while True:
        answer = await ctx.driver.wait(await _submit(ctx, {"cmd": "introspect"}), within)
        if answer is None:
            raise StepFailed(index, f"an answer to introspect within {within:g} s", "none")
        if not answer.ok:
            raise StepFailed(index, "the introspect result (ADAPTER.md)", answer.describe())
        pending = answer.result.get("pending")
        if not isinstance(pending, int) or isinstance(pending, bool) or pending < 0:
            raise StepFailed(index, "introspect's pending, a non-negative integer", answer.describe())
        if pending == wanted:
            return
        if time.monotonic() >= deadline:
            raise StepFailed(
                index,
                f"the client to hold {wanted} per-request entries within {within:g} s (introspect)",
                f"it still holds {pending}" + _adapter_view(ctx),
            )
        await asyncio.sleep(POLL_S)


async def _step_eof(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    connection = ctx.request(step["of"]).connection if "of" in step else ctx.server.latest_connection()
    if connection is None:
        raise StepFailed(index, "a client connection", "the client never connected")
    try:
        await asyncio.wait_for(connection.client_ended.wait(), within)
    except TimeoutError:
        raise StepFailed(
            index,
            f"the client to close its connection (end of stream) within {within:g} s",
            "the connection stayed open" + _adapter_view(ctx),
        ) from None


async def _step_echo_server(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    ctx.server.echo = True


async def _step_check_start(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    result = ctx.start_result
    for key in ("name", "language", "version"):
        if not isinstance(result.get(key), str) or not result[key]:
            raise StepFailed(index, f"start result with a non-empty string {key!r}", show(result))
    capabilities = result.get("capabilities")
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise StepFailed(index, "start result with capabilities, a list of strings", show(result))


async def _step_original_server(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    ctx.server.original = True


async def _step_sleep(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    await asyncio.sleep(float(step["s"]))


async def _step_drop(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    ctx.connections_seen = len(ctx.server.connections)
    ctx.dropped_at = time.monotonic()
    await ctx.server.close_connections()


async def _step_stop_server(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    ctx.connections_seen = len(ctx.server.connections)
    ctx.dropped_at = time.monotonic()
    await ctx.server.stop_listening()


async def _step_start_server(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    await ctx.server.start()


STEPS: dict[str, Callable[[StepContext, int, dict[str, Any]], Any]] = {
    "connect": _step_connect,
    "send": _step_send,
    "answer": _step_answer,
    "silent": _step_silent,
    "pushes": _step_pushes,
    "close": _step_close,
    "command": _step_command,
    "introspect": _step_introspect,
    "check_start": _step_check_start,
    "request": _step_request,
    "write": _step_write,
    "drop": _step_drop,
    "stop_server": _step_stop_server,
    "start_server": _step_start_server,
    "connection": _step_connection,
    "eof": _step_eof,
    "echo_server": _step_echo_server,
    "sleep": _step_sleep,
    "original_server": _step_original_server,
}
#: The step operations, for the case schema's ``$defs/client_step``.
STEP_OPS = tuple(STEPS)


def _adapter_view(ctx: StepContext) -> str:
    """What the adapter already answered, for a step that waited in vain."""
    notes = []
    for label, pending in ctx.sends.items():
        if pending.future.done() and not pending.future.cancelled():
            notes.append(f"send {label!r} was answered: {pending.future.result().describe()}")
    return (" (" + "; ".join(notes) + ")") if notes else ""


def _server_view(ctx: StepContext) -> str:
    waiting = ctx.server.pending_requests()
    return f"{waiting} request(s) arrived that the script did not take" if waiting else ""


async def run_steps(ctx: StepContext) -> None:
    """Execute the case's steps in order (skipping those whose ``if`` capability is missing).

    Raises:
        StepFailed: an expectation did not hold.
        CaseScriptError: the case is wrong.
        CaseSkipped: the case cannot run here.
    """
    for index, step in enumerate(ctx.case.steps):
        condition = step.get("if")
        if condition is not None and condition not in ctx.capabilities:
            continue
        handler = STEPS.get(step.get("op", ""))
        if handler is None:
            raise CaseScriptError(f"step {index}: unknown op {step.get('op')!r}")
        await handler(ctx, index, step)
