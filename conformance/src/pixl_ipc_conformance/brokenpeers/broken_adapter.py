"""A conformance adapter (spec/ADAPTER.md) with its own small client, and defects on demand.

The client here is written from spec/PROTOCOL.md alone, with the standard
library only: one socket, a reader thread, a table of pending requests keyed by
``ipcReqID``. Without ``--defect`` it is meant to pass every client case; each
defect (``--defect NAME``, repeatable, ``--list-defects`` prints them) breaks
it the way a real client might, so that the suite can prove its client cases
catch that mistake.

Run: ``python -m pixl_ipc_conformance.brokenpeers.broken_adapter [--defect
NAME ...]``; it then reads commands on stdin and answers on stdout, one JSON
object per line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
from typing import Any

from ..wirekit import ID_HEAD_BYTES, LineSplitter, Oversize, recover_id

#: Each defect and the rule it breaks.
DEFECTS: dict[str, str] = {
    "reuse_ids": "ids are 'rq' + the number of pending requests, so they repeat (CORR-1, CORR-5)",
    "late_to_next": "a response with an unknown id goes to the oldest pending request (CORR-3)",
    "hang_on_close": "pending requests wait for their timeout when the connection ends (LIFE-3)",
    "match_by_order": "responses go to the oldest pending request, whatever their id (CORR-2)",
    "first_line_only": "only the first complete line of each read is handled (FRAME-3)",
    "push_as_response": "a message without an id answers the oldest pending request (PUSH-2)",
    "drop_pushes": "pushes are dropped, never handed to the application (PUSH-2)",
    "strict_lines": "a line that does not start with '{' is a fatal protocol error (FRAME-5)",
    "no_crlf": "a line ending in CR is taken as malformed (FRAME-2)",
    "choke_malformed": "a malformed '{' line fails the pending requests (FRAME-7)",
    "blank_fatal": "a blank line is a fatal protocol error (FRAME-4)",
    "truncate_1mib": "keeps at most 1 MiB of a line, as the original reader (LIMIT-1)",
    "no_reassembly": "each read is taken as whole lines; a line split over reads is lost (FRAME-3)",
    "splitlines": "splits lines with str.splitlines, so U+2028 ends a line (FRAME-8)",
    "null_for_errors": "a top-level error is returned as data null (ERR-4)",
    "unknown_code_ok": "an error code it does not know is success (ERR-6)",
    "code_to_err": "an error inside data is reported as an error (ERR-4, SHOULD mirror the original)",
    "missing_data_fatal": "a response without data is a protocol error (RESP-3)",
    "strict_members": "a response with unknown members is a protocol error (RESP-4)",
    "deep_limit": "JSON nested deeper than 100 levels is taken as malformed (LIMIT-4)",
    "empty_as_null": "falsy data ([], {}, 0, '', false) is sent as null (REQ-4)",
    "no_metadata": "requests carry no pid and no userAgent (REQ-5, REQ-6)",
    "pretty_print": "requests are written pretty-printed over several lines (FRAME-1)",
    "unlocked_writes": "concurrent requests are written in pieces without a lock (FRAME-10)",
    "serialize_sends": "claims concurrency but holds one lock over each whole send (CORR-4)",
    "no_timeout": "ignores the request timeout and waits until the connection ends (CORR-5)",
    "lazy_connect": "connect always succeeds; the socket is opened by the first send (LIFE-1)",
    "no_reconnect": "claims reconnect and auto_reconnect, but never connects again (LIFE-4)",
    "ignore_max": "claims max_message_bytes but ignores the option (LIMIT-3)",
    "requires_info": "connect asks /ipcserver/info and fails on a server without it (VER-5)",
    "bad_start": "the start result lacks language and version; unknown commands succeed (ADAPTER)",
    "null_error_to_oldest": "a top-level error with ipcReqID null or absent fails the oldest request (ERR-7)",
    "close_keeps_socket": "close fails the pending requests but never closes the socket (LIFE-3)",
    "leak_timed_out": "a timed-out request's entry is kept for ever (CORR-5)",
    "leak_on_error": "a request answered with a top-level error stays in the pending table (CORR-2)",
    "connect_timeout_kind": "a connect that times out is reported with kind timeout, not connect (LIFE-1)",
    "send_after_close_hangs": "a send after close waits for ever, past its timeout (LIFE-3)",
    "data_required": "a send command without data is refused (REQ-4, ADAPTER)",
    "ignore_code_to_err": "claims code_to_err but ignores the option (ERR-4)",
    "too_large_oldest_only": "a line over the limit with no known id fails only the oldest request (LIMIT-3)",
    "limit_excludes_cr": "the CR before the LF is not counted toward the size limit (LIMIT-1)",
    "limit_at_lf": "a line over the limit is only noticed when its LF arrives (LIMIT-3)",
    "php_truthy_code": 'a code is tested as PHP tests truth, so the code "0" is no error (ERR-4)',
    "code_member_is_error": 'a response with a code member is an error, even with code "" (ERR-4)',
    "reconnect_at_once": "after a drop, the first attempt to connect again does not wait"
    " auto_reconnect_ms (ADAPTER)",
    "too_large_unreported": "a line over the limit closes the connection but fails no request: each"
    " waits for its timeout (LIMIT-3)",
}

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
KNOWN_CODES = {"no_uri", "no_handler_found", "bad_json", "bad_request", "message_too_large", "access_denied"}


class ClientError(Exception):
    """A failed client call: ``kind`` is one of ADAPTER.md's error kinds."""

    def __init__(self, kind: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code


class _Waiter:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: ClientError | None = None

    def resolve(self, value: Any = None, error: ClientError | None = None) -> None:
        if not self.done.is_set():
            self.value, self.error = value, error
            self.done.set()


def _depth(value: Any) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return depth


class Client:
    """A minimal pixl-ipc client (threads, blocking sockets)."""

    def __init__(self, path: str, options: dict[str, Any], defects: set[str]) -> None:
        self.path = path
        self.defects = defects
        self.request_timeout = float(options.get("request_timeout_ms", 10000)) / 1000
        self.connect_timeout = float(options.get("connect_timeout_ms", 2000)) / 1000
        self.auto_reconnect = float(options.get("auto_reconnect_ms", 0)) / 1000
        self.expire_request = float(options.get("expire_request_ms", 10000)) / 1000
        self.code_to_err = bool(options.get("code_to_err")) and "ignore_code_to_err" not in defects
        self.user_agent = str(options.get("user_agent", "broken_adapter/" + os.getcwd()))
        self.max_line = int(options.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
        if "ignore_max" in defects:
            self.max_line = DEFAULT_MAX_MESSAGE_BYTES
        if "truncate_1mib" in defects:
            self.max_line = 1024 * 1024
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.kept: socket.socket | None = None  # close_keeps_socket: the socket close left open
        self.pending: dict[str, _Waiter] = {}
        #: Timed-out ids, remembered until the time given, so that their late
        #: answers are known as such (CORR-5); purged as time goes by.
        self.expired: dict[str, float] = {}
        self.counter = 0
        self.pushes: list[Any] = []
        self.user_closed = False
        self.ever_connected = False

    # -- connection --------------------------------------------------------

    def connect(self) -> None:
        """Open the connection (LIFE-1: failures are connect errors)."""
        if "lazy_connect" in self.defects:
            return
        with self.lock:
            self._open()
        if "requires_info" in self.defects:
            try:
                info = self.send("/ipcserver/info", None, 10.0)
            except ClientError as exc:
                self.close()
                raise ClientError("connect", f"/ipcserver/info failed: {exc.message}") from exc
            if not (isinstance(info, dict) and "protocol" in info):
                self.close()
                raise ClientError("protocol", "the server does not implement /ipcserver/info")

    def _open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                sock.connect(self.path)
                break
            except BlockingIOError as exc:
                # LIFE-1: a full backlog is no failure; retry until the connect timeout.
                if time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                sock.close()
                kind = "timeout" if "connect_timeout_kind" in self.defects else "connect"
                raise ClientError(kind, f"connecting to {self.path} timed out") from exc
            except OSError as exc:
                sock.close()
                raise ClientError("connect", f"cannot connect to {self.path}: {exc}") from exc
        sock.settimeout(None)
        self.sock = sock
        self.ever_connected = True
        threading.Thread(target=self._read_loop, args=(sock,), daemon=True).start()

    def close(self) -> None:
        """Close the connection; pending requests fail with closed (LIFE-3)."""
        with self.lock:
            self.user_closed = True
            sock, self.sock = self.sock, None
            if "close_keeps_socket" in self.defects:
                self.kept = sock  # never closed
                sock = None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            if "hang_on_close" not in self.defects:
                self._fail_all(ClientError("closed", "the client was closed"))

    def _fail_all(self, error: ClientError) -> None:
        waiters = list(self.pending.values())
        self.pending.clear()
        for waiter in waiters:
            waiter.resolve(error=error)

    def _connection_ended(self, sock: socket.socket) -> None:
        with self.lock:
            if self.sock is not sock:
                return
            self.sock = None
            if "hang_on_close" not in self.defects:
                self._fail_all(ClientError("closed", "the server closed the connection"))
            reconnect = (
                self.auto_reconnect > 0 and not self.user_closed and "no_reconnect" not in self.defects
            )
        if reconnect:
            threading.Thread(target=self._reconnect_loop, daemon=True).start()

    def _reconnect_loop(self) -> None:
        wait = 0.0 if "reconnect_at_once" in self.defects else self.auto_reconnect
        while True:
            time.sleep(wait)
            wait = self.auto_reconnect
            with self.lock:
                if self.user_closed or self.sock is not None:
                    return
                try:
                    self._open()
                    return
                except ClientError:
                    continue

    # -- sending -----------------------------------------------------------

    def send(self, uri: str, data: Any, timeout_s: float | None) -> Any:
        """Send one request and wait for its answer.

        Raises:
            ClientError: timeout, closed, remote, too_large, protocol, connect.
        """
        if "serialize_sends" in self.defects:
            with self.send_lock:
                return self._send(uri, data, timeout_s)
        return self._send(uri, data, timeout_s)

    def _send(self, uri: str, data: Any, timeout_s: float | None) -> Any:
        with self.lock:
            if self.user_closed and "send_after_close_hangs" in self.defects:
                waiter = _Waiter()
                self.pending[f"rq{self.counter}"] = waiter
                self.counter += 1
            else:
                waiter = None
        if waiter is not None:
            waiter.done.wait()
        with self.lock:
            if self.sock is None:
                lazy = "lazy_connect" in self.defects and not self.ever_connected
                may_reconnect = (
                    self.ever_connected and not self.user_closed and "no_reconnect" not in self.defects
                )
                if not (lazy or may_reconnect):
                    raise ClientError("closed", "not connected")
                self._open()
            sock = self.sock
            assert sock is not None
            if "reuse_ids" in self.defects:
                request_id = f"rq{len(self.pending)}"
            else:
                request_id = f"rq{self.counter}"
                self.counter += 1
            waiter = _Waiter()
            self.pending[request_id] = waiter
        if "empty_as_null" in self.defects and not data:
            data = None
        request: dict[str, Any] = {"ipcReqID": request_id, "uri": uri, "data": data}
        if "no_metadata" not in self.defects:
            request["pid"] = os.getpid()
            request["userAgent"] = self.user_agent
        indent = 1 if "pretty_print" in self.defects else None
        separators = None if indent else (",", ":")
        line = (json.dumps(request, ensure_ascii=False, indent=indent, separators=separators) + "\n").encode()
        try:
            if "unlocked_writes" in self.defects:
                for start in range(0, len(line), 512):
                    sock.sendall(line[start : start + 512])
                    time.sleep(0.0005)
            else:
                with self.write_lock:
                    sock.sendall(line)
        except OSError as exc:
            with self.lock:
                self.pending.pop(request_id, None)
            raise ClientError("closed", f"cannot write: {exc}") from exc
        timeout: float | None = self.request_timeout if timeout_s is None else timeout_s
        if "no_timeout" in self.defects:
            timeout = None
        if not waiter.done.wait(timeout):
            with self.lock:
                # CORR-5: the counter never goes back, so the id stays reserved;
                # it is remembered a while, so that its late answer is known.
                if "leak_timed_out" not in self.defects:
                    self.pending.pop(request_id, None)
                self.expired[request_id] = time.monotonic() + self.expire_request
            if not waiter.done.is_set():
                raise ClientError("timeout", f"no answer within {timeout} s")
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    # -- receiving ---------------------------------------------------------

    def _read_loop(self, sock: socket.socket) -> None:
        # limit_excludes_cr: one byte more, taken only by a line that ends in CR.
        splitter = LineSplitter(self.max_line + ("limit_excludes_cr" in self.defects))
        truncated = bytearray()
        try:
            while True:
                try:
                    chunk = sock.recv(262144)
                except OSError:
                    break
                if not chunk:
                    break
                if "no_reassembly" in self.defects:
                    for line in chunk.split(b"\n"):
                        self._line(line)
                    continue
                over: bytes | None = None
                if "truncate_1mib" in self.defects:
                    lines = self._truncating(truncated, chunk)
                else:
                    lines, over = self._split(splitter, chunk)
                if "first_line_only" in self.defects:
                    lines = lines[:1]
                for line in lines:
                    if "splitlines" in self.defects:
                        for part in line.decode("utf-8", errors="replace").splitlines():
                            self._line(part.encode())
                    else:
                        self._line(line)
                if over is not None:
                    self._oversize(over)
                    return  # LIMIT-3: the connection is closed, the rest fail (LIFE-3)
        finally:
            self._connection_ended(sock)

    def _split(self, splitter: LineSplitter, chunk: bytes) -> tuple[list[bytes], bytes | None]:
        """The complete lines of a read, and the head of a line over the limit, if one came."""
        lines: list[bytes] = []
        for item in splitter.feed(chunk):
            if isinstance(item, Oversize):
                return lines, item.head
            if len(item) > self.max_line and not item.endswith(b"\r"):
                return lines, item[:ID_HEAD_BYTES]
            lines.append(item)
        # LIMIT-3: over the limit as soon as its bytes pass it, LF or not.
        if "limit_at_lf" not in self.defects:
            return lines, splitter.over_limit
        return lines, None

    def _truncating(self, buffer: bytearray, chunk: bytes) -> list[bytes]:
        """The original reader: what passes 1 MiB of a line is silently lost."""
        lines: list[bytes] = []
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            piece = chunk[start:] if newline < 0 else chunk[start:newline]
            buffer += piece[: max(0, self.max_line - len(buffer))]
            if newline < 0:
                return lines
            lines.append(bytes(buffer))
            buffer.clear()
            start = newline + 1

    def held(self) -> int:
        """Per-request entries still held: pending requests and remembered timed-out ids."""
        with self.lock:
            now = time.monotonic()
            self.expired = {k: v for k, v in self.expired.items() if v > now}
            return len(self.pending) + len(self.expired)

    def _oversize(self, head: bytes) -> None:
        """LIMIT-3: fail the request the line belongs to, then close (failing the rest)."""
        recovered = recover_id(head)
        if "too_large_unreported" in self.defects:
            with self.lock:
                sock, self.sock = self.sock, None  # so that the end of the connection fails nothing
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
        with self.lock:
            target = self.pending.pop(str(recovered), None) if recovered is not None else None
            error = ClientError("too_large", f"a message over {self.max_line} bytes")
            if target is not None:
                target.resolve(error=error)
            elif "too_large_oldest_only" in self.defects and self.pending:
                self.pending.pop(next(iter(self.pending))).resolve(error=error)
            else:
                self._fail_all(error)
            sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _protocol_failure(self, text: str) -> None:
        with self.lock:
            self._fail_all(ClientError("protocol", text))

    def _line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            if "no_crlf" in self.defects:
                return  # taken as malformed, so dropped
            line = line[:-1]
        stripped = line.strip(b" \t\r")
        if not stripped:
            if "blank_fatal" in self.defects:
                self._protocol_failure("blank line")
            return  # FRAME-4
        if not stripped.startswith(b"{"):
            if "strict_lines" in self.defects:
                self._protocol_failure(f"not a message: {line[:80]!r}")
            return  # FRAME-5
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            if "choke_malformed" in self.defects:
                self._protocol_failure(f"malformed message: {line[:80]!r}")
            return  # FRAME-7
        if not isinstance(message, dict):
            return
        if "deep_limit" in self.defects and _depth(message) > 100:
            return
        self._message(message)

    def _message(self, message: dict[str, Any]) -> None:
        with self.lock:
            request_id = message.get("ipcReqID")
            if request_id is None and message.get("code") and "null_error_to_oldest" in self.defects:
                if self.pending:
                    self.pending.pop(next(iter(self.pending))).resolve(*self._outcome(message))
                return
            if request_id is None:
                if "push_as_response" in self.defects and self.pending:
                    waiter = self.pending.pop(next(iter(self.pending)))
                    waiter.resolve(message.get("data"))
                    return
                if "drop_pushes" not in self.defects:
                    self.pushes.append(message.get("data"))  # PUSH-2
                return
            if "match_by_order" in self.defects and self.pending:
                waiter = self.pending.pop(next(iter(self.pending)))
            else:
                found = self.pending.pop(str(request_id), None)
                if found is None and "late_to_next" in self.defects and self.pending:
                    found = self.pending.pop(next(iter(self.pending)))
                if found is None:
                    return  # CORR-3
                waiter = found
                if "leak_on_error" in self.defects and message.get("code"):
                    self.pending[str(request_id)] = found  # answered, but kept
        waiter.resolve(*self._outcome(message))

    def _outcome(self, message: dict[str, Any]) -> tuple[Any, ClientError | None]:
        if "strict_members" in self.defects:
            unknown = set(message) - {"ipcReqID", "data", "code", "message"}
            if unknown:
                return None, ClientError("protocol", f"unknown members {sorted(unknown)}")
        code = message.get("code")
        ignored = "null_for_errors" in self.defects or (
            "unknown_code_ok" in self.defects and code not in KNOWN_CODES
        )
        is_error = bool(code) and not ignored  # ERR-4: a truthy code, "0" included
        if "php_truthy_code" in self.defects and code == "0":
            is_error = False
        if "code_member_is_error" in self.defects and "code" in message:
            is_error = True
        if is_error:
            return None, ClientError("remote", str(message.get("message", "")), str(code))
        if "data" not in message:
            if "missing_data_fatal" in self.defects:
                return None, ClientError("protocol", "response without data")
            return None, None
        data = message["data"]
        code_to_err = self.code_to_err or "code_to_err" in self.defects
        if code_to_err and isinstance(data, dict) and data.get("code"):
            return None, ClientError("remote", str(data.get("message", "")), str(data["code"]))
        return data, None


class Adapter:
    """The command loop of spec/ADAPTER.md."""

    def __init__(self, defects: set[str]) -> None:
        self.defects = defects
        self.client: Client | None = None
        self.out_lock = threading.Lock()

    def reply(self, command_id: Any, result: Any = None, error: ClientError | None = None) -> None:
        if error is None:
            answer: dict[str, Any] = {"id": command_id, "ok": True, "result": result or {}}
        else:
            body: dict[str, Any] = {"kind": error.kind, "message": error.message}
            if error.kind == "remote":
                body["code"] = error.code or ""
            answer = {"id": command_id, "ok": False, "error": body}
        line = json.dumps(answer, ensure_ascii=False) + "\n"
        with self.out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def start_result(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "name": "pixl-ipc broken adapter"
            + (" (" + ",".join(sorted(self.defects)) + ")" if self.defects else ""),
            "language": "python",
            "version": "1.1.0",
            "capabilities": [
                "concurrent",
                "push",
                "reconnect",
                "auto_reconnect",
                "max_message_bytes",
                "timeout",
                "introspect",
                "code_to_err",
            ],
        }
        if "bad_start" in self.defects:
            del result["language"], result["version"]
        return result

    def handle(self, command: dict[str, Any]) -> None:
        command_id = command.get("id")
        name = command.get("cmd")
        try:
            if name == "start":
                self.reply(command_id, self.start_result())
            elif name == "connect":
                if self.client is not None:
                    self.client.close()
                self.client = Client(str(command["socket"]), dict(command.get("options") or {}), self.defects)
                self.client.connect()
                self.reply(command_id, {})
            elif name == "send":
                client = self.client
                if client is None:
                    raise ClientError("closed", "send before connect")
                if "data" not in command and "data_required" in self.defects:
                    raise ClientError("protocol", "send without data")
                timeout_ms = command.get("timeout_ms")
                timeout = None if timeout_ms is None else float(timeout_ms) / 1000
                thread = threading.Thread(
                    target=self._send, args=(client, command_id, command["uri"], command.get("data"), timeout)
                )
                thread.daemon = True
                thread.start()
            elif name == "close":
                if self.client is not None:
                    self.client.close()
                self.reply(command_id, {})
            elif name == "introspect":
                self.reply(command_id, {"pending": self.client.held() if self.client is not None else 0})
            elif name == "pushes":
                pushes: list[Any] = []
                if self.client is not None:
                    with self.client.lock:
                        pushes, self.client.pushes = self.client.pushes, []
                self.reply(command_id, {"pushes": pushes})
            elif "bad_start" in self.defects:
                self.reply(command_id, {})
            else:
                raise ClientError("unsupported", f"unknown command {name!r}")
        except ClientError as exc:
            self.reply(command_id, error=exc)

    def _send(self, client: Client, command_id: Any, uri: str, data: Any, timeout: float | None) -> None:
        try:
            self.reply(command_id, {"data": client.send(uri, data, timeout)})
        except ClientError as exc:
            self.reply(command_id, error=exc)
        except Exception as exc:  # a defect must show as a failed case, not a dead adapter
            self.reply(command_id, error=ClientError("protocol", f"{type(exc).__name__}: {exc}"))

    def run(self) -> int:
        for raw in sys.stdin:
            if not raw.strip():
                continue
            try:
                command = json.loads(raw)
            except ValueError:
                print(f"bad command line: {raw[:80]!r}", file=sys.stderr)
                continue
            if isinstance(command, dict):
                self.handle(command)
        if self.client is not None:
            self.client.close()
        return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the command loop until stdin ends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--defect", action="append", default=[], choices=sorted(DEFECTS), help="a defect to have"
    )
    parser.add_argument("--list-defects", action="store_true", help="print the defects and exit")
    args = parser.parse_args(argv)
    if args.list_defects:
        for name, text in DEFECTS.items():
            print(f"{name:20} {text}")
        return 0
    return Adapter(set(args.defect)).run()


if __name__ == "__main__":
    sys.exit(main())
