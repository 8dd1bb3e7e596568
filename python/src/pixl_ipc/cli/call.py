"""``pixl-ipc send | info | stats | ping``: call a running server from the shell.

All four use the blocking :class:`~pixl_ipc.client.IPCClient`; the exit
statuses are :data:`EXIT_STATUSES`. ``--socket`` may come from the
``PIXL_IPC_SOCKET`` environment variable.
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

from .._version import __version__
from ..client import IPCClient
from ..errors import ConfigError, ConnectError, IPCError, RemoteError, RequestTimeout, ServerClosed
from ..framing import decode_json

__all__ = ["EXIT_STATUSES", "EXIT_TABLE", "SOCKET_ENV", "add_parser", "format_table"]

_ECHO_URI = "/ipcserver/test/echo"
_INFO_URI = "/ipcserver/info"
_STATS_URI = "/ipcserver/stats"
_USER_AGENT = f"pixl-ipc-cli/{__version__}"

#: The environment variable that supplies ``--socket``.
SOCKET_ENV = "PIXL_IPC_SOCKET"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_CONNECTION = 3
EXIT_TIMEOUT = 4

#: Exit status -> what it means, for ``send``, ``info``, ``stats`` and ``ping``.
EXIT_STATUSES = {
    EXIT_OK: "success",
    EXIT_FAILED: "the server answered with an error, refused the peer or hung up (ping: pings were lost)",
    EXIT_USAGE: "bad usage: an unknown option, invalid JSON data, no --socket",
    EXIT_NO_CONNECTION: "cannot connect: no socket at the path, refused, permission denied",
    EXIT_TIMEOUT: "no answer within --timeout",
}
#: The exit statuses as ``--help`` shows them.
EXIT_TABLE = "exit status of send, info, stats, ping:\n" + "\n".join(
    f"  {status}  {text}" for status, text in EXIT_STATUSES.items()
)


def add_parser(subparsers: Any) -> None:
    """Register ``send``, ``info``, ``stats`` and ``ping`` on ``subparsers``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket",
        metavar="PATH",
        help=f"the server's socket path (default: ${SOCKET_ENV})",
    )
    common.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=10.0, help="seconds to wait (default 10)"
    )

    def command(name: str, summary: str, description: str, *examples: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(  # type: ignore[no-any-return]
            name,
            parents=[common],
            help=summary,
            description=description,
            epilog="examples:\n" + "".join(f"  {line}\n" for line in examples) + "\n" + EXIT_TABLE,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    send = command(
        "send",
        "send one request and print the response data",
        "Send one request; print the response's data as JSON on stdout.",
        'pixl-ipc send --socket /tmp/app.sock /ipcserver/test/echo \'{"hello": "world"}\'',
        "echo '[1, 2]' | pixl-ipc send --socket /tmp/app.sock --pretty /ipcserver/test/echo -",
        f"{SOCKET_ENV}=/tmp/app.sock pixl-ipc send --code-to-err /myapp/status",
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
        sub = command(
            name,
            f"show the server's {what} ({uri})",
            f"Show the server's {what} ({uri}) as a table, or as JSON with --json.",
            f"pixl-ipc {name} --socket /tmp/app.sock",
            f"pixl-ipc {name} --socket /tmp/app.sock --json",
        )
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(func=run_show, uri=uri)

    ping = command(
        "ping",
        "time round trips to /ipcserver/test/echo",
        "Time round trips to /ipcserver/test/echo, like ping.",
        "pixl-ipc ping --socket /tmp/app.sock --count 10 --interval 0.2",
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


class _Refusals:
    """Keeps the top-level errors the server sends with a null id, e.g. ``access_denied``.

    A refused peer gets one such error and then the connection ends (SEC-2,
    ERR-7): it explains the :class:`ServerClosed` that follows.
    """

    def __init__(self) -> None:
        self.errors: list[RemoteError] = []

    def __call__(self, message: dict[str, Any]) -> None:
        code = message.get("code")
        if code and message.get("ipcReqID") is None:
            self.errors.append(RemoteError(str(code), str(message.get("message", ""))))


def _socket_path(args: argparse.Namespace) -> str:
    path: str | None = args.socket or os.environ.get(SOCKET_ENV)
    if not path:
        raise ConfigError(f"--socket PATH is required (or set {SOCKET_ENV})")
    return path


def _client(
    args: argparse.Namespace, *, reconnect: bool = False, on_push: _Refusals | None = None
) -> IPCClient:
    # The original client's codeToErr: off unless asked, as in the original.
    if not args.timeout > 0 or not math.isfinite(args.timeout):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    return IPCClient(
        _socket_path(args),
        request_timeout=args.timeout,
        connect_timeout=min(args.timeout, 5.0),
        user_agent=_USER_AGENT,
        auto_reconnect=1.0 if reconnect else 0,
        code_to_err=getattr(args, "code_to_err", False),
        on_push=on_push,
    )


def _call(args: argparse.Namespace, uri: str, data: Any) -> tuple[int, Any]:
    """One request; returns (exit status, data), having printed any error."""
    refusals = _Refusals()
    try:
        with _client(args, on_push=refusals) as client:
            return EXIT_OK, client.send(uri, data)
    except RemoteError as exc:
        return _fail(f"{exc.code}: {exc.message}", EXIT_FAILED), None
    except ServerClosed as exc:
        if refusals.errors:
            refused = refusals.errors[0]
            return _fail(f"{refused.code}: {refused.message}", EXIT_FAILED), None
        return _fail(str(exc), EXIT_FAILED), None
    except ConfigError as exc:
        return _fail(str(exc)), None
    except ConnectError as exc:
        return _fail(str(exc), EXIT_NO_CONNECTION), None
    except RequestTimeout as exc:
        return _fail(str(exc), EXIT_TIMEOUT), None
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
    try:
        client = _client(args, reconnect=True)  # a server restart shows as lost pings
    except ConfigError as exc:
        return _fail(str(exc))
    path = client.socket_path
    payload = {"ping": "x" * max(0, args.size - 11)}  # {"ping":""} is 11 bytes
    size = len(json.dumps(payload, separators=(",", ":")))
    name = os.path.basename(path) or path
    times: list[float] = []
    sent = 0
    print(f"PING {path}: {size} data bytes")
    try:
        client.connect()
    except ConnectError as exc:
        return _fail(str(exc), EXIT_NO_CONNECTION)
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
    print(f"--- {path} ping statistics ---")
    print(f"{sent} requests sent, {len(times)} answers received, {loss:.0f}% loss")
    if times:
        print(
            f"round-trip min/median/max = {min(times):.3f}/{statistics.median(times):.3f}/{max(times):.3f} ms"
        )
    return EXIT_OK if len(times) == sent else EXIT_FAILED
