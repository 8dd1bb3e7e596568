"""A scripted fake server for client tests, able to misbehave on purpose.

Each accepted connection runs a script (a function taking a :class:`PeerConn`)
in its own thread. The script reads requests and writes whatever bytes it
likes: split, coalesced, late, pushed, oversize, CRLF, garbage, or nothing
before closing. It speaks the wire itself and imports nothing from pixl_ipc,
so a defect in the core cannot hide one in a client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

Script = Callable[["PeerConn"], None]


class PeerConn:
    """One accepted connection, seen from the fake server."""

    def __init__(self, sock: socket.socket, peer: ScriptedPeer) -> None:
        self.sock = sock
        self.peer = peer
        self._buf = b""

    def read_request(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The next request line as an object; None when the client closed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no request from the client")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        request: dict[str, Any] = json.loads(line)
        self.peer.requests.append(request)
        return request

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.sock.sendall(data)

    def send(self, message: Any) -> None:
        """Write one message as a JSON line."""
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def reply(self, request: dict[str, Any], data: Any) -> None:
        """Answer ``request`` with ``data``."""
        self.send({"ipcReqID": request["ipcReqID"], "data": data})

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def echo(conn: PeerConn) -> None:
    """Answer every request with its data, like /ipcserver/test/echo."""
    while (request := conn.read_request(timeout=30)) is not None:
        conn.reply(request, request.get("data"))


def errors(conn: PeerConn) -> None:
    """Answer with errors, as the original server words them.

    Top level for ``""`` (``no_uri``) and ``/weird`` (a code of a later
    version); ``no_handler_found`` in data for ``/missing``; data with a falsy
    ``code`` for any other uri.
    """
    while (request := conn.read_request()) is not None:
        uri, rid = request["uri"], request["ipcReqID"]
        if uri == "":
            message = "Missing required uri parameter from request"
            conn.send({"ipcReqID": rid, "code": "no_uri", "message": message})
        elif uri == "/weird":
            conn.send(
                {"ipcReqID": rid, "code": "brand_new_code", "message": "later version"}
            )
        elif uri == "/missing":
            conn.reply(
                request,
                {
                    "code": "no_handler_found",
                    "message": "No handler found for /missing",
                },
            )
        else:
            conn.reply(request, {"code": 0, "value": 1})


def hold_slow_until(release: threading.Event) -> Script:
    """Answer each request with its uri, holding ``/slow`` (and all after it) until ``release``."""

    def script(conn: PeerConn) -> None:
        while (request := conn.read_request()) is not None:
            if request["uri"] == "/slow":
                release.wait(5)
            conn.reply(request, request["uri"])

    return script


class ScriptedPeer:
    """A fake server on ``path`` running ``script`` for each connection.

    Use as a context manager; every thread and socket is gone after it.
    """

    def __init__(self, path: str, script: Script = echo) -> None:
        self.path = path
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conns: list[PeerConn] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def __enter__(self) -> Self:
        self._listener.bind(self.path)
        self._listener.listen(16)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting, close every connection and join every thread."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in list(self._conns):
            conn.close()
        for thread in self._threads:
            thread.join(10)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            conn = PeerConn(sock, self)
            self._conns.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, conn: PeerConn) -> None:
        try:
            self.script(conn)
        except (OSError, TimeoutError):
            pass
        except (
            AssertionError,
            ValueError,
            KeyError,
        ) as exc:  # reported through .errors
            self.errors.append(exc)
        finally:
            conn.close()
