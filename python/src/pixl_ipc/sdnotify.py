"""The systemd service notification protocol (sd_notify(3)), without a dependency.

A service started with ``Type=notify`` tells systemd when it is ready
(``READY=1``), when it begins to stop (``STOPPING=1``) and what it is doing
(``STATUS=...``, shown by ``systemctl status``). Each message is one datagram
of ``KEY=VALUE`` lines sent to the ``AF_UNIX`` socket named by
``NOTIFY_SOCKET``: a path, or an abstract-namespace name written with a
leading ``@``. Without ``NOTIFY_SOCKET`` every call does nothing, so code can
notify unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["NOTIFY_SOCKET_ENV", "notify", "notify_address"]

#: The environment variable systemd sets for a ``Type=notify`` service.
NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"

logger = logging.getLogger("pixl_ipc.sdnotify")


def notify_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The notification socket's address from ``NOTIFY_SOCKET``, ready for ``connect``.

    Args:
        environ: the environment to read; ``os.environ`` if None.

    Returns:
        A filesystem path, an abstract-namespace name starting with a NUL byte
        (from a leading ``@``), or None when the variable is unset or names a
        kind of socket this module does not speak (such as ``vsock:``).
    """
    value = (os.environ if environ is None else environ).get(NOTIFY_SOCKET_ENV, "")
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification made of ``KEY=VALUE`` lines, e.g. ``notify("READY=1", "STATUS=up")``.

    A failure to send is logged and otherwise ignored: a service must keep
    serving even if its supervisor's socket misbehaves.

    Args:
        lines: the assignments, each without a newline.
        environ: the environment to read ``NOTIFY_SOCKET`` from; ``os.environ`` if None.

    Returns:
        True if the datagram was sent; False without ``NOTIFY_SOCKET`` or on an error.

    Raises:
        ValueError: a line holds a newline or has no ``=``.
    """
    for line in lines:
        if "\n" in line or "=" not in line:
            raise ValueError(f"not a KEY=VALUE notification line: {line!r}")
    address = notify_address(environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode("utf-8", "surrogateescape"))
    except OSError as exc:
        logger.warning("cannot notify systemd at %s: %s", address.replace("\0", "@"), exc)
        return False
    return True
