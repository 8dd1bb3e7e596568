"""Handlers that the PHP client tests add to the reference server (--handlers)."""

from __future__ import annotations

from typing import Any


def register(server: Any) -> None:
    """Add /test/push and /test/request to ``server``."""

    def push_then_answer(request: Any) -> dict[str, int]:
        # Pushes are written before the response: the client must skip them.
        count = int((request.data or {}).get("count", 1))
        for index in range(count):
            request.connection.push({"push": index})
        return {"pushed": count}

    def whole_request(request: Any) -> Any:
        # The request as the server read it, to check what the client wrote.
        return request.raw

    server.add_uri_handler("/test/push", "push", push_then_answer)
    server.add_uri_handler("/test/request", "request", whole_request)
