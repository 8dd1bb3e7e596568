"""Tools of the reliability tests, on top of the shared ``support`` helpers."""

from __future__ import annotations

import importlib
import os

from support import RawClient, Server, fd_count, rss_bytes, start_server, wait_until

__all__ = [
    "RawClient",
    "Server",
    "fd_count",
    "rss_bytes",
    "server_module_ready",
    "start_server",
    "wait_until",
]


def server_module_ready() -> bool:
    """True when the reference server and the CLI ``serve`` command can be imported."""
    if os.environ.get("PIXL_SERVE_CMD"):
        return True
    try:
        importlib.import_module("pixl_ipc.server")
        importlib.import_module("pixl_ipc.cli.serve")
    except ImportError:
        return False
    return True
