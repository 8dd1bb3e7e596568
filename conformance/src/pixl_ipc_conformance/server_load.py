"""Server case steps that put load on the server: many connections, a peer that does not read.

``fanout``  ``count`` connections at once, one echo on each, every answer on
            its own connection within ``within_s`` (TRANS-2, RESP-6); with
            ``keep``, they stay open under that name until a ``close`` of it
``flood``   big echo requests written without reading until the server stops
            reading (LIMIT-5), then another connection must be served
            (LIMIT-6), then every answer is read while the rest is written;
            with ``lines`` ``malformed``, ``{`` lines instead (each answered
            ``bad_json``, answers forty times the input), and the connection
            is then closed unread, as a hostile peer leaves, and the server
            must still serve a new one

Both drive many non-blocking sockets from one selector loop.
"""

from __future__ import annotations

import fcntl
import selectors
import struct
import termios
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from .server_context import Conn, ServerCaseContext, StepFailed, is_push
from .server_steps import op_probe
from .wire import Received, WireConnection, WireError
from .wirekit import echo_line, json_equal, padded_echo

__all__ = ["STEPS"]

#: ``{`` lines a malformed flood writes at a time (4 KiB: what SIOCOUTQ counts
#: unread drops only once a whole write has been read).
_MALFORMED_PER_WRITE = 2048
#: How often a flood that cannot write looks whether the server still reads.
_STALL_POLL_S = 0.05


