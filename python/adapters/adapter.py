#!/usr/bin/env python3
"""Conformance adapter for the Python clients (spec/ADAPTER.md).

Reads one JSON command per line on stdin, drives :class:`pixl_ipc.IPCClient`
(``--client blocking``) or :class:`pixl_ipc.AsyncIPCClient` (``--client
asyncio``), and writes one JSON answer per line on stdout. Both clients may
carry several requests at once, so both declare the ``concurrent``
capability: the blocking adapter runs each ``send`` in a thread of its own,
the asyncio adapter in a task. Logs go to stderr.

``reconnect``: with ``auto_reconnect_ms`` above 0 (the default) the clients
reconnect by themselves, the blocking one on the next send, the asyncio one
in the background; with 0 a send after a drop raises ServerClosed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import pixl_ipc
from pixl_ipc import (
    AsyncIPCClient,
    ConnectError,
    IPCClient,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    RequestTimeout,
    ServerClosed,
)
from pixl_ipc.framing import decode_json, encode_line

logger = logging.getLogger("pixl_ipc.adapter")

CAPABILITIES = {
    # IPCClient matches answers by id across threads; it reconnects on the next send.
    "blocking": [
        "concurrent",
        "push",
        "reconnect",
        "max_message_bytes",
        "timeout",
        "introspect",
        "code_to_err",
    ],
    "asyncio": [
        "concurrent",
        "push",
        "auto_reconnect",
        "reconnect",
        "max_message_bytes",
        "timeout",
        "introspect",
        "code_to_err",
    ],
}
NAMES = {"blocking": "pixl-ipc python IPCClient", "asyncio": "pixl-ipc python AsyncIPCClient"}


def error_of(exc: BaseException) -> dict[str, Any]:
    """The adapter's error object for what the client raised (ADAPTER.md, error kinds)."""
    if isinstance(exc, RemoteError):
        return {"kind": "remote", "code": exc.code, "message": exc.message}
    kinds: list[tuple[type[BaseException], str]] = [
        (ConnectError, "connect"),
        (RequestTimeout, "timeout"),
        (ServerClosed, "closed"),
        (MessageTooLarge, "too_large"),
        (ProtocolError, "protocol"),
    ]
    for cls, kind in kinds:
        if isinstance(exc, cls):
            return {"kind": kind, "message": str(exc)}
    return {"kind": "unsupported", "message": f"{type(exc).__name__}: {exc}"}


def client_options(options: Any) -> dict[str, Any]:
    """Keyword options of a client from the ``connect`` command's ``options``.

    ``expire_request_ms`` is accepted and ignored: the Python clients keep no
    timed-out id (a late answer matches no pending id and is dropped).
    """
    if not isinstance(options, dict):
        return {}
    out: dict[str, Any] = {}
    for key, name in (
        ("request_timeout_ms", "request_timeout"),
        ("connect_timeout_ms", "connect_timeout"),
        ("auto_reconnect_ms", "auto_reconnect"),
    ):
        value = options.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value / 1000
    if isinstance(options.get("user_agent"), str):
        out["user_agent"] = options["user_agent"]
    limit = options.get("max_message_bytes")
    if isinstance(limit, int) and not isinstance(limit, bool):
        out["max_message_bytes"] = limit
    if isinstance(options.get("code_to_err"), bool):
        out["code_to_err"] = options["code_to_err"]
    return out


def introspect_result(client: IPCClient | AsyncIPCClient | None) -> dict[str, Any]:
    """The ``introspect`` answer: per-request entries the client still holds (ADAPTER.md)."""
    return {"pending": 0 if client is None else client.pending_count}


def send_timeout(command: dict[str, Any]) -> float | None:
    """The ``send`` command's timeout in seconds, if it gives a usable one."""
    value = command.get("timeout_ms")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / 1000
    return None


