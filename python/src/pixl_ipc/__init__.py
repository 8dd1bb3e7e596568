"""pixl-ipc: newline-delimited JSON requests and responses over Unix domain sockets.

The reference server (:class:`IPCServer`), a blocking client (:class:`IPCClient`)
and an asyncio client (:class:`AsyncIPCClient`) for the protocol written down in
the kit's ``spec/PROTOCOL.md``, wire-compatible with pixl-ipc 1.1.x.
"""

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

__version__ = "1.1.0"

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
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
    "__version__",
]
