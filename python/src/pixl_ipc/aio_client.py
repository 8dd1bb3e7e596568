"""The asyncio client: :class:`AsyncIPCClient`.

A thin :class:`asyncio.Protocol` over :class:`pixl_ipc.protocol.ClientProtocol`.
Any number of :meth:`AsyncIPCClient.send` calls may wait on one connection;
responses are matched by id (CORR-2) in whatever order they come. Requests
written in one turn of the event loop leave in one write, the answers one read
delivers are resolved in one pass, and the deadlines of all waiting requests
share one timer, so a request costs no system call, task or timer of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, cast

from ._client_common import (
    DEFAULT_AUTO_RECONNECT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    ClientBase,
    PushHandler,
    check_uri,
    connect_error,
    deliver_push,
    make_options,
)
from .errors import ConnectError, RequestTimeout, ServerClosed
from .framing import DEFAULT_MAX_MESSAGE_BYTES
from .protocol import (
    ClientState,
    IncomingPush,
    IncomingResponse,
    MessageTransform,
    RequestFailed,
    response_outcome,
)

__all__ = ["AsyncIPCClient"]

logger = logging.getLogger("pixl_ipc.aio_client")

_Future = asyncio.Future[dict[str, Any]]
# (deadline, future, request id, uri, timeout) of a waiting request.
_Deadline = tuple[float, _Future, Any, str, float]
# A push stream that holds this many unread pushes stops reading the socket
# until its reader is down to the low mark, as websockets' max_queue does: a
# slow reader slows the server instead of filling this process's memory.
_PUSH_HIGH_WATER = 1024
_PUSH_LOW_WATER = 256
# Ends a push stream.
_END: dict[str, Any] = {}
# Read once: an Enum member looked up through its class costs a function call.
_OPEN = ClientState.OPEN


class _Connection(asyncio.Protocol):
    """One open connection: moves bytes between the transport and the client."""

    def __init__(self, client: AsyncIPCClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.open = False
        self._out: list[bytes] = []
        self._writable: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.open = True

    def data_received(self, data: bytes) -> None:
        self.client._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._out.clear()
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)
        self.client._on_lost(self, exc)

    def pause_writing(self) -> None:
        # The server stopped reading: new requests wait instead of piling up.
        if self._writable is None:
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        # Back to None: sends test one attribute, not a finished future.
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- writing ---

    def _flush(self) -> None:
        # Requests queued in ``_out`` during one loop turn leave in one write.
        out = self._out
        if not out or self.transport is None or not self.open:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.transport.write(data)  # FRAME-10: whole lines, one write

    async def writable(self, deadline: float) -> bool:
        """Wait until the transport takes more data; False if the deadline passes first."""
        waiter = self._writable
        if waiter is None or waiter.done():
            return True
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True


class AsyncIPCClient(ClientBase):
    """An asyncio pixl-ipc client.

    Any number of tasks may :meth:`send` on one client at once: requests are
    pipelined on one connection (CORR-4) and each response goes to the request
    with its id (CORR-2). Use it from one event loop.

    Args:
        socket_path: the server's socket path.
        request_timeout: default seconds to wait for each response (CORR-5).
        connect_timeout: seconds to wait for a connection.
        user_agent: the ``userAgent`` sent with every request (REQ-6); default
            ``"Python/IPCClient"`` followed by the working directory.
        auto_reconnect: seconds after the connection drops before the client
            connects again in the background, and again after each failed
            attempt (LIFE-4); a :meth:`send` made meanwhile waits for it within
            its timeout. 0 disables it: :meth:`send` then raises
            :class:`ServerClosed`.
        code_to_err: also raise errors found inside ``data`` (the original's
            ``codeToErr``, ERR-4).
        message_transform: the original's ``messageTransform``: called with each
            response message, returns ``(err, data)``.
        on_push: a plain function (not a coroutine), called in the event
            loop with each whole push message (``{"data": ...}``, PUSH-2), as
            the Node client emits it; it should return quickly. Exceptions it
            raises are logged and ignored. :meth:`pushes` is the other way to
            read them.
        max_message_bytes: the longest response line accepted (LIMIT-1, LIMIT-3).

    Raises:
        ConfigError: an option is invalid.

    A response over ``max_message_bytes`` fails the request it answers with
    :class:`MessageTooLarge` and closes the connection; other pending requests
    fail with :class:`ServerClosed` (or all with :class:`MessageTooLarge` when
    the oversize line's id cannot be read).
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        # timeouts
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        # identity
        user_agent: str | None = None,
        # connection
        auto_reconnect: float = DEFAULT_AUTO_RECONNECT,
        # results
        code_to_err: bool = False,
        message_transform: MessageTransform | None = None,
        on_push: PushHandler | None = None,
        # limits
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        options = make_options(
            socket_path,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            user_agent=user_agent,
            auto_reconnect=auto_reconnect,
            code_to_err=code_to_err,
            message_transform=message_transform,
            on_push=on_push,
            max_message_bytes=max_message_bytes,
        )
        super().__init__(options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: _Connection | None = None
        self._futures: dict[Any, _Future] = {}
        self._push_queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._reading_paused = False
        self._connecting: asyncio.Future[_Connection] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        # Deadlines in the order requests were sent; with one timeout per
        # client that is also deadline order, so one timer serves them all.
        self._deadlines: collections.deque[_Deadline] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # --- public API ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._conn is not None and self._conn.open

    async def connect(self) -> None:
        """Connect to the server, unless already connected.

        Also reopens a client after :meth:`close`.

        Raises:
            ConnectError: the path is missing, refused, not a socket, not
                permitted, or the connect timed out (``reason`` says which).
        """
        if self._conn is not None and self._conn.open:
            return
        self._proto.reopen()
        await self._open()

    async def send(self, uri: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Send one request and wait for its response.

        Connects first when the client has not connected yet; while the
        client reconnects after a drop, waits for it within ``timeout``.

        Args:
            uri: the request's ``uri`` (REQ-2).
            data: the request's ``data``, any JSON value (REQ-4).
            timeout: seconds to wait for the response; default ``request_timeout``.

        Returns:
            The response's ``data`` (or what ``message_transform`` returned).

        Raises:
            TypeError: ``uri`` is not a str, or ``data`` cannot be encoded as JSON.
            ConfigError: ``timeout`` is not a positive number.
            ConnectError: the first connect failed.
            RequestTimeout: no response within the timeout (CORR-5); its late
                answer is dropped (CORR-3).
            ServerClosed: the connection ended while waiting (LIFE-3), the
                client was closed, or it is disconnected and cannot reconnect in
                time (``auto_reconnect`` 0, or the server is still away).
            RemoteError: the server answered with an error (ERR-4).
            MessageTooLarge: the response passed ``max_message_bytes`` (LIMIT-3).
        """
        if type(uri) is not str:
            check_uri(uri)
        opts = self.options
        seconds = opts.request_timeout if timeout is None else opts.timeout_for(timeout)
        loop = self._loop or asyncio.get_running_loop()
        deadline = loop.time() + seconds
        conn = self._conn
        if conn is None or not conn.open:
            conn = await self._usable_connection(deadline, seconds)
        if conn._writable is not None:
            if not await conn.writable(deadline):
                raise RequestTimeout(uri, seconds)
            if not conn.open:  # lost while waiting to write
                raise ServerClosed("the server closed the connection")
        proto = self._proto
        request_id, payload = proto.encode_request(uri, data)
        proto.outstanding.add(request_id)  # proto.expect(request_id)
        future: _Future = loop.create_future()
        self._futures[request_id] = future
        # What conn.write and _add_deadline do, inlined: this runs per request.
        out = conn._out
        out.append(payload)
        if len(out) == 1:
            loop.call_soon(conn._flush)
        deadlines = self._deadlines
        if deadlines and deadline < deadlines[-1][0]:
            self._add_deadline(loop, (deadline, future, request_id, uri, seconds))
        else:
            deadlines.append((deadline, future, request_id, uri, seconds))
            if self._timer is None or deadline < self._timer_at:
                self._arm_timer(loop, deadline)
            # Finished requests leave from the head, so the queue holds about
            # what is in flight rather than everything sent within one timeout.
            while deadlines[0][1].done():
                deadlines.popleft()
        try:
            message = await future
        except asyncio.CancelledError:
            # The caller gave up: forget the id, its answer will be dropped (CORR-3).
            future.cancel()
            if proto.forget(request_id):
                del self._futures[request_id]
            raise
        return response_outcome(
            message, code_to_err=opts.code_to_err, message_transform=opts.message_transform
        )

    async def pushes(self) -> AsyncIterator[dict[str, Any]]:
        """Iterate over the pushes that arrive (PUSH-2), beside ``on_push``.

        ``async for push in client.pushes():`` yields each whole push message
        (``{"data": ...}``) that arrives from its first iteration on, in the
        order it came, across reconnects. Several
        streams may be open at once; each gets every push. The stream ends when
        the client is closed, or when its connection is lost and
        ``auto_reconnect`` is 0. While a stream holds 1,024 unread pushes the
        client stops reading the socket, answers included, until its reader
        catches up.

        Yields:
            Push messages.
        """
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._push_queues.add(queue)
        try:
            while self._push_stream_open():
                message = await queue.get()
                if message is _END:
                    return
                if self._reading_paused and queue.qsize() <= _PUSH_LOW_WATER:
                    self._resume_reading()
                yield message
        finally:
            self._push_queues.discard(queue)
            if self._reading_paused:
                self._resume_reading()

    async def close(self) -> None:
        """Close the connection; pending requests fail with :class:`ServerClosed`.

        Stops the background reconnect and ends the :meth:`pushes` streams.
        When it returns, the socket is closed and no task or timer of this
        client is left. Idempotent; :meth:`connect` may open the client again.
        """
        self._fail(self._proto.close())
        self._end_push_streams()
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        if self._ready is not None:
            self._ready.set()  # wakes sends waiting for a reconnect
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            # abort(), not close(): every request has failed already, and
            # close() would wait for a server that stopped reading.
            conn.transport.abort()
            # connection_lost is where the event loop releases the socket.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.shield(conn.lost)

    async def __aenter__(self) -> AsyncIPCClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- connection ------------------------------------------------------------

    async def _open(self) -> _Connection:
        # Concurrent callers share one attempt.
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connecting = loop.create_future()
        attempt = self._connecting
        try:
            conn = await self._dial(loop)
        except BaseException as exc:
            attempt.set_exception(exc)
            attempt.exception()  # retrieved: other waiters re-raise it themselves
            raise
        finally:
            self._connecting = None
        if self._proto.state is ClientState.CLOSED:  # closed while connecting
            assert conn.transport is not None
            conn.transport.close()
            error = ServerClosed("the client was closed")
            attempt.set_exception(error)
            attempt.exception()
            raise error
        self._conn = conn
        self._proto.connection_made()
        if self._ready is not None:
            self._ready.set()
        attempt.set_result(conn)
        return conn

    async def _dial(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        opts = self.options
        path = opts.socket_path
        deadline = loop.time() + opts.connect_timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            delay = 0.005
            while True:
                try:
                    sock.connect(path)  # AF_UNIX connects at once, or not at all
                    break
                except (BlockingIOError, InterruptedError):
                    # The server's listen backlog is full; it may drain soon.
                    if loop.time() + delay > deadline:
                        raise ConnectError(path, "timeout") from None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.05)
                except OSError as exc:
                    raise connect_error(path, exc) from None
            _, conn = await loop.create_unix_connection(lambda: _Connection(self, loop), sock=sock)
        except BaseException:
            sock.close()
            raise
        return conn

    async def _usable_connection(self, deadline: float, seconds: float) -> _Connection:
        proto = self._proto
        if proto.must_connect(self.options.auto_reconnect > 0) and proto.state is ClientState.NEW:
            return await self._open()
        # LIFE-4: the background task reconnects; wait for it within the timeout.
        if self._ready is None:
            self._ready = asyncio.Event()
        try:
            async with asyncio.timeout_at(deadline):
                while self._conn is None or not self._conn.open:
                    if proto.state is ClientState.CLOSED:
                        raise ServerClosed("the client was closed")
                    self._ready.clear()
                    await self._ready.wait()
        except TimeoutError:
            raise ServerClosed(
                f"the connection was lost and could not be reopened within {seconds:g} s"
            ) from None
        return self._conn

    def _on_data(self, conn: _Connection, data: bytes) -> None:
        if self._conn is not conn:
            return
        proto = self._proto
        futures = self._futures
        for event in proto.receive_data(data):
            if type(event) is IncomingResponse:
                future = futures.pop(event.id)
                if not future.done():
                    future.set_result(event.message)
            elif type(event) is IncomingPush:
                self._deliver_push(event.message)
            elif type(event) is RequestFailed:
                self._fail([event])
            # A LateResponse is dropped quietly (CORR-3).
        if proto.state is not _OPEN and conn.transport is not None:
            # A response over the limit (LIMIT-3): every pending request has
            # failed, so nothing is lost by closing at once.
            conn.transport.abort()

    def _on_lost(self, conn: _Connection, exc: Exception | None) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        self._reading_paused = False
        reason = "the server closed the connection"
        if exc is not None:
            reason += f" ({exc})"
        self._fail(self._proto.connection_lost(reason))  # LIFE-3: at once, all of them
        if self._proto.state is ClientState.CLOSED:
            return
        if self.options.auto_reconnect <= 0:
            self._end_push_streams()
        elif self._reconnect_task is None:
            self._reconnect_task = conn.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.options.auto_reconnect
        try:
            while self._proto.state is ClientState.LOST:
                await asyncio.sleep(delay)
                try:
                    await self._open()
                    return
                except ConnectError as exc:
                    logger.info("reconnect to %s failed: %s", self.options.socket_path, exc)
                except ServerClosed:
                    return  # closed meanwhile
        finally:
            if self._reconnect_task is asyncio.current_task():
                self._reconnect_task = None

    def _fail(self, failures: list[RequestFailed]) -> None:
        futures = self._futures
        for failure in failures:
            future = futures.pop(failure.id, None)
            if future is not None and not future.done():
                future.set_exception(failure.error)

    # --- pushes ----------------------------------------------------------------

    def _deliver_push(self, message: dict[str, Any]) -> None:
        deliver_push(self.options.on_push, message)  # PUSH-2
        for queue in self._push_queues:
            queue.put_nowait(message)
            if queue.qsize() >= _PUSH_HIGH_WATER and not self._reading_paused:
                conn = self._conn
                if conn is not None and conn.transport is not None:
                    conn.transport.pause_reading()
                    self._reading_paused = True

    def _resume_reading(self) -> None:
        if any(queue.qsize() > _PUSH_LOW_WATER for queue in self._push_queues):
            return
        self._reading_paused = False
        conn = self._conn
        if conn is not None and conn.transport is not None and conn.open:
            conn.transport.resume_reading()

    def _push_stream_open(self) -> bool:
        state = self._proto.state
        return state is not ClientState.CLOSED and (
            state is not ClientState.LOST or self.options.auto_reconnect > 0
        )

    def _end_push_streams(self) -> None:
        for queue in self._push_queues:
            queue.put_nowait(_END)

    # --- deadlines -------------------------------------------------------------

    def _arm_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._expire)
        self._timer_at = when

    def _add_deadline(self, loop: asyncio.AbstractEventLoop, entry: _Deadline) -> None:
        """Track a deadline earlier than the requests before it: its own timer."""
        handle = loop.call_at(entry[0], self._expire_one, entry)
        entry[1].add_done_callback(lambda _: handle.cancel())

    def _expire_one(self, entry: _Deadline) -> None:
        self._time_out(entry)

    def _time_out(self, entry: _Deadline) -> None:
        _, future, request_id, uri, seconds = entry
        if future.done():
            return
        # CORR-5: the id is never reused, and its late answer is dropped (CORR-3).
        if self._proto.forget(request_id):
            del self._futures[request_id]
        future.set_exception(RequestTimeout(uri, seconds))

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        deadlines = self._deadlines
        while deadlines:
            entry = deadlines[0]
            if entry[1].done():
                deadlines.popleft()
            elif entry[0] <= now:
                deadlines.popleft()
                self._time_out(entry)
            else:
                self._arm_timer(loop, entry[0])
                return
