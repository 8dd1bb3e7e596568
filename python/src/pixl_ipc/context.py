"""What a connection sees of its server: one small object instead of the server itself.

:class:`ServerContext` holds the handler table, the default handler, the
thread pool, the access rule, the budgets, the statistics and the registry of
connections. :class:`~pixl_ipc.server.IPCServer` builds one and hands it to
every :class:`~pixl_ipc.connection.Connection`; a connection never touches the
server. The registry keeps the connections that are half-closed (by either
side) or being refused in the order they got there, so that the oldest are the
first to go when the connection budget is short (LIMIT-7).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, Protocol

from ._peer import AccessRule, PeerCredentials
from .budget import ServerBudget
from .errors import ErrorCode
from .routing import Router
from .stats import ServerStats

__all__ = ["Member", "ServerContext", "ServerLimits"]

#: A request handler: takes the request, returns the response data or an awaitable of it.
Handler = Callable[[Any], Any]


class Member(Protocol):
    """What the registry needs of a connection."""

    def abort(self) -> None:
        """Close at once, dropping what is unsent."""


class ServerLimits:
    """The per-connection limits and times of a server (LIMIT-1, LIMIT-5, LIFE-2, LIFE-8).

    Attributes:
        max_message_bytes: the largest request line accepted.
        max_inflight: requests in progress on one connection before its reading pauses.
        close_grace: seconds a half-closed connection is kept before it is closed anyway.
    """

    __slots__ = ("close_grace", "max_inflight", "max_message_bytes")

    def __init__(self, max_message_bytes: int, max_inflight: int, close_grace: float) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_inflight = max_inflight
        self.close_grace = close_grace


class ServerContext:
    """The parts of a server its connections use.

    Args:
        router: the handler table.
        stats: the counters.
        budget: the connection and byte budgets (LIMIT-7).
        access: which peers are served (SEC-2).
        limits: the per-connection limits.
        executor: makes the thread pool of ``threaded=True`` handlers, on first use.
        on_large_read: called after a large read (the server trims its heap soon after).

    Attributes:
        default_handler: answers what no route matches (None: ``no_handler_found``).
        closing: True while the server shuts down: connections stop reading.
        connections: the connections being served, in the order they came.
        tasks: the handlers in progress (async and threaded), for shutdown.
        read_buffer: the buffer that connections on plain asyncio read into
            (see :class:`~pixl_ipc.connection.BufferedConnection`), or None.
    """

    __slots__ = (
        "_executor",
        "_lingering",
        "_make_executor",
        "_sockets",
        "access",
        "budget",
        "closing",
        "connections",
        "default_handler",
        "limits",
        "on_large_read",
        "read_buffer",
        "router",
        "stats",
        "tasks",
    )

    def __init__(
        self,
        *,
        router: Router,
        stats: ServerStats,
        budget: ServerBudget,
        access: AccessRule,
        limits: ServerLimits,
        executor: Callable[[], concurrent.futures.Executor],
        on_large_read: Callable[[], None],
    ) -> None:
        self.router = router
        self.stats = stats
        self.budget = budget
        self.access = access
        self.limits = limits
        self._make_executor = executor
        self._executor: concurrent.futures.Executor | None = None
        self.on_large_read = on_large_read
        self.default_handler: Handler | None = None
        self.closing = False
        self.connections: dict[Any, None] = {}
        self.tasks: set[Any] = set()
        # Where connections on plain asyncio read into, one read at a time
        # (they share the loop's thread); made on first use.
        self.read_buffer: memoryview | None = None
        # Every socket counted in the budget, and those of them half-closed or
        # being refused, oldest first (dicts keep insertion order).
        self._sockets: dict[Member, None] = {}
        self._lingering: dict[Member, None] = {}

    def executor(self) -> concurrent.futures.Executor:
        """The thread pool of ``threaded=True`` handlers, made on first use."""
        if self._executor is None:
            self._executor = self._make_executor()
        return self._executor

    def take_executor(self) -> concurrent.futures.Executor | None:
        """Hand over the thread pool, if one was made, for the server to shut it down."""
        executor, self._executor = self._executor, None
        return executor

    # --- the registry --------------------------------------------------------------

    def admit(self, conn: Member, peer: PeerCredentials) -> tuple[ErrorCode, str] | None:
        """Take a new socket into the connection budget; say why it is refused, if it is.

        The socket is counted whatever the answer, until :meth:`release`.
        When the budget is full, the oldest half-closed connection is closed
        to make room; only when there is none is the newcomer refused.

        Returns:
            None to serve the peer, or the error code and message to refuse it with.
        """
        budget = self.budget
        if budget.connections_full:
            self.evict_oldest()
        self._sockets[conn] = None
        budget.connections = len(self._sockets)
        if not self.access.allows(peer):
            self.stats.record_access_denied()
            return ErrorCode.ACCESS_DENIED, "access denied: this peer is not allowed"
        if budget.connections > budget.max_connections:
            self.stats.record_busy()
            return ErrorCode.SERVER_BUSY, "server busy: too many connections, try again later"
        return None

    def opened(self, conn: Member) -> None:
        """An admitted connection is now served."""
        self.connections[conn] = None
        self.stats.record_open(len(self.connections))

    def linger(self, conn: Member) -> None:
        """``conn`` is half-closed or being refused: among the first to go when room is short."""
        if conn in self._sockets:
            self._lingering[conn] = None

    def release(self, conn: Member) -> None:
        """``conn``'s socket is closed or about to be: take it out of the registry and the budget."""
        if self._sockets.pop(conn, 0) is None:
            self.budget.connections = len(self._sockets)
            self._lingering.pop(conn, None)
            if self.connections.pop(conn, 0) is None:
                self.stats.record_close()

    def evict_oldest(self) -> bool:
        """Close the connection that has been half-closed the longest; False if there is none."""
        for conn in self._lingering:
            self.release(conn)
            conn.abort()
            return True
        return False
