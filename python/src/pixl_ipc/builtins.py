"""The built-in handlers under ``/ipcserver/`` (BUILTIN-1 to BUILTIN-5).

They are registered by :class:`~pixl_ipc.server.IPCServer` before any
application handler, so they win (BUILTIN-3, ROUTE-1).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .errors import ErrorCode
from .protocol import PROTOCOL_VERSION

if TYPE_CHECKING:
    from .server import IPCServer, Request

__all__ = ["ECHO_URI", "EXTENSIONS", "INFO_URI", "STATS_URI", "DELAY_URI", "register_builtins"]

ECHO_URI = "/ipcserver/test/echo"
DELAY_URI = "/ipcserver/test/delay"
INFO_URI = "/ipcserver/info"
STATS_URI = "/ipcserver/stats"

#: What ``/ipcserver/info`` lists as this server's extensions (BUILTIN-4, VER-2).
EXTENSIONS = (
    str(ErrorCode.BAD_JSON),
    str(ErrorCode.BAD_REQUEST),
    str(ErrorCode.MESSAGE_TOO_LARGE),
    str(ErrorCode.HANDLER_ERROR),
    str(ErrorCode.ACCESS_DENIED),
    INFO_URI,
    STATS_URI,
    "push",
)

# asyncio timers overflow far beyond this; no client waits a year for an answer.
_MAX_DELAY_MS = 365 * 86400 * 1000


def echo(request: Request) -> Any:
    """BUILTIN-1: the request's data, unchanged (None when absent)."""
    return request.data


async def _sleep_then(delay_ms: float) -> dict[str, Any]:
    await asyncio.sleep(min(delay_ms, _MAX_DELAY_MS) / 1000.0)
    return {"delay": delay_ms}


def delay(request: Request) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    """BUILTIN-2: wait ``data.delay`` ms, then answer ``{"delay": N}``.

    An absent, zero or invalid delay answers ``{"delay": 0}`` at once, without
    a task.
    """
    data = request.data
    value = data.get("delay") if isinstance(data, dict) else None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        return {"delay": 0}
    return _sleep_then(value)


def _info(server: IPCServer) -> Any:
    def info(request: Request) -> dict[str, Any]:
        """BUILTIN-4: protocol version, server identity, limits, handlers, extensions."""
        return {
            "protocol": PROTOCOL_VERSION,
            "server": {"name": server.name, "version": server.version},
            "limits": {
                "max_message_bytes": server.max_message_bytes,
                "max_inflight_per_connection": server.max_inflight_per_connection,
            },
            "handlers": server.handler_names,
            "extensions": list(EXTENSIONS),
        }

    return info


def _stats(server: IPCServer) -> Any:
    def stats(request: Request) -> dict[str, Any]:
        """BUILTIN-5: :meth:`~pixl_ipc.server.IPCServer.get_stats`."""
        return server.get_stats()

    return stats


def register_builtins(server: IPCServer) -> None:
    """Register the built-ins on ``server``, in the original's order (BUILTIN-3)."""
    server.add_uri_handler(ECHO_URI, "echo", echo)
    server.add_uri_handler(DELAY_URI, "delay", delay)
    server.add_uri_handler(INFO_URI, "info", _info(server))
    server.add_uri_handler(STATS_URI, "stats", _stats(server))
