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
                  "chunk_pause_s"}`` writes the parts in one write, or split
    ``drop``      closes the client's connections (the server keeps listening)
    ``stop_server`` / ``start_server``  stop listening (and drop) / listen again
    ``connection`` ``{"within_s"}`` a new connection arrives (a reconnect)
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

    A write part is one of ``{"respond": LABEL, ...}`` (the answer to the
    request taken as LABEL: with ``data``, ``echo`` (the request's data),
    ``line_bytes`` (data padded so the line is that long), ``nested_depth``,
    ``error`` (top-level error members) or ``omit_data``, plus ``members``
    (further top-level members) and ``cut`` (only the first bytes)),
    ``{"push": VALUE, "null_id": bool}``, ``{"message": OBJECT}``,
    ``{"malformed_for": LABEL}`` (a broken ``{`` line carrying that request's
    id) and ``{"text": STRING}`` (raw text, no LF added). ``eol`` and ``ascii``
    adjust how a message part is encoded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapter_driver import AdapterAnswer, AdapterDriver, PendingCommand
from .model import Case
from .scripted_server import (
    ClientConnection,
    ReceivedRequest,
    ScriptedServer,
    fill_backlog,
    make_stale_socket,
)
from .wirekit import encode_message, json_equal, padded_string, show

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

#: Default bounds of the steps that wait.
DEFAULT_REQUEST_WITHIN_S = 5.0
DEFAULT_ANSWER_GRACE_S = 5.0
DEFAULT_COMMAND_WITHIN_S = 5.0
_POLL_S = 0.1
#: Capabilities ADAPTER.md defines; others an adapter lists are ignored.
KNOWN_CAPABILITIES = (
    "concurrent",
    "push",
    "auto_reconnect",
    "reconnect",
    "max_message_bytes",
    "timeout",
    "introspect",
    "code_to_err",
)


class StepFailed(Exception):
    """An expectation of a step did not hold."""

    def __init__(self, step: int, expected: str, got: str, detail: str = "") -> None:
        self.step = step
        self.expected = expected
        self.got = got
        self.detail = detail
        super().__init__(f"step {step}: expected {expected}; got {got}")


class CaseScriptError(Exception):
    """The case itself is wrong (an unknown label, two commands in flight without ``concurrent``)."""


class CaseSkipped(Exception):
    """The case cannot be run here (the reason is the text)."""


@dataclass
class StepContext:
    """What the steps of one case share: both peers, the labels taken so far."""

    case: Case
    driver: AdapterDriver
    server: ScriptedServer
    directory: Path
    capabilities: set[str]
    start_result: dict[str, Any]
    scale: float
    sends: dict[str, PendingCommand] = field(default_factory=dict)
    requests: dict[str, ReceivedRequest] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict)
    connections_seen: int = 0
    closers: list[Callable[[], None]] = field(default_factory=list)
    stash: list[ReceivedRequest] = field(default_factory=list)

    def request(self, label: str) -> ReceivedRequest:
        """The request taken as ``label`` (CaseScriptError when there is none)."""
        if label not in self.requests:
            raise CaseScriptError(f"no request was taken as {label!r}")
        return self.requests[label]

    def pending_send(self, label: str) -> PendingCommand:
        """The send made as ``label`` (CaseScriptError when there is none)."""
        if label not in self.sends:
            raise CaseScriptError(f"no send was made as {label!r}")
        return self.sends[label]


# -- write parts ------------------------------------------------------------------


def _encode(message: Any, part: dict[str, Any]) -> bytes:
    return encode_message(message, ascii=bool(part.get("ascii", False))) + str(part.get("eol", "\n")).encode()


def _build_part(ctx: StepContext, part: dict[str, Any]) -> tuple[bytes, ReceivedRequest | None]:
    """The bytes of one write part, and the request it answers (if any)."""
    if "text" in part:
        return str(part["text"]).encode("utf-8"), None
    if "message" in part:
        return _encode(part["message"], part), None
    if "push" in part:
        push: dict[str, Any] = {"data": part["push"]}
        if part.get("null_id"):
            push = {"ipcReqID": None, **push}
        return _encode(push, part), None
    if "malformed_for" in part:
        request = ctx.request(part["malformed_for"])
        # Starts with "{" and carries the pending id, but does not parse (FRAME-7).
        return b'{"ipcReqID":' + encode_message(request.id) + b',"data":{"x":tru' + str(
            part.get("eol", "\n")
        ).encode(), None
    if "respond" in part:
        label = part["respond"]
        request = ctx.request(label)
        message: dict[str, Any] = {"ipcReqID": request.id}
        if "error" in part:
            message.update(part["error"])
        elif not part.get("omit_data"):
            if part.get("echo"):
                data = request.message.get("data")
            elif "nested_depth" in part:
                data = 1
                for _ in range(int(part["nested_depth"])):
                    data = [data]
            elif "line_bytes" in part:
                overhead = len(_encode({"ipcReqID": request.id, "data": ""}, {"eol": ""}))
                data = padded_string(int(part["line_bytes"]) - overhead)
            else:
                data = part.get("data")
            message["data"] = data
            ctx.written[label] = data
        message.update(part.get("members", {}))
        encoded = _encode(message, part)
        if "cut" in part:
            # Part of the line only: the connection will end inside it.
            return encoded[: int(part["cut"])], None
        return encoded, request
    raise CaseScriptError(f"unknown write part {show(part)}")


# -- answer checks ------------------------------------------------------------------


def _check_answer(ctx: StepContext, index: int, answer: AdapterAnswer, expect: dict[str, Any]) -> None:
    if "any_of" in expect:
        for choice in expect["any_of"]:
            try:
                _check_answer(ctx, index, answer, choice)
                return
            except StepFailed:
                continue
        raise StepFailed(index, _describe_expect(ctx, expect), answer.describe())
    if "error" in expect:
        want = expect["error"]
        if answer.ok:
            raise StepFailed(index, f"an error {show(want)}", answer.describe())
        kinds = want["kind"] if isinstance(want["kind"], list) else [want["kind"]]
        if answer.error.get("kind") not in kinds:
            raise StepFailed(index, f"an error of kind {' or '.join(kinds)}", answer.describe())
        for key in ("code", "message"):
            if key in want and answer.error.get(key) != want[key]:
                raise StepFailed(index, f"an error with {key} {show(want[key])}", answer.describe())
        return
    if not answer.ok:
        raise StepFailed(index, "success" + _expected_data_text(ctx, expect), answer.describe())
    if "data" in expect or "data_written" in expect:
        want_data = expect["data"] if "data" in expect else ctx.written.get(expect["data_written"])
        if "data" not in answer.result:
            raise StepFailed(index, "a result with data", answer.describe())
        got = answer.result["data"]
        if not json_equal(got, want_data):
            raise StepFailed(index, f"data {show(want_data)}", f"data {show(got)}")


def _describe_expect(ctx: StepContext, expect: dict[str, Any]) -> str:
    """An expectation in words: "an error of kind closed", "data 1", "an answer"."""
    if "any_of" in expect:
        return " or ".join(_describe_expect(ctx, choice) for choice in expect["any_of"])
    if "error" in expect:
        kinds = expect["error"]["kind"]
        kinds = " or ".join(kinds) if isinstance(kinds, list) else kinds
        code = expect["error"].get("code")
        return f"an error of kind {kinds}" + (f" (code {code})" if code else "")
    data = _expected_data_text(ctx, expect)
    return "an answer" + data


def _expected_data_text(ctx: StepContext, expect: dict[str, Any]) -> str:
    if "data" in expect:
        return f" with data {show(expect['data'])}"
    if "data_written" in expect:
        return f" with data {show(ctx.written.get(expect['data_written']))}"
    return ""


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
    _check_answer(ctx, index, answer, step.get("expect", {}))


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
            f"{_describe_expect(ctx, step.get('expect', {}))} for send {step['send']!r} within {within:g} s",
            "no answer",
            _server_view(ctx),
        )
    _check_answer(ctx, index, answer, step.get("expect", {}))
    if "not_before_s" in step:
        elapsed = answer.at - pending.sent_at
        if elapsed < float(step["not_before_s"]):
            raise StepFailed(
                index,
                f"the answer to send {step['send']!r} no sooner than {step['not_before_s']} s after the send",
                f"it came after {elapsed:.3f} s",
            )


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
        arrived = await ctx.server.next_request(max(0.0, min(remaining, _POLL_S)))
        if arrived is None and remaining > _POLL_S:
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
        data, request = _build_part(ctx, part)
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
    if not ok:
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
    _check_answer(ctx, index, answer, step.get("expect", {}))


async def _step_command(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    within = float(step.get("within_s", DEFAULT_COMMAND_WITHIN_S)) * ctx.scale
    answer = await ctx.driver.wait(await _submit(ctx, dict(step["command"])), within)
    if answer is None:
        raise StepFailed(index, f"an answer to {show(step['command'])} within {within:g} s", "none")
    _check_answer(ctx, index, answer, step.get("expect", {}))


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
        await asyncio.sleep(_POLL_S)


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
    await ctx.server.close_connections()


async def _step_stop_server(ctx: StepContext, index: int, step: dict[str, Any]) -> None:
    ctx.connections_seen = len(ctx.server.connections)
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