class Output:
    """Answers on stdout, one whole line each, from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def ok(self, command_id: Any, result: dict[str, Any]) -> None:
        self._write({"id": command_id, "ok": True, "result": result})

    def error(self, command_id: Any, error: dict[str, Any]) -> None:
        self._write({"id": command_id, "ok": False, "error": error})

    def _write(self, answer: dict[str, Any]) -> None:
        line = encode_line(answer)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def parse_command(line: bytes, out: Output) -> dict[str, Any] | None:
    """One command line, or None (after answering) when it is not a command object."""
    if not line.strip():
        return None
    try:
        command = decode_json(line)
    except pixl_ipc.IPCError as exc:
        out.error(None, {"kind": "unsupported", "message": f"not a JSON command: {exc}"})
        return None
    if not isinstance(command, dict):
        out.error(None, {"kind": "unsupported", "message": "a command must be a JSON object"})
        return None
    return command


def start_result(kind: str) -> dict[str, Any]:
    return {
        "name": NAMES[kind],
        "language": "python",
        "version": pixl_ipc.__version__,
        "capabilities": CAPABILITIES[kind],
    }


# --- blocking ------------------------------------------------------------------


class BlockingAdapter:
    """Drives :class:`IPCClient`; each ``send`` runs in its own thread."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.client: IPCClient | None = None
        self.pushes: list[Any] = []
        self.pushes_lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def on_push(self, message: dict[str, Any]) -> None:
        with self.pushes_lock:
            self.pushes.append(message.get("data"))

    def run(self, stdin: BinaryIO) -> None:
        for line in stdin:
            command = parse_command(line, self.out)
            if command is not None:
                self.handle(command)
        if self.client is not None:
            self.client.close()
        for thread in self.threads:
            thread.join(30)

    def handle(self, command: dict[str, Any]) -> None:
        cid, cmd = command.get("id"), command.get("cmd")
        try:
            if cmd == "start":
                self.out.ok(cid, start_result("blocking"))
            elif cmd == "connect":
                self.connect(cid, command)
            elif cmd == "send":
                self.threads = [t for t in self.threads if t.is_alive()]
                thread = threading.Thread(target=self.send, args=(cid, command), daemon=True)
                self.threads.append(thread)
                thread.start()
            elif cmd == "close":
                if self.client is not None:
                    self.client.close()
                self.out.ok(cid, {})
            elif cmd == "introspect":
                self.out.ok(cid, introspect_result(self.client))
            elif cmd == "pushes":
                if self.client is not None and self.client.connected:
                    self.client.poll(0)  # pushes that came after the last answer
                with self.pushes_lock:
                    pushes, self.pushes = self.pushes, []
                self.out.ok(cid, {"pushes": pushes})
            else:
                self.out.error(cid, {"kind": "unsupported", "message": f"unknown command {cmd!r}"})
        except Exception as exc:
            logger.debug("command %r failed", cmd, exc_info=True)
            self.out.error(cid, error_of(exc))

    def connect(self, cid: Any, command: dict[str, Any]) -> None:
        if self.client is not None:
            self.client.close()
        self.client = IPCClient(
            str(command.get("socket")), on_push=self.on_push, **client_options(command.get("options"))
        )
        self.client.connect()
        self.out.ok(cid, {})

    def send(self, cid: Any, command: dict[str, Any]) -> None:
        try:
            client = self.client
            if client is None:
                raise ServerClosed("not connected: no connect command yet")
            uri: Any = command.get("uri")  # a non-str uri is the client's to refuse
            data = client.send(uri, command.get("data"), timeout=send_timeout(command))
            self.out.ok(cid, {"data": data})
        except Exception as exc:
            self.out.error(cid, error_of(exc))


# --- asyncio -------------------------------------------------------------------


class AsyncAdapter:
    """Drives :class:`AsyncIPCClient`; each ``send`` runs in its own task."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.client: AsyncIPCClient | None = None
        self.pushes: list[Any] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def on_push(self, message: dict[str, Any]) -> None:
        self.pushes.append(message.get("data"))

    async def run(self, stdin: BinaryIO) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        def read() -> None:
            # stdin is read in a thread: lines may be far longer than a
            # StreamReader's buffer, and reading a pipe never blocks the loop.
            for line in stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read, daemon=True).start()
        while (line := await lines.get()) is not None:
            command = parse_command(line, self.out)
            if command is not None:
                await self.handle(command)
        if self.client is not None:
            await self.client.close()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=30)

    async def handle(self, command: dict[str, Any]) -> None:
        cid, cmd = command.get("id"), command.get("cmd")
        try:
            if cmd == "start":
                self.out.ok(cid, start_result("asyncio"))
            elif cmd == "connect":
                if self.client is not None:
                    await self.client.close()
                self.client = AsyncIPCClient(
                    str(command.get("socket")), on_push=self.on_push, **client_options(command.get("options"))
                )
                await self.client.connect()
                self.out.ok(cid, {})
            elif cmd == "send":
                task = asyncio.create_task(self.send(cid, command))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif cmd == "close":
                if self.client is not None:
                    await self.client.close()
                self.out.ok(cid, {})
            elif cmd == "introspect":
                self.out.ok(cid, introspect_result(self.client))
            elif cmd == "pushes":
                pushes, self.pushes = self.pushes, []
                self.out.ok(cid, {"pushes": pushes})
            else:
                self.out.error(cid, {"kind": "unsupported", "message": f"unknown command {cmd!r}"})
        except Exception as exc:
            logger.debug("command %r failed", cmd, exc_info=True)
            self.out.error(cid, error_of(exc))

    async def send(self, cid: Any, command: dict[str, Any]) -> None:
        try:
            client = self.client
            if client is None:
                raise ServerClosed("not connected: no connect command yet")
            uri: Any = command.get("uri")  # a non-str uri is the client's to refuse
            data = await client.send(uri, command.get("data"), timeout=send_timeout(command))
            self.out.ok(cid, {"data": data})
        except Exception as exc:
            self.out.error(cid, error_of(exc))


def main(argv: list[str] | None = None) -> int:
    """Run the adapter until stdin ends; exit status 0."""
    parser = argparse.ArgumentParser(description="pixl-ipc conformance adapter for the Python clients")
    parser.add_argument("--client", choices=sorted(CAPABILITIES), default="blocking")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="event loop (asyncio)"
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    out = Output(sys.stdout.buffer)
    if args.client == "blocking":
        BlockingAdapter(out).run(sys.stdin.buffer)
        return 0
    runner: Callable[[Any], Any] = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    runner(AsyncAdapter(out).run(sys.stdin.buffer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
