"""``pixl-ipc serve``: run the reference server until SIGTERM, SIGINT or SIGQUIT.

Prints exactly one line, ``listening on PATH``, to stderr once the socket
accepts connections. Exit statuses: 0 after a clean shutdown, 1 when start-up
is refused (LIFE-6), 2 for bad arguments, configuration or handler modules.
SIGHUP is logged and changes nothing; SIGUSR1 logs the statistics.

The command tunes this process's heap for message buffers
(:func:`~pixl_ipc._memory.warm_allocator`); a server embedded in another
program leaves that to the program.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from .._memory import warm_allocator
from ..errors import ConfigError, StartupError
from ..logs import configure_logging
from ..server import IPCServer
from ._service import activated_socket_path, notify_ready, notify_stopping

__all__ = ["add_parser", "load_config_block", "load_handler_module", "run"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Option (its argparse name) -> the config key it overrides.
_FLAG_KEYS = {
    "socket": "socket_path",
    "chmod": "socket_chmod",
    "max_message_bytes": "max_message_bytes",
    "max_threads": "max_threads",
    "max_connections": "max_connections",
    "max_buffered_bytes": "max_buffered_bytes",
    "close_grace_ms": "close_grace_ms",
}


class UsageError(Exception):
    """A bad argument, configuration file or handler module (exit status 2)."""


def add_parser(subparsers: Any) -> None:
    """Register the ``serve`` sub-command on ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        help="run the reference server",
        description=(
            "Serve pixl-ipc requests on a Unix domain socket until SIGTERM, SIGINT or SIGQUIT. "
            "Prints 'listening on PATH' to stderr once ready."
        ),
    )
    parser.add_argument("--socket", metavar="PATH", help="socket path (overrides socket_path of --config)")
    parser.add_argument(
        "--config",
        metavar="FILE.json",
        help="a pixl-server config file (its IPCServer block is used) or a bare IPCServer block",
    )
    parser.add_argument(
        "--handlers",
        nargs="+",
        action="extend",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a module name or a .py file and call its register(server)",
    )
    parser.add_argument(
        "--chmod", metavar="MODE", help="octal mode of the socket file, e.g. 660 ('' disables)"
    )
    parser.add_argument(
        "--max-message-bytes", type=int, metavar="N", help="largest request accepted, in bytes (>= 16 MiB)"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="connections held at once, half-closed ones included; more get server_busy",
    )
    parser.add_argument(
        "--max-buffered-bytes",
        type=int,
        metavar="N",
        help="bytes of unfinished requests and unsent answers held for all clients together",
    )
    parser.add_argument(
        "--close-grace-ms",
        type=int,
        metavar="MS",
        help="how long a half-closed connection is kept before it is closed anyway (default 60000)",
    )
    parser.add_argument(
        "--max-threads",
        type=int,
        metavar="N",
        help="size of the thread pool for handlers registered with threaded=True",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=_LOG_LEVELS,
        metavar="LEVEL",
        help="logging level on stderr: DEBUG, INFO, WARNING (default), ERROR, CRITICAL",
    )
    parser.set_defaults(func=run)


def load_config_block(path: str) -> dict[str, Any]:
    """Read a config file: the ``IPCServer`` block of a pixl-server config, or a bare block.

    Raises:
        UsageError: the file cannot be read, is not JSON, or holds no object.
    """
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"config {path} must hold a JSON object")
    if "IPCServer" in document:
        block = document["IPCServer"]
        if not isinstance(block, dict):
            raise UsageError(f"config {path}: IPCServer must be an object")
        return dict(block)
    return document


def load_handler_module(spec: str) -> ModuleType:
    """Import a module by name, or a Python file by path.

    Raises:
        UsageError: it cannot be found or raises while being imported.
    """
    looks_like_file = spec.endswith(".py") or os.sep in spec
    try:
        if looks_like_file:
            path = Path(spec)
            if not path.is_file():
                raise UsageError(f"handler file {spec} does not exist")
            name = f"pixl_ipc_handlers_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise UsageError(f"cannot load handler file {spec}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import handlers {spec}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"importing handlers {spec} failed: {type(exc).__name__}: {exc}") from None


def _build_server(args: argparse.Namespace) -> IPCServer:
    block: dict[str, Any] = load_config_block(args.config) if args.config else {}
    # Flags override the config file.
    for flag, key in _FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            block[key] = value
    if "socket_path" not in block:
        raise UsageError("--socket PATH is required (or socket_path in the --config block)")
    server = IPCServer.from_config(block)
    for spec in args.handlers:
        module = load_handler_module(spec)
        register = getattr(module, "register", None)
        if not callable(register):
            raise UsageError(f"handlers {spec} has no register(server) function")
        try:
            register(server)
        except Exception as exc:
            raise UsageError(f"register(server) of {spec} failed: {type(exc).__name__}: {exc}") from None
    return server


def run(args: argparse.Namespace) -> int:
    """Run ``serve``; return the exit status."""
    configure_logging(level=args.log_level)
    if args.socket is None:
        # Socket activation passes the socket: its path stands for --socket.
        args.socket = activated_socket_path()
    try:
        server = _build_server(args)
    except (UsageError, ConfigError) as exc:
        print(f"pixl-ipc serve: error: {exc}", file=sys.stderr)
        return 2

    def ready() -> None:
        print(f"listening on {server.address}", file=sys.stderr, flush=True)
        notify_ready(server.address)

    warm_allocator()
    try:
        server.run(on_ready=ready)
    except StartupError as exc:
        print(f"pixl-ipc serve: {exc}", file=sys.stderr)
        return 1
    notify_stopping("shut down")
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        # LIFE-7: a threaded handler still running past exit_timeout would be
        # joined at interpreter exit and hold the process up without bound.
        logging.getLogger("pixl_ipc").warning(
            "exiting with %d handler thread(s) still running past exit_timeout", len(stuck)
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
