"""``pixl-ipc send | info | stats | ping``: call a running server from the shell.

All four use the blocking :class:`~pixl_ipc.client.IPCClient`. Exit statuses:
0 success; 1 the server answered with an error (printed as ``code: message``
on stderr) or, for ``ping``, some pings got no answer; 2 bad usage, invalid
JSON, no connection or a timeout (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from typing import Any

from .. import __version__
from ..client import IPCClient
from ..errors import ConfigError, ConnectError, IPCError, RemoteError, RequestTimeout, ServerClosed
from ..framing import decode_json

__all__ = ["add_parser", "format_table"]

_ECHO_URI = "/ipcserver/test/echo"
_INFO_URI = "/ipcserver/info"
_STATS_URI = "/ipcserver/stats"
_USER_AGENT = f"pixl-ipc-cli/{__version__}"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    """Register ``send``, ``info``, ``stats`` and ``ping`` on ``subparsers``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", metavar="PATH", required=True, help="the server's socket path")
    common.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=10.0, help="seconds to wait (default 10)"
    )

    send = subparsers.add_parser(
        "send",
        parents=[common],
        help="send one request and print the response data",
        description="Send one request; print the response's data as JSON on stdout.",
    )
    send.add_argument("uri", metavar="URI", help="the request's uri, e.g. /ipcserver/test/echo")
    send.add_argument(
        "data",
        metavar="JSON",
        nargs="?",
        help="the request's data as JSON; '-' reads it from stdin; omitted: null",
    )
    send.add_argument("--pretty", action="store_true", help="indent the JSON output")
    send.add_argument(
        "--code-to-err",
        action="store_true",
        help="treat an error inside data (e.g. no_handler_found) as a remote error: exit 1",
    )
    send.set_defaults(func=run_send)

    for name, uri, what in (("info", _INFO_URI, "identity and limits"), ("stats", _STATS_URI, "statistics")):
        sub = subparsers.add_parser(
            name,
            parents=[common],
            help=f"show the server's {what} ({uri})",
            description=f"Show the server's {what} ({uri}) as a table, or as JSON with --json.",
        )
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(func=run_show, uri=uri)

    ping = subparsers.add_parser(
        "ping",
        parents=[common],
        help="time round trips to /ipcserver/test/echo",
        description="Time round trips to /ipcserver/test/echo, like ping.",
    )
    ping.add_argument("--count", "-c", metavar="N", type=int, default=5, help="pings to send (default 5)")
    ping.add_argument(
        "--size", "-s", metavar="BYTES", type=int, default=64, help="bytes of data per ping (default 64)"
    )
    ping.add_argument(
        "--interval", "-i", metavar="S", type=float, default=1.0, help="seconds between pings (default 1)"
    )
    ping.set_defaults(func=run_ping)


# --- helpers -----------------------------------------------------------------


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"pixl-ipc: {message}", file=sys.stderr)
    return status


def _client(args: argparse.Namespace, *, reconnect: bool = False) -> IPCClient:
    # The original client's codeToErr: off unless asked, as in the original.
    if not args.timeout > 0 or not math.isfinite(args.timeout):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    return IPCClient(
        args.socket,
        request_timeout=args.timeout,
        connect_timeout=min(args.timeout, 5.0),
        user_agent=_USER_AGENT,
        auto_reconnect=1.0 if reconnect else 0,
        code_to_err=getattr(args, "code_to_err", False),
    )


def _call(args: argparse.Namespace, uri: str, data: Any) -> tuple[int, Any]:
    """One request; returns (exit status, data), having printed any error."""
    try:
        with _client(args) as client:
            return EXIT_OK, client.send(uri, data)
    except RemoteError as exc:
        return _fail(f"{exc.code}: {exc.message}", EXIT_FAILED), None
    except (ConnectError, RequestTimeout, ServerClosed, ConfigError) as exc:
        return _fail(str(exc)), None
    except IPCError as exc:
        return _fail(str(exc), EXIT_FAILED), None


def _dump(value: Any, pretty: bool) -> str:
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _flatten(value: Any, prefix: str, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), rows)
    elif isinstance(value, list) and value and all(not isinstance(v, (dict, list)) for v in value):
        rows.append((prefix, ", ".join(str(v) for v in value)))
    elif isinstance(value, str):
        rows.append((prefix, value))
    else:
        rows.append((prefix, json.dumps(value, ensure_ascii=False)))


def format_table(value: Any) -> str:
    """A readable two-column table of a JSON value: nested keys joined by dots."""
    rows: list[tuple[str, str]] = []
    _flatten(value, "", rows)
    if not rows:
        return ""
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key.ljust(width)}  {text}" for key, text in rows)


# --- commands ----------------------------------------------------------------


def run_send(args: argparse.Namespace) -> int:
    """``pixl-ipc send``: print the response data as JSON."""
    raw: str | None = args.data
    if raw == "-":
        raw = sys.stdin.read()
    data: Any = None
    if raw is not None:
        try:
            data = decode_json(raw.encode("utf-8", "surrogateescape"))
        except IPCError as exc:
            return _fail(f"invalid JSON data: {exc}")
    status, result = _call(args, args.uri, data)
    if status == EXIT_OK:
        print(_dump(result, args.pretty))
    return status


def run_show(args: argparse.Namespace) -> int:
    """``pixl-ipc info`` and ``pixl-ipc stats``."""
    status, result = _call(args, args.uri, {})
    if status != EXIT_OK:
        return status
    print(_dump(result, True) if args.json else format_table(result))
    return EXIT_OK


def run_ping(args: argparse.Namespace) -> int:
    """``pixl-ipc ping``: timed echo round trips and a min/median/max summary."""
    if args.count < 1:
        return _fail("--count must be at least 1")
    if args.size < 0:
        return _fail("--size must not be negative")
    if not args.interval >= 0 or not math.isfinite(args.interval):
        return _fail("--interval must be zero or a positive number of seconds")
    payload = {"ping": "x" * max(0, args.size - 11)}  # {"ping":""} is 11 bytes
    size = len(json.dumps(payload, separators=(",", ":")))
    name = os.path.basename(args.socket) or args.socket
    times: list[float] = []
    sent = 0
    print(f"PING {args.socket}: {size} data bytes")
    try:
        client = _client(args, reconnect=True)  # a server restart shows as lost pings
        client.connect()
    except (ConnectError, ConfigError) as exc:
        return _fail(str(exc))
    try:
        for seq in range(args.count):
            if seq:
                time.sleep(args.interval)
            sent += 1
            started = time.perf_counter()
            try:
                answer = client.send(_ECHO_URI, payload)
            except RequestTimeout:
                print(f"request timeout for seq={seq}")
                continue
            except (ServerClosed, ConnectError) as exc:
                print(f"seq={seq}: {exc}")
                continue
            except RemoteError as exc:
                print(f"seq={seq}: {exc.code}: {exc.message}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if answer != payload:
                print(f"seq={seq}: the echo differs from what was sent")
                continue
            times.append(elapsed)
            print(f"{size} bytes from {name}: seq={seq} time={elapsed:.3f} ms")
    except KeyboardInterrupt:
        print()
    finally:
        client.close()
    loss = 100.0 * (sent - len(times)) / sent
    print(f"--- {args.socket} ping statistics ---")
    print(f"{sent} requests sent, {len(times)} answers received, {loss:.0f}% loss")
    if times:
        print(
            f"round-trip min/median/max = {min(times):.3f}/{statistics.median(times):.3f}/{max(times):.3f} ms"
        )
    return EXIT_OK if len(times) == sent else EXIT_FAILED
