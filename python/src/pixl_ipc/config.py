"""Validation of the server's options and of the original's configuration block.

:func:`server_kwargs_from_config` turns a pixl-server ``IPCServer`` block (times
in milliseconds, as the original reads them) into the keyword arguments of
:class:`~pixl_ipc.server.IPCServer` (times in seconds). The ``check_*``
functions validate one option each and raise :class:`~pixl_ipc.errors.ConfigError`
naming it, so the constructor and the config path share one set of rules.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError
from .framing import MIN_MAX_MESSAGE_BYTES

__all__ = [
    "STATS_INTERVALS",
    "check_chmod",
    "check_id_set",
    "check_int",
    "check_interval",
    "check_seconds",
    "check_socket_path",
    "check_str",
    "server_kwargs_from_config",
]

#: The original's ``log_stats_interval`` values and their length in seconds.
STATS_INTERVALS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 107
_CHMOD = re.compile(r"[0-7]{1,4}")


def check_socket_path(key: str, value: Any) -> str:
    """A socket path: a non-empty string or path that fits in ``sun_path``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: must be a non-empty string path, not {value!r}")
    if "\0" in value:
        raise ConfigError(f"{key}: must not contain a NUL byte")
    size = len(os.fsencode(value))
    if size > _MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"{key}: {size} bytes is longer than the {_MAX_SOCKET_PATH_BYTES}-byte AF_UNIX limit"
        )
    return value


def check_seconds(key: str, value: Any, *, scale: float = 1.0) -> float:
    """A finite non-negative number (not a bool); ``scale`` converts it to seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{key}: must be a finite number >= 0, not {value!r}")
    return float(value) * scale


def check_int(key: str, value: Any, minimum: int) -> int:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, not {value}")
    return value


def check_chmod(key: str, value: Any) -> int | None:
    """An octal mode string such as ``"777"`` or ``"660"``; ``""`` or None disables (SEC-1)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be an octal mode string such as '660', not {type(value).__name__}")
    if _CHMOD.fullmatch(value) is None:
        raise ConfigError(f"{key}: {value!r} is not an octal mode such as '660'")
    return int(value, 8)


def check_interval(key: str, value: Any) -> str:
    """One of the original's ``log_stats_interval`` names."""
    if not isinstance(value, str) or value not in STATS_INTERVALS:
        raise ConfigError(f"{key}: must be one of {', '.join(STATS_INTERVALS)}, not {value!r}")
    return value


def check_id_set(key: str, value: Any) -> frozenset[int] | None:
    """None (anyone) or an iterable of integer uids or gids (SEC-2)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{key}: must be a list of integers, not {type(value).__name__}")
    ids = list(value)
    for item in ids:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise ConfigError(f"{key}: {item!r} is not a valid id (a non-negative integer)")
    return frozenset(ids)


def check_str(key: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: must be a non-empty string, not {value!r}")
    return value


def _chmod_string(key: str, value: Any) -> str | None:
    check_chmod(key, value)
    return None if value is None else str(value)


# Config key -> (constructor keyword, check returning the constructor's value).
# Each check names the config key, so an error points at the line to fix.
_KEYS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    # The original's keys; its times are in milliseconds.
    "socket_path": ("socket_path", check_socket_path),
    "exit_timeout": ("exit_timeout", lambda k, v: check_seconds(k, v, scale=0.001)),
    "socket_chmod": ("socket_chmod", _chmod_string),
    "log_stats_interval": ("log_stats_interval", check_interval),
    "slow_threshold_ms": ("slow_threshold", lambda k, v: check_seconds(k, v, scale=0.001)),
    # This kit's keys.
    "close_grace_ms": ("close_grace", lambda k, v: check_seconds(k, v, scale=0.001)),
    "max_message_bytes": ("max_message_bytes", lambda k, v: check_int(k, v, MIN_MAX_MESSAGE_BYTES)),
    "max_inflight_per_connection": ("max_inflight_per_connection", lambda k, v: check_int(k, v, 1)),
    "max_connections": ("max_connections", lambda k, v: check_int(k, v, 1)),
    "max_buffered_bytes": ("max_buffered_bytes", lambda k, v: check_int(k, v, 1)),
    "max_threads": ("max_threads", lambda k, v: check_int(k, v, 1)),
    "allowed_uids": ("allowed_uids", check_id_set),
    "allowed_gids": ("allowed_gids", check_id_set),
    "name": ("name", check_str),
    "version": ("version", check_str),
}


def server_kwargs_from_config(block: Mapping[str, Any]) -> dict[str, Any]:
    """Map an ``IPCServer`` config block to :class:`~pixl_ipc.server.IPCServer` arguments.

    Args:
        block: the original's keys (``socket_path``, ``exit_timeout`` in ms,
            ``socket_chmod``, ``log_stats_interval``, ``slow_threshold_ms``) and
            this kit's (``close_grace_ms``, ``max_message_bytes``,
            ``max_inflight_per_connection``, ``max_connections``,
            ``max_buffered_bytes``, ``max_threads``, ``allowed_uids``,
            ``allowed_gids``, ``name``, ``version``).

    Returns:
        Keyword arguments, with ``socket_path`` among them.

    Raises:
        ConfigError: the block is not a mapping, a key is unknown, a value has
            the wrong type, or ``socket_path`` is missing; the message names the key.
    """
    if not isinstance(block, Mapping):
        raise ConfigError(f"IPCServer config must be an object, not {type(block).__name__}")
    kwargs: dict[str, Any] = {}
    for key, value in block.items():
        if key not in _KEYS:
            raise ConfigError(f"{key}: unknown IPCServer config key (known: {', '.join(_KEYS)})")
        target, convert = _KEYS[key]
        kwargs[target] = convert(key, value)
    if "socket_path" not in kwargs:
        raise ConfigError("socket_path: required")
    return kwargs
