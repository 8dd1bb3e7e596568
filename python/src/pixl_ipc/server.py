"""The reference asyncio server, a drop-in for the original's IPCServer component.

Theory of operation
-------------------
:class:`IPCServer` is what an application holds: the handler table
(:mod:`~pixl_ipc.routing`), the statistics (:mod:`~pixl_ipc.stats`), pushes,
and the lifecycle: start, shutdown, :meth:`IPCServer.run`, signals and
reload. It binds the listening socket (:mod:`~pixl_ipc._socket`: safe bind,
socket activation, safe removal) and hands it to an
:class:`~pixl_ipc.accept.Acceptor`, which takes connections off it within the
descriptor limit. Each accepted client is a
:class:`~pixl_ipc.connection.Connection`, which reads requests, calls handlers
and writes replies within the budgets (:mod:`~pixl_ipc.budget`); it sees the
server only through a :class:`~pixl_ipc.context.ServerContext`.

Sync handlers run on the event loop: one that blocks holds up every
connection. Make it ``async``, or register it with ``threaded=True`` to run it
in a thread pool.

Signals (:meth:`IPCServer.run` on the main thread): SIGTERM, SIGINT and
SIGQUIT shut down cleanly (LIFE-7); SIGHUP calls :meth:`IPCServer.reload`
(log files reopened, reload hooks run); SIGUSR1 logs the statistics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, TypeVar

from ._memory import release_free_memory
from ._peer import AccessRule, PeerCredentials
from ._socket import LISTEN_BACKLOG, Listener, activated_socket, bind_unix, unlink_if_ours
from .accept import Acceptor, fit_descriptor_limit
from .budget import DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_CONNECTIONS, ServerBudget
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
from .connection import Connection, Request, new_connection
from .context import ServerContext, ServerLimits
from .framing import DEFAULT_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES, encode_line
from .logs import ensure_logging, reopen_log_files, stats_message
from .protocol import push_message
from .routing import Router
from .stats import ServerStats

__all__ = ["Connection", "IPCServer", "PeerCredentials", "Request", "RequestHandler"]

logger = logging.getLogger("pixl_ipc.server")

# How long after large traffic the heap's free pages go back to the system: at
# most one malloc_trim a second, off the hot path.
_TRIM_DELAY = 1.0
#: How long a half-closed connection is kept by default, in seconds (LIFE-8).
DEFAULT_CLOSE_GRACE = 60.0
# SIGTERM, SIGINT and SIGQUIT drain and stop; SIGHUP and SIGUSR1 are logged.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_INFO_SIGNALS = (signal.SIGHUP, signal.SIGUSR1)

F = TypeVar("F", bound=Callable[..., Any])
#: A request handler: takes the :class:`Request`, returns the response data or
#: an awaitable of it.
RequestHandler = Callable[[Request], Any]


def _log_requested(message: str, *args: Any, extra: Mapping[str, Any] | None = None) -> None:
    """Log what an operator asked for (a signal) at whatever level the logger shows."""
    logger.log(max(logging.INFO, logger.getEffectiveLevel()), message, *args, extra=extra)


class IPCServer:
    """A pixl-ipc server on a Unix domain socket.

    Args:
        socket_path: where to listen, a string or path-like (ignored when
            started by systemd socket activation, which passes the socket).
        socket_chmod: octal mode string applied to the socket file after bind,
            before accepting (SEC-1); ``""`` or None leaves the umask's mode.
        exit_timeout: seconds that shutdown waits for requests in progress,
            and then for clients to close their half-closed connections.
        slow_threshold: responses slower than this many seconds count as slow.
        close_grace: seconds a half-closed connection is kept: after
            :meth:`close_connections` until the client closes too (LIFE-8), or
            after the client's half-close until its requests are answered
            (LIFE-2). Then it is closed anyway.
        max_message_bytes: the largest request line accepted (LIMIT-1, at
            least 16 MiB).
        max_inflight_per_connection: requests in progress on one connection
            before its reading pauses (LIMIT-5).
        max_connections: sockets held at once, refused and half-closed ones
            included; past it, the oldest half-closed connection is closed, or
            the newcomer gets ``server_busy`` (LIMIT-7). The soft descriptor
            limit is raised to fit it at start.
        max_buffered_bytes: bytes of unfinished request lines and unsent
            answers held for all peers together; a line that would pass it
            gets ``server_busy`` (LIMIT-7).
        max_threads: the size of the thread pool that runs handlers
            registered with ``threaded=True``; None takes
            :class:`concurrent.futures.ThreadPoolExecutor`'s default
            (``min(32, CPU count + 4)``).
        allowed_uids: if given (or ``allowed_gids`` is), only peers whose
            kernel-verified uid is listed, or whose gid or a supplementary
            group is in ``allowed_gids``, are served (SEC-2).
        allowed_gids: see ``allowed_uids``.
        name: the server name reported by ``/ipcserver/info``.
        version: the server version reported by ``/ipcserver/info``; the
            package's version by default.
        log_stats_interval: ``"second"``, ``"minute"``, ``"hour"`` or ``"day"``:
            how often the counters roll over and are logged.

    Raises:
        ConfigError: an option is invalid; the message names it.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        # socket
        socket_chmod: str | None = "777",
        # timeouts
        exit_timeout: float = 2.0,
        slow_threshold: float = 0.020,
        close_grace: float = DEFAULT_CLOSE_GRACE,
        # limits
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_inflight_per_connection: int = 1024,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
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
        self.close_grace = check_seconds("close_grace", close_grace)
        self.max_message_bytes = check_int("max_message_bytes", max_message_bytes, MIN_MAX_MESSAGE_BYTES)
        self.max_inflight_per_connection = check_int(
            "max_inflight_per_connection", max_inflight_per_connection, 1
        )
        self.max_connections = check_int("max_connections", max_connections, 1)
        self.max_buffered_bytes = check_int("max_buffered_bytes", max_buffered_bytes, 1)
        self.max_threads = None if max_threads is None else check_int("max_threads", max_threads, 1)
        self.allowed_uids = check_id_set("allowed_uids", allowed_uids)
        self.allowed_gids = check_id_set("allowed_gids", allowed_gids)
        self.name = check_str("name", name)
        if version is None:
            from . import __version__ as version
        self.version = check_str("version", version)
        self.log_stats_interval = check_interval("log_stats_interval", log_stats_interval)

        self._router = Router()
        self._stats = ServerStats(self.slow_threshold)
        self._ctx = ServerContext(
            router=self._router,
            stats=self._stats,
            budget=ServerBudget(self.max_connections, self.max_buffered_bytes),
            access=AccessRule(self.allowed_uids, self.allowed_gids),
            limits=ServerLimits(self.max_message_bytes, self.max_inflight_per_connection, self.close_grace),
            executor=self._make_executor,
            on_large_read=self._large_read,
        )
        self._listener: Listener | None = None
        self._stats_timer: asyncio.TimerHandle | None = None
        self._trim_timer: asyncio.TimerHandle | None = None
        self._acceptor = Acceptor(self._ctx, self._make_connection)
        self._next_roll: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._on_stopping: Callable[[], None] | None = None
        self._reload_hooks: list[Callable[[], object]] = []
        register_builtins(self)
        self._builtin_routes = len(self._router)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> IPCServer:
        """Build a server from the original's ``IPCServer`` config block.

        Args:
            config: the block: ``socket_path``, ``exit_timeout`` (ms),
                ``socket_chmod``, ``log_stats_interval``, ``slow_threshold_ms``,
                and this kit's ``close_grace_ms``, ``max_message_bytes``,
                ``max_inflight_per_connection``, ``max_connections``,
                ``max_buffered_bytes``, ``max_threads``, ``allowed_uids``,
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
                ``handler_error`` (ERR-3) and is logged. If the client is gone
                before it finishes, an async handler is cancelled and a
                threaded one's result dropped (LIFE-5).
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
        self._ctx.default_handler = handler

    @property
    def handler_names(self) -> list[str]:
        """Registered handler names, in match order."""
        return self._router.names

    def replace_handlers(self, register: Callable[[IPCServer], object]) -> None:
        """Replace every handler added after the built-ins with those that ``register(self)`` adds.

        The built-ins stay first, and the default handler is reset before
        ``register`` runs. Call it on the event loop's thread (a reload hook
        runs there): no request is routed while the table is rebuilt.

        Args:
            register: called with this server; adds handlers as a handler
                module's ``register(server)`` does.

        Raises:
            Exception: what ``register`` raised; the handlers are then left as they were.
        """
        routes, default = self._router.routes, self._ctx.default_handler
        self._router.replace(routes[: self._builtin_routes])
        self._ctx.default_handler = None
        try:
            register(self)
        except BaseException:
            self._router.replace(routes)
            self._ctx.default_handler = default
            raise

    def set_allowed_peers(
        self, allowed_uids: Iterable[int] | None = None, allowed_gids: Iterable[int] | None = None
    ) -> None:
        """Change which peers are served (SEC-2), as the constructor's options of the same names.

        Connections open already are not affected; the next ones are checked
        against the new lists.

        Raises:
            ConfigError: a list holds something other than ids.
        """
        uids = check_id_set("allowed_uids", allowed_uids)
        gids = check_id_set("allowed_gids", allowed_gids)
        self.allowed_uids, self.allowed_gids = uids, gids
        self._ctx.access = AccessRule(uids, gids)

    # --- statistics -------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """The statistics, with the original's keys first.

        ``connections`` and ``handlers`` are current; ``requests`` (request
        records received), ``clientOpen``, ``clientClose``, ``maxConnections``,
        ``duration`` (ms), ``slowResponses`` and ``streamBackpressure`` are the
        counters of the last completed ``log_stats_interval``, as in the
        original. The other keys are this kit's and count since start:
        ``totalRequests``, ``badMessages``, ``oversizeMessages``,
        ``handlerErrors``, ``accessDenied``, ``serverBusy``, ``readPauses``,
        ``droppedResponses``, ``outOfMemory``, ..., plus ``inflight`` and
        ``uptime`` (seconds).
        """
        ctx = self._ctx
        return self._stats.report(
            connections=len(ctx.connections),
            handlers=len(self._router),
            inflight=len(ctx.tasks),
            interval=self.log_stats_interval,
        )

    def _roll_stats(self) -> None:
        """End the current stats interval: its counters become the reported ones."""
        self._stats.roll(len(self._ctx.connections))
        message, extra = stats_message(self.get_stats())
        logger.info(message, extra=extra)

    def _on_stats_timer(self) -> None:
        self._roll_stats()
        self._schedule_stats()

    def _schedule_stats(self) -> None:
        if self._loop is None or self._ctx.closing:
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
        """The connections open now (half-closed ones included)."""
        return frozenset(self._ctx.connections)

    def close_connections(self) -> None:
        """Half-close every client connection, as the original's ``socket.end()`` (LIFE-8).

        Replies already written are flushed, then end of stream is sent; each
        connection closes when its client closes, or after ``close_grace``.
        """
        for conn in list(self._ctx.connections):
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
        return sum(1 for conn in list(self._ctx.connections) if conn.write_line(line))

    def _make_connection(self) -> Connection:
        return new_connection(self._ctx)

    def _make_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_threads, thread_name_prefix="pixl-ipc"
        )

    def _large_read(self) -> None:
        """Note large traffic: free heap pages are returned to the system soon after."""
        if self._trim_timer is None and self._loop is not None:
            self._trim_timer = self._loop.call_later(_TRIM_DELAY, self._trim_memory)

    def _trim_memory(self) -> None:
        self._trim_timer = None
        release_free_memory()

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
        if self._listener is not None:
            raise RuntimeError("the server is running already")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._closed = asyncio.Event()
        fit_descriptor_limit(self._ctx.budget, self.max_connections)
        inherited = activated_socket()
        early: list[socket.socket] = []
        if inherited is not None:
            name = inherited.getsockname()
            path = name if isinstance(name, str) and name else self.socket_path
            listener = Listener(inherited, path, None)
            # It may have been set up with a smaller backlog (LIMIT-6).
            inherited.listen(LISTEN_BACKLOG)
        else:
            listener, early = bind_unix(self.socket_path, self._mode)
        try:
            self._acceptor.start(listener.sock, early)
        except BaseException:
            unlink_if_ours(listener)
            for peer in early:
                peer.close()
            listener.sock.close()
            raise
        self._listener = listener
        self._stats.restart_clock()
        self._schedule_stats()
        logger.info(
            "accepting connections on %s%s", self.address, " (socket activation)" if inherited else ""
        )

    async def serve_forever(self) -> None:
        """Start if needed, then wait until :meth:`shutdown` has completed."""
        if self._listener is None:
            await self.start()
        assert self._closed is not None
        await self._closed.wait()

    async def shutdown(self) -> None:
        """Stop the server (LIFE-7).

        Stops accepting and reading, lets requests in progress finish and be
        answered within ``exit_timeout``, half-closes the connections and
        waits, within the same timeout, for the clients to close them; then
        closes what is left and removes the socket path if it is still the
        socket this server created. Does nothing if the server is not
        running. Afterwards :meth:`start` may be called again; handlers,
        options and lifetime counters are kept.
        """
        task = self._begin_shutdown()
        if task is not None:
            await asyncio.shield(task)

    def _begin_shutdown(self) -> asyncio.Task[None] | None:
        """The shutdown in progress, started if the server runs; None if it does not."""
        if self._shutdown_task is None and self._listener is not None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        return self._shutdown_task

    async def _shutdown(self) -> None:
        assert self._listener is not None and self._closed is not None and self._loop is not None
        if self._on_stopping is not None:
            try:
                self._on_stopping()
            except Exception:
                logger.exception("on_stopping failed; shutting down all the same")
        ctx = self._ctx
        ctx.closing = True
        loop = self._loop
        deadline = loop.time() + self.exit_timeout
        for timer in (self._stats_timer, self._trim_timer):
            if timer is not None:
                timer.cancel()
        # Stop accepting: new clients are refused from now on.
        listener = self._listener
        self._acceptor.stop()
        listener.sock.close()
        for conn in list(ctx.connections):
            conn.drain()
        logger.info(
            "shutting down: %d connections, %d requests in progress",
            len(ctx.connections),
            len(ctx.tasks),
        )
        # Requests read are answered, those waiting for an in-flight slot included.
        while loop.time() < deadline and any(conn.has_work for conn in ctx.connections):
            await asyncio.sleep(0.01)
        # LIFE-8: replies are flushed, then end of stream; clients close in their time.
        self.close_connections()
        while ctx.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(ctx.connections):
            conn.abort()
        while ctx.evict_oldest():
            pass  # refused peers still reading their error
        for future in list(ctx.tasks):
            future.cancel()
        if unlink_if_ours(listener):
            logger.debug("removed %s", listener.path)
        executor = ctx.take_executor()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        # Let aborted transports report connection_lost before the loop ends.
        await asyncio.sleep(0)
        # Back to the unstarted state, so that start() may be called again.
        self._listener = None
        self._stats_timer = self._trim_timer = self._next_roll = None
        ctx.closing = False
        self._shutdown_task = None
        self._closed.set()
        logger.info("stopped")

    async def __aenter__(self) -> Self:
        """``async with IPCServer(...) as server:`` starts it (:meth:`start`)."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block shuts it down (:meth:`shutdown`)."""
        await self.shutdown()

    def run(
        self,
        *,
        on_ready: Callable[[], None] | None = None,
        on_stopping: Callable[[], None] | None = None,
    ) -> None:
        """Serve until a stop signal or :meth:`stop`, then shut down cleanly. Blocks.

        Configures logging to stderr if the application has not configured
        any (:func:`~pixl_ipc.logs.ensure_logging`), so that a failing
        handler's traceback is seen. On the main thread it handles signals:
        SIGTERM, SIGINT and SIGQUIT shut down, SIGHUP calls :meth:`reload`,
        SIGUSR1 logs the statistics. On any other thread it installs no signal
        handler, and the program ends it with :meth:`stop`. However it ends,
        the socket file it created is removed. Uses uvloop when it can be
        imported, else plain asyncio.

        Args:
            on_ready: called once the socket accepts connections.
            on_stopping: called once the shutdown begins (a stop signal,
                :meth:`stop`), before accepting stops and the connections
                are drained and closed.

        Raises:
            StartupError: see :meth:`start`.
        """
        ensure_logging()
        on_main_thread = threading.current_thread() is threading.main_thread()
        signals = (*_STOP_SIGNALS, *_INFO_SIGNALS) if on_main_thread else ()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            # Before the socket exists, so that no signal can end the process
            # and leave it behind.
            for sig in signals:
                loop.add_signal_handler(sig, self._on_signal, sig)
            try:
                await self.start()
                if on_ready is not None:
                    on_ready()
                if self._stop_requested:
                    self._begin_shutdown()
                await self.serve_forever()
            finally:
                for sig in signals:
                    loop.remove_signal_handler(sig)
                # If on_ready or the loop failed: the socket still goes.
                await self.shutdown()

        self._on_stopping = on_stopping
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(main())
        finally:
            self._stop_requested = False
            self._on_stopping = None

    def stop(self) -> None:
        """Ask the server to shut down; safe to call from any thread.

        It returns at once; :meth:`run` (or :meth:`serve_forever`) returns
        once the shutdown is complete. Called before :meth:`run` has started
        the server, it makes the run shut down as soon as it has started.
        """
        self._stop_requested = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._begin_shutdown)

    def add_reload_hook(self, hook: Callable[[], object]) -> None:
        """Have :meth:`reload` (SIGHUP under :meth:`run`) call ``hook()``, on the event loop's thread."""
        if not callable(hook):
            raise TypeError("the reload hook is not callable")
        self._reload_hooks.append(hook)

    def reload(self) -> str:
        """What SIGHUP does: reopen the log files and call the reload hooks.

        Log files are those of :func:`pixl_ipc.logs.configure_logging`
        (``pixl-ipc serve --log-file``). A hook that raises is logged with its
        traceback; the others still run and the server goes on serving.

        Returns:
            What was done, in words, for the log.
        """
        reopened = reopen_log_files()
        failed = 0
        for hook in list(self._reload_hooks):
            try:
                hook()
            except Exception:
                failed += 1
                logger.exception("a reload hook failed; what it reloads is left as it was")
        if not reopened and not self._reload_hooks:
            return f"nothing to reload; still serving on {self.address}"
        done = f"{reopened} log file(s) reopened, {len(self._reload_hooks)} reload hook(s) called"
        return done + (f", {failed} failed" if failed else "")

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if sig == signal.SIGHUP:
            _log_requested("received SIGHUP: %s", self.reload())
        elif sig == signal.SIGUSR1:
            message, extra = stats_message(self.get_stats(), prefix="received SIGUSR1: stats: ")
            _log_requested(message, extra=extra)
        else:
            logger.info("received %s: shutting down", name)
            self._stop_requested = True
            self._begin_shutdown()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    with contextlib.suppress(ImportError):
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None
