"""Application handlers the soak loads into its server (``pixl-ipc serve --handlers``).

They put the server's other paths under the same load as the built-ins: a
threaded handler, an async one, one that fails with a detail that must not
reach the wire (ERR-5), and one that pushes to its own connection (PUSH-1).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

#: Text of the failing handler's exception; the test checks it never reaches a client.
SECRET = "secret-detail-/etc/pixl-soak"


def register(server: Any) -> None:
    """Add the soak's handlers to ``server`` (called by ``pixl-ipc serve --handlers``)."""

    def threaded(request: Any) -> dict[str, Any]:
        time.sleep(float(request.data.get("sleep", 0)))
        return {"token": request.data["token"], "via": "thread"}

    async def coroutine(request: Any) -> dict[str, Any]:
        await asyncio.sleep(float(request.data.get("sleep", 0)))
        return {"token": request.data["token"], "via": "async"}

    def fail(request: Any) -> None:
        raise ValueError(f"{SECRET} {request.data['token']}")

    def push(request: Any) -> dict[str, Any]:
        request.connection.push({"push": request.data["token"]})
        return {"token": request.data["token"], "via": "push"}

    marks: list[Any] = []

    def mark(request: Any) -> int:
        # Lets a test prove that a request was (or was not) handled.
        marks.append(request.data)
        return len(marks)

    def count(request: Any) -> list[Any]:
        return marks

    server.add_uri_handler("/soak/mark", "soak-mark", mark)
    server.add_uri_handler("/soak/marks", "soak-marks", count)
    server.add_uri_handler("/soak/threaded", "soak-threaded", threaded, threaded=True)
    server.add_uri_handler("/soak/async", "soak-async", coroutine)
    server.add_uri_handler("/soak/fail", "soak-fail", fail)
    server.add_uri_handler("/soak/push", "soak-push", push)
