"""The reference asyncio server, a drop-in for the original's IPCServer component.

Theory of operation
-------------------
:class:`IPCServer` owns the listening socket (:mod:`~pixl_ipc._socket`: safe
bind, socket activation, safe removal), the handler table
(:mod:`~pixl_ipc.routing`), the statistics and the lifecycle. Each accepted
client is a :class:`~pixl_ipc.connection.Connection`, which reads requests,
calls handlers and writes replies (see that module).

Sync handlers run on the event loop: one that blocks holds up every
connection. Make it ``async``, or register it with ``threaded=True`` to run it
in a thread pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import re
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._memory import release_free_memory, warm_allocator
from ._socket import LISTEN_BACKLOG, Listener, activated_socket, bind_unix, unlink_if_ours
from .builtins import register_builtins
from .config import (
    STATS_INTERVALS,
    check_chmod,
    check_id_set,
    check_int,
    check_interval,
    check_seconds,
    check_socket_path,
    check_str,
    server_kwargs_from_config,
)
from .connection import Connection, PeerCredentials, Request
from .errors import ErrorCode
from .framing import DEFAULT_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES, encode_line
from .protocol import error_reply, push_message
from .routing import Router

__all__ = ["Connection", "IPCServer", "PeerCredentials", "Request", "RequestHandler"]

logger = logging.getLogger("pixl_ipc.server")

# How long after large traffic the heap's free pages go back to the system: at
# most one malloc_trim a second, off the hot path.
_TRIM_DELAY = 1.0
# How long a refused peer may take to read its access_denied error.
_DENIED_LINGER = 2.0

F = TypeVar("F", bound=Callable[..., Any])
#: A request handler: takes the :class:`Request`, returns the response data or
#: an awaitable of it.
RequestHandler = Callable[[Request], Any]


class _Counters:
    """The counters of one stats interval (the original's keys, then this kit's); duration in seconds."""

    __slots__ = (
        "accessDenied",
        "badMessages",
        "clientClose",
        "clientOpen",
        "droppedResponses",
        "duration",
        "handlerErrors",
        "maxConnections",
        "oversizeMessages",
        "readPauses",
        "requests",
        "slowResponses",
        "streamBackpressure",
    )

    def __init__(self, connections: int = 0) -> None:
        self.requests = 0
        self.clientOpen = 0
        self.clientClose = 0
        self.maxConnections = connections
        self.duration = 0.0
        self.slowResponses = 0
        self.streamBackpressure = 0
        self.badMessages = 0
        self.oversizeMessages = 0
        self.handlerErrors = 0
        self.accessDenied = 0
        self.readPauses = 0
        self.droppedResponses = 0


# Keys reported both for the last interval (the original's) and since start.
_ORIGINAL_KEYS = (
    "requests",
    "clientOpen",
    "clientClose",
    "maxConnections",
    "duration",
    "slowResponses",
    "streamBackpressure",
)
_TOTAL_KEYS = {
    "requests": "totalRequests",
    "clientOpen": "totalClientOpen",
    "clientClose": "totalClientClose",
    "slowResponses": "totalSlowResponses",
    "streamBackpressure": "totalStreamBackpressure",
    "badMessages": "badMessages",
    "oversizeMessages": "oversizeMessages",
    "handlerErrors": "handlerErrors",
    "accessDenied": "accessDenied",
    "readPauses": "readPauses",
    "droppedResponses": "droppedResponses",
}


class IPCServer:
    """A pixl-ipc server on a Unix domain socket.

    Args:
        socket_path: where to listen (ignored when started by systemd socket
            activation, which passes the socket).
        socket_chmod: octal mode string applied to the socket file after bind,
            before accepting (SEC-1); ``""`` or None leaves the umask's mode.
        exit_timeout: seconds that shutdown waits for requests in progress.
        log_stats_interval: ``"second"``, ``"minute"``, ``"hour"`` or ``"day"``:
            how often the counters roll over and are logged.
        slow_threshold: responses slower than this many seconds count as slow.
        max_message_bytes: the largest request line accepted (LIMIT-1, at
            least 16 MiB).
        max_inflight_per_connection: requests in progress on one connection
            before its reading pauses (LIMIT-5).
        max_threads: the size of the thread pool that runs handlers
            registered with ``threaded=True``; None takes
            :class:`concurrent.futures.ThreadPoolExecutor`'s default
            (``min(32, CPU count + 4)``).
        allowed_uids: if given (or ``allowed_gids`` is), only peers whose
            kernel-verified uid is listed, or whose gid is in ``allowed_gids``,
            are served (SEC-2).
        allowed_gids: see ``allowed_uids``.
        name: the server name reported by ``/ipcserver/info``.
        version: the server version reported by ``/ipcserver/info``; the
            package's version by default.

    Raises:
        ConfigError: an option is invalid; the message names it.
    """

    def __init__(
        self,
        socket_path: str,
        *,
        # socket
        socket_chmod: str | None = "777",
        # timeouts
        exit_timeout: float = 2.0,
        slow_threshold: float = 0.020,
        # limits
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_inflight_per_connection: int = 1024,
        max_threads: int | None = None,
        # access
        allowed_uids: Iterable[int] | None = None,
        allowed_gids: Iterable[int] | None = None,
        # identity
        name: str = "pixl-ipc-python",
        version: str | None = None,
        # logging
        log_stats_interval: str = "minute",
    ) -> None:
        self.socket_path = check_socket_path("socket_path", socket_path)
        self.socket_chmod = socket_chmod or None
        self._mode = check_chmod("socket_chmod", socket_chmod)
        self.exit_timeout = check_seconds("exit_timeout", exit_timeout)
        self.slow_threshold = check_seconds("slow_threshold", slow_threshold)
        self.max_message_bytes = check_int("max_message_bytes", max_message_bytes, MIN_MAX_MESSAGE_BYTES)
        self.max_inflight_per_connection = check_int(
            "max_inflight_per_connection", max_inflight_per_connection, 1
        )
        self.max_threads = None if max_threads is None else check_int("max_threads", max_threads, 1)
        self.allowed_uids = check_id_set("allowed_uids", allowed_uids)
        self.allowed_gids = check_id_set("allowed_gids", allowed_gids)
        self.name = check_str("name", name)
        if version is None:
            from . import __version__ as version
        self.version = check_str("version", version)
        self.log_stats_interval = check_interval("log_stats_interval", log_stats_interval)

        self._router = Router()
        self._default_handler: RequestHandler | None = None
        self._connections: set[Connection] = set()
        self._pending: set[asyncio.Future[Any]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._stats = _Counters()
        self._last = _Counters()
        self._totals = _Counters()
        self._started_at = time.monotonic()
        self._listener: Listener | None = None
        self._aio_server: asyncio.AbstractServer | None = None
        self._stats_timer: asyncio.TimerHandle | None = None
        self._trim_timer: asyncio.TimerHandle | None = None
        self._next_roll: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._closed: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        register_builtins(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> IPCServer:
        """Build a server from the original's ``IPCServer`` config block.

        Args:
            config: the block: ``socket_path``, ``exit_timeout`` (ms),
                ``socket_chmod``, ``log_stats_interval``, ``slow_threshold_ms``,
                and this kit's ``max_message_bytes``,
                ``max_inflight_per_connection``, ``allowed_uids``,
                ``allowed_gids``, ``name``, ``version``.

        Returns:
            The server (not started).

        Raises:
            ConfigError: an unknown key, a wrong type or value; the message names the key.
        """
        kwargs = server_kwargs_from_config(config)
        return cls(kwargs.pop("socket_path"), **kwargs)

    # --- handlers -------------------------------------------------------------

    def add_uri_handler(
        self,
        pattern: str | re.Pattern[str],
        name: str,
        handler: RequestHandler,
        *,
        threaded: bool = False,
    ) -> None:
        """Register ``handler`` for uris matching ``pattern``, after every existing one.

        Args:
            pattern: a compiled regex (searched in the uri) or a string (matched
                as the anchored regex ``^pattern$``, as the original does).
            name: a name for logs and ``/ipcserver/info``.
            handler: called with a :class:`Request`; returns the response data
                or an awaitable of it. It runs on the event loop: a handler that
                blocks must be ``async`` or registered with ``threaded=True``.
                Raising :class:`~pixl_ipc.errors.RemoteError` answers that code
                and message in data; any other exception answers
                ``handler_error`` (ERR-3) and is logged.
            threaded: run the handler in a thread pool.

        Raises:
            TypeError, ValueError: a bad pattern or a handler that is not callable.
        """
        self._router.add(pattern, name, handler, threaded=threaded)

    def uri(
        self, pattern: str | re.Pattern[str], name: str | None = None, *, threaded: bool = False
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_uri_handler`; ``name`` defaults to the function's name."""

        def register(handler: F) -> F:
            label = name or str(getattr(handler, "__name__", "handler"))
            self.add_uri_handler(pattern, label, handler, threaded=threaded)
            return handler

        return register

    def set_default_handler(self, handler: RequestHandler | None) -> None:
        """Answer requests that match no pattern with ``handler`` instead of ``no_handler_found``."""
        if handler is not None and not callable(handler):
            raise TypeError("the default handler is not callable")
        self._default_handler = handler

    @property
    def handler_names(self) -> list[str]:
        """Registered handler names, in match order."""
        return self._router.names

    # --- statistics -------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """The statistics, with the original's keys first.

        ``connections`` and ``handlers`` are current; ``requests``,
        ``clientOpen``, ``clientClose``, ``maxConnections``, ``duration`` (ms),
        ``slowResponses`` and ``streamBackpressure`` are the counters of the last
        completed ``log_stats_interval``, as in the original. The other keys are
        this kit's and count since start: ``totalRequests``, ``badMessages``,
        ``oversizeMessages``, ``handlerErrors``, ``accessDenied``, ``readPauses``,
        ``droppedResponses``, ..., plus ``inflight`` and ``uptime`` (seconds).
        """
        last = self._last
        stats: dict[str, Any] = {"connections": len(self._connections), "handlers": len(self._router)}
        for key in _ORIGINAL_KEYS:
            stats[key] = getattr(last, key)
        stats["duration"] = round(last.duration * 1000.0, 3)
        for key, total_key in _TOTAL_KEYS.items():
            stats[total_key] = getattr(self._totals, key) + getattr(self._stats, key)
        stats["inflight"] = len(self._pending)
        stats["uptime"] = round(time.monotonic() - self._started_at, 3)
        stats["statsInterval"] = self.log_stats_interval
        return stats

    def _roll_stats(self) -> None:
        """End the current stats interval: its counters become the reported ones."""
        current = self._stats
        for key in _TOTAL_KEYS:
            setattr(self._totals, key, getattr(self._totals, key) + getattr(current, key))
        self._last = current
        self._stats = _Counters(len(self._connections))
        logger.info("stats: %s", self.get_stats())

    def _on_stats_timer(self) -> None:
        self._roll_stats()
        self._schedule_stats()

    def _schedule_stats(self) -> None:
        if self._loop is None or self._closing:
            return
        # Roll over on wall-clock boundaries (each minute, hour...) as the
        # original. A timer may fire a little early: never roll over twice
        # for one boundary.
        period = STATS_INTERVALS[self.log_stats_interval]
        now = time.time()
        boundary = float((math.floor(now / period) + 1) * period)
        if self._next_roll is not None and boundary <= self._next_roll:
            boundary = self._next_roll + period
        self._next_roll = boundary
        self._stats_timer = self._loop.call_later(boundary - now, self._on_stats_timer)

    # --- connections -------------------------------------------------------------

    @property
    def connections(self) -> frozenset[Connection]:
        """The connections open now."""
        return frozenset(self._connections)

    def close_connections(self) -> None:
        """Close every client connection (replies already written are flushed first)."""
        for conn in list(self._connections):
            conn.close()

    def push(self, connection: Connection, data: Any) -> bool:
        """Send ``data`` to one client as a push (PUSH-1), on the event loop's thread.

        Returns:
            True if sent, False if that connection is closed.

        Raises:
            TypeError, ValueError: ``data`` cannot be encoded as JSON.
        """
        return connection.push(data)

    def broadcast(self, data: Any) -> int:
        """Send ``data`` as a push to every connected client (PUSH-1).

        Like :meth:`push`, call it on the event loop's thread.

        Returns:
            How many connections it was written to.

        Raises:
            TypeError, ValueError: ``data`` cannot be encoded as JSON.
        """
        line = encode_line(push_message(data))
        return sum(1 for conn in list(self._connections) if conn.write_line(line))

    def _peer_allowed(self, peer: PeerCredentials) -> bool:
        uids, gids = self.allowed_uids, self.allowed_gids
        if uids is None and gids is None:
            return True
        return (uids is not None and peer.uid in uids) or (gids is not None and peer.gid in gids)

    def _deny(self, peer: PeerCredentials, transport: asyncio.Transport) -> None:
        # SEC-2: one top-level error with a null id, then end the connection.
        # What the peer sends is read and discarded (never processed) until it
        # closes or a grace period passes: closing a Unix socket with unread
        # input resets it, and the peer would lose the error before reading it.
        self._stats.accessDenied += 1
        logger.warning("access denied to peer pid=%s uid=%s gid=%s", peer.pid, peer.uid, peer.gid)
        reply = error_reply(None, ErrorCode.ACCESS_DENIED, "access denied: this peer is not allowed")
        transport.write(encode_line(reply))
        transport.write_eof()
        asyncio.get_running_loop().call_later(_DENIED_LINGER, transport.close)

    def _large_read(self) -> None:
        """Note large traffic: free heap pages are returned to the system soon after."""
        if self._trim_timer is None and self._loop is not None:
            self._trim_timer = self._loop.call_later(_TRIM_DELAY, self._trim_memory)

    def _trim_memory(self) -> None:
        self._trim_timer = None
        release_free_memory()

    def _opened(self, conn: Connection) -> None:
        self._connections.add(conn)
        stats = self._stats
        stats.clientOpen += 1
        if len(self._connections) > stats.maxConnections:
            stats.maxConnections = len(self._connections)
        logger.debug("connection from pid=%s uid=%s", conn.peer.pid, conn.peer.uid)

    def _closed_connection(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._stats.clientClose += 1

    # --- requests -------------------------------------------------------------

    def _protocol_reply(self, message: dict[str, Any], reason: str) -> bytes:
        if reason == "message_too_large":
            self._stats.oversizeMessages += 1
        else:
            self._stats.badMessages += 1
        logger.debug("answered %s", reason)
        return encode_line(message)

    def _thread_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_threads, thread_name_prefix="pixl-ipc"
            )
        return self._executor

    # --- lifecycle -------------------------------------------------------------

    @property
    def address(self) -> str:
        """The path the server listens on (the inherited socket's, when activated)."""
        return self._listener.path if self._listener is not None else self.socket_path

    async def start(self) -> None:
        """Bind (or take the socket-activated socket) and start accepting.

        Raises:
            StartupError: the socket path is in use by a live server or holds
                something that is not a socket (LIFE-6), or cannot be bound.
            RuntimeError: the server is running already.
        """
        if self._aio_server is not None:
            raise RuntimeError("the server is running already")
        warm_allocator()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._closed = asyncio.Event()
        inherited = activated_socket()
        if inherited is not None:
            name = inherited.getsockname()
            path = name if isinstance(name, str) and name else self.socket_path
            self._listener = Listener(inherited, path, None)
        else:
            self._listener = bind_unix(self.socket_path, self._mode)
        try:
            self._aio_server = await loop.create_unix_server(
                # asyncio listens again on start: without the backlog it would be 100.
                lambda: Connection(self),
                sock=self._listener.sock,
                backlog=LISTEN_BACKLOG,
                start_serving=True,
            )
        except BaseException:
            unlink_if_ours(self._listener)
            self._listener.sock.close()
            raise
        self._started_at = time.monotonic()
        self._schedule_stats()
        logger.info(
            "accepting connections on %s%s", self.address, " (socket activation)" if inherited else ""
        )

    async def serve_forever(self) -> None:
        """Start if needed, then wait until :meth:`shutdown` has completed."""
        if self._aio_server is None:
            await self.start()
        assert self._closed is not None
        await self._closed.wait()

    async def shutdown(self) -> None:
        """Stop the server (LIFE-7).

        Stops accepting and reading, lets requests in progress finish and be
        answered within ``exit_timeout``, closes the connections, and removes
        the socket path if it is still the socket this server created. Does
        nothing if the server is not running. Afterwards :meth:`start` may be
        called again; handlers, options and lifetime counters are kept.
        """
        task = self._begin_shutdown()
        if task is not None:
            await asyncio.shield(task)

    def _begin_shutdown(self) -> asyncio.Task[None] | None:
        """The shutdown in progress, started if the server runs; None if it does not."""
        if self._shutdown_task is None and self._aio_server is not None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        return self._shutdown_task

    async def _shutdown(self) -> None:
        assert self._aio_server is not None and self._closed is not None
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.exit_timeout
        for timer in (self._stats_timer, self._trim_timer):
            if timer is not None:
                timer.cancel()
        self._aio_server.close()
        for conn in list(self._connections):
            conn._update_reading()
        logger.info(
            "shutting down: %d connections, %d requests in progress",
            len(self._connections),
            len(self._pending),
        )
        # Requests waiting for an in-flight slot start as others finish: wait
        # until none is left, not only for those in progress now.
        while self._pending and loop.time() < deadline:
            await asyncio.wait(
                set(self._pending),
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        # Replies are flushed by a graceful close; a peer that does not read is cut off.
        self.close_connections()
        while self._connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            conn.abort()
        for future in list(self._pending):
            future.cancel()
        if self._listener is not None and unlink_if_ours(self._listener):
            logger.debug("removed %s", self._listener.path)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        # Let aborted transports report connection_lost before the loop ends.
        await asyncio.sleep(0)
        # Back to the unstarted state, so that start() may be called again.
        self._executor = None
        self._aio_server = None
        self._listener = None
        self._stats_timer = self._trim_timer = self._next_roll = None
        self._closing = False
        self._shutdown_task = None
        self._closed.set()
        logger.info("stopped")

    def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until SIGTERM or SIGINT, then shut down cleanly. Blocks.

        Uses uvloop when it can be imported, else plain asyncio.

        Args:
            on_ready: called once the socket accepts connections.

        Raises:
            StartupError: see :meth:`start`.
        """

        async def main() -> None:
            await self.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
            try:
                if on_ready is not None:
                    on_ready()
                await self.serve_forever()
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())

    def _on_signal(self, sig: int) -> None:
        logger.info("received %s", signal.Signals(sig).name)
        self._begin_shutdown()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    with contextlib.suppress(ImportError):
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None
