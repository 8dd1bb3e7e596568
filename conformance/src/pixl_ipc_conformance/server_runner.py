"""Executes server cases against a server listening on a socket path.

Entry points: :func:`run_server_cases` (a list of cases, one result each, in
order) and :func:`run_server_case` (one case). Starting servers lives in
:mod:`.server_process`.

Server steps (``conformance/cases/case.schema.json``, ``$defs/server_step``):

``connect``        open the named connection (``conn``, default ``main``);
                   a connection is also opened on its first use
``send``           write ``message`` / ``messages`` (coalesced in one write) /
                   ``text`` / ``hex`` / ``generate``, with ``eol``, ``chunk``,
                   ``chunk_pause_s``, ``ascii``
``expect``         read until every matcher in ``responses`` (and with
                   ``generated`` every response registered by generators) is
                   matched exactly once; ``order`` any|exact; ``within_s``;
                   ``not_before_s``
``expect_none``    nothing but pushes for ``for_s`` seconds
``expect_closed``  the server ends the stream within ``within_s``
``shutdown_write`` half-close; ``close`` close
``sleep``          wait ``s`` seconds
``fanout``         ``count`` connections at once, one echo each
``probe``          a fresh connection gets an echo answered (the server is alive)
``spawn``          start another server (``start_command``) at a path prepared
                   as ``none``/``regular_file``/``directory``/``symlink``/
                   ``stale_socket``/``same_as`` another; it ``serves`` or ``refuses``
                   (leaving the path as it was: LIFE-6)
``signal``         send a signal to a spawned server
``expect_mode``    a spawned server's socket file has the mode it was given
                   (``spawn`` with ``chmod``; SEC-1)
``expect_exit``    a spawned server exits and removes its socket path (LIFE-7)
``flood``          write big echo requests without reading until the server stops
                   reading (LIMIT-5), check another connection, then read them all

Every message received is checked against the spec's schemas (``message`` and
its own kind) besides the case's matchers. A message without an ``ipcReqID``
member is a push (PUSH-1): it is checked and set aside. Any other message that
no matcher expects fails the case, so "no reply" expectations are checked by
sending a good request afterwards and expecting only its answer.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Case, CaseResult, RunOptions, result_for, skipped
from .server_process import (
    DEFAULT_CHMOD,
    PREPARED,
    Spawned,
    accepts,
    describe_fingerprint,
    fingerprint,
    log_tail,
)
from .wire import (
    Received,
    WireClosed,
    WireConnection,
    WireError,
    WireTimeout,
    encode_message,
    json_equal,
)

__all__ = [
    "ECHO_URI",
    "StepFailed",
    "run_server_case",
    "run_server_cases",
]

ECHO_URI = "/ipcserver/test/echo"
DEFAULT_CONN = "main"
#: What a server case may list in ``needs``.
#: The mode ``{chmod}`` stands for in a start command when a case sets none:
#: the original's default (SEC-1).
SERVER_NEEDS = {
    "max_message_bytes": "the server's --max-message-bytes is not known to the runner",
    "start_command": "the runner did not start the server (--start), so it cannot start more",
    "chmod": "the start command has no {chmod} placeholder for the socket's mode",
    "app_handlers": "the server has not declared the conformance handlers (--capability app_handlers)",
    "access_control": "the start command has no {access_config} placeholder for an allow-list",
}
_CLIP = 240
#: Up to this depth a nested request's echo is expected by ``expect generated``;
#: deeper, the server may refuse it (LIMIT-4) and the case says what it accepts.
_EXPECTED_NESTING_MAX = 256


class StepFailed(Exception):
    """A step's expectation did not hold.

    Args:
        expected: what the step expected.
        got: what came instead.
        detail: anything else worth knowing (the step, schema problems).
    """

    def __init__(self, expected: str, got: str, detail: str = "") -> None:
        super().__init__(f"expected {expected}; got {got}")
        self.expected = expected
        self.got = got
        self.detail = detail


def clip(value: Any, limit: int = _CLIP) -> str:
    """A short printable form of a received value or line."""
    if isinstance(value, bytes | bytearray):
        text = repr(bytes(value[: limit + 1]))[2:-1]
        size = len(value)
    else:
        text = encode_message(value).decode("utf-8", "replace") if not isinstance(value, str) else value
        size = len(text)
    if len(text) > limit:
        return text[:limit] + f"... ({size} bytes)"
    return text


# --------------------------------------------------------------------------
# Matchers
# --------------------------------------------------------------------------


def _resolve(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$var"}:
            return variables.get(value["$var"])
        return {k: _resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, variables) for v in value]
    return value


#: The matcher keys that name each top-level member (for ``exact``).
_NAMING = {
    "ipcReqID": ("ipcReqID", "ipcReqID_in"),
    "code": ("code",),
    "message": ("message", "message_not_pattern"),
    "data": ("data", "data_schema"),
}


def mismatch(
    matcher: dict[str, Any], message: Any, options: RunOptions, variables: dict[str, Any]
) -> str | None:
    """Why a received message does not satisfy a matcher, or None when it does."""
    if not isinstance(message, dict):
        return "the message is not a JSON object"
    if "any_of" in matcher:
        reasons = [mismatch(m, message, options, variables) for m in matcher["any_of"]]
        if all(r is not None for r in reasons):
            return "none of the alternatives holds: " + " | ".join(r for r in reasons if r)
    if "ipcReqID" in matcher:
        if "ipcReqID" not in message:
            return "ipcReqID is missing"
        if not json_equal(message["ipcReqID"], matcher["ipcReqID"]):
            return f"ipcReqID is {clip(message['ipcReqID'])}, not {clip(matcher['ipcReqID'])}"
    if "ipcReqID_in" in matcher:
        if "ipcReqID" not in message:
            return "ipcReqID is missing"
        if not any(json_equal(message["ipcReqID"], v) for v in matcher["ipcReqID_in"]):
            return f"ipcReqID is {clip(message['ipcReqID'])}, not one of {clip(matcher['ipcReqID_in'])}"
    if "kind" in matcher:
        problems = options.schemas.validate(message, matcher["kind"])
        if problems:
            return f"not a valid {matcher['kind']}: {problems[0]}"
    if "code" in matcher and message.get("code") != matcher["code"]:
        return f"top-level code is {clip(message.get('code'))}, not {clip(matcher['code'])}"
    if "message" in matcher and message.get("message") != matcher["message"]:
        return f"top-level message is {clip(message.get('message'))}, not {clip(matcher['message'])}"
    if "message_not_pattern" in matcher:
        text = message.get("message")
        if not isinstance(text, str):
            return f"top-level message is {clip(text)}, not a string"
        found = re.search(matcher["message_not_pattern"], text)
        if found:
            return f"top-level message {clip(text)} holds {found.group(0)!r}"
    for name, expected in _resolve(matcher.get("members", {}), variables).items():
        if name not in message:
            return f"member {name} is missing"
        if not json_equal(message[name], expected):
            return f"member {name} is {clip(message[name])}, not {clip(expected)}"
    for name in matcher.get("absent", []):
        if name in message:
            return f"member {name} is present ({clip(message[name])}) but must not be"
    if matcher.get("data_absent") and "data" in message:
        return f"data is present ({clip(message['data'])}) but must not be"
    if "data" in matcher:
        if "data" not in message:
            return "data is missing"
        if not json_equal(message["data"], matcher["data"]):
            return f"data is {clip(message['data'])}, not {clip(matcher['data'])}"
    if "data_schema" in matcher:
        problems = options.schemas.validate_with(matcher["data_schema"], message.get("data"))
        if problems:
            return f"data does not have the expected shape: {problems[0]}"
    if "list" in matcher:
        reason = _list_mismatch(matcher["list"], message)
        if reason is not None:
            return reason
    if matcher.get("exact"):
        allowed = _named_members(matcher)
        extra = [name for name in message if name not in allowed]
        if extra:
            return (
                f"member {extra[0]} is present ({clip(message[extra[0]])}) but the message"
                f" may hold only {', '.join(sorted(allowed))}"
            )
    return None


_MISSING = object()


def _pointed(document: Any, pointer: str) -> Any:
    """The value a JSON Pointer (RFC 6901) designates in ``document``, or ``_MISSING``."""
    value = document
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return _MISSING
    return value


def _list_mismatch(check: dict[str, Any], message: dict[str, Any]) -> str | None:
    """Why the list a ``list`` check points at does not start or end as it must."""
    pointer = check["pointer"]
    value = _pointed(message, pointer)
    if not isinstance(value, list):
        return f"{pointer} is {'missing' if value is _MISSING else clip(value)}, not a list"
    for key, expected in (("starts_with", check.get("starts_with")), ("ends_with", check.get("ends_with"))):
        if expected is None:
            continue
        part = value[: len(expected)] if key == "starts_with" else value[len(value) - len(expected) :]
        if len(value) < len(expected) or not json_equal(part, expected):
            verb = "start" if key == "starts_with" else "end"
            return f"{pointer} is {clip(value)}, which does not {verb} with {clip(expected)}"
    return None


def _named_members(matcher: dict[str, Any]) -> set[str]:
    """The top-level members a matcher names, which are all an ``exact`` one allows."""
    named = set(matcher.get("members", {}))
    for member, keys in _NAMING.items():
        if any(key in matcher for key in keys):
            named.add(member)
    return named


def describe(matcher: dict[str, Any]) -> str:
    """A matcher in words, for the report."""
    if "any_of" in matcher:
        return " or ".join(f"({describe(m)})" for m in matcher["any_of"])
    parts = []
    for key in ("ipcReqID", "code", "message", "data", "members"):
        if key in matcher:
            parts.append(f"{key}={clip(matcher[key], 80)}")
    if "ipcReqID_in" in matcher:
        parts.append(f"ipcReqID in {clip(matcher['ipcReqID_in'], 80)}")
    if matcher.get("data_absent"):
        parts.append("no data member")
    if "absent" in matcher:
        parts.append("without " + ", ".join(matcher["absent"]))
    if "data_schema" in matcher:
        parts.append("data of the expected shape")
    if "message_not_pattern" in matcher:
        parts.append(f"a message without /{matcher['message_not_pattern']}/")
    if "kind" in matcher:
        parts.append(f"a valid {matcher['kind']}")
    if "list" in matcher:
        check = matcher["list"]
        for key, verb in (("starts_with", "starting"), ("ends_with", "ending")):
            if key in check:
                parts.append(f"{check['pointer']} {verb} with {clip(check[key], 80)}")
    if matcher.get("exact"):
        parts.append("no other member")
    return "a message with " + ", ".join(parts) if parts else "a message"


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------


def _echo_line(request_id: str, data: Any) -> bytes:
    return encode_message({"ipcReqID": request_id, "uri": ECHO_URI, "data": data})


def _padded_echo(request_id: str, size: int) -> tuple[bytes, str]:
    """An echo request whose line is exactly ``size`` bytes; returns (line, data)."""
    overhead = len(_echo_line(request_id, ""))
    if size < overhead:
        raise ValueError(f"a line of {size} bytes cannot hold an echo request")
    # A mix of characters, not one run, so that a server that mangles, drops or
    # reorders chunks is caught; ASCII only, so the byte count is exact.
    unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
    count = size - overhead
    data = (unit * (count // len(unit) + 1))[:count]
    line = _echo_line(request_id, data)
    assert len(line) == size
    return line, data


@dataclass
class _Conn:
    wire: WireConnection
    pending: dict[Any, Any] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    pushes: list[Any] = field(default_factory=list)


class _CaseRun:
    def __init__(self, case: Case, socket_path: str, options: RunOptions) -> None:
        self.case = case
        self.path = socket_path
        self.options = options
        self.scale = options.timeout_scale
        self.started = time.monotonic()
        self.deadline = self.started + case.timeout_s * self.scale
        self.conns: dict[str, _Conn] = {}
        self.variables: dict[str, Any] = {"max_message_bytes": options.max_message_bytes}
        self.probes = 0
        self.spawned: dict[str, Spawned] = {}
        self.scratch: str | None = None

    # -- plumbing --------------------------------------------------------

    def bound(self, seconds: float | None) -> float:
        if seconds is None:
            return self.deadline
        return min(self.deadline, time.monotonic() + seconds * self.scale)

    def conn(self, step: dict[str, Any]) -> _Conn:
        name = step.get("conn", DEFAULT_CONN)
        if name not in self.conns:
            self.conns[name] = _Conn(self.connect())
        return self.conns[name]

    def connect(self, path: str | None = None) -> WireConnection:
        try:
            return WireConnection(path or self.path, self.bound(5.0))
        except WireError as exc:
            raise StepFailed("a connection to the server", str(exc)) from exc

    def close_all(self) -> None:
        for conn in self.conns.values():
            conn.wire.close()
        for spawned in self.spawned.values():
            spawned.stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def check_schema(self, received: Received) -> None:
        if received.error is not None:
            raise StepFailed(
                "a JSON message (FRAME-1)", f"a line that is not JSON: {clip(received.raw)}", received.error
            )
        problems = self.options.schemas.check_server_message(received.value)
        if problems:
            raise StepFailed(
                "a message valid against the spec's schema",
                clip(received.value),
                "; ".join(problems[:3]),
            )

    def read(self, conn: _Conn, deadline: float, waiting_for: str) -> Received:
        try:
            received = conn.wire.read_message(deadline)
        except WireTimeout as exc:
            budget = "the case's time bound" if deadline >= self.deadline else "the step's time bound"
            raise StepFailed(waiting_for, f"nothing within {budget}") from exc
        except WireError as exc:
            raise StepFailed(waiting_for, str(exc)) from exc
        if received is None:
            raise StepFailed(waiting_for, "the server closed the connection")
        self.check_schema(received)
        return received

    # -- steps -----------------------------------------------------------

    def run(self) -> None:
        for index, step in enumerate(self.case.steps):
            try:
                getattr(self, "op_" + step["op"])(step)
            except StepFailed as exc:
                where = f"step {index + 1} ({step['op']})"
                exc.detail = f"{where}: {exc.detail}" if exc.detail else where
                raise

    def op_connect(self, step: dict[str, Any]) -> None:
        name = step.get("conn", DEFAULT_CONN)
        if name in self.conns:
            self.conns[name].wire.close()
        path = self.spawned[step["server"]].path if "server" in step else None
        self.conns[name] = _Conn(self.connect(path))

    def op_send(self, step: dict[str, Any]) -> None:
        conn = self.conn(step)
        eol = step.get("eol", "\n").encode()
        ascii_only = bool(step.get("ascii", False))
        if "message" in step:
            data = encode_message(step["message"], ascii=ascii_only) + eol
        elif "messages" in step:
            data = b"".join(encode_message(m, ascii=ascii_only) + eol for m in step["messages"])
        elif "text" in step:
            data = step["text"].encode("utf-8", "surrogatepass")
        elif "hex" in step:
            data = bytes.fromhex(step["hex"])
        else:
            data = self.generate(conn, step["generate"]) + eol
        try:
            conn.wire.send_bytes(
                data,
                self.deadline,
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

    def generate(self, conn: _Conn, spec: dict[str, Any]) -> bytes:
        kind = spec["kind"]
        if kind == "echo_batch":
            lines = []
            for n in range(spec["count"]):
                request_id = f"{spec['id_prefix']}{n}"
                conn.pending[request_id] = {"i": n}
                lines.append(_echo_line(request_id, {"i": n}))
            return b"\n".join(lines)
        if kind == "echo_big":
            big_line, big_data = _padded_echo(spec["id"], spec["bytes"])
            conn.pending[spec["id"]] = big_data
            return big_line
        if kind == "oversize":
            limit = self.options.max_message_bytes
            if limit is None:
                raise StepFailed("the server's message limit", "none given (--max-message-bytes)")
            oversize, _ = _padded_echo(spec["id"], limit + spec["over"])
            return oversize
        if kind == "nested":
            depth: int = spec["depth"]
            arrays = b"[" * depth + b"]" * depth
            if spec.get("bare"):
                return arrays
            request_id = spec.get("id", "nested")
            if depth <= _EXPECTED_NESTING_MAX:
                expected: Any = []
                for _ in range(depth - 1):
                    expected = [expected]
                conn.pending[request_id] = expected
            head = encode_message({"ipcReqID": request_id, "uri": ECHO_URI})[:-1]
            return head + b',"data":' + arrays + b"}"
        raise StepFailed("a known generator", kind)

    def op_expect(self, step: dict[str, Any]) -> None:
        conn = self.conn(step)
        deadline = self.bound(step.get("within_s"))
        matchers: list[dict[str, Any]] = list(step.get("responses", []))
        generated = bool(step.get("generated"))
        exact = step.get("order", "any") == "exact"
        not_before = step.get("not_before_s")
        sent_at = conn.wire.last_send_at
        while matchers or (generated and conn.pending):
            waiting_for = self._waiting_for(matchers, conn.pending if generated else {})
            received = self.read(conn, deadline, waiting_for)
            message = received.value
            if isinstance(message, dict) and "ipcReqID" not in message:
                conn.pushes.append(message.get("data"))  # PUSH-1: set aside
                continue
            if not_before is not None and received.at - sent_at < not_before:
                raise StepFailed(
                    f"no answer before {not_before} s",
                    f"{clip(message)} after {received.at - sent_at:.3f} s",
                )
            if generated and isinstance(message, dict):
                request_id = message.get("ipcReqID")
                if isinstance(request_id, str) and request_id in conn.pending:
                    expected = conn.pending.pop(request_id)
                    conn.answered.add(request_id)
                    if message.get("data") is None and "code" in message:
                        raise StepFailed(f"the echo of request {request_id}", f"an error: {clip(message)}")
                    if not json_equal(message.get("data"), expected):
                        raise StepFailed(
                            f"the echo of request {request_id} with its data unchanged",
                            f"data {clip(message.get('data'))}",
                        )
                    continue
                if isinstance(request_id, str) and request_id in conn.answered:
                    raise StepFailed(
                        "each request answered exactly once (RESP-1)", f"a second answer to {request_id}"
                    )
            candidates = matchers[:1] if exact else matchers
            for matcher in candidates:
                if mismatch(matcher, message, self.options, self.variables) is None:
                    matchers.remove(matcher)
                    break
            else:
                raise StepFailed(*self._explain(matchers, message, exact))

    def _waiting_for(self, matchers: list[dict[str, Any]], pending: dict[Any, Any]) -> str:
        parts = [describe(m) for m in matchers[:3]]
        if len(matchers) > 3:
            parts.append(f"{len(matchers) - 3} more")
        if pending:
            ids = list(pending)
            parts.append(f"answers to {len(ids)} more requests (first {clip(ids[0], 60)})")
        return "; ".join(parts)

    def _explain(self, matchers: list[dict[str, Any]], message: Any, exact: bool) -> tuple[str, str, str]:
        if not matchers:
            return "no further message", clip(message), ""
        candidates = matchers[:1] if exact else matchers
        same_id = [
            m
            for m in candidates
            if isinstance(message, dict) and json_equal(m.get("ipcReqID"), message.get("ipcReqID"))
        ]
        best = (same_id or candidates)[0]
        reason = mismatch(best, message, self.options, self.variables) or ""
        expected = describe(best)
        if exact and len(matchers) > 1:
            expected += " first"
        return expected, clip(message), reason

    def op_expect_none(self, step: dict[str, Any]) -> None:
        conn = self.conn(step)
        # A quiet window is not a time bound: stretching it (timeout_scale)
        # would make the case slower, not more lenient.
        window_end = time.monotonic() + step["for_s"]
        deadline = min(self.deadline, window_end)
        while True:
            try:
                received = conn.wire.read_message(deadline)
            except WireTimeout as exc:
                if window_end > self.deadline:
                    # Cut short: the quiet window was not watched in full.
                    raise StepFailed(
                        f"no reply for {step['for_s']:g} s", "the case's time bound passed first"
                    ) from exc
                return
            except WireError as exc:
                raise StepFailed("no message and the connection open", str(exc)) from exc
            if received is None:
                raise StepFailed("no message and the connection open", "the server closed the connection")
            self.check_schema(received)
            if isinstance(received.value, dict) and "ipcReqID" not in received.value:
                conn.pushes.append(received.value.get("data"))
                continue
            raise StepFailed("no reply", clip(received.value))

    def op_expect_closed(self, step: dict[str, Any]) -> None:
        conn = self.conn(step)
        deadline = self.bound(step.get("within_s"))
        try:
            received = conn.wire.read_message(deadline)
        except WireTimeout as exc:
            raise StepFailed("the server to close the connection", "it stayed open") from exc
        except WireClosed:
            return
        except WireError as exc:
            raise StepFailed("the server to close the connection", str(exc)) from exc
        if received is not None:
            self.check_schema(received)
            raise StepFailed("the server to close the connection", f"another message: {clip(received.value)}")

    def op_shutdown_write(self, step: dict[str, Any]) -> None:
        try:
            self.conn(step).wire.shutdown_write()
        except WireError as exc:
            raise StepFailed("a half-close", str(exc)) from exc

    def op_close(self, step: dict[str, Any]) -> None:
        name = step.get("conn", DEFAULT_CONN)
        if name in self.conns:
            self.conns.pop(name).wire.close()

    def op_sleep(self, step: dict[str, Any]) -> None:
        time.sleep(max(0.0, min(step["s"] * self.scale, self.deadline - time.monotonic())))

    def op_probe(self, step: dict[str, Any]) -> None:
        self.probes += 1
        request_id = f"probe{self.probes}"
        path = self.spawned[step["server"]].path if "server" in step else self.path
        try:
            wire = WireConnection(path, self.bound(step.get("within_s", 5.0)))
        except WireError as exc:
            raise StepFailed("the server alive (a new connection)", str(exc)) from exc
        conn = _Conn(wire)
        try:
            deadline = self.bound(step.get("within_s", 5.0))
            try:
                wire.send_bytes(_echo_line(request_id, {"probe": self.probes}) + b"\n", deadline)
            except WireError as exc:
                raise StepFailed("the server alive (an echo on a new connection)", str(exc)) from exc
            matcher = {"ipcReqID": request_id, "data": {"probe": self.probes}}
            waiting = "the server alive (an echo on a new connection)"
            while True:
                received = self.read(conn, deadline, waiting)
                if isinstance(received.value, dict) and "ipcReqID" not in received.value:
                    continue
                reason = mismatch(matcher, received.value, self.options, self.variables)
                if reason is not None:
                    raise StepFailed(waiting, clip(received.value), reason)
                return
        finally:
            wire.close()

    def op_flood(self, step: dict[str, Any]) -> None:
        count: int = step["count"]
        size: int = step["bytes"]
        stall_s = step.get("stall_s", 1.0)
        deadline = self.bound(step.get("within_s"))
        wire = self.connect()
        selector = selectors.DefaultSelector()
        pattern = _padded_echo("x", size + 64)[1]
        lines = (
            _echo_line(f"fl{n}", pattern[: size - len(_echo_line(f"fl{n}", ""))]) + b"\n"
            for n in range(count)
        )
        try:
            wire.sock.setblocking(False)
            selector.register(wire.sock, selectors.EVENT_WRITE)
            pending = b""
            written = 0
            # Phase 1: write without reading until a write waits stall_s (LIMIT-5).
            while True:
                if not pending:
                    pending = next(lines, b"")
                    written += 1
                    if not pending:
                        raise StepFailed(
                            "the server to stop reading while its answers are not read (LIMIT-5)",
                            f"it read all {count} requests ({count * size >> 20} MiB), no answer read",
                        )
                try:
                    pending = pending[wire.sock.send(pending) :]
                    continue
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise StepFailed("the server to keep the connection", str(exc)) from exc
                if not selector.select(min(stall_s * self.scale, max(0.0, deadline - time.monotonic()))):
                    break
                if time.monotonic() > deadline:
                    raise StepFailed("the flood written", "the time bound passed")
            # Phase 2: the server must serve others meanwhile (LIMIT-6).
            self.op_probe({"within_s": step.get("probe_within_s", 2.0)})
            # Phase 3: read every answer while writing the rest.
            expected = {f"fl{n}" for n in range(count)}
            selector.modify(wire.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            writing = True
            while expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StepFailed(
                        f"answers to all {count} requests",
                        f"{len(expected)} unanswered within the time bound (first {min(expected)})",
                    )
                for _, events in selector.select(left):
                    if events & selectors.EVENT_WRITE and writing:
                        if not pending:
                            pending = next(lines, b"")
                            if not pending:
                                writing = False
                                selector.modify(wire.sock, selectors.EVENT_READ)
                                continue
                        try:
                            pending = pending[wire.sock.send(pending) :]
                        except BlockingIOError:
                            pass
                        except OSError as exc:
                            raise StepFailed("the server to keep the connection", str(exc)) from exc
                    if events & selectors.EVENT_READ:
                        try:
                            data = wire.sock.recv(1 << 20)
                        except BlockingIOError:
                            continue
                        except OSError as exc:
                            raise StepFailed(f"answers to all {count} requests", str(exc)) from exc
                        if not data:
                            raise StepFailed(
                                f"answers to all {count} requests", "the server closed the connection"
                            )
                        wire.feed(data)
                        while (received := wire.poll_message()) is not None:
                            self._check_flood_answer(received, expected, pattern, size)
        finally:
            selector.close()
            wire.close()

    def _check_flood_answer(self, received: Received, expected: set[str], pattern: str, size: int) -> None:
        self.check_schema(received)
        message = received.value
        if isinstance(message, dict) and "ipcReqID" not in message:
            return
        request_id = message.get("ipcReqID") if isinstance(message, dict) else None
        if request_id not in expected:
            raise StepFailed(
                "each request answered exactly once (RESP-1)", f"an answer to {clip(request_id)}"
            )
        expected.discard(request_id)
        data = pattern[: size - len(_echo_line(str(request_id), ""))]
        if message.get("data") != data:
            raise StepFailed(f"the echo of {request_id} with its data unchanged", clip(message))

    # -- lifecycle (LIFE-6, LIFE-7): servers the case starts itself ------

    def _prepare(self, step: dict[str, Any]) -> tuple[str, Any]:
        """Make the socket path a spawn step asks for; return it and a fingerprint."""
        if self.scratch is None:
            self.scratch = tempfile.mkdtemp(prefix="pxl-")
        prepare = step.get("prepare", "none")
        if prepare == "same_as":
            path = self.spawned[step["same_as"]].path
        else:
            path = os.path.join(self.scratch, f"{step['name']}.sock")
        if prepare == "regular_file":
            Path(path).write_text("a file that is not a socket\n")
        elif prepare == "directory":
            os.mkdir(path)
        elif prepare == "symlink":
            target = os.path.join(self.scratch, f"{step['name']}.target")
            Path(target).write_text("the symbolic link's target\n")
            os.symlink(target, path)
        elif prepare == "stale_socket":
            stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stale.bind(path)
            stale.close()  # bound, never listening: connecting is refused
        return path, fingerprint(path)

    def op_spawn(self, step: dict[str, Any]) -> None:
        command = self.options.start_command
        if command is None:
            raise StepFailed("a start command", "none given (--start)")
        path, before = self._prepare(step)
        spawned = Spawned(
            step["name"],
            path,
            command,
            self.options.cwd,
            step.get("chmod", DEFAULT_CHMOD),
            allow_runner=step.get("allow", "runner") == "runner",
        )
        self.spawned[step["name"]] = spawned
        deadline = self.bound(step.get("within_s", 5.0))
        if step["expect"] == "serves":
            while not (accepts(path)):
                if spawned.proc.poll() is not None:
                    raise StepFailed(
                        f"the server to start at a path prepared as {step.get('prepare', 'none')}",
                        f"it exited with status {spawned.proc.returncode}: {log_tail(spawned.log)}",
                    )
                if time.monotonic() > deadline:
                    raise StepFailed("the server to accept connections", "it did not within the time bound")
                time.sleep(0.02)
            return
        # Refuses: it must leave what is at the path alone (LIFE-6), whether it
        # exits (the expected way) or keeps running.
        while spawned.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        after = fingerprint(path)
        if after != before:
            raise StepFailed(
                f"{PREPARED.get(step.get('prepare', 'none'), 'what was')} at the socket path left as it was",
                f"{describe_fingerprint(before)} became {describe_fingerprint(after)}",
            )
        if spawned.proc.poll() is None:
            spawned.stop()

    def op_expect_mode(self, step: dict[str, Any]) -> None:
        path = self.spawned[step["server"]].path
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as exc:
            raise StepFailed(f"a socket file of mode {step['mode']}", str(exc)) from exc
        if mode != int(step["mode"], 8):
            raise StepFailed(f"the socket file's mode {step['mode']} (SEC-1)", f"mode {mode:03o}")

    def op_signal(self, step: dict[str, Any]) -> None:
        spawned = self.spawned[step["server"]]
        if spawned.proc.poll() is not None:
            raise StepFailed("the server running", f"it had exited with status {spawned.proc.returncode}")
        spawned.proc.send_signal(getattr(signal, step.get("signal", "SIGTERM")))

    def op_expect_exit(self, step: dict[str, Any]) -> None:
        spawned = self.spawned[step["server"]]
        deadline = self.bound(step.get("within_s"))
        while spawned.proc.poll() is None:
            if time.monotonic() > deadline:
                raise StepFailed("the server to exit", "it was still running at the time bound")
            time.sleep(0.02)
        if step.get("path_removed", True) and fingerprint(spawned.path) is not None:
            raise StepFailed(
                "the socket path removed at shutdown (LIFE-7)",
                f"{describe_fingerprint(fingerprint(spawned.path))} left at the path",
            )

    def op_fanout(self, step: dict[str, Any]) -> None:
        count = step["count"]
        deadline = self.bound(step.get("within_s"))
        wires: list[WireConnection] = []
        selector = selectors.DefaultSelector()
        try:
            for n in range(count):
                try:
                    wires.append(WireConnection(self.path, deadline))
                except WireError as exc:
                    raise StepFailed(f"{count} connections at once", f"connection {n + 1}: {exc}") from exc
            for n, wire in enumerate(wires):
                try:
                    wire.send_bytes(_echo_line(f"f{n}", {"conn": n}) + b"\n", deadline)
                except WireError as exc:
                    raise StepFailed(
                        f"an answer on each of {count} connections", f"connection {n + 1}: {exc}"
                    ) from exc
                wire.sock.setblocking(False)
                selector.register(wire.sock, selectors.EVENT_READ, n)
            waiting = set(range(count))
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StepFailed(
                        f"an answer on each of {count} connections",
                        f"{len(waiting)} connections unanswered (first: f{min(waiting)})",
                    )
                for key, _ in selector.select(left):
                    n = key.data
                    wire = wires[n]
                    try:
                        wire.feed(wire.sock.recv(1 << 16))
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        raise StepFailed(f"an answer on connection f{n}", str(exc)) from exc
                    received = wire.poll_message()
                    if received is None:
                        if wire.at_eof:
                            raise StepFailed(f"an answer on connection f{n}", "the server closed it")
                        continue
                    self.check_schema(received)
                    if isinstance(received.value, dict) and "ipcReqID" not in received.value:
                        continue
                    reason = mismatch(
                        {"ipcReqID": f"f{n}", "data": {"conn": n}}, received.value, self.options, {}
                    )
                    if reason is not None:
                        raise StepFailed(
                            f"the echo of f{n} on its own connection", clip(received.value), reason
                        )
                    selector.unregister(wire.sock)
                    waiting.discard(n)
        finally:
            selector.close()
            for wire in wires:
                wire.close()


def run_server_case(case: Case, socket_path: str, options: RunOptions) -> CaseResult:
    """Run one server case; never raises for the server's faults, never hangs.

    Args:
        case: a server case.
        socket_path: where the server under test listens.
        options: the run's options.

    Returns:
        The case's result (SKIP when a need is not met).
    """
    for need in case.needs:
        if need not in SERVER_NEEDS:
            return skipped(case, f"unknown need {need!r}")
        if need == "max_message_bytes" and options.max_message_bytes is None:
            return skipped(case, SERVER_NEEDS[need])
        if need == "start_command" and options.start_command is None:
            return skipped(case, SERVER_NEEDS[need])
        if need == "chmod" and "{chmod}" not in (options.start_command or ""):
            return skipped(case, SERVER_NEEDS[need])
        if need == "access_control" and "{access_config}" not in (options.start_command or ""):
            return skipped(case, SERVER_NEEDS[need])
        if need == "app_handlers" and need not in options.server_capabilities:
            return skipped(case, SERVER_NEEDS[need])
    run = _CaseRun(case, socket_path, options)
    try:
        run.run()
    except StepFailed as exc:
        return result_for(
            case,
            ok=False,
            expected=exc.expected,
            got=exc.got,
            detail=exc.detail,
            duration_s=time.monotonic() - run.started,
        )
    finally:
        run.close_all()
    return result_for(case, ok=True, duration_s=time.monotonic() - run.started)


def run_server_cases(cases: Sequence[Case], socket_path: str, options: RunOptions) -> list[CaseResult]:
    """Run server cases in order against the server at ``socket_path``.

    Args:
        cases: server cases.
        socket_path: where the server under test listens.
        options: the run's options (its reporter gets progress calls).

    Returns:
        One result per case, in order.
    """
    reporter = options.reporter
    if reporter is not None:
        reporter.start(len(cases))
    results = []
    for case in cases:
        if reporter is not None:
            reporter.case_started(case)
        result = run_server_case(case, socket_path, options)
        results.append(result)
        if reporter is not None:
            reporter.case_finished(result)
    return results
