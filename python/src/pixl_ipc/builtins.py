"""The built-in handlers under ``/ipcserver/`` (BUILTIN-1 to BUILTIN-5).

They are registered by :class:`~pixl_ipc.server.IPCServer` before any
application handler, so they win (BUILTIN-3, ROUTE-1).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ._js import js_falsy, js_number
from .errors import ErrorCode
from .protocol import NO_DATA, PROTOCOL_VERSION

if TYPE_CHECKING:
    from .server import IPCServer, Request

__all__ = ["ECHO_URI", "EXTENSIONS", "INFO_URI", "STATS_URI", "DELAY_URI", "register_builtins"]

ECHO_URI = "/ipcserver/test/echo"
DELAY_URI = "/ipcserver/test/delay"
INFO_URI = "/ipcserver/info"
STATS_URI = "/ipcserver/stats"
# BUILTIN-1, BUILTIN-2: the original registers echo and delay as prefixes, so
# "/ipcserver/test/echo2" and "/ipcserver/test/delayX" reach them too.
_ECHO_PATTERN = re.compile("^" + re.escape(ECHO_URI))
_DELAY_PATTERN = re.compile("^" + re.escape(DELAY_URI))

#: What ``/ipcserver/info`` lists as this server's extensions (BUILTIN-4, VER-2).
EXTENSIONS = (
    str(ErrorCode.BAD_JSON),
    str(ErrorCode.MESSAGE_TOO_LARGE),
    str(ErrorCode.HANDLER_ERROR),
    str(ErrorCode.ACCESS_DENIED),
    str(ErrorCode.SERVER_BUSY),
    INFO_URI,
    STATS_URI,
    "push",
)

#: Node's setTimeout waits about 1 ms instead of a delay under 1 ms, over this
#: or not a number (BUILTIN-2).
TIMEOUT_MAX_MS = 2**31 - 1


def echo(request: Request) -> Any:
    """BUILTIN-1: the request's data as it came; no ``data`` member when it had none."""
    data = request.data
    if data is None and "data" not in request.raw:
        return NO_DATA
    return data


async def _sleep_then(delay_ms: float, value: Any) -> dict[str, Any]:
    await asyncio.sleep(delay_ms / 1000.0)
    return {"delay": value}


def delay(request: Request) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    """BUILTIN-2: answer ``{"delay": <data.delay as sent>}`` after setTimeout's wait.

    A falsy ``data.delay`` answers ``{"delay": 0}`` at once, without a task;
    so does a request without ``data`` or with ``data`` null, on which the
    original dies (PROTOCOL.md, differences from the original).
    """
    data = request.data
    value = data.get("delay") if type(data) is dict else None
    if js_falsy(value):
        return {"delay": 0}
    delay_ms = js_number(value)
    if not 1 <= delay_ms <= TIMEOUT_MAX_MS:  # NaN fails this test too
        delay_ms = 1
    return _sleep_then(delay_ms, value)


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
    server.add_uri_handler(_ECHO_PATTERN, "echo", echo)
    server.add_uri_handler(_DELAY_PATTERN, "delay", delay)
    server.add_uri_handler(INFO_URI, "info", _info(server))
    server.add_uri_handler(STATS_URI, "stats", _stats(server))
