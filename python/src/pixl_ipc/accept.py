"""Taking connections off the listening socket, within the descriptor limit (LIMIT-7).

:class:`Acceptor` accepts connections itself, a batch at a time, instead of
leaving it to the event loop: so that running out of descriptors (EMFILE and
the like) first closes the oldest half-closed connection to make room, and
otherwise is logged at most once a second while accepting rests and tries
again; newcomers wait in the listen backlog meanwhile. Each accepted socket
becomes a connection of the server through the factory it is given.
:func:`fit_descriptor_limit` raises the soft descriptor limit to fit the
connection budget at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ._logging import Throttle
from ._socket import raise_descriptor_limit
from .budget import ServerBudget
from .context import ServerContext

__all__ = ["Acceptor", "fit_descriptor_limit"]

logger = logging.getLogger("pixl_ipc.server")

# Descriptors kept for the rest of the process (listening socket, logs,
# handler modules), as Redis keeps 32 besides its clients.
_RESERVED_DESCRIPTORS = 64
# Connections accepted in one go before the loop serves the others.
_ACCEPT_BATCH = 64
# Out of descriptors: how long accepting rests before it tries again.
_ACCEPT_RETRY = 0.1
# accept() errors that mean "no descriptor or memory for one more".
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def fit_descriptor_limit(budget: ServerBudget, max_connections: int) -> None:
    """Raise the soft descriptor limit to fit ``max_connections``, or shrink the budget to fit the limit."""
    wanted = max_connections + _RESERVED_DESCRIPTORS
    limit = raise_descriptor_limit(wanted)
    budget.max_connections = max_connections
    if limit < wanted:
        budget.max_connections = max(1, limit - _RESERVED_DESCRIPTORS)
        logger.warning(
            "max_connections %d needs %d descriptors but the limit is %d: serving at most %d connections",
            max_connections,
            wanted,
            limit,
            budget.max_connections,
        )


class Acceptor:
    """Accepts the connections of one listening socket on the running event loop.

    Args:
        context: the server's context: its registry of connections, and
            whether it is closing.
        make_connection: builds the protocol object of an accepted socket.
    """

    def __init__(self, context: ServerContext, make_connection: Callable[[], asyncio.Protocol]) -> None:
        self._ctx = context
        self._make_connection = make_connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._retry: asyncio.TimerHandle | None = None
        # Tasks setting up accepted sockets, held so that they are not collected.
        self._pending: set[asyncio.Task[Any]] = set()
        self._logged = Throttle()

    def start(self, sock: socket.socket, early: Iterable[socket.socket] = ()) -> None:
        """Accept on ``sock`` (listening, non-blocking) from now on; call it on the event loop.

        ``early`` are connections accepted from ``sock`` already, served first.
        """
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._accept_ready)
        self._loop, self._sock = loop, sock
        for peer in early:
            self._serve(peer)

    def stop(self) -> None:
        """Accept no more; the listening socket is left to its owner to close."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._loop is not None and self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._sock.fileno())
        self._loop = self._sock = None

    def _accept_ready(self) -> None:
        """Accept the connections waiting, a batch at a time."""
        listening = self._sock
        assert listening is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._out_of_descriptors(exc)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    logger.error("accepting a connection failed: %s", exc)
                return
            self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
        """Set up the connection of an accepted socket."""
        assert self._loop is not None
        sock.setblocking(False)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._make_connection, sock))
        self._pending.add(task)
        task.add_done_callback(functools.partial(self._accepted, sock))

    def _accepted(self, sock: socket.socket, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        with contextlib.suppress(OSError):
            sock.close()
        logger.error("could not set up an accepted connection: %s", task.exception())

    def _out_of_descriptors(self, exc: OSError) -> None:
        """EMFILE and the like: make room by closing a half-closed connection, or rest a while."""
        loop, listening = self._loop, self._sock
        assert loop is not None and listening is not None
        if self._ctx.evict_oldest():
            return  # its descriptor is free now: the listening socket is still readable
        suppressed = self._logged.ready()
        if suppressed is not None:
            logger.error(
                "cannot accept connections: %s (%d open); trying again every %g s%s",
                exc.strerror,
                len(self._ctx.connections),
                _ACCEPT_RETRY,
                f"; {suppressed} more failures since the last message" if suppressed else "",
            )
        loop.remove_reader(listening.fileno())
        self._retry = loop.call_later(_ACCEPT_RETRY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if self._loop is not None and self._sock is not None and not self._ctx.closing:
            self._loop.add_reader(self._sock.fileno(), self._accept_ready)
