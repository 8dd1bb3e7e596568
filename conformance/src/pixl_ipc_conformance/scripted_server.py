"""A scripted pixl-ipc server for client cases: it plays a script, not a role.

The client runner tells it what to do step by step: wait for the client's next
request, write these exact bytes (whole, split byte by byte, two answers in one
write, a push first, CRLF, garbage lines, a line of 16 MiB...), close the
connection, stop listening and listen again. It never answers by itself, so a
case controls every byte the client reads.

Every line the client writes is checked as it arrives, whatever the script
waits for (see :meth:`ScriptedServer._check_request`): framing (FRAME-1,
FRAME-2, FRAME-9), the spec's request schema (REQ-1 to REQ-4), the id rules
(CORR-1, CORR-5) and the member types (REQ-5, REQ-6). What it finds is kept in
:attr:`ScriptedServer.violations` for the runner to fold into the verdict.

Probes are the one thing it answers by itself: a client may ask
``/ipcserver/info`` or ``/ipcserver/stats`` at any time (VER-5), so those are
answered at once, as an extended server would or, with :attr:`original`, as
the original does (``no_handler_found`` in data), and never reach the script.

It speaks the wire itself, from the spec; it imports nothing of pixl_ipc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .transcript import Transcript
from .wirekit import DecodeError, LineSplitter, Oversize, decode_strict, encode_message, show, strip_cr

__all__ = [
    "ClientConnection",
    "ReceivedRequest",
    "ScriptedServer",
    "Violation",
    "make_stale_socket",
]

#: The URIs a client may probe at any time; the server answers them itself.
PROBE_URIS = ("/ipcserver/info", "/ipcserver/stats")
#: What the scripted server reports as ``/ipcserver/info`` (BUILTIN-4).
INFO = {
    "protocol": "1.1",
    "server": {"name": "pixl-ipc-conformance scripted server", "version": "1.1.0"},
    "limits": {"max_message_bytes": 64 * 1024 * 1024, "max_inflight_per_connection": 1024},
    "handlers": [],
    "extensions": [],
}
STATS = {
    "connections": 1,
    "handlers": 0,
    "requests": 0,
    "clientOpen": 0,
    "clientClose": 0,
    "maxConnections": 1,
    "duration": 0,
    "slowResponses": 0,
    "streamBackpressure": 0,
}
#: How much of one client line the server keeps. Client cases send small
#: requests; a longer line is itself reported (and discarded, not buffered).
MAX_REQUEST_LINE = 64 * 1024 * 1024
_READ_CHUNK = 256 * 1024
_WS = b" \t\r"


@dataclass(frozen=True)
class Violation:
    """A rule the client broke on the wire.

    Attributes:
        rule: the spec rule ID.
        level: ``"MUST"`` or ``"SHOULD"``: what the rule says.
        text: what happened.
    """

    rule: str
    level: str
    text: str

    def __str__(self) -> str:
        return f"{self.rule} ({self.level}): {self.text}"


@dataclass
class ReceivedRequest:
    """One request the client wrote.

    Attributes:
        index: arrival order over the whole server life (0-based).
        connection: the :class:`ClientConnection` it came on.
        message: the decoded JSON object.
        raw: the line as read, without its LF.
        received_at: ``time.monotonic()`` when its LF arrived.
    """

    index: int
    connection: ClientConnection
    message: dict[str, Any]
    raw: bytes
    received_at: float

    @property
    def id(self) -> Any:
        """The request's ``ipcReqID`` (None when absent)."""
        return self.message.get("ipcReqID")


def _id_key(value: Any) -> str:
    # Ids are compared by their JSON text, so that "1" and 1 stay distinct and
    # True never equals 1.
    return json.dumps(value, sort_keys=True)


