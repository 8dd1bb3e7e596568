"""pixl-ipc: newline-delimited JSON requests and responses over Unix domain sockets.

The reference server (:class:`IPCServer`), a blocking client (:class:`IPCClient`)
and an asyncio client (:class:`AsyncIPCClient`) for the protocol written down in
the kit's ``spec/PROTOCOL.md``, wire-compatible with pixl-ipc 1.1.x.
"""

import logging

from ._version import __version__
from .aio_client import AsyncIPCClient
from .client import IPCClient
from .errors import (
    ConfigError,
    ConnectError,
    ErrorCode,
    IPCError,
    MalformedMessage,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    RequestTimeout,
    ServerClosed,
    StartupError,
)
from .framing import DEFAULT_MAX_MESSAGE_BYTES
from .protocol import PROTOCOL_VERSION
from .server import IPCServer, PeerCredentials, Request

# Quiet unless the application configures logging (the "pixl_ipc" logger).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "AsyncIPCClient",
    "ConfigError",
    "ConnectError",
    "ErrorCode",
    "IPCClient",
    "IPCError",
    "IPCServer",
    "MalformedMessage",
    "MessageTooLarge",
    "PeerCredentials",
    "ProtocolError",
    "RemoteError",
    "Request",
    "RequestTimeout",
    "ServerClosed",
    "StartupError",
    "__version__",
]
