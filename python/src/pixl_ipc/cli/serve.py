"""``pixl-ipc serve``: run the reference server until SIGTERM, SIGINT or SIGQUIT.

Prints exactly one line, ``listening on PATH``, to stderr once the socket
accepts connections. Exit statuses: 0 after a clean shutdown, 1 when start-up
is refused (LIFE-6), 2 for bad arguments, configuration or handler modules.
SIGUSR1 logs the statistics. SIGHUP reopens ``--log-file`` and reloads what
can change while serving: from ``--config``, ``allowed_uids``,
``allowed_gids`` and ``log_level``; the ``--handlers`` modules, imported
again. Whatever fails to reload is logged and left as it was.

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
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .._memory import warm_allocator
from ..errors import ConfigError, StartupError
from ..logs import LOG_LEVELS
from ..server import IPCServer
from ._service import (
    activated_socket_path,
    add_logging_arguments,
    notify_ready,
    notify_stopping,
    setup_logging,
)

__all__ = ["ConfigFile", "add_parser", "load_handler_module", "read_config", "run"]

logger = logging.getLogger("pixl_ipc.serve")

#: This command's own key in the config block: the log level, reloaded on SIGHUP.
LOG_LEVEL_KEY = "log_level"
# Config keys that SIGHUP applies while serving.
_RELOADED_KEYS = ("allowed_uids", "allowed_gids", LOG_LEVEL_KEY)
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
    add_logging_arguments(parser)
    parser.set_defaults(func=run)


@dataclass
class ConfigFile:
    """What ``--config`` holds for this command.

    Attributes:
        block: the ``IPCServer`` block, without ``log_level``.
        log_level: the block's ``log_level``, or None.
        ignored: keys of a pixl-server config outside its ``IPCServer`` block
            (``log_dir``, ``debug_level``, ...), which this command does not read.
    """

    block: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    ignored: list[str] = field(default_factory=list)


def read_config(path: str) -> ConfigFile:
    """Read a config file: a pixl-server config with an ``IPCServer`` block, or a bare block.

    Raises:
        UsageError: the file cannot be read, is not JSON, holds no object, or
            has a ``log_level`` that is not a level name.
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
    ignored: list[str] = []
    block = document
    if "IPCServer" in document:
        block = document["IPCServer"]
        if not isinstance(block, dict):
            raise UsageError(f"config {path}: IPCServer must be an object")
        ignored = sorted(key for key in document if key != "IPCServer")
    block = dict(block)
    level = block.pop(LOG_LEVEL_KEY, None)
    if level is not None and (not isinstance(level, str) or level.upper() not in LOG_LEVELS):
        raise UsageError(f"config {path}: {LOG_LEVEL_KEY} must be one of {', '.join(LOG_LEVELS)}")
    return ConfigFile(block, level.upper() if level else None, ignored)


def load_handler_module(spec: str, *, again: bool = False) -> ModuleType:
    """Import a module by name, or a Python file by path.

    Args:
        spec: the module name or the file's path.
        again: run the module's code again even if it was imported before.

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
        if again and spec in sys.modules:
            return importlib.reload(sys.modules[spec])
        return importlib.import_module(spec)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import handlers {spec}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"importing handlers {spec} failed: {type(exc).__name__}: {exc}") from None


def _server_block(args: argparse.Namespace, config: ConfigFile) -> dict[str, Any]:
    block = dict(config.block)
    # Flags override the config file.
    for flag, key in _FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            block[key] = value
    return block


def _registrations(specs: list[str], *, again: bool = False) -> list[tuple[str, Any]]:
    """The ``register`` function of each handler module, imported (again)."""
    found = []
    for spec in specs:
        register = getattr(load_handler_module(spec, again=again), "register", None)
        if not callable(register):
            raise UsageError(f"handlers {spec} has no register(server) function")
        found.append((spec, register))
    return found


def _register_all(server: IPCServer, registrations: list[tuple[str, Any]]) -> None:
    for spec, register in registrations:
        try:
            register(server)
        except Exception as exc:
            raise UsageError(f"register(server) of {spec} failed: {type(exc).__name__}: {exc}") from None


def _build_server(args: argparse.Namespace, config: ConfigFile) -> IPCServer:
    block = _server_block(args, config)
    if "socket_path" not in block:
        raise UsageError("--socket PATH is required (or socket_path in the --config block)")
    server = IPCServer.from_config(block)
    _register_all(server, _registrations(args.handlers))
    return server


class _Reloader:
    """SIGHUP's work for this command: the config file's reloadable keys and the handler modules."""

    def __init__(self, args: argparse.Namespace, server: IPCServer, config: ConfigFile) -> None:
        self.args = args
        self.server = server
        self.started_with = _server_block(args, config)

    def __call__(self) -> None:
        if self.args.config:
            self._reload_config()
        if self.args.handlers:
            self._reload_handlers()

    def _reload_config(self) -> None:
        path = self.args.config
        try:
            config = read_config(path)
            block = _server_block(self.args, config)
            self.server.set_allowed_peers(block.get("allowed_uids"), block.get("allowed_gids"))
        except (UsageError, ConfigError) as exc:
            logger.error("reload: %s; the config's settings are left as they were", exc)
            return
        if self.args.log_level is None:
            logging.getLogger().setLevel(config.log_level or "WARNING")
        later = sorted(
            key
            for key in set(block) | set(self.started_with)
            if key not in _RELOADED_KEYS and block.get(key) != self.started_with.get(key)
        )
        if later:
            logger.warning("reload: %s changed in %s: restart to apply", ", ".join(later), path)
        logger.info("reloaded %s from %s", ", ".join(_RELOADED_KEYS), path)

    def _reload_handlers(self) -> None:
        try:
            registrations = _registrations(self.args.handlers, again=True)
            self.server.replace_handlers(lambda server: _register_all(server, registrations))
        except UsageError as exc:
            logger.error("reload: %s; the handlers are left as they were", exc)
            return
        logger.info("reloaded handlers: %s", ", ".join(self.server.handler_names))


def run(args: argparse.Namespace) -> int:
    """Run ``serve``; return the exit status."""
    try:
        config = read_config(args.config) if args.config else ConfigFile()
        setup_logging(args, config.log_level)
    except UsageError as exc:
        print(f"pixl-ipc serve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pixl-ipc serve: error: cannot open log file {args.log_file}: {exc.strerror}", file=sys.stderr)
        return 2
    if config.ignored:
        logger.warning(
            "%s: ignored pixl-server settings: %s (logs go to stderr or --log-file, at --log-level)",
            args.config,
            ", ".join(config.ignored),
        )
    if args.socket is None:
        # Socket activation passes the socket: its path stands for --socket.
        args.socket = activated_socket_path()
    try:
        server = _build_server(args, config)
    except (UsageError, ConfigError) as exc:
        print(f"pixl-ipc serve: error: {exc}", file=sys.stderr)
        return 2
    if args.config or args.handlers:
        server.add_reload_hook(_Reloader(args, server, config))

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
