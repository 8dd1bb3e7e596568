"""The ``pixl-ipc`` command line: ``serve``, ``send``, ``info``, ``stats``, ``ping``.

Each sub-command lives in its own module with an ``add_parser(subparsers)``
function that registers it and sets ``func(args) -> exit status``. The exit
statuses are :data:`~pixl_ipc.cli.call.EXIT_STATUSES`; ``serve`` has its own
(see its module).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from . import call, serve

__all__ = ["build_parser", "main"]

_EPILOG = f"""\
examples:
  pixl-ipc serve --socket /tmp/app.sock --handlers myapp.ipc
  pixl-ipc send --socket /tmp/app.sock /ipcserver/test/echo '{{"hello": "world"}}'
  PIXL_IPC_SOCKET=/tmp/app.sock pixl-ipc stats --json

{call.EXIT_TABLE}

exit status of serve:
  0  stopped by SIGTERM or SIGINT
  1  start-up refused (the socket path is in use or cannot be bound)
  2  bad arguments, configuration or handler module
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="pixl-ipc",
        description="Serve and call pixl-ipc services over Unix domain sockets.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pixl-ipc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.add_parser(subparsers)
    call.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments, without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The exit status: 0 success, 1 a remote error or refusal, 2 bad usage,
        3 no connection, 4 a timeout (``serve``: 0, 1 start-up refused, 2).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help, --version (0) and bad usage (2, argparse's message on stderr).
        return exc.code if isinstance(exc.code, int) else call.EXIT_USAGE
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        sys.stderr.close()
        return 0
    return status