def op_fanout(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    count = step["count"]
    deadline = ctx.bound(step.get("within_s"))
    wires: list[WireConnection] = []
    selector = selectors.DefaultSelector()
    try:
        for n in range(count):
            try:
                wires.append(WireConnection(ctx.path, deadline, name=f"f{n}", transcript=ctx.transcript))
            except WireError as exc:
                raise StepFailed(f"{count} connections at once", f"connection {n + 1}: {exc}") from exc
        for n, wire in enumerate(wires):
            try:
                wire.send_bytes(echo_line(f"f{n}", {"conn": n}) + b"\n", deadline)
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
                if _fanout_answer(ctx, wires[n], n):
                    selector.unregister(wires[n].sock)
                    waiting.discard(n)
        if "keep" in step:
            for wire in wires:
                wire.sock.setblocking(True)
            ctx.crowds[step["keep"]], wires = wires, []
    finally:
        selector.close()
        for wire in wires:
            wire.close()


def _fanout_answer(ctx: ServerCaseContext, wire: WireConnection, n: int) -> bool:
    """Read what connection ``n`` has; True once its echo came, checked."""
    try:
        wire.recv_some()
    except BlockingIOError:
        return False
    except WireError as exc:
        raise StepFailed(f"an answer on connection f{n}", str(exc)) from exc
    while (received := wire.poll_message()) is not None:
        ctx.check_schema(received)
        if is_push(received.value):
            continue
        value = received.value
        if not (
            isinstance(value, dict)
            and json_equal([value.get("ipcReqID"), value.get("data")], [f"f{n}", {"conn": n}])
        ):
            raise StepFailed(f"the echo of f{n} on its own connection", ctx.clip(value))
        return True
    if wire.at_eof:
        raise StepFailed(f"an answer on connection f{n}", "the server closed it")
    return False


def op_flood(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    count: int = step["count"]
    malformed = step.get("lines") == "malformed"
    size: int = 2 if malformed else step["bytes"]
    stall_s = step.get("stall_s", 1.0)
    deadline = ctx.bound(step.get("within_s"))
    wire = ctx.connect(name="flood")
    pattern = padded_echo("x", size + 64)[1]

    def data_of(n: int) -> str:
        return pattern[: size - len(echo_line(f"fl{n}", ""))]

    if malformed:
        full, rest = divmod(count, _MALFORMED_PER_WRITE)
        lines: Iterator[bytes] = iter([b"{\n" * _MALFORMED_PER_WRITE] * full + [b"{\n" * rest] * bool(rest))
    else:
        lines = (echo_line(f"fl{n}", data_of(n)) + b"\n" for n in range(count))
    expected = {f"fl{n}" for n in range(count)}
    conn = Conn(wire)
    selector = selectors.DefaultSelector()
    try:
        wire.sock.setblocking(False)
        selector.register(wire.sock, selectors.EVENT_WRITE)
        # Phase 1: write without reading until the server stops reading (LIMIT-5).
        pending = _write_until_stalled(wire, selector, lines, stall_s * ctx.scale, deadline)
        if pending is None:
            _all_read_without_backpressure(ctx, conn, None if malformed else expected, count, size)
        # Phase 2: the server must serve others meanwhile (LIMIT-6).
        op_probe(ctx, {"within_s": step.get("probe_within_s", 2.0)})
        if malformed:
            # A hostile peer leaves with its answers unread; the server goes on.
            wire.close()
            op_probe(ctx, {"within_s": step.get("probe_within_s", 2.0)})
            return
        # Phase 3: read every answer while writing the rest.
        selector.modify(wire.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        writing = True
        while expected:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepFailed(
                    f"answers to all {count} requests (CORR-4: none dropped)",
                    f"{len(expected)} unanswered within the time bound (first {min(expected)}): dropped, or"
                    " never answered (a line split over reads lost? FRAME-3)",
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
                        pending = pending[wire.send_some(pending) :]
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        raise StepFailed("the server to keep the connection", str(exc)) from exc
                if events & selectors.EVENT_READ:
                    _read_flood_answers(ctx, wire, expected, data_of, count)
    finally:
        selector.close()
        wire.close()


def _write_until_stalled(
    wire: WireConnection,
    selector: selectors.BaseSelector,
    chunks: Iterator[bytes],
    stall_s: float,
    deadline: float,
) -> bytes | None:
    """Write ``chunks`` until the server has read nothing for ``stall_s``; what is left unwritten.

    Returns None when everything was written. A server that reads slowly is
    not one that stopped: where the system says how much of what was written
    the server has not read yet (Linux), any change of it counts as reading,
    although the socket only becomes writable again once most is read.
    """
    pending = b""
    stalled_since: float | None = None
    unread: int | None = None
    while True:
        if not pending:
            pending = next(chunks, b"")
            if not pending:
                return None
        try:
            pending = pending[wire.send_some(pending) :]
            stalled_since = None
            continue
        except BlockingIOError:
            pass
        except OSError as exc:
            raise StepFailed("the server to keep the connection", str(exc)) from exc
        if time.monotonic() > deadline:
            raise StepFailed("the flood written", "the time bound passed")
        if selector.select(min(_STALL_POLL_S, max(0.0, deadline - time.monotonic()))):
            continue
        now, before, unread = time.monotonic(), unread, _unread_bytes(wire)
        if stalled_since is None or (unread is not None and unread != before):
            stalled_since = now
        elif now - stalled_since >= stall_s:
            return pending


def _unread_bytes(wire: WireConnection) -> int | None:
    """Bytes written that the peer has not read yet (SIOCOUTQ, Linux), or None where unknown."""
    try:
        answer = fcntl.ioctl(wire.fileno(), termios.TIOCOUTQ, b"\0" * 4)
    except (OSError, AttributeError):
        return None
    value: int = struct.unpack("i", answer)[0]
    return value


def _read_flood_answers(
    ctx: ServerCaseContext, wire: WireConnection, expected: set[str], data_of: Any, count: int
) -> None:
    try:
        wire.recv_some()
    except BlockingIOError:
        return
    except WireError as exc:
        raise StepFailed(f"answers to all {count} requests", str(exc)) from exc
    if wire.at_eof:
        raise StepFailed(f"answers to all {count} requests", "the server closed the connection")
    while (received := wire.poll_message()) is not None:
        _check_flood_answer(ctx, received, expected, data_of)


def _all_read_without_backpressure(
    ctx: ServerCaseContext, conn: Conn, expected: set[str] | None, count: int, size: int
) -> NoReturn:
    """Every request was written and the server never stopped reading: say what it did instead.

    ``expected``: the ids of the requests, or None for ``{`` lines (answered with null ids).
    """
    answered = 0
    deadline = min(ctx.deadline, time.monotonic() + 2.0 * ctx.scale)
    conn.wire.sock.setblocking(True)
    try:
        while answered < count:
            received = conn.wire.read_message(deadline)
            if received is None:
                break
            value = received.value
            if isinstance(value, dict) and "ipcReqID" in value:
                answered += expected is None or value["ipcReqID"] in expected
    except WireError:
        pass
    written = f"{count * size >> 20} MiB"
    what = f"{count} {'malformed lines' if expected is None else f'requests of {size} bytes'}"
    if answered == 0:
        raise StepFailed(
            f"answers to the {what}, written without reading",
            f"none within 2 s after the last one ({written}): the requests were lost"
            " (a line split over reads dropped? FRAME-3), not held back",
        )
    raise StepFailed(
        "the server to stop reading while its answers are not read (LIMIT-5)",
        f"it read all {what} ({written}) while none of its answers was read",
    )


def _check_flood_answer(ctx: ServerCaseContext, received: Received, expected: set[str], data_of: Any) -> None:
    ctx.check_schema(received)
    message = received.value
    if is_push(message):
        return
    request_id = message.get("ipcReqID") if isinstance(message, dict) else None
    if request_id not in expected:
        raise StepFailed(
            "each request answered exactly once (RESP-1)", f"an answer to {ctx.clip(request_id)}"
        )
    expected.discard(request_id)
    number = int(str(request_id)[2:])
    if message.get("data") != data_of(number):
        raise StepFailed(f"the echo of {request_id} with its data unchanged", ctx.clip(message))


STEPS = {"fanout": op_fanout, "flood": op_flood}
