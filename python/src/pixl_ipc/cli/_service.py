"""What ``pixl-ipc serve`` does for a service manager: logging, socket activation, sd_notify.

Logging goes to stderr or to ``--log-file`` (reopened on SIGHUP, for
logrotate), as text or as one JSON object per line (``--log-format json``).
Under systemd socket activation (``LISTEN_FDS``, ``LISTEN_PID``) the listening
socket is inherited, so ``--socket`` is not needed: its path is read from the
socket. With ``NOTIFY_SOCKET`` set (``Type=notify``), systemd is told
``READY=1`` once the socket accepts connections and ``STOPPING=1`` once the
server has shut down, before the process exits, each with a ``STATUS=`` line.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping

from .._socket import SD_LISTEN_FDS_START
from ..logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from ..sdnotify import notify

__all__ = [
    "activated_socket_path",
    "add_logging_arguments",
    "notify_ready",
    "notify_stopping",
    "setup_logging",
]


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level``, ``--log-format`` and ``--log-file`` to ``parser``."""
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help="the lowest level logged: DEBUG, INFO, WARNING, ERROR, CRITICAL "
        "(default: log_level of --config, else WARNING)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text lines (default), or json: one JSON object per line",
    )
    parser.add_argument(
        "--log-file",
        metavar="FILE",
        help="append the log to FILE instead of stderr; reopened on SIGHUP (for logrotate)",
    )


def setup_logging(args: argparse.Namespace, config_level: str | None = None) -> None:
    """Configure logging as ``args`` say (see :func:`add_logging_arguments`).

    Args:
        args: the parsed arguments.
        config_level: the config file's ``log_level``, used without ``--log-level``.

    Raises:
        OSError: the log file cannot be opened.
    """
    level = args.log_level or config_level or "WARNING"
    configure_logging(level=level, fmt=args.log_format, file=args.log_file)


def activated_socket_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The filesystem path of the socket that socket activation passes to this process.

    Leaves the socket and the environment as they are: the server adopts them
    when it starts.

    Returns:
        The path, or None when the process was not socket-activated or the
        inherited socket has no filesystem path (unnamed or abstract).
    """
    env = os.environ if environ is None else environ
    try:
        if int(env.get("LISTEN_PID", "")) != os.getpid() or int(env.get("LISTEN_FDS", "")) < 1:
            return None
    except ValueError:
        return None
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError:
        return None
    try:
        name = sock.getsockname() if sock.family == socket.AF_UNIX else None
    finally:
        sock.detach()
    return name if isinstance(name, str) and name.startswith("/") else None


def notify_ready(address: str) -> None:
    """Tell the service manager the server accepts connections on ``address``."""
    notify("READY=1", f"STATUS=listening on {address}")


def notify_stopping(reason: str) -> None:
    """Tell the service manager the server is shutting down, and why."""
    notify("STOPPING=1", f"STATUS=stopping: {reason}")
