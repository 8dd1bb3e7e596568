"""What the blocking and asyncio clients share: options, argument checks, connect errors.

Both front ends take the same keyword options in the same order (see
:func:`make_options`), check them the same way and report a failed connect with
the same :class:`~pixl_ipc.errors.ConnectError` reasons. Protocol rules live in
:mod:`pixl_ipc.protocol`; nothing here touches the wire.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, ConnectError
from .protocol import ClientProtocol, MessageTransform

__all__ = [
    "ClientBase",
    "DEFAULT_AUTO_RECONNECT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "ClientOptions",
    "PushHandler",
    "check_uri",
    "connect_error",
    "default_user_agent",
    "deliver_push",
    "make_options",
]

logger = logging.getLogger("pixl_ipc.client")

# --- defaults -----------------------------------------------------------------
#: The original Node client's requestTimeout (10,000 ms).
DEFAULT_REQUEST_TIMEOUT = 10.0
#: Connecting to a local socket is immediate unless the listen backlog is full;
#: 2 s covers a busy server without hiding a dead one for long.
DEFAULT_CONNECT_TIMEOUT = 2.0
#: The original Node client's autoReconnect (1,000 ms).
DEFAULT_AUTO_RECONNECT = 1.0

#: Called with the whole push message, e.g. ``{"data": ...}`` (PUSH-2).
PushHandler = Callable[[dict[str, Any]], object]


def default_user_agent() -> str:
    """``"Python/IPCClient"`` followed by the working directory, as the originals do (REQ-6)."""
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was removed
        cwd = ""
    return "Python/IPCClient" + cwd


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Checked options of one client; see :class:`pixl_ipc.client.IPCClient` for their meaning."""

    socket_path: str
    # timeouts, seconds
    request_timeout: float
    connect_timeout: float
    # identity
    user_agent: str
    # connection
    auto_reconnect: float
    # results
    code_to_err: bool
    message_transform: MessageTransform | None
    on_push: PushHandler | None
    # limits
    max_message_bytes: int

    def timeout_for(self, timeout: float | None) -> float:
        """The timeout of one request: ``timeout``, or the client's default when it is None.

        Raises:
            ConfigError: ``timeout`` is not a positive number.
        """
        if timeout is None:
            return self.request_timeout
        return _positive("timeout", timeout)


def _positive(name: str, value: object, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise ConfigError(f"{name} must be {'zero or ' if zero_ok else ''}a positive number, got {value!r}")
    return number


def make_options(
    socket_path: str | os.PathLike[str],
    *,
    request_timeout: float,
    connect_timeout: float,
    user_agent: str | None,
    auto_reconnect: float,
    code_to_err: bool,
    message_transform: MessageTransform | None,
    on_push: PushHandler | None,
    max_message_bytes: int,
) -> ClientOptions:
    """Check the options of a client and fill in the defaults.

    Raises:
        ConfigError: an option has the wrong type or value; the message names it.
    """
    try:
        path = os.fspath(socket_path)
    except TypeError:
        raise ConfigError(f"socket_path must be a path, got {type(socket_path).__name__}") from None
    if not isinstance(path, str) or not path:
        raise ConfigError("socket_path must be a non-empty str path")
    if user_agent is None:
        user_agent = default_user_agent()
    elif not isinstance(user_agent, str):
        raise ConfigError(f"user_agent must be a str, got {type(user_agent).__name__}")
    if message_transform is not None and not callable(message_transform):
        raise ConfigError("message_transform must be callable or None")
    if on_push is not None and not callable(on_push):
        raise ConfigError("on_push must be callable or None")
    if isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) or max_message_bytes < 1:
        raise ConfigError(f"max_message_bytes must be a positive int, got {max_message_bytes!r}")
    return ClientOptions(
        socket_path=path,
        request_timeout=_positive("request_timeout", request_timeout),
        connect_timeout=_positive("connect_timeout", connect_timeout),
        user_agent=user_agent,
        auto_reconnect=_positive("auto_reconnect", auto_reconnect, zero_ok=True),
        code_to_err=bool(code_to_err),
        message_transform=message_transform,
        on_push=on_push,
        max_message_bytes=max_message_bytes,
    )


class ClientBase:
    """What both clients hold: their checked options and the protocol core, and views of them."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self._proto = ClientProtocol(options.max_message_bytes, user_agent=options.user_agent)

    @property
    def socket_path(self) -> str:
        """The server's socket path."""
        return self.options.socket_path

    @property
    def pending_count(self) -> int:
        """How many requests wait for an answer (a timed-out one is not kept)."""
        return self._proto.pending_count

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options.socket_path!r} {self._proto.state.value}>"


def check_uri(uri: object) -> str:
    """Return ``uri`` if it is a str (an empty one is the server's to refuse, REQ-2).

    Raises:
        TypeError: ``uri`` is not a str.
    """
    if type(uri) is not str and not isinstance(uri, str):
        raise TypeError(f"uri must be a str, got {type(uri).__name__}")
    return uri


def connect_error(path: str, exc: OSError) -> ConnectError:
    """The :class:`ConnectError` for an OSError raised by connect (LIFE-1)."""
    code = exc.errno
    if code == errno.ENOENT:
        reason = "missing"
    elif code in (errno.EACCES, errno.EPERM):
        reason = "permission"
    elif code == errno.ECONNREFUSED:
        # Linux answers a connect to a regular file with ECONNREFUSED too.
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = True
        reason = "refused" if is_socket else "not_socket"
    elif code == errno.ENOTSOCK:
        reason = "not_socket"
    elif isinstance(exc, TimeoutError) or code in (errno.ETIMEDOUT, errno.EAGAIN):
        # EAGAIN: the listen backlog of a non-blocking connect is full.
        reason = "timeout"
    else:
        reason = "error"
    detail = "" if reason != "error" else (exc.strerror or str(exc))
    return ConnectError(path, reason, detail)


def deliver_push(on_push: PushHandler | None, message: dict[str, Any]) -> None:
    """Call ``on_push`` with a push (PUSH-2); what it raises is logged, never passed on."""
    if on_push is None:
        return
    try:
        on_push(message)
    except Exception:
        logger.exception("on_push raised; the push is dropped")
