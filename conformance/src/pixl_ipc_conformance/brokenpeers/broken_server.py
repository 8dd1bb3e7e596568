"""A small pixl-ipc server written from the spec, with one defect on demand.

Without ``--defect`` it follows spec/PROTOCOL.md and passes every server case;
with ``--defect NAME`` it has exactly one bug, so that a test can show which
cases catch it (tests/conformance/test_broken_servers.py). It shares no code
with the reference implementation.

Run: ``python -m pixl_ipc_conformance.brokenpeers.broken_server --socket PATH
[--defect NAME] [--max-message-bytes N]``; it prints ``listening on PATH`` to
stderr when ready and stops on SIGTERM or SIGINT. ``--list-defects`` prints
the defects with what each breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import math
import os
import re
import select
import signal
import socket
import stat
import struct
import sys
from collections.abc import Sequence
from typing import Any

from ..wirekit import ID_HEAD_BYTES, DecodeError, LineSplitter, Oversize, decode_strict, falsy, recover_id

__all__ = ["DEFECTS", "BrokenServer", "main"]

#: Each defect and the bug it plants.
DEFECTS: dict[str, str] = {
    "drop-over-1mib": "lines over 1 MiB are dropped silently, as by the original (LIMIT-1)",
    "in-order": "requests of one connection are handled one after the other (RESP-5)",
    "first-line-only": "only the first line of each read is handled (FRAME-3)",
    "no-reassembly": "each read is parsed on its own, lines split over reads are lost (FRAME-3)",
    "silent-bad-json": "a { line that does not parse gets no reply, as in the original (FRAME-6)",
    "reply-non-object": "every line is parsed: blank and non-{ lines get bad_json (FRAME-4, FRAME-5)",
    "bad-json-null-id": "bad_json and message_too_large always carry ipcReqID null (CORR-6)",
    "crlf-bad-json": "a CR before the LF is kept and makes the line bad_json (FRAME-2)",
    "half-close-drop": "on half-close the connection is closed at once without answering (LIFE-2)",
    "deep-close": "deeply nested JSON closes the connection instead of an answer (LIMIT-4)",
    "no-info": "no /ipcserver/info nor /ipcserver/stats (BUILTIN-4, BUILTIN-5)",
    "mangle-unicode": "astral characters become U+FFFD and NUL characters are dropped (FRAME-8)",
    "splitlines": "lines are split with str.splitlines, so U+2028/U+2029 end a line (FRAME-8)",
    "lose-pipelined": "a connection's requests past the 100th are dropped (CORR-4)",
    "no-limit-reply": "lines over the limit are discarded without an answer (LIMIT-2)",
    "close-after-error": "the connection is closed after bad_json or message_too_large (FRAME-6, LIMIT-2)",
    "limit-8mib": "the real limit is 8 MiB whatever --max-message-bytes says (LIMIT-1)",
    "falsy-id-echo": 'falsy ids ("", 0, false) are echoed as given instead of null (RESP-2)',
    "numeric-id-string": "numeric ids are answered as strings (RESP-2)",
    "missing-id-omitted": "a request without ipcReqID is answered without ipcReqID (RESP-2)",
    "no-uri-in-data": "no_uri is sent in data instead of at the top level (ERR-3)",
    "no-handler-top": "no_handler_found is sent at the top level instead of in data (ERR-3)",
    "reject-unknown-members": "requests with unknown members are answered bad_request (REQ-1)",
    "drop-falsy-data": 'falsy data ({}, [], "", 0, false) is left out of the response (REQ-4)',
    "absent-data-object": "absent data reaches the echo as {} instead of null (REQ-4, BUILTIN-1)",
    "delay-ignored": "/ipcserver/test/delay answers at once whatever the delay (BUILTIN-2)",
    "delay-zero-waits": "/ipcserver/test/delay with 0 or no delay waits 5 s (BUILTIN-2)",
    "delay-invalid-zero": "a delay that is not a non-negative number answers {delay: 0} (BUILTIN-2)",
    "strict-types": "a uri or ipcReqID that is not a string or number is answered bad_request (REQ-2, REQ-3)",
    "exact-builtins": "echo and delay match only their exact uri, not as prefixes (BUILTIN-1, BUILTIN-2)",
    "full-close-on-shutdown": "shutdown closes connections both ways at once, not as a half-close (LIFE-8)",
    "max-100-connections": "connections past 100 open at once are closed at once (TRANS-2)",
    "disconnect-closes-all": "a client gone mid-request makes the server close every connection (LIFE-5)",
    "error-with-data": 'top-level errors also carry "data": null (ERR-2)',
    "nesting-limit-100": "JSON nested deeper than 100 levels is refused as bad_json (LIMIT-4)",
    "accept-nan": "NaN and Infinity are accepted and sent back as such (FRAME-6, FRAME-9)",
    "lossy-big-int": "integers are carried as doubles, losing precision past 2^53 (FRAME-9)",
    "one-request-per-connection": "the connection is closed after the first response (TRANS-2)",
    "cross-connection": "answers go to the connection that last used the id, not to the asker (RESP-6)",
    "unanchored-routes": "routes match anywhere in the uri, not from its start (ROUTE-1)",
    "unbounded-buffering": "the server reads on while its answers pile up unwritten (LIMIT-5)",
    "steal-path": "start-up unlinks whatever is at the socket path, as the original does (LIFE-6)",
    "no-stale-replace": "start-up refuses a stale socket instead of replacing it (LIFE-6)",
    "keep-socket-file": "shutdown leaves the socket file behind (LIFE-7)",
    "drop-on-shutdown": "shutdown drops the requests in progress without answering (LIFE-7)",
    "chmod-late": "the socket's mode is applied a second after it accepts connections (SEC-1)",
    "builtins-last": "the built-in delay is registered after the application's handlers (BUILTIN-3)",
    "handler-error-leak": "a failing handler's exception text goes on the wire (ERR-5, ROUTE-3)",
    "handler-error-detail-member": "a failing handler's exception text goes on the wire in a member"
    " of its own, beside a message free of it (ERR-5)",
    "string-zero-falsy": '"0" is false, as PHP and Perl read it: the id "0" is answered null, the uri'
    ' "0" no_uri, the delay "0" {"delay": 0} (REQ-2, REQ-3, BUILTIN-2)',
    "python-number-text": "a number uri is named as Python writes it, 1e-07, not JavaScript's 1e-7 (REQ-2)",
    "id-past-null": "an unreadable line's id is taken from the first ipcReqID followed by a string or"
    " number, past one followed by null (CORR-6)",
    "acl-trusts-claims": "a refused peer is let in when its first request claims a pid (SEC-2, SEC-3)",
    "leaky-errors": "bad_json messages carry the parser's exception and a source file path (ERR-5)",
    "invalid-utf8-close": "invalid UTF-8 closes the connection instead of a bad_json answer (FRAME-6)",
    "extra-members": 'every answer carries a member the original does not send, "server" (VER-2)',
    "info-app-first": "/ipcserver/info lists the application's handlers before the built-ins (BUILTIN-3)",
    "leaky-too-large": "message_too_large messages carry the exception text and a source file path (ERR-5)",
    "crash-deep": "deeply nested JSON kills the server process, as it kills the original (LIMIT-4)",
    "leak-fd": "each connection leaves a file descriptor open for ever (LIFE-5)",
    "info-wrong-limit": "/ipcserver/info reports a 64 MiB limit whatever the limit enforced (BUILTIN-4)",
    "no-inflight-cap": "no maximum of requests in progress per connection, though info reports one (LIMIT-5)",
    "stats-connections-stuck": "stats connections counts every connection opened, none closed (BUILTIN-5)",
    "unlink-any-path": "shutdown removes whatever is at the socket path, its own socket or not (LIFE-7)",
    "falsy-id-on-errors": "no_uri and no_handler_found answers carry a falsy ipcReqID as given (RESP-2)",
    "limit-ignores-cr": "the CR before the LF is not counted toward the limit (LIMIT-1)",
    "eof-as-half-close": "a peer that closed is kept, as if half-closed, until its requests finish (LIFE-5)",
    "whole-read-at-once": "all the lines of a 256 KiB read are handled before anyone else is served,"
    " and the high-water mark is only looked at between reads (LIMIT-6)",
    "mark-skips-errors": "the high-water mark is checked for well-formed requests only: answers to"
    " malformed lines pile up without bound (LIMIT-5)",
    "eof-drops-backlog": "lines already read are dropped once the peer has shut down its side (LIFE-2)",
    "cut-id-at-4096": "a numeric id cut at byte 4096 is recovered as the digits before it (CORR-6)",
    "uri-cache-oom": "every distinct uri is kept; past 6 MiB of them the server dies, as out of memory",
}

ECHO = "/ipcserver/test/echo"
DELAY = "/ipcserver/test/delay"
INFO = "/ipcserver/info"
STATS = "/ipcserver/stats"
APP = "/conformance/app"
APP_FAIL = "/conformance/fail"
#: The names of the conformance application handlers, in the order they are registered.
APP_NAMES = ["conformance-fail", "conformance-shadow-echo", "conformance-shadow-delay", "conformance-app"]
MIB = 1024 * 1024
NO_URI_MESSAGE = "Missing required uri parameter from request"
_WS = b" \t\r"
#: Requests in progress per connection past which reading stops (LIMIT-5).
INFLIGHT_MAX = 1024
#: Unwritten answers past this many bytes stop reading (LIMIT-5).
_HIGH_WATER = 1 * MIB
#: Lines handled before the others get their turn (LIMIT-6).
_LINES_PER_TURN = 64
#: Bytes read at a time.
_READ_SIZE = 16 * 1024
#: whole-read-at-once: bytes read, then handled, at a time.
_WHOLE_READ = 256 * 1024
#: uri-cache-oom: the distinct uris kept before the server "runs out of memory".
_URI_CACHE_DEATH = 6 * MIB
#: The peer shut down its side (Linux only: elsewhere eof-drops-backlog drops nothing).
_POLLRDHUP: int = getattr(select, "POLLRDHUP", 0)
#: id-past-null: the first ipcReqID followed by what may be a string or a number.
_ID_PAST_NULL = re.compile(rb'"ipcReqID"\s*:\s*(?="|-?\d)')
#: cut-id-at-4096: the id as a naive reader of the head sees it.
_NAIVE_ID = re.compile(rb'"ipcReqID"\s*:\s*(-?\d+|"[^"\\]*")')


def _mangle(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if ord(ch) > 0xFFFF else ch for ch in value if ch != "\0")
    if isinstance(value, list):
        return [_mangle(v) for v in value]
    if isinstance(value, dict):
        return {_mangle(k): _mangle(v) for k, v in value.items()}
    return value


class _Conn:
    def __init__(
        self, server: BrokenServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.tasks: set[asyncio.Task[None]] = set()
        self.count = 0
        self.closing = False
        # LIFE-8: half-closed by the server; what the client still sends is discarded.
        self.ended = False
        # LIMIT-5: at most this many requests in progress before reading stops.
        unbounded = server.defect in ("unbounded-buffering", "no-inflight-cap")
        self.slots = asyncio.Semaphore(1 << 30 if unbounded else INFLIGHT_MAX)

    def write(self, message: dict[str, Any]) -> None:
        if self.closing or self.ended or self.writer.is_closing():
            return
        defect = self.server.defect
        if defect == "error-with-data" and "code" in message and "data" not in message:
            message = {**message, "data": None}
        if defect == "extra-members" and "ipcReqID" in message:
            message = {**message, "server": "broken"}
        if defect == "leaky-too-large" and message.get("code") == "message_too_large":
            message = {
                **message,
                "message": f'Traceback (most recent call last): File "{__file__}": ValueError',
            }
        if defect == "mangle-unicode":
            message = _mangle(message)
        try:
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate is written escaped, as the original does (FRAME-8)
            line = json.dumps(message, separators=(",", ":")).encode("ascii")
        self.writer.write(line + b"\n")  # FRAME-10: one write per message
        if defect == "one-request-per-connection":
            self.close()

    def finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slots.release()

    def close(self) -> None:
        self.closing = True
        self.writer.close()


class BrokenServer:
    """The server; ``defect`` is one of :data:`DEFECTS` or None.

    Args:
        path: the socket path.
        defect: the bug to plant, or None for a conforming server.
        max_message_bytes: the message limit (LIMIT-1).
    """

    def __init__(
        self,
        path: str,
        defect: str | None = None,
        max_message_bytes: int = 16 * MIB,
        chmod: str = "777",
        app_handlers: bool = False,
    ) -> None:
        if defect is not None and defect not in DEFECTS:
            raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
        self.path = path
        self.mode = int(chmod, 8) if chmod else None
        self.app_handlers = app_handlers
        self.allowed_uids: set[int] | None = None
        self.defect = defect
        self.limit = 8 * MIB if defect == "limit-8mib" else max_message_bytes
        self.conns: set[_Conn] = set()
        self.opened = 0  # connections ever admitted
        self.leaked: list[int] = []  # leak-fd: descriptors never closed
        self.last_by_id: dict[str, _Conn] = {}
        self.uri_cache: set[str] = set()  # uri-cache-oom
        self.uri_cache_bytes = 0
        self.stats = {"requests": 0, "clientOpen": 0, "clientClose": 0, "maxConnections": 0}

    def claim_path(self) -> None:
        """Make the socket path usable, or refuse (LIFE-6).

        Raises:
            OSError: something that is not a stale socket is at the path.
        """
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if self.defect == "steal-path":
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # as the original: whatever is there goes
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket; left alone")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except ConnectionRefusedError:
            if self.defect == "no-stale-replace":
                raise OSError(errno.EADDRINUSE, f"{self.path} exists") from None
            os.unlink(self.path)  # stale: nobody accepts there
            return
        except OSError:
            pass
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another server accepts connections at {self.path}")

    async def serve(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Listen and serve until ``stop`` is set, then shut down (LIFE-7)."""
        self.claim_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        created = os.lstat(self.path).st_ino
        if self.mode is not None and self.defect != "chmod-late":
            os.chmod(self.path, self.mode)  # SEC-1: before the first connection is accepted
        # LIMIT-5: a connection's reading pauses with twice the limit unhandled.
        limit = _WHOLE_READ if self.defect == "whole-read-at-once" else _READ_SIZE
        server = await asyncio.start_unix_server(self._client, sock=sock, limit=limit, backlog=256)
        if self.mode is not None and self.defect == "chmod-late":
            asyncio.get_running_loop().call_later(1.0, os.chmod, self.path, self.mode)
        if ready is not None:
            ready.set()
        print(f"listening on {self.path}", file=sys.stderr, flush=True)
        try:
            await stop.wait()
        finally:
            server.close()  # stop accepting
            pending = [t for conn in self.conns for t in conn.tasks]
            if pending and self.defect != "drop-on-shutdown":
                # LIFE-7: answer what was read, within the exit timeout.
                await asyncio.wait(pending, timeout=2.0)
                await asyncio.sleep(0)
            for conn in list(self.conns):
                with contextlib.suppress(ConnectionError):
                    await asyncio.wait_for(conn.writer.drain(), 1.0)
                if self.defect == "full-close-on-shutdown" or not conn.writer.can_write_eof():
                    conn.close()
                else:
                    # LIFE-8: stop writing; the connection ends when the client closes.
                    conn.ended = True
                    conn.writer.write_eof()
            for _ in range(200):  # the exit timeout, 2 s
                if not self.conns:
                    break
                await asyncio.sleep(0.01)
            for conn in list(self.conns):
                conn.close()
            await server.wait_closed()
            with contextlib.suppress(OSError):
                # Only the socket this server created is removed.
                own = os.lstat(self.path).st_ino == created or self.defect == "unlink-any-path"
                if self.defect != "keep-socket-file" and own:
                    os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.defect != "whole-read-at-once":
            # asyncio's transports take up to 256 KiB from the socket at once,
            # then wait until it is handled; small takes, as most servers make,
            # keep the writes of a peer that floods lines going while they are.
            writer.transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
        conn = _Conn(self, reader, writer)
        if self.defect == "max-100-connections" and len(self.conns) >= 100:
            writer.close()
            return
        if self.allowed_uids is not None and not await self._admitted(conn):
            return
        self.conns.add(conn)
        self.opened += 1
        if self.defect == "leak-fd":
            self.leaked.append(os.open(os.devnull, os.O_RDONLY))
        self.stats["clientOpen"] += 1
        self.stats["maxConnections"] = max(self.stats["maxConnections"], len(self.conns))
        gone = False
        try:
            await self._read_loop(conn)
            if self.defect == "disconnect-closes-all" and conn.tasks:
                for other in list(self.conns - {conn}):
                    other.close()
            # LIFE-5: a peer that closed (not half-closed) is gone for good.
            gone = self.defect != "eof-as-half-close" and bool(_peer_events(writer) & select.POLLHUP)
            if not gone and self.defect != "half-close-drop" and conn.tasks:
                # LIFE-2: answer what was read, then close.
                await asyncio.gather(*conn.tasks, return_exceptions=True)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError:
            gone = True
        finally:
            if gone:
                for task in conn.tasks:
                    task.cancel()  # nobody to answer
            self.conns.discard(conn)
            self.stats["clientClose"] += 1
            conn.close()

    async def _admitted(self, conn: _Conn) -> bool:
        """SEC-2: check the kernel's credentials of the peer; refuse it once, then close."""
        sock = conn.writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid in (self.allowed_uids or ()):
            return True
        if self.defect == "acl-trusts-claims":
            # SEC-3 broken: a request that names a pid is taken at its word.
            first = await conn.reader.readline()
            with contextlib.suppress(ValueError):
                claimed = json.loads(first)
                if isinstance(claimed, dict) and "pid" in claimed:
                    await self._line(conn, first.rstrip(b"\n"))
                    await asyncio.sleep(0.1)
                    await self._read_loop(conn)
                    return False
        conn.write({"ipcReqID": None, "code": "access_denied", "message": "this peer is not allowed"})
        with contextlib.suppress(ConnectionError):
            await conn.writer.drain()
        conn.close()
        return False

    async def _read_loop(self, conn: _Conn) -> None:
        # limit-ignores-cr: one byte more, taken only by a line that ends in CR.
        splitter = LineSplitter(self.limit + (self.defect == "limit-ignores-cr"))
        whole_reads = self.defect == "whole-read-at-once"
        while not conn.closing:
            if whole_reads:
                await self._below_mark(conn)  # only between reads
            chunk = await conn.reader.read(_WHOLE_READ if whole_reads else _READ_SIZE)
            if not chunk:
                return  # a partial line at end of stream is dropped (LIFE-2)
            if self.defect == "no-reassembly":
                lines = chunk.split(b"\n")[:-1] if b"\n" in chunk else []
                for line in lines:
                    await self._line(conn, line)
                continue
            if self.defect == "first-line-only" and b"\n" in chunk:
                chunk = chunk.partition(b"\n")[0] + b"\n"
            for turn, item in enumerate(splitter.feed(chunk), 1):
                if turn % _LINES_PER_TURN == 0 and not whole_reads:
                    await asyncio.sleep(0)  # LIMIT-6: the others' turn
                    if self.defect == "eof-drops-backlog" and _peer_events(conn.writer) & _POLLRDHUP:
                        return
                if isinstance(item, Oversize):
                    await self._too_large(conn, item.head)  # LIMIT-2: discarded unread
                elif len(item) > self.limit and not item.endswith(b"\r"):
                    await self._too_large(conn, item[:ID_HEAD_BYTES])
                elif self.defect == "drop-over-1mib" and len(item) > MIB:
                    continue
                elif self.defect == "splitlines":
                    for part in item.decode("utf-8", "surrogateescape").splitlines():
                        await self._line(conn, part.encode("utf-8", "surrogateescape"))
                else:
                    await self._line(conn, item)

    async def _too_large(self, conn: _Conn, head: bytes) -> None:
        if self.defect in ("no-limit-reply", "drop-over-1mib"):
            return
        conn.write(
            {
                "ipcReqID": self._recover_id(head),
                "code": "message_too_large",
                "message": f"message over the limit of {self.limit} bytes",
                "limit": self.limit,
            }
        )
        if self.defect == "close-after-error":
            await conn.writer.drain()
            conn.close()

    async def _line(self, conn: _Conn, line: bytes) -> None:
        if conn.ended:
            return  # LIFE-8: read and discarded
        if self.defect != "crlf-bad-json" and line.endswith(b"\r"):
            line = line[:-1]  # FRAME-2
        stripped = line.strip(_WS)
        if self.defect == "reply-non-object" and not stripped.startswith(b"{"):
            conn.write({"ipcReqID": None, "code": "bad_json", "message": "not a JSON object"})
            return
        if not stripped:
            return  # FRAME-4
        if not stripped.startswith(b"{"):
            return  # FRAME-5
        if self.defect not in ("unbounded-buffering", "mark-skips-errors", "whole-read-at-once"):
            await self._below_mark(conn)
        try:
            request = self._parse(line)
        except DecodeError as exc:
            if isinstance(exc.__cause__, RecursionError):
                if self.defect == "deep-close":
                    conn.close()
                    return
                if self.defect == "crash-deep":
                    os._exit(70)
            elif self.defect == "invalid-utf8-close" and not _valid_utf8(line):
                conn.close()
                return
            await self._bad_json(conn, line)
            return
        conn.count += 1
        if self.defect == "lose-pipelined" and conn.count > 100:
            return
        if self.defect == "mark-skips-errors":
            await self._below_mark(conn)
        if self.defect == "in-order":
            await self._handle(conn, request)
            return
        await conn.slots.acquire()
        task = asyncio.create_task(self._handle(conn, request))
        conn.tasks.add(task)
        task.add_done_callback(conn.finished)

    async def _below_mark(self, conn: _Conn) -> None:
        """LIMIT-5: no more reading while the unwritten answers pass the mark."""
        if conn.writer.transport.get_write_buffer_size() > _HIGH_WATER:
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()

    def _recover_id(self, head: bytes) -> Any:
        """CORR-6: the id of a line that could not be read, with the defects that change it."""
        if self.defect == "bad-json-null-id":
            return None
        if self.defect == "cut-id-at-4096":
            match = _NAIVE_ID.search(head[:ID_HEAD_BYTES])
            value = json.loads(match.group(1)) if match else None
            return None if falsy(value) else value
        if self.defect == "id-past-null":
            found = _ID_PAST_NULL.search(head[:ID_HEAD_BYTES])
            return recover_id(head[found.start() : ID_HEAD_BYTES]) if found else None
        return recover_id(head)

    def _parse(self, line: bytes) -> dict[str, Any]:
        """The request a ``{`` line holds (FRAME-6), with the defects that change it.

        Raises:
            DecodeError: the line is malformed (caused by a RecursionError when too deep).
        """
        if self.defect == "crlf-bad-json" and line.endswith(b"\r"):
            raise DecodeError("trailing CR")
        if self.defect == "nesting-limit-100" and _depth_over(line, 100):
            raise DecodeError("nested too deeply")
        if self.defect == "accept-nan":
            try:
                request = json.loads(line.decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                raise DecodeError(str(exc)) from exc
        elif self.defect == "lossy-big-int":
            try:
                request = json.loads(line.decode("utf-8"), parse_int=float, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as exc:
                raise DecodeError(str(exc)) from exc
        else:
            request = decode_strict(line)
        if not isinstance(request, dict):
            raise DecodeError("not an object")
        return request

    async def _bad_json(self, conn: _Conn, line: bytes) -> None:
        if self.defect == "silent-bad-json":
            return
        request_id = self._recover_id(line)
        text = "the line is not valid JSON"
        if self.defect == "leaky-errors":
            text = f'Traceback (most recent call last): File "{__file__}", in _line: JSONDecodeError'
        conn.write({"ipcReqID": request_id, "code": "bad_json", "message": text})
        if self.defect == "close-after-error":
            await conn.writer.drain()
            conn.close()

    def _handler_names(self) -> list[str]:
        """The handlers in match order, as /ipcserver/info lists them (BUILTIN-3, BUILTIN-4)."""
        builtins = ["echo", "delay", "info", "stats"]
        if not self.app_handlers:
            return builtins
        if self.defect == "builtins-last":
            return ["echo", "info", "stats", *APP_NAMES, "delay"]
        if self.defect == "info-app-first":
            return [*APP_NAMES, *builtins]
        return [*builtins, *APP_NAMES]

    def _response_id(self, request: dict[str, Any]) -> tuple[bool, Any]:
        if "ipcReqID" not in request:
            return (self.defect != "missing-id-omitted"), None
        value = request["ipcReqID"]
        if self.defect == "falsy-id-echo" and value is not None:
            return True, value
        if self._falsy(value):
            return True, None
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if self.defect == "numeric-id-string" and numeric:
            return True, str(value)
        return True, value

    def _falsy(self, value: Any) -> bool:
        """JavaScript's falsiness (PROTOCOL.md, terms), or PHP's with string-zero-falsy."""
        return falsy(value) or (self.defect == "string-zero-falsy" and value == "0")

    async def _handle(self, conn: _Conn, request: dict[str, Any]) -> None:
        self.stats["requests"] += 1
        if isinstance(request.get("ipcReqID"), str):
            self.last_by_id[request["ipcReqID"]] = conn
        has_id, request_id = self._response_id(request)
        base: dict[str, Any] = {"ipcReqID": request_id} if has_id else {}
        raw_id = request.get("ipcReqID")
        # falsy-id-on-errors: the id as given, on the error answers only.
        error_base = (
            {"ipcReqID": raw_id} if self.defect == "falsy-id-on-errors" and "ipcReqID" in request else base
        )
        uri = request.get("uri")
        if self.defect == "strict-types" and (raw_id is True or isinstance(raw_id, dict | list)):
            conn.write(
                {"ipcReqID": None, "code": "bad_request", "message": "ipcReqID must be a string or a number"}
            )
            return
        if self._falsy(uri):
            error = {"code": "no_uri", "message": NO_URI_MESSAGE}
            conn.write(
                {**base, "data": error} if self.defect == "no-uri-in-data" else {**error_base, **error}
            )
            return
        if not isinstance(uri, str):
            if self.defect == "strict-types":
                conn.write({**base, "code": "bad_request", "message": "uri must be a string"})
                return
            python_text = self.defect == "python-number-text" and isinstance(uri, float)
            uri = str(uri) if python_text else _js_text(uri)  # REQ-2: routed by its JavaScript text
        if self.defect == "uri-cache-oom" and uri not in self.uri_cache:
            self.uri_cache.add(uri)
            self.uri_cache_bytes += len(uri)
            if self.uri_cache_bytes > _URI_CACHE_DEATH:
                print("broken_server: out of memory (uri cache)", file=sys.stderr, flush=True)
                os._exit(137)
        if self.defect == "reject-unknown-members" and set(request) - {
            "ipcReqID",
            "uri",
            "data",
            "pid",
            "userAgent",
        }:
            conn.write({**base, "code": "bad_request", "message": "unknown members"})
            return
        data = request.get("data")
        if self.defect == "absent-data-object" and "data" not in request:
            data = {}
        result: Any
        if self.defect == "unanchored-routes":
            uri = next((u for u in (ECHO, DELAY, INFO, STATS, APP) if u in uri), uri)
        # BUILTIN-1, BUILTIN-2: the original's prefix patterns.
        prefix = self.defect != "exact-builtins"
        app_first = self.app_handlers and self.defect == "builtins-last"
        if app_first and uri == DELAY:
            result = {"shadowed": True}
        elif uri == ECHO or (prefix and uri.startswith(ECHO)):
            if "data" not in request and self.defect != "absent-data-object":
                conn.write(base)  # echo without data: no data member
                return
            result = data
        elif uri == DELAY or (prefix and uri.startswith(DELAY)):
            delay = data.get("delay") if isinstance(data, dict) else None
            if self.defect == "delay-invalid-zero" and (
                not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0
            ):
                delay = None
            if self._falsy(delay):
                if self.defect == "delay-zero-waits":
                    await asyncio.sleep(5.0)
                result = {"delay": 0}
            else:
                # setTimeout's reading of the delay: Number(), about 1 ms outside 1..2^31-1.
                wait_ms = _js_number(delay)
                if not 1 <= wait_ms <= 2**31 - 1:
                    wait_ms = 1
                if self.defect != "delay-ignored":
                    await asyncio.sleep(wait_ms / 1000)
                result = {"delay": delay}
        elif uri == INFO and self.defect != "no-info":
            result = {
                "protocol": "1.1",
                "server": {"name": "pixl-ipc-conformance broken server", "version": "1.1.0"},
                "limits": {
                    "max_message_bytes": 64 * MIB if self.defect == "info-wrong-limit" else self.limit,
                    "max_inflight_per_connection": INFLIGHT_MAX,
                },
                "handlers": self._handler_names(),
                "extensions": ["bad_json", "bad_request", "message_too_large", INFO, STATS],
            }
        elif uri == STATS and self.defect != "no-info":
            connections = self.opened if self.defect == "stats-connections-stuck" else len(self.conns)
            result = {"connections": connections, "handlers": 4, **self.stats}
            result.update({"duration": 0, "slowResponses": 0, "streamBackpressure": 0})
        elif self.app_handlers and uri == APP_FAIL:
            # ROUTE-3, ERR-5: the failure is logged, the wire gets no details.
            detail = "RuntimeError: conformance-secret-3b9f /etc/pixl-ipc/conformance-secret"
            print(f"handler {uri} failed: {detail}", file=sys.stderr)
            text = detail if self.defect == "handler-error-leak" else "the handler failed"
            error = {"code": "handler_error", "message": text}
            if self.defect == "handler-error-detail-member":
                error["detail"] = detail
            conn.write({**base, "data": error})
            return
        elif self.app_handlers and uri == APP:
            result = {"app": True, "data": data}
        else:
            message = {"code": "no_handler_found", "message": f"No handler found for {uri}"}
            conn.write(
                {**base, **message} if self.defect == "no-handler-top" else {**error_base, "data": message}
            )
            return
        if self.defect == "drop-falsy-data" and not result and result is not None:
            conn.write(base)
            return
        if self.defect == "cross-connection" and isinstance(raw_id, str):
            conn = self.last_by_id.get(raw_id, conn)
        conn.write({**base, "data": result})
        with contextlib.suppress(ConnectionError):
            # LIFE-5: a client gone with requests in progress costs only its answers.
            await conn.writer.drain()


def _js_text(value: Any) -> str:
    """JavaScript's String() of a JSON value (REQ-2)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join("" if item is None else _js_text(item) for item in value)
    if isinstance(value, int) and abs(value) < 10**21:
        return str(value)
    number = float(value)
    if number == int(number) and abs(number) < 1e21:
        return str(int(number))
    return repr(number).replace("e-0", "e-")


def _js_number(value: Any) -> float:
    """JavaScript's Number() of a JSON value, for the delays the cases send (BUILTIN-2)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(_js_text(value).strip() or 0) if isinstance(value, str | list) else math.nan
    except ValueError:
        return math.nan


def _peer_events(writer: asyncio.StreamWriter) -> int:
    """What poll() says of the connection: POLLRDHUP once the peer shut down its
    side (Linux), POLLHUP once it closed it (AF_UNIX)."""
    fd = writer.get_extra_info("socket").fileno()
    if fd < 0:
        return 0  # closed by the server already
    poller = select.poll()
    poller.register(fd, _POLLRDHUP)
    events = poller.poll(0)
    return events[0][1] if events else 0


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _depth_over(line: bytes, limit: int) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _valid_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _main_async(server: BrokenServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.serve(stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the broken server.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="broken_server", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="the socket path")
    parser.add_argument("--defect", choices=sorted(DEFECTS), help="the bug to plant")
    parser.add_argument("--max-message-bytes", type=int, default=16 * MIB)
    parser.add_argument("--chmod", default="777", help="the socket file's mode, octal ('' leaves it)")
    parser.add_argument(
        "--app-handlers", action="store_true", help="add the conformance application handlers"
    )
    parser.add_argument(
        "--access-config", metavar="FILE", help='JSON {"allowed_uids": [...]}: admit only these uids'
    )
    parser.add_argument("--list-defects", action="store_true")
    args = parser.parse_args(argv)
    if args.list_defects:
        for name, text in DEFECTS.items():
            print(f"{name:<24} {text}")
        return 0
    if not args.socket:
        parser.error("--socket is required")
    try:
        server = BrokenServer(args.socket, args.defect, args.max_message_bytes, args.chmod, args.app_handlers)
        if args.access_config:
            with open(args.access_config, encoding="utf-8") as handle:
                server.allowed_uids = set(json.load(handle)["allowed_uids"])
        asyncio.run(_main_async(server))
    except OSError as exc:
        print(f"broken_server: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
