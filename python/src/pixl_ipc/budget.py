"""Server-wide budgets (LIMIT-7): how many connections, how many bytes held for them.

Per-connection bounds (LIMIT-1, LIMIT-5) do not bound the server: many
connections each within their own limits can still exhaust the machine.
:class:`ServerBudget` is shared by every connection of a server. It counts

- the sockets the server holds, served or not (the connection budget), and
- the bytes it holds for its peers: unfinished request lines, and answers
  not yet written to the socket (the byte budget).

No I/O here: the connections reserve and release, and decide what to do when
a reservation fails (answer ``server_busy``, stop reading).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFAULT_MAX_BUFFERED_BYTES", "DEFAULT_MAX_CONNECTIONS", "ServerBudget"]

#: Connections served at once by default: Redis' ``maxclients`` default. An
#: idle connection costs the server about 2 KiB, so 10,000 fit a small
#: machine; the descriptor limit is raised to match at start.
DEFAULT_MAX_CONNECTIONS = 10_000
#: Bytes held for peers by default: two messages of the default 64 MiB limit
#: in flight at once (a line is given back before its answer is counted), and
#: 64 MiB for everyone else. Parsing a message costs about as much again,
#: outside the budget.
DEFAULT_MAX_BUFFERED_BYTES = 192 * 1024 * 1024


class ServerBudget:
    """The connection and byte budgets of one server.

    Args:
        max_connections: sockets held at once, including those being refused
            or half-closed.
        max_buffered_bytes: bytes of unfinished request lines and unsent
            answers held at once.

    Attributes:
        connections: sockets held now.
        buffered: bytes held now.
    """

    __slots__ = ("_waiters", "buffered", "connections", "max_buffered_bytes", "max_connections")

    def __init__(self, max_connections: int, max_buffered_bytes: int) -> None:
        self.max_connections = max_connections
        self.max_buffered_bytes = max_buffered_bytes
        self.connections = 0
        self.buffered = 0
        self._waiters: dict[object, Callable[[], None]] = {}

    # --- connections -------------------------------------------------------------

    @property
    def connections_full(self) -> bool:
        """True when one more socket would pass the connection budget."""
        return self.connections >= self.max_connections

    # --- bytes ---------------------------------------------------------------------

    @property
    def spent(self) -> bool:
        """True while the bytes held reach the byte budget."""
        return self.buffered >= self.max_buffered_bytes

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of input if they fit in the budget.

        Returns:
            False, taking nothing, when they do not fit.
        """
        if self.buffered + size > self.max_buffered_bytes:
            return False
        self.buffered += size
        return True

    def add(self, size: int) -> None:
        """Count ``size`` bytes of output: answers are never refused, but they count."""
        self.buffered += size

    def release(self, size: int) -> None:
        """Give back ``size`` bytes; wake those waiting once the budget is no longer spent."""
        self.buffered -= size
        if self._waiters and self.buffered < self.max_buffered_bytes:
            waiters = list(self._waiters.values())
            self._waiters.clear()
            for wake in waiters:
                wake()

    def wait(self, key: object, wake: Callable[[], None]) -> None:
        """Call ``wake()`` once, when the budget is no longer spent (one entry per ``key``)."""
        self._waiters[key] = wake

    def forget(self, key: object) -> None:
        """Cancel :meth:`wait` for ``key``."""
        self._waiters.pop(key, None)
