"""One server-side connection: bytes in, handlers called, replies out.

:class:`Connection` is the :class:`asyncio.Protocol` of each accepted client.
It feeds what it reads to a sans-I/O :class:`~pixl_ipc.protocol.ServerProtocol`,
which does all framing and request checking, and answers each event:

- a handler that returns a plain value is called directly, and its reply
  joins the other replies of the same read in one ``transport.write`` (no task
  is made);
- a handler that returns an awaitable becomes a task, and a ``threaded=True``
  handler runs in the server's thread pool; their replies are written when they
  finish, in any order (RESP-5), or dropped if the client has gone (LIFE-5).

Reading pauses while the transport's write buffer is over the high-water mark
or the requests in progress reach ``max_inflight_per_connection``, and resumes
once they drain (LIMIT-5).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import struct
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .errors import ErrorCode, RemoteError
from .framing import encode_line
from .protocol import (
    NO_DATA,
    IncomingRequest,
    ProtocolReply,
    ServerEvent,
    ServerProtocol,
    data_error,
    no_handler_found,
    push_message,
)

if TYPE_CHECKING:
    from .server import IPCServer

__all__ = ["WRITE_BUFFER_HIGH", "WRITE_BUFFER_LOW", "Connection", "PeerCredentials", "Request"]

logger = logging.getLogger("pixl_ipc.server")

#: Write-buffer marks of one connection: above HIGH its reading pauses until the
#: buffer is under LOW (LIMIT-5). 1 MiB lets pipelined small messages flow
#: without pausing while bounding what a peer that does not read can cost.
WRITE_BUFFER_HIGH = 1024 * 1024
WRITE_BUFFER_LOW = 256 * 1024

_PEERCRED = struct.Struct("3i")
# Reads this large mean a large message: the server then trims its heap soon.
_LARGE_READ = 64 * 1024
# Results that are certainly not awaitable: no inspect call for them.
_PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})
_UNSEEN: Any = object()
_HANDLER_FAILED = "the handler failed; the server log has the details"
_NOT_ENCODABLE = "the handler's result cannot be encoded as JSON"


class PeerCredentials(NamedTuple):
    """The kernel-verified identity of the peer process (SO_PEERCRED, SEC-2).

    Unlike the request's ``pid`` claim (SEC-3), these can be trusted. Fields are
    None where the platform does not report them.
    """

    pid: int | None
    uid: int | None
    gid: int | None


_UNKNOWN_PEER = PeerCredentials(None, None, None)


class Request:
    """One request, as a handler receives it.

    Attributes:
        uri: the request's ``uri``.
        data: its ``data`` (None when absent, REQ-4).
        id: the ``ipcReqID`` the response will carry (None when not correlated).
        raw: the whole request object as received, unknown members kept (REQ-1).
        connection: the :class:`Connection` it came on, for :meth:`Connection.push`.
    """

    __slots__ = ("connection", "data", "id", "raw", "uri")

    def __init__(self, message: dict[str, Any], uri: str, request_id: Any, connection: Connection) -> None:
        self.raw = message
        self.uri = uri
        self.id = request_id
        self.data = message.get("data")
        self.connection = connection

    @property
    def pid(self) -> Any:
        """The ``pid`` the client claims (REQ-5): not verified, see :attr:`peer`."""
        return self.raw.get("pid")

    @property
    def user_agent(self) -> Any:
        """The ``userAgent`` the client claims (REQ-6), or None."""
        return self.raw.get("userAgent")

    @property
    def peer(self) -> PeerCredentials:
        """The kernel-verified :class:`PeerCredentials` of the connection."""
        return self.connection.peer

    def __repr__(self) -> str:
        return f"<Request {self.uri} id={self.id!r} peer={tuple(self.peer)}>"


def _peer_credentials(transport: asyncio.BaseTransport) -> PeerCredentials:
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return _UNKNOWN_PEER
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return _UNKNOWN_PEER
    return PeerCredentials(*_PEERCRED.unpack(raw))


class Connection(asyncio.Protocol):
    """One client connection. Applications see it as ``request.connection``.

    Attributes:
        peer: the kernel-verified :class:`PeerCredentials` of the client.
    """

    __slots__ = (
        "_accepted",
        "_backlog",
        "_eof",
        "_inflight",
        "_protocol",
        "_read_paused",
        "_server",
        "_transport",
        "_write_paused",
        "peer",
    )

    def __init__(self, server: IPCServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._protocol = ServerProtocol(server.max_message_bytes)
        self.peer = _UNKNOWN_PEER
        self._inflight = 0
        self._write_paused = False
        self._read_paused = False
        self._eof = False
        self._accepted = False
        # Requests read but not started while the connection is at its
        # in-flight maximum (LIMIT-5); None when there are none.
        self._backlog: list[ServerEvent] | None = None

    # --- public -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while the connection can still carry messages."""
        return self._accepted and self._transport is not None and not self._transport.is_closing()

    @property
    def inflight(self) -> int:
        """Requests of this connection in progress (async or threaded handlers)."""
        return self._inflight

    def push(self, data: Any) -> bool:
        """Send ``data`` to this client as a push, a message without an id (PUSH-1).

        Call it on the event loop's thread (from a threaded handler, go
        through ``loop.call_soon_threadsafe``): transports are not thread-safe.

        Returns:
            True if it was handed to the transport, False if the connection is closed.

        Raises:
            TypeError, ValueError: ``data`` cannot be encoded as JSON.
        """
        return self.write_line(encode_line(push_message(data)))

    def write_line(self, line: bytes) -> bool:
        """Write one encoded message (ending in LF) in a single write (FRAME-10).

        Returns:
            True if it was handed to the transport, False if the connection is closed.
        """
        transport = self._transport
        if transport is None or not self._accepted or transport.is_closing():
            return False
        transport.write(line)
        return True

    def close(self) -> None:
        """Close the connection once the replies already written are flushed."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close the connection at once, dropping unwritten replies."""
        if self._transport is not None:
            self._transport.abort()

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.peer = _peer_credentials(transport)
        server = self._server
        if not server._peer_allowed(self.peer):
            server._deny(self.peer, self._transport)
            return
        self._transport.set_write_buffer_limits(WRITE_BUFFER_HIGH, WRITE_BUFFER_LOW)
        self._accepted = True
        server._opened(self)

    def data_received(self, data: bytes) -> None:
        if not self._accepted:
            return  # SEC-2: nothing a refused peer sends is processed
        if len(data) >= _LARGE_READ:
            self._server._large_read()
        events = self._protocol.receive_data(data)
        if not events:
            return
        if self._backlog:
            # Read while paused (a transport may deliver one more chunk): queue it.
            self._backlog.extend(events)
            return
        self._handle(events)

    def _handle(self, events: list[ServerEvent]) -> None:
        server = self._server
        cached = server._router.cached
        match = server._router.match
        limit = server.max_inflight_per_connection
        out: list[bytes] = []
        pending = iter(events)
        del events
        for event in pending:
            if type(event) is not IncomingRequest:
                assert type(event) is ProtocolReply
                if event.reason == "no_uri":
                    server._stats.requests += 1  # BUILTIN-5: a request received, as the original counts
                out.append(server._protocol_reply(event.message, event.reason))
                continue
            route = cached(event.uri, _UNSEEN)
            if route is _UNSEEN:
                route = match(event.uri)
            reply = self._dispatch(event, route)
            if reply is not None:
                out.append(reply)
            elif self._inflight >= limit:
                # LIMIT-5: the rest of this read waits for a free slot.
                self._backlog = list(pending) or None
                break
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            # One write per read; each message stays contiguous (FRAME-10).
            # Joining first is faster than writelines(): on uvloop, 64
            # pipelined answers cost 30% more server CPU through writelines.
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self._inflight >= limit:
            self._update_reading()

    def eof_received(self) -> bool:
        if not self._accepted:
            return False  # a refused peer is done: close
        # LIFE-2: answer every complete request read, then close; the write
        # side stays open until then.
        self._eof = True
        if self._inflight == 0 and not self._backlog and self._transport is not None:
            self._transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._accepted:
            self._accepted = False
            self._server._closed_connection(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._server._stats.streamBackpressure += 1
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # --- requests ---------------------------------------------------------------

    def _dispatch(self, event: IncomingRequest, route: Any) -> bytes | None:
        """Call the request's handler (routed, default, or none: ROUTE-2).

        Returns:
            The reply to write now, or None when the handler goes on as a task
            or in a thread (its reply is written when it completes).
        """
        server = self._server
        server._stats.requests += 1
        if route is None:
            handler = server._default_handler
            if handler is None:
                return encode_line(no_handler_found(event.id, event.uri))  # ROUTE-2
            threaded = False
        else:
            handler, threaded = route.handler, route.threaded
        request = Request(event.message, event.uri, event.id, self)
        start = perf_counter()
        if threaded:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.run_in_executor(server._thread_pool(), handler, request)
            self._track(future, event.id, event.uri, start)
            return None
        try:
            result = handler(request)
        except Exception as exc:
            return self._failed(event.id, event.uri, exc)
        if type(result) not in _PLAIN_TYPES and inspect.isawaitable(result):
            self._track(asyncio.ensure_future(result), event.id, event.uri, start)
            return None
        return self._reply(event.id, event.uri, result, start)

    def _track(self, future: asyncio.Future[Any], request_id: Any, uri: str, start: float) -> None:
        self._inflight += 1
        self._server._pending.add(future)
        future.add_done_callback(functools.partial(self._completed, request_id, uri, start))

    def _completed(self, request_id: Any, uri: str, start: float, future: asyncio.Future[Any]) -> None:
        server = self._server
        server._pending.discard(future)
        self._inflight -= 1
        line: bytes | None
        if future.cancelled():
            # Cancelled by shutdown after exit_timeout: the connection is going.
            line = None
        elif (exc := future.exception()) is not None:
            line = self._failed(request_id, uri, exc)
        else:
            line = self._reply(request_id, uri, future.result(), start)
        if line is not None and not self.write_line(line):
            server._stats.droppedResponses += 1  # LIFE-5
        if self._backlog and self._inflight < server.max_inflight_per_connection and self._accepted:
            backlog, self._backlog = self._backlog, None
            self._handle(backlog)
        if self._eof and self._inflight == 0 and not self._backlog:
            self.close()  # LIFE-2: the last answer is out
        elif self._read_paused:
            self._update_reading()

    def _reply(self, request_id: Any, uri: str, result: Any, start: float) -> bytes:
        stats = self._server._stats
        elapsed = perf_counter() - start
        stats.duration += elapsed
        if elapsed > self._server.slow_threshold:
            stats.slowResponses += 1
        return self._encode_reply(request_id, uri, result)

    def _encode_reply(self, request_id: Any, uri: str, result: Any) -> bytes:
        try:
            if result is NO_DATA:  # RESP-3: a response without data (BUILTIN-1)
                return encode_line({"ipcReqID": request_id})
            return encode_line({"ipcReqID": request_id, "data": result})
        except (TypeError, ValueError) as exc:
            # ERR-3: a result that cannot be encoded is the handler's failure.
            self._server._stats.handlerErrors += 1
            logger.error("the result of the handler for %s cannot be encoded: %s", uri, exc)
            return encode_line(data_error(request_id, ErrorCode.HANDLER_ERROR, _NOT_ENCODABLE))

    def _failed(self, request_id: Any, uri: str, exc: BaseException) -> bytes:
        if isinstance(exc, RemoteError):
            # A deliberate error of the application: its code and message go out.
            return encode_line(data_error(request_id, exc.code, exc.message))
        self._server._stats.handlerErrors += 1
        logger.error("handler for %s failed", uri, exc_info=exc)
        # ERR-5: the exception's details stay in the log.
        return encode_line(data_error(request_id, ErrorCode.HANDLER_ERROR, _HANDLER_FAILED))

    def _update_reading(self) -> None:
        """Pause or resume reading from the peer (LIMIT-5, LIFE-7)."""
        transport = self._transport
        if transport is None or self._eof or transport.is_closing():
            return
        server = self._server
        pause = (
            server._closing
            or self._write_paused
            or self._backlog is not None
            or self._inflight >= server.max_inflight_per_connection
        )
        if pause and not self._read_paused:
            self._read_paused = True
            server._stats.readPauses += 1
            transport.pause_reading()
        elif not pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()
