"""python/adapters/adapter.py driven as a subprocess, as the conformance runner does."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from peer import PeerConn, ScriptedPeer
from support import wait_until

ADAPTER = Path(__file__).resolve().parents[2] / "python" / "adapters" / "adapter.py"


class Adapter:
    """An adapter child process; commands in, answers out (spec/ADAPTER.md)."""

    def __init__(self, client: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ADAPTER), "--client", client],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.next_id = 0
        self.answers: dict[int, dict[str, Any]] = {}
        self.stray: list[dict[str, Any]] = []
        self.lock = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            answer = json.loads(line)
            with self.lock:
                if isinstance(answer.get("id"), int):
                    self.answers[answer["id"]] = answer
                else:
                    self.stray.append(answer)
                self.lock.notify_all()

    def post(self, cmd: str, **fields: Any) -> int:
        """Write one command; return its id."""
        command_id = self.next_id
        self.next_id += 1
        self.write_raw(
            json.dumps({"id": command_id, "cmd": cmd, **fields}).encode() + b"\n"
        )
        return command_id

    def write_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait(self, command_id: int, timeout: float = 10) -> dict[str, Any]:
        """The answer to a command."""
        with self.lock:
            if not self.lock.wait_for(lambda: command_id in self.answers, timeout):
                raise AssertionError(f"no answer to command {command_id}")
            return self.answers[command_id]

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Write one command and wait for its answer."""
        return self.wait(self.post(cmd, **fields))

    def finish(self) -> int:
        """Close stdin; the adapter must exit 0 (ADAPTER.md)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(20)
        finally:
            self.reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture(params=["blocking", "asyncio"])
def adapter(request: pytest.FixtureRequest) -> Any:
    child = Adapter(request.param)
    yield child
    child.kill()


def test_session_against_the_reference_server(adapter: Adapter, server: Any) -> None:
    start = adapter.call("start")
    assert start["ok"] is True
    result = start["result"]
    assert result["language"] == "python"
    assert {"concurrent", "push", "reconnect"} <= set(result["capabilities"])
    assert adapter.call(
        "connect", socket=server.path, options={"request_timeout_ms": 5000}
    ) == {
        "id": 1,
        "ok": True,
        "result": {},
    }
    echo = adapter.call(
        "send", uri="/ipcserver/test/echo", data={"a": [1, "é"]}, timeout_ms=5000
    )
    assert echo["result"] == {"data": {"a": [1, "é"]}}
    no_uri = adapter.call("send", uri="", data={}, timeout_ms=5000)
    assert no_uri["ok"] is False
    assert no_uri["error"] == {
        "kind": "remote",
        "code": "no_uri",
        "message": "Missing required uri parameter from request",
    }
    late = adapter.call(
        "send", uri="/ipcserver/test/delay", data={"delay": 1500}, timeout_ms=200
    )
    assert late["error"]["kind"] == "timeout"
    # Concurrent: a slow request, then a fast one answered first (CORR-2).
    slow = adapter.post(
        "send", uri="/ipcserver/test/delay", data={"delay": 400}, timeout_ms=5000
    )
    fast = adapter.post(
        "send", uri="/ipcserver/test/echo", data="fast", timeout_ms=5000
    )
    assert adapter.wait(fast)["result"] == {"data": "fast"}
    assert adapter.wait(slow)["result"] == {"data": {"delay": 400}}
    assert adapter.call("pushes")["result"] == {"pushes": []}
    unknown = adapter.call("dance")
    assert unknown["ok"] is False and unknown["error"]["kind"] == "unsupported"
    assert adapter.call("close")["ok"] is True
    after = adapter.call("send", uri="/ipcserver/test/echo", data=1, timeout_ms=1000)
    assert after["error"]["kind"] == "closed"
    assert adapter.finish() == 0


def test_connect_error_kind(adapter: Adapter, short_tmp: Path) -> None:
    adapter.call("start")
    answer = adapter.call("connect", socket=str(short_tmp / "missing.sock"), options={})
    assert answer["ok"] is False
    assert answer["error"]["kind"] == "connect"
    assert "no socket" in answer["error"]["message"]
    assert adapter.finish() == 0


def test_pushes_reconnect_and_too_large(
    adapter: Adapter, peer_factory: Callable[..., ScriptedPeer]
) -> None:
    def script(conn: PeerConn) -> None:
        while (request := conn.read_request()) is not None:
            if request["uri"] == "/push":
                conn.send({"data": {"p": 1}})
                conn.send({"ipcReqID": None, "data": [2]})
                conn.reply(request, "pushed")
                conn.send({"data": "after"})
            elif request["uri"] == "/big":
                conn.reply(request, "x" * (17 * 1024 * 1024))
            elif request["uri"] == "/bye":
                return  # hang up without answering
            else:
                conn.reply(request, request["data"])

    peer = peer_factory(script)
    adapter.call("start")
    options = {
        "request_timeout_ms": 5000,
        "auto_reconnect_ms": 100,
        "max_message_bytes": 16 * 1024 * 1024,
    }
    assert adapter.call("connect", socket=peer.path, options=options)["ok"] is True
    assert adapter.call("send", uri="/push", data=None, timeout_ms=5000)["result"] == {
        "data": "pushed"
    }
    # `pushes` hands over what has arrived and forgets it; the push sent after
    # the answer may still be on its way, so collect until all three are in.
    pushes: list[Any] = []

    def collected() -> bool:
        pushes.extend(adapter.call("pushes")["result"]["pushes"])
        return len(pushes) >= 3

    assert wait_until(collected, timeout=5.0)
    assert pushes == [{"p": 1}, [2], "after"]
    assert adapter.call("pushes")["result"] == {"pushes": []}
    bye = adapter.call("send", uri="/bye", data=None, timeout_ms=5000)
    assert bye["ok"] is False and bye["error"]["kind"] == "closed"  # LIFE-3
    # LIFE-4: the client connects again for the next send.
    assert adapter.call("send", uri="/echo", data=2, timeout_ms=5000)["result"] == {
        "data": 2
    }
    assert peer.connections == 2
    big = adapter.call("send", uri="/big", data=None, timeout_ms=10000)
    assert big["ok"] is False and big["error"]["kind"] == "too_large"
    assert adapter.finish() == 0


def test_bad_command_lines_are_answered_not_fatal(adapter: Adapter) -> None:
    adapter.write_raw(b"this is not json\n[1, 2]\n\n")
    assert adapter.call("start")["ok"] is True
    assert (
        adapter.call("send", uri="/x", data=None, timeout_ms=100)["error"]["kind"]
        == "closed"
    )
    assert adapter.finish() == 0
    assert [a["error"]["kind"] for a in adapter.stray] == ["unsupported", "unsupported"]


def test_introspect_counts_requests_in_flight_then_none(
    adapter: Adapter, server: Any
) -> None:
    # ADAPTER.md introspect: "pending" counts per-request entries; 0 once nothing is in flight.
    start = adapter.call("start")
    assert {"introspect", "code_to_err"} <= set(start["result"]["capabilities"])
    assert adapter.call("introspect")["result"] == {"pending": 0}
    options = {"request_timeout_ms": 5000, "expire_request_ms": 50}  # accepted, ignored
    assert adapter.call("connect", socket=server.path, options=options)["ok"] is True
    slow = adapter.post(
        "send", uri="/ipcserver/test/delay", data={"delay": 1000}, timeout_ms=5000
    )
    assert wait_until(lambda: adapter.call("introspect")["result"] == {"pending": 1})
    late = adapter.call(
        "send", uri="/ipcserver/test/delay", data={"delay": 800}, timeout_ms=100
    )
    assert late["error"]["kind"] == "timeout"
    assert adapter.call("introspect")["result"] == {"pending": 1}  # not the timed out
    assert adapter.wait(slow)["result"] == {"data": {"delay": 1000}}
    assert adapter.call("introspect")["result"] == {"pending": 0}
    assert adapter.finish() == 0


def test_code_to_err_reports_an_error_in_data_as_an_error(
    adapter: Adapter, server: Any
) -> None:
    adapter.call("start")
    options = {"request_timeout_ms": 5000, "code_to_err": True}
    assert adapter.call("connect", socket=server.path, options=options)["ok"] is True
    answer = adapter.call("send", uri="/no/such/handler", data={}, timeout_ms=5000)
    assert answer["error"] == {
        "kind": "remote",
        "code": "no_handler_found",
        "message": "No handler found for /no/such/handler",
    }
    assert adapter.finish() == 0
