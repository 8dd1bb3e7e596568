"""Handlers that the PHP client tests add to the reference server (--handlers)."""

from __future__ import annotations

import asyncio
from typing import Any

# Long enough for the answer to be written before the connections end.
CLOSE_DELAY_SECONDS = 0.05


def register(server: Any) -> None:
    """Add the /test/... handlers to ``server``."""

    def push_then_answer(request: Any) -> dict[str, int]:
        # Pushes are written before the response: the client must skip them.
        count = int((request.data or {}).get("count", 1))
        for index in range(count):
            request.connection.push({"push": index})
        return {"pushed": count}

    def whole_request(request: Any) -> Any:
        # The request as the server read it, to check what the client wrote.
        return request.raw

    def peer(request: Any) -> dict[str, Any]:
        # The kernel's word on which process opened this connection.
        return {"pid": request.peer.pid}

    def close_connections(request: Any) -> dict[str, bool]:
        # Answer, then end every client connection, as the original's
        # closeConnections() does when an application calls it.
        asyncio.get_running_loop().call_later(
            CLOSE_DELAY_SECONDS, server.close_connections
        )
        return {"closing": True}

    server.add_uri_handler("/test/push", "push", push_then_answer)
    server.add_uri_handler("/test/request", "request", whole_request)
    server.add_uri_handler("/test/peer", "peer", peer)
    server.add_uri_handler(
        "/test/close_connections", "close_connections", close_connections
    )
