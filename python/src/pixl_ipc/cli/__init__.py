"""The ``pixl-ipc`` command line: ``serve``, ``send``, ``info``, ``stats``, ``ping``, ``bench``.

Each sub-command lives in its own module with an ``add_parser(subparsers)``
function that registers it and sets ``func(args) -> exit status``. Exit
statuses: 0 success, 1 a failure the command reports (a remote error, a
start-up refusal), 2 bad usage, a bad configuration, or no connection.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import call, serve

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="pixl-ipc",
        description="Serve and call pixl-ipc services over Unix domain sockets.",
    )
    parser.add_argument("--version", action="version", version=f"pixl-ipc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.add_parser(subparsers)
    call.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        sys.stderr.close()
        return 0
    return status
