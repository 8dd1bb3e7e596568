"""The blocking client: :class:`IPCClient`.

A thin loop over :class:`pixl_ipc.protocol.ClientProtocol`: encode a request,
write it with one ``sendall``, ``recv`` into the protocol's decoder until the
response with the request's id arrives. There is no background thread: the
thread that waits for an answer is the one that reads the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Any

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
from .errors import RequestTimeout, ServerClosed
from .framing import DEFAULT_MAX_MESSAGE_BYTES
from .protocol import (
    ClientState,
    IncomingPush,
    IncomingResponse,
    MessageTransform,
    RequestFailed,
    response_outcome,
)

__all__ = ["IPCClient"]

logger = logging.getLogger("pixl_ipc.client")

# Reads of a connection go into its own buffer of this size, then the bytes
# that came are copied out: a recv() of a large size would allocate that much
# for every read, and glibc serves 128 KiB and more with mmap, so a 1 KiB
# answer would cost a map, a page fault and an unmap (measured: 10 us of CPU
# a round trip). While a long line is being read, recv() takes up to
# _RECV_LARGE at a time instead, which spreads that cost over as many bytes.
_RECV_SMALL = 64 * 1024
_RECV_LARGE = 1024 * 1024
_monotonic = time.monotonic
_MSG_DONTWAIT = socket.MSG_DONTWAIT
# Read once: an Enum member looked up through its class costs a function call.
_OPEN = ClientState.OPEN


class _Waiter:
    """One request waiting for its answer."""

    __slots__ = ("done", "error", "message")

    def __init__(self) -> None:
        self.done = False
        self.message: dict[str, Any] | None = None
        self.error: Exception | None = None


class _Connection:
    """One open socket."""

    __slots__ = ("buffer", "poll", "sndtimeo", "sock", "view")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray(_RECV_SMALL)
        self.view = memoryview(self.buffer)
        # Reads wait in poll(), not in a blocking recv(): on AF_UNIX a reader
        # blocked in recv() is also woken when the server reads the request
        # (write space), which costs a second context switch per round trip.
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        self.poll = poller.poll
        # The kernel's current SO_SNDTIMEO, seconds (0: none set). Re-arming
        # costs a syscall, so it is only done when the deadline moved a lot.
        self.sndtimeo = 0.0


def _timeval(seconds: float) -> bytes:
    # A zero timeval means "no timeout" to the kernel: never send one.
    micros = max(int(seconds * 1_000_000), 1000)
    return struct.pack("ll", micros // 1_000_000, micros % 1_000_000)


class IPCClient(ClientBase):
    """A blocking pixl-ipc client.

    Requests are matched to responses by ``ipcReqID`` (CORR-2), so one client
    may be shared between threads: each thread's :meth:`send` writes its
    request whole under a write lock (FRAME-10), and whichever waiting thread
    finds no other reader reads the socket and hands each response to the
    thread waiting for it. No thread is started; a client used by one thread
    costs one ``sendall``, one ``poll`` and one or more ``recv`` per request.

    Args:
        socket_path: the server's socket path.
        request_timeout: default seconds to wait for each response (CORR-5).
        connect_timeout: seconds to wait for a connection.
        user_agent: the ``userAgent`` sent with every request (REQ-6); default
            ``"Python/IPCClient"`` followed by the working directory.
        auto_reconnect: after the connection drops, the next :meth:`send`
            connects again when this is above 0 (LIFE-4); 0 makes it raise
            :class:`ServerClosed`. A blocking client has no background to
            reconnect in, so the value only enables or disables it.
        code_to_err: also raise errors found inside ``data`` (the original's
            ``codeToErr``, ERR-4).
        message_transform: the original's ``messageTransform``: called with each
            response message, returns ``(err, data)``.
        on_push: called with each whole push message (``{"data": ...}``,
            PUSH-2). It runs in the thread that is reading, during a
            :meth:`send` or :meth:`poll`, and must not call :meth:`send`.
            Exceptions it raises are logged and ignored.
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
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._conn: _Connection | None = None
        self._waiters: dict[Any, _Waiter] = {}
        self._reading = False
        self._sleepers = 0

    # --- public API ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._conn is not None

    def connect(self) -> None:
        """Connect to the server, unless already connected.

        Also reopens a client after :meth:`close`.

        Raises:
            ConnectError: the path is missing, refused, not a socket, not
                permitted, or the connect timed out (``reason`` says which).
        """
        with self._lock:
            if self._conn is None:
                self._open_locked()

    def send(self, uri: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Send one request and wait for its response.

        Connects first when the client has not connected yet, and reconnects
        when the connection dropped and ``auto_reconnect`` is on, including
        when this request finds that the server closed the connection since
        the last one (the request did not reach the server, so it is written
        again on the new connection; a request the server may have read is
        never sent twice).

        Args:
            uri: the request's ``uri`` (REQ-2).
            data: the request's ``data``, any JSON value (REQ-4).
            timeout: seconds to wait for the response; default ``request_timeout``.

        Returns:
            The response's ``data`` (or what ``message_transform`` returned).

        Raises:
            TypeError: ``uri`` is not a str, or ``data`` cannot be encoded as JSON.
            ConfigError: ``timeout`` is not a positive number.
            ConnectError: connecting failed.
            RequestTimeout: no response within the timeout (CORR-5); its late
                answer is dropped (CORR-3).
            ServerClosed: the connection ended while waiting (LIFE-3), the
                client was closed, or it is disconnected and ``auto_reconnect``
                is 0.
            RemoteError: the server answered with an error (ERR-4).
            MessageTooLarge: the response passed ``max_message_bytes`` (LIMIT-3).
        """
        if type(uri) is not str:
            check_uri(uri)
        opts = self.options
        seconds = opts.request_timeout if timeout is None else opts.timeout_for(timeout)
        deadline = _monotonic() + seconds
        waiter = _Waiter()
        proto = self._proto
        lock = self._lock
        lock.acquire()  # not `with`: its protocol costs twice the lock itself
        try:
            conn = self._conn or self._reopen_locked()
            request_id, payload = proto.encode_request(uri, data)
            proto.outstanding.add(request_id)  # proto.expect(request_id)
            self._waiters[request_id] = waiter
            # Nobody reads: take the role now, which spares a lock round trip.
            reading = not self._reading
            if reading:
                self._reading = True
        finally:
            lock.release()
        try:
            written = self._write(conn, payload, request_id, uri, seconds, deadline)
        except BaseException:
            if reading:
                self._give_up_reading()
            raise
        if not written:
            if reading:
                self._give_up_reading()
                reading = False
            # The server closed the connection before this request, which it
            # therefore never saw: send it once on a new connection (LIFE-4).
            with self._lock:
                conn = self._conn or self._reopen_locked()
                request_id, payload = proto.encode_request(uri, data)
                proto.expect(request_id)
                self._waiters[request_id] = waiter
            if not self._write(conn, payload, request_id, uri, seconds, deadline):
                raise ServerClosed("the server closed the connection")
        if not self._wait(conn, waiter, request_id, deadline, reading):
            raise RequestTimeout(uri, seconds)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.message is not None
        return response_outcome(
            waiter.message, code_to_err=opts.code_to_err, message_transform=opts.message_transform
        )

    def poll(self, timeout: float = 0.0) -> int:
        """Read what the server sent without sending a request, delivering pushes.

        The blocking client reads only while someone waits, so a push that
        arrives between requests sits in the socket until the next :meth:`send`
        or a call to this method.

        Args:
            timeout: seconds to wait for something to arrive (0: only what is
                already there).

        Returns:
            The number of pushes delivered to ``on_push``.

        Raises:
            ServerClosed: the client is not connected.
        """
        deadline = _monotonic() + max(0.0, float(timeout))
        with self._lock:
            conn = self._conn
            if conn is None:
                raise ServerClosed("the client is not connected")
            if self._reading:
                return 0  # the reading thread delivers them
            self._reading = True
        delivered = 0
        arrived = False
        try:
            while self._conn is conn:
                remaining = deadline - _monotonic()
                data = self._recv(conn, deadline, nowait=arrived or remaining <= 0)
                if data is None:
                    if arrived or remaining <= 0:
                        break
                    continue
                arrived = True  # then only drain what is already there
                with self._lock:
                    pushes = self._dispatch_locked(conn, data)
                if pushes:
                    delivered += len(pushes)
                    self._deliver_pushes(pushes)
        finally:
            self._give_up_reading()
        return delivered

    def close(self) -> None:
        """Close the connection; pending requests fail with :class:`ServerClosed`.

        Idempotent. :meth:`connect` may open the client again.
        """
        with self._lock:
            conn = self._conn
            self._conn = None
            self._fail_locked(self._proto.close())
        if conn is not None:
            _shut(conn.sock)

    def __enter__(self) -> IPCClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- connection ------------------------------------------------------------

    def _open_locked(self) -> _Connection:
        opts = self.options
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The socket stays blocking: write deadlines go to the kernel
        # (SO_SNDTIMEO), which spares a poll() before every send. A blocking
        # AF_UNIX connect waits up to SO_SNDTIMEO while the server's listen
        # backlog is full, then fails with EAGAIN.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(opts.connect_timeout))
            sock.connect(opts.socket_path)
        except OSError as exc:
            sock.close()
            raise connect_error(opts.socket_path, exc) from None
        conn = _Connection(sock)
        self._conn = conn
        self._proto.connection_made()
        return conn

    def _reopen_locked(self) -> _Connection:
        # A blocking client has no background to reconnect in: the next
        # request does it (LIFE-4), when the core says it may.
        self._proto.must_connect(self.options.auto_reconnect > 0)
        return self._open_locked()

    def _drop(self, conn: _Connection, reason: str) -> None:
        """Forget a connection that ended; fail what waits on it (LIFE-3)."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
                self._fail_locked(self._proto.connection_lost(reason))
        _shut(conn.sock)

    def _fail_locked(self, failures: list[RequestFailed]) -> None:
        waiters = self._waiters
        for failure in failures:
            waiter = waiters.pop(failure.id, None)
            if waiter is not None:
                waiter.error = failure.error
                waiter.done = True
        self._cond.notify_all()

    # --- writing ---------------------------------------------------------------

    def _write(
        self, conn: _Connection, payload: bytes, request_id: Any, uri: str, seconds: float, deadline: float
    ) -> bool:
        """Write one request whole (FRAME-10).

        Returns False when the server had closed the connection: the request
        did not reach it whole, so it cannot have been served.

        Raises:
            RequestTimeout: the server stopped reading.
        """
        write_lock = self._write_lock
        write_lock.acquire()
        try:
            remaining = deadline - _monotonic()
            current = conn.sndtimeo
            if current > remaining * 1.02 + 0.001 or current < remaining * 0.5:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(remaining))
                conn.sndtimeo = max(remaining, 0.001)
            conn.sock.sendall(payload)
            return True
        except BlockingIOError:
            # The server stopped reading; part of the line may be out, so
            # the connection cannot carry another message.
            timed_out = True
            reason = "connection closed: a request could not be written in time"
        except OSError as exc:
            timed_out = False
            reason = f"the server closed the connection ({exc.strerror or exc})"
        finally:
            write_lock.release()
        with self._lock:
            self._proto.forget(request_id)
            self._waiters.pop(request_id, None)
        self._drop(conn, reason)
        if timed_out:
            raise RequestTimeout(uri, seconds)
        return False

    # --- reading ---------------------------------------------------------------

    def _give_up_reading(self) -> None:
        with self._lock:
            self._reading = False
            if self._sleepers:
                self._cond.notify_all()

    def _wait(
        self, conn: _Connection, waiter: _Waiter, request_id: Any, deadline: float, reading: bool
    ) -> bool:
        """Wait until ``waiter`` is done; False when the deadline passed first (CORR-5)."""
        # One thread at a time reads (the ``_reading`` flag; ``reading`` says
        # this thread has it) and hands every response to its waiter; the
        # others sleep on the condition. The lock is held at the top of the
        # loop unless this thread is reading.
        lock = self._lock
        if not reading:
            lock.acquire()
        try:
            while True:
                if reading:
                    try:
                        data = self._recv(conn, deadline)
                    finally:
                        lock.acquire()
                        self._reading = reading = False
                    pushes = self._dispatch_locked(conn, data) if data else None
                    if self._sleepers:
                        self._cond.notify_all()  # delivered to them, or their turn to read
                    if pushes:
                        lock.release()
                        try:
                            self._deliver_pushes(pushes)
                        finally:
                            lock.acquire()
                if waiter.done:
                    return True
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    # The id is never reused, and its late answer is dropped (CORR-3).
                    self._proto.forget(request_id)
                    self._waiters.pop(request_id, None)
                    return False
                if self._reading:
                    self._sleepers += 1
                    try:
                        self._cond.wait(remaining)
                    finally:
                        self._sleepers -= 1
                    continue
                self._reading = reading = True
                lock.release()
        finally:
            lock.release()

    def _recv(self, conn: _Connection, deadline: float, *, nowait: bool = False) -> bytes | None:
        """One recv; None if nothing came before ``deadline`` or the connection ended."""
        sock = conn.sock
        try:
            if not nowait:
                # Rounded up: waking before the deadline costs another poll.
                wait_ms = int((deadline - _monotonic()) * 1000) + 1
                if not conn.poll(wait_ms if wait_ms > 0 else 0):
                    return None  # nothing in time; the caller checks its deadline
            if self._proto.decoder.buffered:
                data = sock.recv(_RECV_LARGE, _MSG_DONTWAIT)
            else:
                data = conn.view[: sock.recv_into(conn.buffer, _RECV_SMALL, _MSG_DONTWAIT)].tobytes()
        except BlockingIOError:
            return None  # the kernel timeout passed; the caller checks its deadline
        except OSError as exc:
            self._drop(conn, f"the connection failed ({exc.strerror or exc})")
            return None
        if not data:
            self._drop(conn, "the server closed the connection")  # LIFE-3
            return None
        return data

    def _dispatch_locked(self, conn: _Connection, data: bytes) -> list[dict[str, Any]] | None:
        """Decode a read; hand responses and failures to their waiters; return the pushes."""
        if self._conn is not conn:
            return None  # closed meanwhile: its waiters have failed already
        waiters = self._waiters
        pushes: list[dict[str, Any]] | None = None
        for event in self._proto.receive_data(data):
            if type(event) is IncomingResponse:
                waiter = waiters.pop(event.id)
                waiter.message = event.message
                waiter.done = True
            elif type(event) is IncomingPush:
                if pushes is None:
                    pushes = []
                pushes.append(event.message)
            elif type(event) is RequestFailed:
                self._fail_locked([event])
            # A LateResponse is dropped quietly (CORR-3).
        if self._proto.state is not _OPEN and self._conn is conn:
            # A response over the limit (LIMIT-3): its request and the others
            # have failed; the connection cannot go on.
            self._conn = None
            _shut(conn.sock)
        return pushes

    def _deliver_pushes(self, pushes: list[dict[str, Any]]) -> None:
        on_push = self.options.on_push
        for message in pushes:
            deliver_push(on_push, message)


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv or sendall on this socket,
    # which close() alone does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
