"""Exceptions and wire error codes shared by the server and both clients.

The hierarchy::

    IPCError                          base of everything this package raises
    ├── ConnectError                  (also ConnectionError) cannot connect
    ├── ServerClosed                  (also ConnectionError) connection ended
    ├── RequestTimeout                (also TimeoutError) no answer in time
    ├── RemoteError                   the peer answered with an error code
    ├── MessageTooLarge               (also ValueError) line over the limit
    ├── ProtocolError                 the peer broke the wire protocol
    │   └── MalformedMessage          a ``{`` line that is not valid JSON
    ├── ConfigError                   (also ValueError) bad option or config
    └── StartupError                  (also OSError) the server cannot start

Remote errors keep the wire ``code``, ``message`` and the whole message they
came in, so callers can branch on :class:`ErrorCode` values.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "ConfigError",
    "ConnectError",
    "ErrorCode",
    "IPCError",
    "MalformedMessage",
    "MessageTooLarge",
    "ProtocolError",
    "RemoteError",
    "RequestTimeout",
    "ServerClosed",
    "StartupError",
]


class ErrorCode(enum.StrEnum):
    """Wire error codes (spec ERR-3). Their place is fixed per code."""

    # The original's codes.
    NO_URI = "no_uri"  # top level
    NO_HANDLER_FOUND = "no_handler_found"  # in data
    # Extensions of this kit (VER-2).
    BAD_JSON = "bad_json"  # top level
    MESSAGE_TOO_LARGE = "message_too_large"  # top level, with "limit"
    HANDLER_ERROR = "handler_error"  # in data
    ACCESS_DENIED = "access_denied"  # top level, then the server closes
    SERVER_BUSY = "server_busy"  # top level: a server-wide budget is spent (LIMIT-7)


class IPCError(Exception):
    """Base class of every exception raised by pixl_ipc."""


class ConnectError(IPCError, ConnectionError):
    """The client could not connect to the socket path (LIFE-1).

    Attributes:
        path: the socket path.
        reason: ``"missing"``, ``"refused"``, ``"not_socket"``,
            ``"permission"``, ``"timeout"`` or ``"error"``.
    """

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        text = {
            "missing": "no socket at that path",
            "refused": "connection refused (no server is listening)",
            "permission": "permission denied",
            "timeout": "timed out while connecting",
            "not_socket": "the path is not a socket",
        }.get(reason, "cannot connect")
        super().__init__(f"cannot connect to {path}: {text}" + (f" ({detail})" if detail else ""))


class ServerClosed(IPCError, ConnectionError):
    """The connection ended while a request was pending, or was never open (LIFE-3)."""

    def __init__(self, message: str = "the server closed the connection") -> None:
        super().__init__(message)


class RequestTimeout(IPCError, TimeoutError):
    """No response arrived within the request's timeout (CORR-5)."""

    def __init__(self, uri: str, timeout: float) -> None:
        self.uri = uri
        self.timeout = timeout
        super().__init__(f"no response to {uri} within {timeout:g} s")


class RemoteError(IPCError):
    """The peer answered with an error (ERR-4).

    Attributes:
        code: the wire error code (compare with :class:`ErrorCode` members).
        message: the human-readable message sent by the peer.
        data: the whole error object or message it came in.
    """

    def __init__(self, code: str, message: str = "", data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code}: {message}" if message else code)


class MessageTooLarge(IPCError, ValueError):
    """A message is longer than the receiver's limit (LIMIT-2, LIMIT-3).

    Attributes:
        size: the size seen so far, in bytes (at least ``limit + 1``).
        limit: the maximum message size in bytes.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message of at least {size} bytes exceeds the limit of {limit} bytes")


class ProtocolError(IPCError):
    """The peer sent something the protocol does not allow."""


class MalformedMessage(ProtocolError):
    """A line that starts with ``{`` but is not valid JSON (FRAME-6)."""


class ConfigError(IPCError, ValueError):
    """A bad option, argument or configuration value; the message names the key."""


class StartupError(IPCError, OSError):
    """The server refused to start (LIFE-6); the message says why."""
