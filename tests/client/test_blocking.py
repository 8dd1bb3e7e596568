"""The blocking client against scripted peers that misbehave on purpose."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from client_helpers import FullBacklog, open_sockets, socket_name, thread_count
from peer import PeerConn, ScriptedPeer, errors, hold_slow_until
from pixl_ipc import (
    ConfigError,
    ConnectError,
    IPCClient,
    IPCError,
    MessageTooLarge,
    RemoteError,
    RequestTimeout,
    ServerClosed,
)
from support import wait_until

PeerFactory = Callable[..., ScriptedPeer]


def test_request_carries_id_uri_data_pid_and_user_agent(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory()
    with IPCClient(peer.path) as client:
        assert client.send("/ipcserver/test/echo", {"a": [1, "é"]}) == {"a": [1, "é"]}
        assert client.send("/x") is None
    first, second = peer.requests
    assert first == {
        "ipcReqID": "rq0",
        "uri": "/ipcserver/test/echo",
        "data": {"a": [1, "é"]},
        "pid": os.getpid(),
        "userAgent": "Python/IPCClient" + os.getcwd(),
    }
    assert second["ipcReqID"] == "rq1"  # CORR-1: a counter, never reused
    assert second["data"] is None


def test_user_agent_option_is_sent(peer_factory: PeerFactory) -> None:
    peer = peer_factory()
    with IPCClient(peer.path, user_agent="tests/1.0") as client:
        client.send("/x", {})
    assert peer.requests[0]["userAgent"] == "tests/1.0"


def test_send_connects_when_not_connected_yet(peer_factory: PeerFactory) -> None:
    peer = peer_factory()
    client = IPCClient(peer.path)
    try:
        assert not client.connected
        assert client.send("/x", 5) == 5
        assert client.connected
    finally:
        client.close()


def split_replies(conn: PeerConn) -> None:
    """FRAME-3: each answer one byte per write."""
    while (request := conn.read_request()) is not None:
        raw = (
            json.dumps(
                {"ipcReqID": request["ipcReqID"], "data": request["data"]}
            ).encode()
            + b"\n"
        )
        for i in range(len(raw)):
            conn.send_raw(raw[i : i + 1])
            time.sleep(0.0005)


def test_response_split_into_single_bytes_is_reassembled(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(split_replies)
    with IPCClient(peer.path) as client:
        assert client.send("/x", {"k": "v" * 50}) == {"k": "v" * 50}


def noisy_replies(conn: PeerConn) -> None:
    """Blank, non-``{``, malformed and CRLF lines and a push, coalesced with the answer."""
    while (request := conn.read_request()) is not None:
        rid = json.dumps(request["ipcReqID"]).encode()
        conn.send_raw(
            b"\n   \r\n"  # FRAME-4
            b"[1,2]\nhello\n42\n"  # FRAME-5
            b'{"ipcReqID": ' + rid + b', "data": \n'  # FRAME-7: malformed, ignored
            b'{"data": {"pushed": true}}\r\n'  # PUSH-1 with CRLF (FRAME-2)
            b'{"ipcReqID": null, "data": "null id push"}\n'
            b'{"ipcReqID": "someone-else", "data": 0}\n'  # CORR-3
            b'{"ipcReqID": ' + rid + b', "data": {"ok": 1}}\r\n'
        )


def test_noise_pushes_and_crlf_around_a_response_in_one_read(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(noisy_replies)
    pushes: list[dict[str, Any]] = []
    with IPCClient(peer.path, on_push=pushes.append) as client:
        assert client.send("/x") == {"ok": 1}
        assert client.send("/y") == {"ok": 1}
    assert (
        pushes
        == [
            {"data": {"pushed": True}},
            {"ipcReqID": None, "data": "null id push"},
        ]
        * 2
    )


def test_on_push_that_raises_does_not_break_the_client(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(noisy_replies)

    def bad(message: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    with IPCClient(peer.path, on_push=bad) as client:
        assert client.send("/x") == {"ok": 1}


def push_then_echo(conn: PeerConn) -> None:
    conn.send({"data": "hello"})
    conn.send({"data": "again"})
    while (request := conn.read_request()) is not None:
        conn.reply(request, request["data"])


def test_poll_delivers_pushes_that_arrive_between_requests(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(push_then_echo)
    pushes: list[dict[str, Any]] = []
    with IPCClient(peer.path, on_push=pushes.append) as client:
        deadline = time.monotonic() + 5
        while len(pushes) < 2 and time.monotonic() < deadline:
            client.poll(0.5)
        assert pushes == [{"data": "hello"}, {"data": "again"}]
        assert client.poll() == 0
        assert client.send("/x", 1) == 1


def test_top_level_error_raises_remote_error(peer_factory: PeerFactory) -> None:
    peer = peer_factory(errors)
    with IPCClient(peer.path) as client:
        with pytest.raises(RemoteError) as info:
            client.send("", {})
        assert info.value.code == "no_uri"
        assert info.value.message == "Missing required uri parameter from request"
        assert info.value.data["ipcReqID"] == "rq0"
        with pytest.raises(RemoteError) as unknown:  # ERR-6
            client.send("/weird")
        assert unknown.value.code == "brand_new_code"


def test_error_in_data_is_data_unless_code_to_err(peer_factory: PeerFactory) -> None:
    peer = peer_factory(errors)
    with IPCClient(peer.path) as client:
        assert client.send("/missing") == {
            "code": "no_handler_found",
            "message": "No handler found for /missing",
        }
        assert client.send("/ok") == {"code": 0, "value": 1}
    with IPCClient(peer.path, code_to_err=True) as client:
        with pytest.raises(RemoteError) as info:
            client.send("/missing")
        assert info.value.code == "no_handler_found"
        assert info.value.data == {
            "code": "no_handler_found",
            "message": "No handler found for /missing",
        }
        assert client.send("/ok") == {"code": 0, "value": 1}  # a falsy code is no error


def test_message_transform_replaces_the_rules(peer_factory: PeerFactory) -> None:
    peer = peer_factory(errors)
    seen: list[dict[str, Any]] = []

    def transform(message: dict[str, Any]) -> tuple[Any, Any]:
        seen.append(message)
        data = message.get("data")
        if isinstance(data, dict) and data.get("value") == 1:
            return None, "transformed"
        return {"code": "mine", "message": "refused"}, None

    with IPCClient(peer.path, message_transform=transform, code_to_err=True) as client:
        assert client.send("/ok") == "transformed"
        with pytest.raises(RemoteError) as info:
            client.send("/missing")
        assert (info.value.code, info.value.message) == ("mine", "refused")
        # The transform sees even a top-level error and may accept it.
        with pytest.raises(RemoteError):
            client.send("")
    assert [m["ipcReqID"] for m in seen] == ["rq0", "rq1", "rq2"]


def late_answers(conn: PeerConn) -> None:
    """Answer the first request 0.6 s late, right before the second's answer."""
    first = conn.read_request()
    assert first is not None
    second = conn.read_request(timeout=10)
    assert second is not None
    conn.reply(first, "late answer")
    conn.reply(second, "second answer")
    while (request := conn.read_request()) is not None:
        conn.reply(request, request["data"])


def test_timeout_then_late_answer_is_dropped_not_delivered(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(late_answers)
    with IPCClient(peer.path) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as info:
            client.send("/slow", timeout=0.3)
        assert time.monotonic() - started < 5
        assert info.value.uri == "/slow"
        # CORR-3: the late answer arrives first and must not become this one's.
        assert client.send("/next", timeout=5) == "second answer"
        assert client.send("/again", 7) == 7
        assert client.connected


def close_on_request(conn: PeerConn) -> None:
    conn.read_request()
    conn.close()


def test_server_close_fails_pending_request_at_once(peer_factory: PeerFactory) -> None:
    peer = peer_factory(close_on_request)
    with IPCClient(peer.path, request_timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(ServerClosed):
            client.send("/x")
        assert time.monotonic() - started < 5  # LIFE-3: not after the 10 s timeout


def test_server_close_fails_every_pending_request_of_every_thread(
    peer_factory: PeerFactory,
) -> None:
    gate = threading.Event()

    def read_four_then_close(conn: PeerConn) -> None:
        for _ in range(4):
            conn.read_request()
        gate.wait(5)
        conn.close()

    peer = peer_factory(read_four_then_close)
    outcomes: list[IPCError | None] = []
    with IPCClient(peer.path, request_timeout=10) as client:

        def call() -> None:
            try:
                client.send("/x")
                outcomes.append(None)
            except IPCError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        while len(peer.requests) < 4:
            time.sleep(0.01)
        started = time.monotonic()
        gate.set()
        for t in threads:
            t.join(5)
        assert time.monotonic() - started < 5
    assert len(outcomes) == 4
    assert all(isinstance(o, ServerClosed) for o in outcomes), outcomes


def answer_once_then_hang_up(closed: threading.Event) -> Callable[[PeerConn], None]:
    def script(conn: PeerConn) -> None:
        request = conn.read_request()
        if request is not None:
            conn.reply(request, "answered")
        conn.close()
        closed.set()

    return script


def test_next_send_reconnects_after_the_server_hung_up_between_requests(
    peer_factory: PeerFactory,
) -> None:
    closed = threading.Event()
    peer = peer_factory(answer_once_then_hang_up(closed))
    with IPCClient(peer.path) as client:
        assert client.send("/a") == "answered"
        assert closed.wait(5)
        # The request finds the connection gone before the server saw it, and
        # goes out again on a new connection (LIFE-4).
        assert client.send("/b") == "answered"
    assert peer.connections == 2
    assert [r["uri"] for r in peer.requests] == ["/a", "/b"]  # nothing sent twice
    # Ids go on across connections, as the original's counter does (CORR-1);
    # rq1 was the write that found the connection closed.
    assert peer.requests[-1]["ipcReqID"] == "rq2"


def test_auto_reconnect_zero_does_not_reconnect_between_requests(
    peer_factory: PeerFactory,
) -> None:
    closed = threading.Event()
    peer = peer_factory(answer_once_then_hang_up(closed))
    with IPCClient(peer.path, auto_reconnect=0) as client:
        assert client.send("/a") == "answered"
        assert closed.wait(5)
        with pytest.raises(ServerClosed, match="auto_reconnect"):
            client.send("/b")
        client.connect()  # the application decides to reconnect
        assert client.send("/c") == "answered"
    assert [r["uri"] for r in peer.requests] == ["/a", "/c"]


def test_auto_reconnect_zero_raises_server_closed(peer_factory: PeerFactory) -> None:
    peer = peer_factory(close_on_request)
    with IPCClient(peer.path, auto_reconnect=0) as client:
        with pytest.raises(ServerClosed):
            client.send("/x")
        with pytest.raises(ServerClosed, match="auto_reconnect"):
            client.send("/y")
    assert peer.connections == 1


def oversize_then_echo(conn: PeerConn) -> None:
    request = conn.read_request()
    assert request is not None
    conn.send({"ipcReqID": request["ipcReqID"], "data": "x" * 5000})


def test_oversize_response_raises_and_closes_then_reconnects(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(oversize_then_echo)
    with IPCClient(peer.path, max_message_bytes=1000) as client:
        with pytest.raises(MessageTooLarge) as info:
            client.send("/big")
        assert info.value.limit == 1000
        assert not client.connected  # LIMIT-3: closed
        with pytest.raises(MessageTooLarge):
            client.send("/big")  # reconnected, same again
    assert peer.connections == 2


def test_large_response_under_the_limit_is_reassembled(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory()
    payload = {"blob": "y" * (3 * 1024 * 1024)}
    with IPCClient(peer.path) as client:
        assert client.send("/x", payload) == payload


def test_concurrent_threads_get_their_own_answers_out_of_order(
    peer_factory: PeerFactory,
) -> None:
    count = 8

    def answer_in_reverse(conn: PeerConn) -> None:
        requests = [conn.read_request() for _ in range(count)]
        for request in reversed(requests):
            assert request is not None
            conn.reply(request, request["data"])

    peer = peer_factory(answer_in_reverse)
    results: dict[int, Any] = {}
    with IPCClient(peer.path) as client:

        def call(i: int) -> None:
            results[i] = client.send("/x", {"n": i}, timeout=10)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert results == {i: {"n": i} for i in range(count)}  # CORR-2


def hang(conn: PeerConn) -> None:
    while conn.read_request(timeout=30) is not None:
        pass


def test_close_fails_pending_and_leaks_no_fd_or_thread(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory(hang)
    fds, threads = open_sockets(), thread_count()
    client = IPCClient(peer.path)
    client.connect()
    assert client._conn is not None
    ours = socket_name(client._conn.sock.fileno())
    errors: list[IPCError] = []

    def call() -> None:
        try:
            client.send("/x", timeout=10)
        except IPCError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=call)
    waiter.start()
    while not peer.requests:
        time.sleep(0.01)
    started = time.monotonic()
    client.close()
    waiter.join(5)
    assert time.monotonic() - started < 5
    assert len(errors) == 1 and isinstance(errors[0], ServerClosed)
    assert "closed" in str(errors[0])
    assert ours not in open_sockets()
    # The peer's end closes in the peer's thread, shortly after ours.
    assert wait_until(lambda: not open_sockets() - fds, 3.0), open_sockets() - fds
    assert wait_until(lambda: thread_count() <= threads, 3.0)
    with pytest.raises(ServerClosed, match="closed"):
        client.send("/x")  # misuse: the client is closed
    client.close()  # idempotent
    client.connect()  # and it may open again
    client.close()


def test_connect_error_missing_path(short_tmp: Path) -> None:
    with pytest.raises(ConnectError) as info:
        IPCClient(str(short_tmp / "nothing.sock")).connect()
    assert info.value.reason == "missing"
    assert "no socket at that path" in str(info.value)


def test_connect_error_refused_on_a_stale_socket(short_tmp: Path) -> None:
    path = str(short_tmp / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    with pytest.raises(ConnectError) as info:
        IPCClient(path).send("/x")
    assert info.value.reason == "refused"
    assert "refused" in str(info.value)


def test_connect_error_not_a_socket(short_tmp: Path) -> None:
    path = short_tmp / "file"
    path.write_text("not a socket")
    with pytest.raises(ConnectError) as info:
        IPCClient(str(path)).connect()
    assert info.value.reason == "not_socket"


def connect_as_other_user(path: str) -> tuple[str, str]:
    """Connect from a child process that cannot write to ``path``; return (reason, text)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)  # root passes every permission check
            try:
                IPCClient(path).connect()
                os.write(write_end, b"connected\nconnected")
            except ConnectError as exc:
                os.write(write_end, f"{exc.reason}\n{exc}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        out = pipe.read().decode()
    os.waitpid(pid, 0)
    reason, text = out.split("\n", 1)
    return reason, text


def test_connect_error_permission_denied(
    peer_factory: PeerFactory, short_tmp: Path
) -> None:
    peer = peer_factory()
    os.chmod(short_tmp, 0o755)
    os.chmod(peer.path, 0o000)  # connecting needs write permission on the socket
    reason, text = connect_as_other_user(peer.path)
    assert reason == "permission"
    assert "permission denied" in text


def test_misuse_raises_clear_errors(peer_factory: PeerFactory) -> None:
    peer = peer_factory()
    with IPCClient(peer.path) as client:
        with pytest.raises(TypeError, match="uri must be a str"):
            client.send(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.send("/x", {"bad": object()})
        with pytest.raises(ConfigError, match="timeout"):
            client.send("/x", timeout=-1)
        assert client.send("/x", 1) == 1  # still usable
    for bad in (
        {"request_timeout": 0},
        {"connect_timeout": "2"},
        {"auto_reconnect": -1},
        {"max_message_bytes": 0},
    ):
        with pytest.raises(ConfigError):
            IPCClient(peer.path, **bad)
    with pytest.raises(ConfigError):
        IPCClient(peer.path, on_push="not callable")  # type: ignore[arg-type]


def test_write_that_cannot_finish_times_out_and_drops_the_connection(
    peer_factory: PeerFactory,
) -> None:
    stop = threading.Event()

    def never_read(conn: PeerConn) -> None:
        stop.wait(20)

    peer = peer_factory(never_read)
    with IPCClient(peer.path) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            client.send("/x", {"blob": "w" * (32 * 1024 * 1024)}, timeout=0.5)
        assert time.monotonic() - started < 5
        # Part of the line may be out: that connection cannot carry another one.
        assert not client.connected
    stop.set()


def test_connect_waits_for_a_full_backlog_then_times_out(short_tmp: Path) -> None:
    backlog = FullBacklog(str(short_tmp / "busy.sock"))
    try:
        started = time.monotonic()
        with pytest.raises(ConnectError) as info:
            IPCClient(str(short_tmp / "busy.sock"), connect_timeout=0.3).connect()
        elapsed = time.monotonic() - started
    finally:
        backlog.close()
    assert info.value.reason == "timeout"
    assert 0.2 < elapsed < 5  # it waited for the server, within connect_timeout


def test_many_threads_many_requests_each_get_their_own_answers(
    peer_factory: PeerFactory,
) -> None:
    peer = peer_factory()
    wrong: list[tuple[int, int, Any]] = []
    with IPCClient(peer.path) as client:

        def call(t: int) -> None:
            for i in range(150):
                answer = client.send("/x", [t, i], timeout=20)
                if answer != [t, i]:
                    wrong.append((t, i, answer))

        threads = [threading.Thread(target=call, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert client.pending_count == 0 and client._waiters == {}
        assert not client._reading
    assert wrong == []
    assert len(peer.requests) == 900


def test_threads_with_timeouts_never_get_someone_elses_answer(
    peer_factory: PeerFactory,
) -> None:
    def slow_every_third(conn: PeerConn) -> None:
        count = 0
        while (request := conn.read_request(timeout=30)) is not None:
            count += 1
            if count % 3 == 0:
                time.sleep(0.03)  # later than some callers wait (CORR-3)
            conn.reply(request, request["data"])

    peer = peer_factory(slow_every_third)
    wrong: list[Any] = []
    timeouts = [0]
    with IPCClient(peer.path) as client:

        def call(t: int) -> None:
            for i in range(40):
                try:
                    answer = client.send("/x", [t, i], timeout=0.02 if i % 2 else 5)
                except RequestTimeout:
                    timeouts[0] += 1
                    continue
                if answer != [t, i]:
                    wrong.append((t, i, answer))

        threads = [threading.Thread(target=call, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert client.send("/last", "ok") == "ok"
    assert wrong == []
    assert timeouts[0] > 0  # the case under test happened


def test_pending_count_counts_waiting_requests_and_a_path_object_works(
    peer_factory: PeerFactory,
) -> None:
    release = threading.Event()
    peer = peer_factory(hold_slow_until(release))
    with IPCClient(Path(peer.path)) as client:
        assert client.pending_count == 0
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(client.send("/slow")))
        thread.start()
        assert wait_until(lambda: client.pending_count == 1, timeout=5)
        with pytest.raises(RequestTimeout):
            client.send("/never", timeout=0.05)  # answered after /slow
        assert client.pending_count == 1  # a timed-out id is not kept
        release.set()
        thread.join(5)
        assert results == ["/slow"]
        assert client.pending_count == 0
