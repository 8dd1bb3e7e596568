"""Application handlers on an in-process server: routing, errors, async and threaded, push."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc import RemoteError
from pixl_ipc.server import IPCServer, Request
from server_helpers import RawClient, ServerThread, echo
from support import wait_until


@pytest.fixture
def app(short_tmp: Path) -> Iterator[IPCServer]:
    server = IPCServer(str(short_tmp / "h.sock"))
    yield server


def serve(server: IPCServer) -> ServerThread:
    """The server in a thread; the with statement starts and stops it."""
    return ServerThread(server)


def call(client: RawClient, uri: str, data: Any = None, request_id: str = "rq0") -> Any:
    return client.request({"ipcReqID": request_id, "uri": uri, "data": data})


def test_handler_receives_the_whole_request_and_its_result_is_the_data(
    app: IPCServer,
) -> None:
    seen: list[Request] = []

    @app.uri("/whoami")
    def whoami(request: Request) -> Any:
        seen.append(request)
        return {
            "uri": request.uri,
            "pid": request.pid,
            "ua": request.user_agent,
            "extra": request.raw["extra"],
        }

    with serve(app) as running, RawClient(running.server.socket_path) as client:
        client.send(
            b'{"ipcReqID":"rq4","uri":"/whoami","data":{"q":1},"pid":1,"userAgent":"Node/IPCClient/x","extra":[1]}\n'
        )
        assert client.read_line() == (
            b'{"ipcReqID":"rq4","data":{"uri":"/whoami","pid":1,"ua":"Node/IPCClient/x","extra":[1]}}'
        )
    request = seen[0]
    assert request.data == {"q": 1}
    assert request.id == "rq4"
    # SEC-3: the claimed pid is 1; the kernel says who the peer really is.
    assert request.peer.pid == os.getpid()
    assert request.peer.uid == os.getuid()
    assert request.peer.gid == os.getgid()


def test_string_pattern_is_anchored_and_regex_pattern_is_searched(
    app: IPCServer,
) -> None:
    app.add_uri_handler(r"/user/\d+", "user", lambda request: "user")
    app.add_uri_handler(re.compile(r"/files/"), "files", lambda request: "files")
    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/user/42")["data"] == "user"
        assert call(client, "/user/42/x")["data"]["code"] == "no_handler_found"
        assert call(client, "/v1/files/a")["data"] == "files"


def test_builtins_win_over_an_application_handler_on_the_same_uri(
    app: IPCServer,
) -> None:
    # BUILTIN-3
    app.add_uri_handler("/ipcserver/test/echo", "mine", lambda request: "mine")
    with serve(app), RawClient(app.socket_path) as client:
        assert echo(client, "theirs")["data"] == "theirs"


def test_first_registered_application_handler_wins(app: IPCServer) -> None:
    app.add_uri_handler(re.compile("^/a"), "first", lambda request: "first")
    app.add_uri_handler("/a/b", "second", lambda request: "second")
    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/a/b")["data"] == "first"


def test_default_handler_answers_what_nothing_matches(app: IPCServer) -> None:
    app.set_default_handler(lambda request: {"fallback": request.uri})
    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/anything")["data"] == {"fallback": "/anything"}
        assert echo(client, 1)["data"] == 1


def test_async_handler_is_awaited(app: IPCServer) -> None:
    @app.uri("/async")
    async def handler(request: Request) -> Any:
        await asyncio.sleep(0.01)
        return {"got": request.data}

    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/async", 5) == {"ipcReqID": "rq0", "data": {"got": 5}}


def test_handler_returning_a_future_is_awaited(app: IPCServer) -> None:
    def handler(request: Request) -> Any:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, "later")
        return future

    app.add_uri_handler("/future", "future", handler)
    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/future")["data"] == "later"


def test_threaded_handler_runs_off_the_loop_and_does_not_block_others(
    app: IPCServer,
) -> None:
    release = threading.Event()
    loop_thread: list[threading.Thread] = []

    @app.uri("/blocking", threaded=True)
    def blocking(request: Request) -> Any:
        release.wait(10)
        return threading.current_thread() is not loop_thread[0]

    with serve(app) as running, RawClient(app.socket_path) as client:
        loop_thread.append(running.thread)
        client.send_json({"ipcReqID": "rq0", "uri": "/blocking"})
        # The loop still answers while the threaded handler blocks.
        assert echo(client, "meanwhile", "rq1") == {
            "ipcReqID": "rq1",
            "data": "meanwhile",
        }
        release.set()
        assert client.read_json() == {"ipcReqID": "rq0", "data": True}


def test_max_threads_bounds_how_many_threaded_handlers_run_at_once(
    short_tmp: Path,
) -> None:
    server = IPCServer(str(short_tmp / "t.sock"), max_threads=2)
    lock = threading.Lock()
    running_now = [0]
    most = [0]

    @server.uri("/work", threaded=True)
    def work(request: Request) -> Any:
        with lock:
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
        threading.Event().wait(0.2)
        with lock:
            running_now[0] -= 1
        return request.id

    with serve(server), RawClient(server.socket_path) as client:
        for n in range(6):
            client.send_json({"ipcReqID": f"w{n}", "uri": "/work"})
        answers = {client.read_json(10)["ipcReqID"] for _ in range(6)}
    assert answers == {f"w{n}" for n in range(6)}
    assert most[0] == 2


def test_failing_handler_answers_handler_error_without_details_and_logs_the_traceback(
    app: IPCServer, caplog: pytest.LogCaptureFixture
) -> None:
    # ERR-3, ERR-5, ROUTE-3
    @app.uri("/boom")
    def boom(request: Request) -> Any:
        raise RuntimeError("secret detail /etc/passwd")

    with (
        caplog.at_level(logging.ERROR, logger="pixl_ipc"),
        serve(app),
        RawClient(app.socket_path) as client,
    ):
        client.send(b'{"ipcReqID":"rq0","uri":"/boom"}\n')
        line = client.read_line()
        assert (
            b"secret" not in line
            and b"RuntimeError" not in line
            and b"passwd" not in line
        )
        answer = json.loads(line)
        assert answer["ipcReqID"] == "rq0"
        assert answer["data"]["code"] == "handler_error"
        assert isinstance(answer["data"]["message"], str)
        assert "code" not in answer
        assert echo(client, "alive")["data"] == "alive"
    # The traceback is in the message, each line indented (no line of it can
    # pass for a log record of its own).
    records = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert records and "RuntimeError: secret detail /etc/passwd" in records[0]
    assert "Traceback (most recent call last)" in records[0]


def test_failing_async_and_threaded_handlers_answer_handler_error(
    app: IPCServer,
) -> None:
    async def async_boom(request: Request) -> Any:
        await asyncio.sleep(0)
        raise ValueError("no")

    def thread_boom(request: Request) -> Any:
        raise KeyError("no")

    app.add_uri_handler("/async_boom", "async_boom", async_boom)
    app.add_uri_handler("/thread_boom", "thread_boom", thread_boom, threaded=True)
    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/async_boom")["data"]["code"] == "handler_error"
        assert call(client, "/thread_boom")["data"]["code"] == "handler_error"


def _circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@pytest.mark.parametrize("result", [{1, 2}, object(), {"b": b"bytes"}, _circular()])
def test_result_that_cannot_be_encoded_answers_handler_error(
    app: IPCServer, result: Any
) -> None:
    # ERR-3
    app.add_uri_handler("/bad", "bad", lambda request: result)
    with serve(app), RawClient(app.socket_path) as client:
        answer = call(client, "/bad")
        assert answer["data"]["code"] == "handler_error"
        assert echo(client, 1)["data"] == 1


def test_remote_error_raised_by_a_handler_is_sent_in_data(app: IPCServer) -> None:
    def handler(request: Request) -> Any:
        raise RemoteError("not_allowed", "you may not")

    app.add_uri_handler("/deny", "deny", handler)
    with serve(app), RawClient(app.socket_path) as client:
        assert call(client, "/deny") == {
            "ipcReqID": "rq0",
            "data": {"code": "not_allowed", "message": "you may not"},
        }


def test_handler_names_are_listed_in_info_in_match_order(app: IPCServer) -> None:
    @app.uri("/one")
    def one(request: Request) -> Any:
        return 1

    app.add_uri_handler("/two", "second handler", lambda request: 2)
    with serve(app), RawClient(app.socket_path) as client:
        info = call(client, "/ipcserver/info")["data"]
        assert info["handlers"] == [
            "echo",
            "delay",
            "info",
            "stats",
            "one",
            "second handler",
        ]


def test_push_and_broadcast_send_messages_without_an_id(app: IPCServer) -> None:
    # PUSH-1
    connections: list[Any] = []

    @app.uri("/subscribe")
    def subscribe(request: Request) -> Any:
        connections.append(request.connection)
        request.connection.push({"welcome": True})
        return "subscribed"

    with (
        serve(app) as running,
        RawClient(app.socket_path) as first,
        RawClient(app.socket_path) as second,
    ):
        first.send_json({"ipcReqID": "rq0", "uri": "/subscribe"})
        assert first.read_line() == b'{"data":{"welcome":true}}'
        assert first.read_json() == {"ipcReqID": "rq0", "data": "subscribed"}
        echo(second, 0)
        assert running.call(lambda: app.push(connections[0], "only you")) is True
        assert first.read_line() == b'{"data":"only you"}'
        assert running.call(lambda: app.broadcast({"all": 1})) == 2
        assert first.read_line() == b'{"data":{"all":1}}'
        assert second.read_line() == b'{"data":{"all":1}}'


def test_push_is_written_before_the_response_of_the_same_handler(
    app: IPCServer,
) -> None:
    @app.uri("/hello")
    def hello(request: Request) -> Any:
        request.connection.push("first")
        return "second"

    with serve(app), RawClient(app.socket_path) as client:
        client.send(b'{"ipcReqID":"rq0","uri":"/hello"}\n')
        assert client.read_line() == b'{"data":"first"}'
        assert client.read_line() == b'{"ipcReqID":"rq0","data":"second"}'


def test_push_to_a_closed_connection_returns_false(app: IPCServer) -> None:
    connections: list[Any] = []
    app.add_uri_handler(
        "/keep", "keep", lambda request: connections.append(request.connection)
    )
    with serve(app) as running:
        with RawClient(app.socket_path) as client:
            call(client, "/keep")
        assert wait_until(lambda: running.call(lambda: len(app.connections)) == 0)
        assert running.call(lambda: app.push(connections[0], "gone")) is False


def test_close_connections_ends_every_client(app: IPCServer) -> None:
    with (
        serve(app) as running,
        RawClient(app.socket_path) as first,
        RawClient(app.socket_path) as second,
    ):
        echo(first, 1)
        echo(second, 1)
        running.call(app.close_connections)
        assert first.read_until_eof(5) == b""
        assert second.read_until_eof(5) == b""
        with RawClient(app.socket_path) as third:
            assert echo(third, 3)["data"] == 3