@dataclass(eq=False)
class ClientConnection:
    """One accepted client connection and what the server knows of it.

    Attributes:
        number: accept order over the whole server life (0-based).
        writer: the stream to write to.
        transcript: where its bytes are noted, if anywhere.
        closed: set when the client ended the stream (or the server closed it).
        client_ended: set when the client ended the stream (end of stream or
            reset) while the server had not closed the connection.
        answered: keys of the ids the script answered on this connection.
        unanswered: keys of the ids received but not answered yet.
        timed_out: keys of the ids whose send the adapter reported timed out.
        opened_at: when it was accepted (``time.monotonic()``).
    """

    number: int
    writer: asyncio.StreamWriter
    transcript: Transcript | None = None
    opened_at: float = field(default_factory=time.monotonic)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    client_ended: asyncio.Event = field(default_factory=asyncio.Event)
    server_closed: bool = False
    answered: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)
    timed_out: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The connection's name in the transcript."""
        return f"conn#{self.number}"

    def note(self, direction: str, data: bytes) -> None:
        """Note bytes read (``in``) or written (``out``) in the transcript."""
        if self.transcript is not None:
            self.transcript.record(direction, self.name, data)

    def note_event(self, text: str) -> None:
        """Note what happened on the connection in the transcript."""
        if self.transcript is not None:
            self.transcript.event(self.name, text)

    def send_now(self, data: bytes) -> None:
        """Queue bytes for writing without waiting (the probes' answers)."""
        if not self.writer.is_closing():
            self.writer.write(data)
            self.note("out", data)

    def mark_answered(self, request_id: Any) -> None:
        """Record that the script wrote the full answer to ``request_id``."""
        key = _id_key(request_id)
        self.unanswered.discard(key)
        self.answered.add(key)

    def mark_timed_out(self, request_id: Any) -> None:
        """Record that the client reported ``request_id``'s request timed out (CORR-5 reserves its id)."""
        key = _id_key(request_id)
        if key in self.unanswered:
            self.timed_out.add(key)

    async def write(self, data: bytes, *, chunk: int | None = None, pause_s: float = 0.0) -> bool:
        """Write ``data``, whole or in pieces of ``chunk`` bytes, ``pause_s`` apart.

        Each piece is drained before the pause, so that the client really reads
        the pieces apart (FRAME-3).

        Returns:
            False when the connection was closed before everything was written.
        """
        if self.writer.is_closing():
            return False
        try:
            if not chunk or chunk >= len(data):
                self.writer.write(data)
                self.note("out", data)
                await self.writer.drain()
                return True
            for start in range(0, len(data), chunk):
                self.writer.write(data[start : start + chunk])
                self.note("out", data[start : start + chunk])
                await self.writer.drain()
                if pause_s:
                    await asyncio.sleep(pause_s)
            return True
        except (ConnectionError, OSError) as exc:
            self.note_event(f"write failed: {exc}")
            return False

    async def close(self) -> None:
        """Close the connection (the client sees end of stream)."""
        self.server_closed = True
        if not self.writer.is_closing():
            self.writer.close()
            self.note_event("the scripted server closed the connection")
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        self.closed.set()


def fill_backlog(path: str) -> list[Callable[[], None]]:
    """Listen at ``path`` with a full backlog: nobody accepts, and a new connect waits.

    Returns:
        What closes the listener and the connections that fill its backlog.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    closers: list[Callable[[], None]] = [listener.close]
    for _ in range(64):
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
        closers.append(filler.close)
        try:
            filler.connect(path)
        except BlockingIOError:
            break  # EAGAIN: the backlog is full
    return closers


def make_stale_socket(path: str) -> None:
    """Leave a socket file at ``path`` where nobody listens (connecting is refused)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    finally:
        sock.close()


