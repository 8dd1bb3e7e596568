"""Replaying one input against one live server, and keeping that server available.

:func:`replay` writes an input on a fresh connection and collects what comes
back. Unless the input half-closes, a *sentinel* follows it on the same
connection: an echo request with an id the input does not hold (a delay
request a little longer than the input's, when it asks the delay built-in to
wait). The answers are what arrives before the sentinel's answer, and within
a settle time after it. An input that half-closes is answered by what
arrives until end of stream; one that ends
inside a line (no sentinel can follow it) by what arrives within the settle
time. How the exchange ended is part of the outcome: answered, the
connection ended first, no answer within the bound, or no connection at all.

:class:`Side` is one of the two servers ``compare`` looks at: a socket path,
or a command it starts on a temporary socket (and starts again when the
process dies, so that one crash costs one input).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path

from .compare_inputs import Input
from .payloads import DELAY_URI
from .server_process import ServerStartError, ServerUnderTest, gone_reason
from .wire import WireConnection, WireError, WireTimeout
from .wirekit import ECHO_URI, decode_line, encode_message

__all__ = ["Bounds", "End", "Outcome", "Side", "replay"]

#: How long a server that fails an input may take to be seen exiting.
_EXIT_GRACE_S = 0.25
#: How much longer the sentinel waits than the longest delay of the input.
_SENTINEL_LAG_MS = 50
#: How long a server given by its socket path is watched after an input it failed.
_DYING_S = 1.0
#: How long a server given by its socket path has to accept a connection.
_SOCKET_WAIT_S = 5.0


class End(enum.StrEnum):
    """How an exchange ended."""

    ANSWERED = "answered"
    CLOSED = "connection lost"
    NO_ANSWER = "no answer"
    UNREACHABLE = "no connection"


@dataclass(frozen=True)
class Bounds:
    """The time bounds of one replay, in seconds.

    Attributes:
        answer_s: how long to wait for the sentinel's answer (or, after a
            half-close, for end of stream), on top of the input's own waits.
        settle_s: how long to keep reading after the sentinel's answer.
        connect_s: how long to wait for the connection.
    """

    answer_s: float = 5.0
    settle_s: float = 0.1
    connect_s: float = 5.0


@dataclass
class Outcome:
    """What a server did with one input.

    Attributes:
        end: how the exchange ended.
        lines: the answer lines (blank lines left out, a CR before the LF
            removed), in arrival order.
        at: seconds from the end of the input to each line.
        detail: what ended it, in words, when it is not a plain answer.
        server: what happened to the server process meanwhile (exited, started again).
    """

    end: End
    lines: list[bytes]
    at: list[float]
    detail: str = ""
    server: str = ""


def _sentinel(item: Input) -> tuple[str, bytes]:
    """An id the input does not hold, and the request that carries it.

    An echo; or, when the input asks the delay built-in to wait, a delay a
    little longer, so that the server's own timers, not the runner's clock,
    say when the input's delayed answers are in.
    """
    request_id = "pixl-ipc-compare-sentinel"
    while request_id.encode() in item.data:
        request_id += "-"
    if item.wait_s:
        delay = round(item.wait_s * 1000) + _SENTINEL_LAG_MS
        request = {"ipcReqID": request_id, "uri": DELAY_URI, "data": {"delay": delay}}
    else:
        request = {"ipcReqID": request_id, "uri": ECHO_URI, "data": "sentinel"}
    return request_id, encode_message(request) + b"\n"


def _is_answer_to(line: bytes, request_id: str) -> bool:
    value, _ = decode_line(line)
    return isinstance(value, dict) and value.get("ipcReqID") == request_id


def replay(path: str, item: Input, bounds: Bounds) -> Outcome:
    """Write one input on a fresh connection to ``path`` and collect its answers.

    Never raises for the server's faults: a refused connection, a connection
    that ends or is reset, and a server that stays silent are outcomes.
    """
    try:
        wire = WireConnection(path, time.monotonic() + bounds.connect_s, name=item.id)
    except WireError as exc:
        return Outcome(End.UNREACHABLE, [], [], str(exc))
    try:
        return _exchange(wire, item, bounds)
    finally:
        wire.close()


def _exchange(wire: WireConnection, item: Input, bounds: Bounds) -> Outcome:
    request_id, sentinel = _sentinel(item)
    use_sentinel = not item.half_close and item.data.endswith(b"\n")
    deadline = time.monotonic() + bounds.answer_s + item.wait_s
    broken = ""
    try:
        for pause, data in item.writes:
            if pause:
                time.sleep(pause)
            wire.send_bytes(data, deadline)
        if item.half_close:
            wire.shutdown_write()
        elif use_sentinel:
            wire.send_bytes(sentinel, deadline)
    except WireTimeout:
        return Outcome(
            End.NO_ANSWER, [], [], f"the server did not read the input within {bounds.answer_s:g} s"
        )
    except WireError as exc:
        broken = str(exc)  # what it answered before is still worth reading
    sent = time.monotonic()
    # Without a sentinel (the input ends inside a line), the answers are what comes within the settle time.
    quiet = not item.half_close and not use_sentinel and not broken
    if quiet:
        deadline = sent + item.wait_s + bounds.settle_s
    lines: list[bytes] = []
    at: list[float] = []
    seen = False
    while True:
        try:
            line = wire.read_line(deadline)  # without its LF and a CR before it
        except WireTimeout:
            if broken:
                return Outcome(End.CLOSED, lines, at, broken)
            if seen or quiet:
                return Outcome(End.ANSWERED, lines, at)
            waited = f"{deadline - sent:.3g} s"
            if item.half_close:
                why = f"the connection stayed open {waited} after the half-close"
            else:
                why = f"no answer to the echo that followed the input within {waited}"
            return Outcome(End.NO_ANSWER, lines, at, why)
        except WireError as exc:
            return Outcome(End.CLOSED, lines, at, broken or str(exc))
        if line is None:
            if broken:
                return Outcome(End.CLOSED, lines, at, broken)
            if item.half_close or seen or quiet:
                return Outcome(End.ANSWERED, lines, at)
            return Outcome(End.CLOSED, lines, at, "the server closed the connection before all was answered")
        if not line.strip(b" \t\r"):
            continue  # FRAME-4: a blank line is no message
        if use_sentinel and not seen and _is_answer_to(line, request_id):
            seen = True
            deadline = time.monotonic() + bounds.settle_s
            continue
        lines.append(line)
        at.append(time.monotonic() - sent)


class Side:
    """One of the two servers compared: at a socket path, or started by a command.

    Args:
        label: ``A`` or ``B``.
        socket: the socket path of a running server; or
        start: a command that starts one (``{socket}`` is filled in), run in ``cwd``.
        cwd: the working directory of ``start``.
        start_timeout: seconds the started server has to accept connections.
    """

    def __init__(
        self,
        label: str,
        *,
        socket: str | None = None,
        start: str | None = None,
        cwd: Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.label = label
        self.socket = socket
        self.start = start
        self.server = ServerUnderTest(start, cwd=cwd, timeout=start_timeout) if start is not None else None
        #: What happened to the server during the run, said once each.
        self.notes: list[str] = []
        self._gone: str | None = None

    @property
    def description(self) -> str:
        """How the server was given on the command line."""
        return f'--start "{self.start}"' if self.start is not None else f"--socket {self.socket}"

    @property
    def path(self) -> str:
        """Where the server listens."""
        return self.server.path if self.server is not None else str(self.socket)

    def open(self) -> None:
        """Start the server when the side has a command; else wait for the socket to accept.

        A server given by its socket has 5 seconds to accept a connection, as
        for ``server --socket`` (spec/SERVER-UNDER-TEST.md).

        Raises:
            ServerStartError: it did not come up.
        """
        if self.server is not None:
            self.server.start()
            return
        deadline = time.monotonic() + _SOCKET_WAIT_S
        while (reason := gone_reason(self.path)) is not None:
            if time.monotonic() > deadline:
                raise ServerStartError(f"nothing serves at {self.path}: {reason}")
            time.sleep(0.1)

    def close(self) -> None:
        """Stop a server the side started."""
        if self.server is not None:
            self.server.close()

    def run(self, item: Input, bounds: Bounds) -> Outcome:
        """Replay one input; a server that died meanwhile is reported on the outcome and started again."""
        if self._gone is not None:
            return Outcome(End.UNREACHABLE, [], [], self._gone)
        outcome = replay(self.path, item, bounds)
        if self.server is not None:
            self._restart_if_dead(item, outcome)
        elif outcome.end is not End.ANSWERED and outcome.end is not End.UNREACHABLE:
            reason = self._gone_reason()
            if reason is not None:
                outcome.server = f"the server stopped serving: {reason}"
                self.notes.append(f"{self.label}: the server stopped serving during {item.id} ({reason})")
        return outcome

    def _gone_reason(self) -> str | None:
        """Why nothing serves at the socket any more, or None.

        The socket is watched for a moment: a dying server may still hold its listener.
        """
        deadline = time.monotonic() + _DYING_S
        while (reason := gone_reason(self.path, timeout=1.0)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return reason

    def _restart_if_dead(self, item: Input, outcome: Outcome) -> None:
        server = self.server
        assert server is not None
        status = server.exited(0.0 if outcome.end is End.ANSWERED else _EXIT_GRACE_S)
        if status is None:
            return
        died = f"the server process exited with status {status}"
        outcome.server = f"{died}; its output ends: {server.output_tail()}"
        try:
            server.restart()
        except ServerStartError as exc:
            self._gone = f"{died} during {item.id} and did not start again"
            self.notes.append(f"{self.label}: {died} during {item.id} and did not start again: {exc}")
            return
        outcome.server += "; started again"
        self.notes.append(f"{self.label}: {died} during {item.id}; started again for the rest")
