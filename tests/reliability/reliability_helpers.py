"""Tools of the reliability tests: raw sockets, on top of the shared ``support`` helpers."""

from __future__ import annotations

import importlib
import json
import os
import socket
import time
from typing import Any, Self

from support import Server, fd_count, rss_bytes, start_server, wait_until

__all__ = [
    "RawConn",
    "Server",
    "fd_count",
    "rss_bytes",
    "server_module_ready",
    "start_server",
    "wait_until",
]


class RawConn:
    """A blocking AF_UNIX connection that speaks bytes, for tests that break the protocol."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                # EAGAIN: the listen backlog is full; a blocking connect would wait.
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise
                time.sleep(0.01)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, request_id: str, uri: str, data: Any = None) -> None:
        """Send one well-formed request."""
        self.send(
            json.dumps({"ipcReqID": request_id, "uri": uri, "data": data}).encode()
            + b"\n"
        )

    def read_line(self, timeout: float | None = None) -> bytes:
        """Read one line (without LF); raises TimeoutError, or EOFError when the server closed."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError(
                    f"connection closed with {len(self._buffer)} bytes of a partial line"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read_message(self, timeout: float | None = None) -> dict[str, Any]:
        """Read one line and parse it as a JSON object."""
        value = json.loads(self.read_line(timeout))
        assert isinstance(value, dict), value
        return value

    def read_until_id(
        self, request_id: Any, timeout: float = 10.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read messages until the one answering ``request_id``; return it and those before it."""
        deadline = time.monotonic() + timeout
        before: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no answer to {request_id!r} within {timeout} s; got {before[-5:]}"
                )
            message = self.read_message(left)
            if message.get("ipcReqID") == request_id:
                return message, before
            before.append(message)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
