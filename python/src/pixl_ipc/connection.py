"""One server-side connection: bytes in, handlers called, replies out.

:class:`Connection` is the :class:`asyncio.Protocol` of each accepted client.
It sees its server only through a :class:`~pixl_ipc.context.ServerContext`.
What it reads goes to a :class:`~pixl_ipc.framing.LineDecoder`; lines are
taken from it at most :data:`LINES_PER_BATCH` at a time, turned into events by
:mod:`~pixl_ipc.protocol` and answered:

- a handler that returns a plain value is called directly, and its reply
  joins the other replies of the same batch in one write (no task is made);
- a handler that returns an awaitable becomes a task, and a ``threaded=True``
  handler runs in the server's thread pool; their replies are written when they
  finish, in any order (RESP-5).

After a batch the loop serves others before the next one, and no batch is
taken while the replies not yet written pass :data:`WRITE_BUFFER_HIGH`, or
the requests in progress reach ``max_inflight_per_connection`` (LIMIT-5), or
the server's byte budget is spent and this connection holds unsent replies
(LIMIT-7). Reading from the socket pauses meanwhile. Replies are handed to the
transport only when it has written everything before, so that unsent replies
are held, and counted, here: a peer that does not read costs what its replies
weigh, whatever their number.

Endings:

- the peer shuts down its sending side (LIFE-2): the complete requests read
  are answered, then the connection closes; a partial line is dropped. The
  wait is bounded by ``close_grace``.
- the peer is gone (end of stream while the socket reports POLLHUP, a failed
  write, a reset): the socket is closed at once, handler tasks still running
  are cancelled and threaded ones detached; their replies are dropped (LIFE-5).
- the server closes (:meth:`Connection.close`, LIFE-8): it writes what it
  has, then end of stream, and reads and discards until the peer closes, or
  ``close_grace`` passes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import select
from time import perf_counter
from typing import Any, cast

from ._codec import line_encoder as _encode_line
from ._logging import Throttle, format_failure, printable
from ._peer import UNKNOWN_PEER, PeerCredentials, read_peer_credentials
from .context import ServerContext
from .errors import ErrorCode, RemoteError
from .framing import Line, LineDecoder, OversizeLine, encode_line
from .protocol import (
    NO_DATA,
    ProtocolReply,
    RequestFields,
    data_error,
    error_reply,
    no_handler_found,
    oversize_reply,
    parse_request,
    push_message,
    recover_id,
)

__all__ = [
    "LINES_PER_BATCH",
    "READ_BUFFER_BYTES",
    "BufferedConnection",
    "WRITE_BUFFER_HIGH",
    "WRITE_BUFFER_LOW",
    "Connection",
    "PeerCredentials",
    "Request",
    "new_connection",
]

logger = logging.getLogger("pixl_ipc.server")

#: Unsent replies of one connection: above HIGH no more of its lines are
#: taken and its reading pauses, until they are under LOW (LIMIT-5). 1 MiB
#: lets pipelined small messages flow while bounding what a peer that does
#: not read can cost.
WRITE_BUFFER_HIGH = 1024 * 1024
WRITE_BUFFER_LOW = 256 * 1024
#: Lines taken from a connection before the loop serves the others: 64
#: lines cost 0.2 ms (malformed ones) to 1.5 ms (each starting a task), so no
#: peer holds the loop much longer.
LINES_PER_BATCH = 64

# States of a connection, in the order it may go through them (compared with <).
_NEW = 0  # not yet connected
_OPEN = 1  # reading and answering
_PEER_DONE = 2  # the peer half-closed: answering what was read (LIFE-2)
_CLOSING = 3  # the server half-closed: discarding until the peer closes (LIFE-8)
_REFUSED = 4  # refused (access_denied, server_busy): discarding until the peer closes
_CLOSED = 5

# A held reply is counted as its bytes plus this much (headers, list slots).
_HELD_OVERHEAD = 64
# Held replies shorter than this are copied together into one buffer.
_COALESCE_BELOW = 64 * 1024
# Reads this large mean a large message: the server then trims its heap soon.
_LARGE_READ = 64 * 1024
# How long a refused peer may take to read its error.
_REFUSED_LINGER = 2.0
# Results that are certainly not awaitable: no inspect call for them.
_PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})
_UNSEEN: Any = object()
_HANDLER_FAILED = "the handler failed; the server log has the details"
_NOT_ENCODABLE = "the handler's result cannot be encoded as JSON"
_BUSY = "server busy: its memory budget is spent, try again later"
# Messages that a storm of peers can trigger: one line a second at most.
_refusals_logged = Throttle()
_memory_logged = Throttle()


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
        return f"<Request {printable(self.uri, 80)} id={self.id!r} peer={tuple(self.peer)}>"


#: Bytes a connection on plain asyncio reads at a time (asyncio's own read size).
READ_BUFFER_BYTES = 256 * 1024


_NO_TASKS: frozenset[asyncio.Future[Any]] = frozenset()


def new_connection(context: ServerContext) -> Connection:
    """The protocol of one accepted socket, for the running loop.

    Plain asyncio reads each time into a fresh ``bytes`` of 256 KiB, which
    glibc maps and unmaps for every read unless the program raised its malloc
    thresholds (``pixl-ipc serve`` does, a library does not). There a
    :class:`BufferedConnection` reads into a buffer its server's connections
    share. uvloop reads into a buffer of its own already.
    """
    if isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        return BufferedConnection(context)
    return Connection(context)


def _busy_reply(line: Any) -> ProtocolReply:
    """The ``server_busy`` answer to a line refused by the byte budget (LIMIT-7, CORR-6)."""
    return ProtocolReply(error_reply(recover_id(line.head), ErrorCode.SERVER_BUSY, _BUSY), "server_busy")


def _socket_hung_up(transport: asyncio.BaseTransport) -> bool:
    """True when the peer closed its socket, not only its sending side.

    For AF_UNIX, poll() reports POLLHUP once the peer has closed (or shut
    down both ways); after a mere shutdown(SHUT_WR) it does not.
    """
    sock = transport.get_extra_info("socket")
    try:
        poller = select.poll()
        poller.register(sock.fileno(), 0)
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):
        return False
    return any(mask & (select.POLLHUP | select.POLLERR) for _, mask in events)


class Connection(asyncio.Protocol):
    """One client connection. Applications see it as ``request.connection``.

    Args:
        context: what the connection may see of its server.

    Attributes:
        peer: the kernel-verified :class:`PeerCredentials` of the client.
    """

    __slots__ = (
        "_backlog",
        "_ctx",
        "_decoder",
        "_next_batch",
        "_out",
        "_out_bytes",
        "_read_paused",
        "_sent_bytes",
        "_state",
        "_tasks",
        "_timer",
        "_transport",
        "_write_busy",
        "peer",
    )

    def __init__(self, context: ServerContext) -> None:
        self._ctx = context
        self._transport: asyncio.Transport | None = None
        self._decoder = LineDecoder(context.limits.max_message_bytes, budget=context.budget)
        self.peer = UNKNOWN_PEER
        self._state = _NEW
        # A set costs 216 bytes: an idle connection shares the empty one.
        self._tasks: set[asyncio.Future[Any]] | frozenset[asyncio.Future[Any]] = _NO_TASKS
        # Lines of the last batch not started while the connection is at its
        # in-flight maximum (LIMIT-5); None when there are none.
        self._backlog: list[Line] | None = None
        # Replies held while the transport still has bytes to write, and
        # what they weigh; the bytes left in the transport at its last write.
        self._out: list[bytes | bytearray] = []
        self._out_bytes = 0
        self._sent_bytes = 0
        self._write_busy = False
        self._read_paused = False
        self._next_batch: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None

    # --- public -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while the connection can still carry messages to the client."""
        return self._state in (_OPEN, _PEER_DONE)

    @property
    def inflight(self) -> int:
        """Requests of this connection in progress (async or threaded handlers)."""
        return len(self._tasks)

    @property
    def has_work(self) -> bool:
        """True while requests read from the client are not all answered."""
        return bool(self._tasks or self._backlog or self._decoder.has_unread)

    def push(self, data: Any) -> bool:
        """Send ``data`` to this client as a push, a message without an id (PUSH-1).

        Call it on the event loop's thread (from a threaded handler, go
        through ``loop.call_soon_threadsafe``): transports are not thread-safe.

        Returns:
            True if it was handed over for writing, False if the connection is closed.

        Raises:
            TypeError, ValueError: ``data`` cannot be encoded as JSON.
        """
        return self.write_line(encode_line(push_message(data)))

    def write_line(self, line: bytes) -> bool:
        """Write one encoded message (ending in LF), kept contiguous (FRAME-10).

        Returns:
            True if it was handed over for writing, False if the connection is closed.
        """
        if self._state not in (_OPEN, _PEER_DONE):
            return False
        self._send(line)
        return True

    def drain(self) -> None:
        """Read nothing more from the client, but answer what was read (shutdown, LIFE-7)."""
        self._update_reading()

    def close(self) -> None:
        """Half-close (LIFE-8): write what is pending, then end of stream; close once the client does.

        Requests read but not started are dropped; replies of handlers still
        running cannot be sent any more. What the client sends meanwhile is
        read and discarded. After ``close_grace`` the connection is closed
        whatever the client does.
        """
        if self._state not in (_OPEN, _PEER_DONE) or self._transport is None:
            return
        transport = self._transport
        peer_done = self._state == _PEER_DONE
        self._state = _CLOSING
        self._backlog = None
        self._decoder.close()
        self._flush_all()
        if peer_done:
            transport.close()  # both sides are done
            return
        transport.write_eof()
        self._ctx.linger(self)
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        self._set_timer(self._ctx.limits.close_grace)

    def abort(self) -> None:
        """Close the connection at once, dropping unwritten replies."""
        if self._transport is not None:
            self._transport.abort()

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.peer = read_peer_credentials(transport.get_extra_info("socket"))
        ctx = self._ctx
        refusal = ctx.admit(self, self.peer)
        if refusal is not None:
            self._refuse(*refusal)
            return
        # Every unsent byte is reported (pause_writing) and held here.
        self._transport.set_write_buffer_limits(0, 0)
        self._state = _OPEN
        ctx.opened(self)
        if ctx.closing:
            self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self._state != _OPEN:
            return  # refused (SEC-2) or closed by the server (LIFE-8): discarded
        if len(data) >= _LARGE_READ:
            self._ctx.on_large_read()
        try:
            self._decoder.push(data)
            self._serve()
        except MemoryError:
            self._out_of_memory()

    def eof_received(self) -> bool:
        if self._state != _OPEN or self._transport is None:
            return False  # both sides are done: close
        if _socket_hung_up(self._transport):
            # The peer is gone for good: nobody will read the replies.
            self._transport.abort()
            return False
        # LIFE-2: answer every complete request read, then close.
        self._state = _PEER_DONE
        self._ctx.linger(self)
        self._set_timer(self._ctx.limits.close_grace)
        try:
            self._serve()
        except MemoryError:
            self._out_of_memory()
            return False
        self._close_if_answered()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._state = _CLOSED
        ctx = self._ctx
        ctx.release(self)
        ctx.budget.forget(self)
        for handle in (self._timer, self._next_batch):
            if handle is not None:
                handle.cancel()
        self._timer = self._next_batch = None
        self._backlog = None
        self._decoder.close()
        self._forget_output()
        # LIFE-5: nobody can receive these replies any more.
        for task in list(self._tasks):
            task.cancel()

    def pause_writing(self) -> None:
        self._write_busy = True
        self._ctx.stats.count("streamBackpressure")

    def resume_writing(self) -> None:
        # The transport has written everything it was given.
        self._write_busy = False
        if self._sent_bytes:
            self._ctx.budget.release(self._sent_bytes)
            self._sent_bytes = 0
        if self._out:
            self._write(self._take_held())
        if self._read_paused or self._decoder.has_unread:
            self._schedule_serve()

    # --- reading ----------------------------------------------------------------

    def _serve(self) -> None:
        """Answer the lines read, one batch, if nothing holds them back; then plan what is next."""
        if self._next_batch is not None:
            self._next_batch.cancel()
            self._next_batch = None
        state = self._state
        if state in (_OPEN, _PEER_DONE):
            decoder = self._decoder
            if self._backlog is not None:
                if len(self._tasks) < self._ctx.limits.max_inflight:
                    backlog, self._backlog = self._backlog, None
                    self._handle(backlog)
            elif not self._held_back():
                self._handle(decoder.next_lines(LINES_PER_BATCH))
            if self._backlog is None and decoder.has_unread and not self._held_back():
                # More lines are waiting: the others are served before them.
                self._schedule_serve()
        # The usual case, one read answered at once, leaves nothing that
        # could pause reading: the call is skipped then.
        if (
            self._read_paused
            or self._tasks
            or self._out_bytes
            or self._sent_bytes
            or self._decoder.has_unread
            or self._backlog is not None
            or self._ctx.closing
        ):
            self._update_reading()

    def _schedule_serve(self) -> None:
        """Serve on the loop's next turn (once, however often it is asked)."""
        if self._next_batch is None and self._state in (_OPEN, _PEER_DONE):
            self._next_batch = asyncio.get_running_loop().call_soon(self._serve_next)

    def _serve_next(self) -> None:
        self._next_batch = None
        try:
            self._serve()
        except MemoryError:
            self._out_of_memory()
        if self._state == _PEER_DONE:
            self._close_if_answered()

    def _held_back(self) -> bool:
        """True while no more lines may be taken: too many replies unsent, or requests in progress."""
        if len(self._tasks) >= self._ctx.limits.max_inflight:
            return True
        unsent = self._out_bytes + self._sent_bytes
        return unsent > 0 and (unsent > WRITE_BUFFER_HIGH or self._waits_for_budget(unsent))

    def _waits_for_budget(self, unsent: int) -> bool:
        """LIMIT-7: while the byte budget is spent, a connection holding unsent replies waits."""
        budget = self._ctx.budget
        if unsent and budget.spent:
            budget.wait(self, self._schedule_serve)
            return True
        return False

    def _update_reading(self) -> None:
        """Pause or resume reading from the peer (LIMIT-5, LIMIT-7, LIFE-7)."""
        transport = self._transport
        if transport is None or self._state != _OPEN:
            return
        unsent = self._out_bytes + self._sent_bytes
        pause = (
            self._ctx.closing
            or self._decoder.has_unread
            or self._backlog is not None
            or len(self._tasks) >= self._ctx.limits.max_inflight
            or (
                unsent > 0
                and (
                    unsent > (WRITE_BUFFER_LOW if self._read_paused else WRITE_BUFFER_HIGH)
                    or self._waits_for_budget(unsent)
                )
            )
        )
        if pause and not self._read_paused:
            self._read_paused = True
            self._ctx.stats.count("readPauses")
            transport.pause_reading()
        elif not pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    def _handle(self, lines: list[Line]) -> None:
        """Answer a batch of lines; requests past the in-flight maximum wait in the backlog.

        ``lines`` is emptied as it goes: a line is let go once parsed, so that
        a large one does not stay beside its request while it is handled.
        """
        # This loop runs once per request, so a handler that answers at once
        # is called, timed and answered here rather than through methods of
        # its own (what remains per request is measured in the benchmark's
        # CPU table).
        ctx = self._ctx
        router = ctx.router
        cached = router.cached
        stats = ctx.stats
        limit = ctx.limits.max_inflight
        out: list[bytes] = []
        lines.reverse()
        # A handler may close the connection (close_connections()): stop then.
        while lines and self._state < _CLOSING:
            line = lines.pop()
            event: RequestFields | ProtocolReply | None
            if type(line) is bytes:
                event = parse_request(line)
            elif type(line) is OversizeLine:
                event = oversize_reply(line)
            else:
                event = _busy_reply(line)
            del line
            if type(event) is not tuple:
                if event is not None:  # else not a message (FRAME-4, FRAME-5)
                    assert type(event) is ProtocolReply
                    stats.record_protocol_reply(event.reason)
                    out.append(encode_line(event.message))
                continue
            message, uri, request_id = event
            route = cached(uri, _UNSEEN)
            if route is _UNSEEN:
                route = router.match(uri)
            stats.current.requests += 1
            if route is None:
                handler = ctx.default_handler
                if handler is None:
                    out.append(_encode_line(no_handler_found(request_id, uri)))  # ROUTE-2
                    continue
            elif route.threaded:
                self._start_threaded(route.handler, Request(message, uri, request_id, self))
                handler = None
            else:
                handler = route.handler
            if handler is not None:
                request = Request(message, uri, request_id, self)
                start = perf_counter()
                try:
                    result = handler(request)
                except Exception as exc:
                    out.append(self._failed(request_id, uri, exc))
                    continue
                if type(result) in _PLAIN_TYPES:
                    elapsed = perf_counter() - start
                    counters = stats.current  # stats.record_answer(elapsed)
                    counters.duration += elapsed
                    if elapsed > stats.slow_threshold:
                        counters.slowResponses += 1
                    try:
                        out.append(_encode_line({"ipcReqID": request_id, "data": result}))
                    except (TypeError, ValueError) as exc:
                        out.append(self._unencodable(request_id, uri, exc))
                    continue
                if not inspect.isawaitable(result):  # NO_DATA, or a value of another type
                    out.append(self._reply(request_id, uri, result, start))
                    continue
                self._track(asyncio.ensure_future(result), request_id, uri, start)
            if len(self._tasks) >= limit and lines:
                # LIMIT-5: the rest of this batch waits for a free slot.
                lines.reverse()
                self._backlog = lines
                break
        if out:
            # One write per batch; each message stays contiguous (FRAME-10).
            # Joining first is faster than writelines(): on uvloop, 64
            # pipelined answers cost 30% more server CPU through writelines.
            self._send(out[0] if len(out) == 1 else b"".join(out))

    # --- requests ---------------------------------------------------------------

    def _start_threaded(self, handler: Any, request: Request) -> None:
        start = perf_counter()
        future = asyncio.get_running_loop().run_in_executor(self._ctx.executor(), handler, request)
        self._track(future, request.id, request.uri, start)

    def _track(self, future: asyncio.Future[Any], request_id: Any, uri: str, start: float) -> None:
        tasks = self._tasks
        if tasks is _NO_TASKS:
            tasks = self._tasks = set()
        assert isinstance(tasks, set)
        tasks.add(future)
        self._ctx.tasks.add(future)
        future.add_done_callback(functools.partial(self._completed, request_id, uri, start))

    def _completed(self, request_id: Any, uri: str, start: float, future: asyncio.Future[Any]) -> None:
        tasks = self._tasks
        assert isinstance(tasks, set)
        tasks.discard(future)
        ctx = self._ctx
        ctx.tasks.discard(future)
        try:
            line: bytes | None = None
            if future.cancelled():
                pass  # the connection ended, or shutdown gave up on it
            elif (exc := future.exception()) is not None:
                line = self._failed(request_id, uri, exc)
            else:
                line = self._reply(request_id, uri, future.result(), start)
            if line is None or not self.write_line(line):
                ctx.stats.count("droppedResponses")  # LIFE-5
        except MemoryError:
            self._out_of_memory()
            return
        if self._backlog is not None or self._read_paused or self._decoder.has_unread:
            self._schedule_serve()
        elif self._state == _PEER_DONE:
            self._close_if_answered()

    def _reply(self, request_id: Any, uri: str, result: Any, start: float) -> bytes:
        self._ctx.stats.record_answer(perf_counter() - start)
        try:
            if result is NO_DATA:  # RESP-3: a response without data (BUILTIN-1)
                return _encode_line({"ipcReqID": request_id})
            return _encode_line({"ipcReqID": request_id, "data": result})
        except (TypeError, ValueError) as exc:
            return self._unencodable(request_id, uri, exc)

    def _unencodable(self, request_id: Any, uri: str, exc: Exception) -> bytes:
        # ERR-3: a result that cannot be encoded is the handler's failure.
        self._ctx.stats.count("handlerErrors")
        logger.error("the result of the handler for %s cannot be encoded: %s", printable(uri), printable(exc))
        return encode_line(data_error(request_id, ErrorCode.HANDLER_ERROR, _NOT_ENCODABLE))

    def _failed(self, request_id: Any, uri: str, exc: BaseException) -> bytes:
        if isinstance(exc, RemoteError):
            # A deliberate error of the application: its code and message go out.
            return encode_line(data_error(request_id, exc.code, exc.message))
        self._ctx.stats.count("handlerErrors")
        # ERR-5: the exception's details stay in the log, where the peer's
        # text cannot start a line of its own.
        logger.error("handler for %s failed:\n%s", printable(uri), format_failure(exc))
        return encode_line(data_error(request_id, ErrorCode.HANDLER_ERROR, _HANDLER_FAILED))

    # --- writing ------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """Write ``data`` now if the transport has written all it had, else hold it here."""
        if self._state not in (_OPEN, _PEER_DONE):
            return  # closed by the server (LIFE-8) or gone: nobody reads it
        if not (self._write_busy or self._out):
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.write(data)  # _write(data), inline: once per read
                if self._write_busy:
                    self._count_unsent(transport)
            return
        # Small replies are copied into one buffer: the encoder's bytes of a
        # 30-byte reply may hold a 4 KiB allocation, and a peer that does not
        # read would otherwise pin thousands of them.
        out = self._out
        if len(data) >= _COALESCE_BELOW:
            out.append(data)
        elif out and type(out[-1]) is bytearray:
            out[-1] += data
        else:
            out.append(bytearray(data))
        weight = len(data) + _HELD_OVERHEAD
        self._out_bytes += weight
        self._ctx.budget.add(weight)

    def _write(self, data: bytes | bytearray) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if self._write_busy:
            self._count_unsent(transport)

    def _count_unsent(self, transport: asyncio.Transport) -> None:
        # What the socket did not take stays in the transport until
        # resume_writing: counted until then.
        left = transport.get_write_buffer_size()
        if left > self._sent_bytes:
            self._ctx.budget.add(left - self._sent_bytes)
            self._sent_bytes = left

    def _take_held(self) -> bytes | bytearray:
        out, self._out = self._out, []
        self._ctx.budget.release(self._out_bytes)
        self._out_bytes = 0
        return out[0] if len(out) == 1 else b"".join(out)

    def _flush_all(self) -> None:
        """Hand every held reply to the transport (before end of stream or closing)."""
        if self._out:
            self._write(self._take_held())

    def _forget_output(self) -> None:
        held = self._out_bytes + self._sent_bytes
        self._out = []
        self._out_bytes = self._sent_bytes = 0
        if held:
            self._ctx.budget.release(held)

    # --- endings -------------------------------------------------------------------

    def _close_if_answered(self) -> None:
        """LIFE-2: once every request read from a half-closed peer is answered, close."""
        if self._state == _PEER_DONE and not self.has_work and self._transport is not None:
            self._decoder.close()  # a partial line at end of stream is dropped
            self._flush_all()
            self._transport.close()

    def _refuse(self, code: ErrorCode, message: str) -> None:
        # SEC-2, LIMIT-7: one top-level error with a null id, then end of
        # stream. What the peer sends is read and discarded (never processed)
        # until it closes or a grace period passes: closing a Unix socket with
        # unread input resets it, and the peer would lose the error unread.
        transport = self._transport
        assert transport is not None
        self._state = _REFUSED
        if code == ErrorCode.ACCESS_DENIED:
            peer = self.peer
            logger.warning("access denied to peer pid=%s uid=%s gid=%s", peer.pid, peer.uid, peer.gid)
        else:
            suppressed = _refusals_logged.ready()
            if suppressed is not None:
                logger.warning(
                    "refused a connection: server busy (%d connections)%s",
                    self._ctx.budget.connections - 1,
                    f"; {suppressed} more refused since the last message" if suppressed else "",
                )
        transport.write(encode_line(error_reply(None, code, message)))
        transport.write_eof()
        self._ctx.linger(self)
        self._set_timer(_REFUSED_LINGER)

    def _set_timer(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self.abort)

    def _out_of_memory(self) -> None:
        """An allocation failed while serving this connection: it alone is closed."""
        self._backlog = None
        self._decoder.close()
        self._forget_output()
        self.abort()
        self._ctx.stats.count("outOfMemory")
        suppressed = _memory_logged.ready()
        if suppressed is not None:
            peer = self.peer
            logger.error(
                "out of memory while serving the connection of pid=%s uid=%s: closed it%s",
                peer.pid,
                peer.uid,
                f" ({suppressed} more since the last message)" if suppressed else "",
            )


class BufferedConnection(Connection, asyncio.BufferedProtocol):
    """A :class:`Connection` that reads into a buffer shared by its server's connections.

    For plain asyncio (see :func:`new_connection`): each read lands in
    the shared buffer and is copied out at once, so the next connection's
    read can use it; only the bytes that came are allocated.
    """

    __slots__ = ()

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer = self._ctx.read_buffer
        if buffer is None:
            buffer = self._ctx.read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        buffer = self._ctx.read_buffer
        assert buffer is not None
        self.data_received(buffer[:nbytes].tobytes())
