"""Handlers the hostile tests load into their server (``pixl-ipc serve --handlers``).

- ``/hostile/close-all``: the server half-closes every connection (LIFE-8).
- uris under ``/hostile/fail``: a handler that fails with the uri in its
  exception, as careless application code does (log forging).
- ``/hostile/hog`` and ``/hostile/unhog``: take and give back file
  descriptors, to run the server out of them.
"""

from __future__ import annotations

import os
import re
from typing import Any

_held: list[int] = []


def register(server: Any) -> None:
    """Add the hostile tests' handlers to ``server``."""

    def close_all(request: Any) -> str:
        server.close_connections()
        return "closing"

    def fail(request: Any) -> None:
        raise ValueError(f"cannot handle {request.uri}")

    def hog(request: Any) -> int:
        # Open descriptors until the process has none left (or ``count``).
        count = int(request.data.get("count", 1_000_000))
        try:
            while count > 0:
                _held.append(os.open(os.devnull, os.O_RDONLY))
                count -= 1
        except OSError:
            pass
        return len(_held)

    def unhog(request: Any) -> int:
        while _held:
            os.close(_held.pop())
        return 0

    server.add_uri_handler("/hostile/close-all", "hostile-close-all", close_all)
    server.add_uri_handler(re.compile(r"^/hostile/fail"), "hostile-fail", fail)
    server.add_uri_handler("/hostile/hog", "hostile-hog", hog)
    server.add_uri_handler("/hostile/unhog", "hostile-unhog", unhog)