class ScriptedServer:
    """A listening socket that records requests and writes what it is told.

    Args:
        path: the socket path (its directory must exist).
        request_validator: checks a decoded request against the spec's request
            schema; returns one text per problem. None skips the schema check.
        transcript: where the bytes of every connection are noted, if anywhere.

    Use :meth:`start` and :meth:`aclose`; between them the runner calls
    :meth:`next_request`, :attr:`connections`, the connections' ``write``,
    :meth:`close_connections`, :meth:`stop_listening` and :meth:`start` again.
    """

    def __init__(
        self,
        path: str,
        request_validator: Callable[[Any], list[str]] | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.path = path
        self._validator = request_validator
        self.transcript = transcript
        #: Answer probes as the original server (no extensions) does.
        self.original = False
        #: Answer every request with its data, as the echo built-in does.
        self.echo = False
        #: The probes answered, in order.
        self.probes: list[ReceivedRequest] = []
        self._server: asyncio.AbstractServer | None = None
        self.connections: list[ClientConnection] = []
        self.requests: list[ReceivedRequest] = []
        self.violations: list[Violation] = []
        self._request_queue: asyncio.Queue[ReceivedRequest] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- listening -------------------------------------------------------

    @property
    def listening(self) -> bool:
        """True while the socket accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Listen on :attr:`path` (again, after :meth:`stop_listening`)."""
        if self._server is not None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._accept, self.path, limit=_READ_CHUNK)

    async def stop_listening(self) -> None:
        """Stop accepting, close every connection and remove the socket file.

        A client then sees its connection end and, until :meth:`start`, finds
        nobody at the path (a reconnecting client gets "no such file").
        """
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.close_connections()
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def close_connections(self) -> None:
        """Close every open client connection; keep listening."""
        await asyncio.gather(*(c.close() for c in self.connections if not c.closed.is_set()))

    async def aclose(self) -> None:
        """Stop everything; the server cannot be used afterwards."""
        await self.stop_listening()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- what the client did ------------------------------------------------

    async def next_request(self, timeout: float) -> ReceivedRequest | None:
        """The next request not yet taken by the script, waiting up to ``timeout`` s.

        Returns:
            The request, or None when none arrived in time.
        """
        try:
            return await asyncio.wait_for(self._request_queue.get(), timeout)
        except TimeoutError:
            return None

    def pending_requests(self) -> int:
        """How many requests arrived that the script has not taken yet."""
        return self._request_queue.qsize()

    def latest_connection(self) -> ClientConnection | None:
        """The connection accepted last, if any."""
        return self.connections[-1] if self.connections else None

    # -- internals ----------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = ClientConnection(len(self.connections), writer, self.transcript)
        self.connections.append(connection)
        connection.note_event("the client connected")
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._read_lines(reader, connection)
        except (ConnectionError, OSError) as exc:
            connection.note_event(f"read failed: {exc}")
        finally:
            if not connection.server_closed:
                connection.client_ended.set()
            connection.closed.set()
            if task is not None:
                self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _read_lines(self, reader: asyncio.StreamReader, connection: ClientConnection) -> None:
        splitter = LineSplitter(MAX_REQUEST_LINE)
        while True:
            chunk = await reader.read(_READ_CHUNK)
            if not chunk:
                break
            connection.note("in", chunk)
            for line in splitter.feed(chunk):
                if isinstance(line, Oversize):
                    self._violation(
                        "LIMIT-1", "MUST", f"the client wrote a line over {MAX_REQUEST_LINE} bytes"
                    )
                else:
                    self._line(line, connection)
        connection.note_event("end of stream from the client")
        rest = splitter.end()
        if isinstance(rest, Oversize):
            self._violation("LIMIT-1", "MUST", f"the client wrote a line over {MAX_REQUEST_LINE} bytes")
        elif rest is not None and rest.strip(_WS):
            self._violation(
                "FRAME-1", "MUST", f"the client ended the stream inside a line (no LF): {_clip(rest)}"
            )

    def _line(self, line: bytes, connection: ClientConnection) -> None:
        line, had_cr = strip_cr(line)
        if had_cr:
            self._violation("FRAME-2", "SHOULD", "the client ended a line with CRLF, not LF alone")
        stripped = line.strip(_WS)
        if not stripped:
            return
        if not stripped.startswith(b"{"):
            self._violation(
                "FRAME-1", "MUST", f"the client wrote a line that is not a JSON object: {_clip(line)}"
            )
            return
        try:
            message = decode_strict(line)
        except DecodeError as exc:
            self._violation(
                "FRAME-1", "MUST", f"the client wrote a line that is not valid JSON ({exc}): {_clip(line)}"
            )
            return
        if not isinstance(message, dict):
            self._violation(
                "FRAME-1", "MUST", f"the client wrote a line that is not a JSON object: {_clip(line)}"
            )
            return
        request = ReceivedRequest(len(self.requests), connection, message, line, time.monotonic())
        self._check_request(request)
        self.requests.append(request)
        if message.get("uri") in PROBE_URIS:
            self._answer_probe(request)
            return
        if self.echo:
            request.connection.send_now(
                encode_message({"ipcReqID": request.id, "data": message.get("data")}) + b"\n"
            )
            request.connection.mark_answered(request.id)
            return
        self._request_queue.put_nowait(request)

    def _answer_probe(self, request: ReceivedRequest) -> None:
        uri = request.message["uri"]
        if self.original:
            data: Any = {"code": "no_handler_found", "message": f"No handler found for {uri}"}
        else:
            data = INFO if uri == "/ipcserver/info" else STATS
        answer = {"ipcReqID": request.id, "data": data}
        self.probes.append(request)
        if not request.connection.writer.is_closing():
            request.connection.send_now(encode_message(answer) + b"\n")
            request.connection.mark_answered(request.id)

    def _check_request(self, request: ReceivedRequest) -> None:
        message = request.message
        if self._validator is not None:
            for problem in self._validator(message):
                self._violation(
                    "REQ-1", "MUST", f"request {_clip(request.raw)} breaks the request schema: {problem}"
                )
        request_id = message.get("ipcReqID")
        if not (
            (isinstance(request_id, str) and request_id)
            or (isinstance(request_id, int | float) and not isinstance(request_id, bool) and request_id != 0)
        ):
            # Without a usable id the answer carries null and cannot be matched.
            self._violation("CORR-1", "MUST", f"request without a usable ipcReqID: {_clip(request.raw)}")
        else:
            if not isinstance(request_id, str):
                self._violation("REQ-3", "SHOULD", f"ipcReqID {show(request_id)} is not a string")
            key = _id_key(request_id)
            if key in request.connection.timed_out:
                self._violation(
                    "CORR-5",
                    "MUST",
                    f"ipcReqID {show(request_id)} reused after its request timed out "
                    "(a timed-out request's id is never used again)",
                )
            elif key in request.connection.unanswered:
                self._violation(
                    "CORR-1",
                    "MUST",
                    f"ipcReqID {show(request_id)} reused while a request with that id is still pending",
                )
            elif key in request.connection.answered:
                self._violation(
                    "CORR-1", "SHOULD", f"ipcReqID {show(request_id)} reused on the same connection"
                )
            request.connection.unanswered.add(key)
        if "pid" in message and (not isinstance(message["pid"], int) or isinstance(message["pid"], bool)):
            self._violation("REQ-5", "SHOULD", f"pid is not an integer: {show(message['pid'])}")
        if "userAgent" in message and not isinstance(message["userAgent"], str):
            self._violation("REQ-6", "SHOULD", f"userAgent is not a string: {show(message['userAgent'])}")
        if "uri" in message and not isinstance(message.get("uri"), str):
            self._violation("REQ-2", "MUST", f"uri is not a string: {show(message['uri'])}")
        data = message.get("data")
        if isinstance(data, float) and not math.isfinite(data):
            self._violation("FRAME-9", "MUST", "data is a non-finite number")

    def _violation(self, rule: str, level: str, text: str) -> None:
        violation = Violation(rule, level, text)
        if violation not in self.violations:
            self.violations.append(violation)


def _clip(raw: bytes, limit: int = 160) -> str:
    return show(raw, limit)
