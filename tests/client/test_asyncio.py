"""The asyncio client against scripted peers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from client_helpers import FullBacklog, open_sockets, socket_name
from peer import PeerConn, ScriptedPeer, errors, hold_slow_until
from pixl_ipc import (
    AsyncIPCClient,
    ConfigError,
    ConnectError,
    MessageTooLarge,
    RemoteError,
    RequestTimeout,
    ServerClosed,
)

PeerFactory = Callable[..., ScriptedPeer]
T = TypeVar("T")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on a fresh loop of each kind, bounded in time."""

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(30):
                return await coro

        if request.param == "uvloop":
            return uvloop.run(bounded())
        return asyncio.run(bounded())

    return runner


def test_request_fields_and_echo(peer_factory: PeerFactory, run: Any) -> None:
    peer = peer_factory()

    async def main() -> None:
        async with AsyncIPCClient(peer.path) as client:
            assert await client.send("/ipcserver/test/echo", {"a": 1}) == {"a": 1}
            assert await client.send("/x") is None

    run(main())
    assert peer.requests[0] == {
        "ipcReqID": "rq0",
        "uri": "/ipcserver/test/echo",
        "data": {"a": 1},
        "pid": os.getpid(),
        "userAgent": "Python/IPCClient" + os.getcwd(),
    }
    assert peer.requests[1]["ipcReqID"] == "rq1"


def test_concurrent_sends_are_matched_by_id_in_any_order(
    peer_factory: PeerFactory, run: Any
) -> None:
    count = 50

    def answer_shuffled(conn: PeerConn) -> None:
        requests = [conn.read_request() for _ in range(count)]
        # Reverse order, all coalesced in one write (FRAME-3, CORR-2).
        conn.send_raw(
            b"".join(
                json.dumps({"ipcReqID": r["ipcReqID"], "data": r["data"]}).encode()
                + b"\n"
                for r in reversed(requests)
                if r is not None
            )
        )
        while (request := conn.read_request()) is not None:
            conn.reply(request, request["data"])

    peer = peer_factory(answer_shuffled)

    async def main() -> list[Any]:
        async with AsyncIPCClient(peer.path) as client:
            return await asyncio.gather(
                *(client.send("/x", {"n": i}) for i in range(count))
            )

    assert run(main()) == [{"n": i} for i in range(count)]
    assert len({r["ipcReqID"] for r in peer.requests}) == count  # CORR-1


def split_and_noisy(conn: PeerConn) -> None:
    while (request := conn.read_request()) is not None:
        rid = json.dumps(request["ipcReqID"]).encode()
        raw = (
            b"\n  \r\nnot json\n[1]\n"  # FRAME-4, FRAME-5
            b'{"ipcReqID": ' + rid + b", oops\n"  # FRAME-7
            b'{"data": {"pushed": 1}}\r\n'  # PUSH-1, CRLF
            b'{"ipcReqID": "rq999", "data": "nobody"}\n'  # CORR-3
            b'{"ipcReqID": ' + rid + b', "data": "mine"}\r\n'
        )
        for i in range(0, len(raw), 3):
            conn.send_raw(raw[i : i + 3])


def test_split_noise_crlf_and_pushes(peer_factory: PeerFactory, run: Any) -> None:
    peer = peer_factory(split_and_noisy)
    pushes: list[dict[str, Any]] = []

    async def main() -> None:
        async with AsyncIPCClient(peer.path, on_push=pushes.append) as client:
            assert await client.send("/x") == "mine"
            assert await client.send("/y") == "mine"

    run(main())
    assert pushes == [{"data": {"pushed": 1}}] * 2


def test_push_between_requests_is_delivered_without_a_send(
    peer_factory: PeerFactory, run: Any
) -> None:
    def push_later(conn: PeerConn) -> None:
        time.sleep(0.05)
        conn.send({"data": "news"})
        conn.send({"ipcReqID": None, "data": "more"})
        while (request := conn.read_request()) is not None:
            conn.reply(request, request["data"])

    peer = peer_factory(push_later)
    pushes: list[dict[str, Any]] = []

    async def main() -> None:
        async with AsyncIPCClient(peer.path, on_push=pushes.append):
            while len(pushes) < 2:
                await asyncio.sleep(0.01)

    run(main())
    assert pushes == [{"data": "news"}, {"ipcReqID": None, "data": "more"}]


def test_push_stream_yields_pushes_in_order_beside_on_push_and_ends_on_close(
    peer_factory: PeerFactory, run: Any
) -> None:
    def push_on_request(conn: PeerConn) -> None:
        while (request := conn.read_request()) is not None:
            for n in range(3):
                conn.send({"data": {"n": n}})
            # ERR-7: a top-level error without an id is a push, not an answer.
            conn.send({"ipcReqID": None, "code": "bad_json", "message": "x"})
            conn.reply(request, "done")

    peer = peer_factory(push_on_request)
    seen_by_callback: list[dict[str, Any]] = []

    async def main() -> tuple[list[Any], list[Any]]:
        client = AsyncIPCClient(Path(peer.path), on_push=seen_by_callback.append)
        await client.connect()
        first: list[Any] = []
        second: list[Any] = []

        async def read(into: list[Any]) -> None:
            async for push in client.pushes():
                into.append(push)

        readers = [asyncio.create_task(read(first)), asyncio.create_task(read(second))]
        await asyncio.sleep(0)  # both streams are open before the pushes come
        assert await client.send("/go") == "done"
        while len(first) < 4 or len(second) < 4:
            await asyncio.sleep(0.01)
        await client.close()
        await asyncio.wait_for(asyncio.gather(*readers), 5)  # the streams end
        return first, second

    first, second = run(main())
    expected = [{"data": {"n": n}} for n in range(3)]
    expected.append({"ipcReqID": None, "code": "bad_json", "message": "x"})
    assert first == expected and second == expected
    assert seen_by_callback == expected


def test_push_stream_stops_reading_while_its_reader_lags(
    peer_factory: PeerFactory, run: Any
) -> None:
    # A reader that does not keep up slows the socket instead of filling memory.
    def flood(conn: PeerConn) -> None:
        request = conn.read_request()
        assert request is not None
        with contextlib.suppress(OSError):
            for n in range(5000):
                conn.send({"data": n, "pad": "p" * 1000})
            conn.read_request(timeout=30)  # until the client closes

    peer = peer_factory(flood)

    async def main() -> list[int]:
        async with AsyncIPCClient(peer.path, request_timeout=0.2) as client:
            stream = client.pushes()
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0)  # the stream is open
            with pytest.raises(RequestTimeout):
                await client.send("/flood")
            held = client._push_queues.copy().pop().qsize()
            got = [(await first)["data"]]
            got += [push["data"] async for push in _take(stream, 4999)]
            # Paused within a read of the high mark (1,024), not all 5,000.
            assert 1024 <= held < 2000
            return got

    assert run(main()) == list(range(5000))


async def _take(stream: Any, count: int) -> Any:
    async for item in stream:
        yield item
        count -= 1
        if count == 0:
            return


def test_pending_count_counts_waiting_requests_only(
    peer_factory: PeerFactory, run: Any
) -> None:
    release = threading.Event()
    peer = peer_factory(hold_slow_until(release))

    async def main() -> None:
        async with AsyncIPCClient(peer.path) as client:
            assert client.pending_count == 0
            task = asyncio.create_task(client.send("/slow"))
            while client.pending_count != 1:
                await asyncio.sleep(0.01)
            with pytest.raises(RequestTimeout):
                await client.send("/never", timeout=0.05)  # queued behind /slow
            assert client.pending_count == 1  # a timed-out id is not kept
            release.set()
            assert await task == "/slow"
            assert client.pending_count == 0

    run(main())


def test_remote_errors_code_to_err_and_transform(
    peer_factory: PeerFactory, run: Any
) -> None:
    peer = peer_factory(errors)
    missing = {"code": "no_handler_found", "message": "No handler found for /missing"}

    async def main() -> None:
        async with AsyncIPCClient(peer.path) as client:
            with pytest.raises(RemoteError) as info:
                await client.send("")
            assert info.value.code == "no_uri"
            assert await client.send("/missing") == missing
        async with AsyncIPCClient(peer.path, code_to_err=True) as client:
            with pytest.raises(RemoteError) as info:
                await client.send("/missing")
            assert (info.value.code, info.value.message) == (
                "no_handler_found",
                missing["message"],
            )
        async with AsyncIPCClient(
            peer.path, message_transform=lambda m: (None, ["t", m["ipcReqID"]])
        ) as client:
            assert await client.send("/missing") == ["t", "rq0"]
            assert await client.send("") == ["t", "rq1"]

    run(main())


def test_timeout_and_late_answer_dropped(peer_factory: PeerFactory, run: Any) -> None:
    def late(conn: PeerConn) -> None:
        first = conn.read_request()
        second = conn.read_request(timeout=10)
        assert first is not None and second is not None
        conn.reply(first, "late")
        conn.reply(second, "second")
        while (request := conn.read_request()) is not None:
            conn.reply(request, request["data"])

    peer = peer_factory(late)

    async def main() -> None:
        async with AsyncIPCClient(peer.path, request_timeout=10) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await client.send("/slow", timeout=0.3)
            assert time.monotonic() - started < 5
            assert await client.send("/next") == "second"  # CORR-3
            assert await client.send("/again", 3) == 3

    run(main())


def test_default_timeout_applies_to_concurrent_requests(
    peer_factory: PeerFactory, run: Any
) -> None:
    def never(conn: PeerConn) -> None:
        while conn.read_request(timeout=30) is not None:
            pass

    peer = peer_factory(never)

    async def main() -> list[Any]:
        async with AsyncIPCClient(peer.path, request_timeout=0.3) as client:
            started = time.monotonic()
            results = await asyncio.gather(
                client.send("/a"),
                client.send("/b", timeout=0.1),
                client.send("/c"),
                return_exceptions=True,
            )
            assert time.monotonic() - started < 5
            assert client.pending_count == 0 and client._futures == {}
            return results

    results = run(main())
    assert all(isinstance(r, RequestTimeout) for r in results), results


def test_server_close_fails_all_pending_at_once(
    peer_factory: PeerFactory, run: Any
) -> None:
    def read_three_then_close(conn: PeerConn) -> None:
        for _ in range(3):
            conn.read_request()
        conn.close()

    peer = peer_factory(read_three_then_close)

    async def main() -> list[Any]:
        async with AsyncIPCClient(
            peer.path, request_timeout=10, auto_reconnect=0
        ) as client:
            started = time.monotonic()
            results = await asyncio.gather(
                *(client.send("/x") for _ in range(3)), return_exceptions=True
            )
            assert time.monotonic() - started < 5  # LIFE-3
            with pytest.raises(ServerClosed, match="auto_reconnect"):
                await client.send("/y")
            return results

    results = run(main())
    assert all(isinstance(r, ServerClosed) for r in results), results


def test_background_reconnect_and_send_waits_for_it(
    peer_factory: PeerFactory, run: Any
) -> None:
    def answer_once_then_close(conn: PeerConn) -> None:
        request = conn.read_request()
        if request is not None:  # the last connection closes unused
            conn.reply(request, "ok")
        conn.close()

    peer = peer_factory(answer_once_then_close)

    async def main() -> None:
        async with AsyncIPCClient(peer.path, auto_reconnect=0.2) as client:
            assert await client.send("/a") == "ok"
            while client.connected:  # the peer closes after answering
                await asyncio.sleep(0.01)
            # Sent while disconnected: waits for the background reconnect.
            assert await client.send("/b", timeout=5) == "ok"
            while client.connected:
                await asyncio.sleep(0.01)
            # Reconnected by itself, no send needed.
            deadline = asyncio.get_running_loop().time() + 10
            while not client.connected and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert client.connected

    run(main())
    assert peer.connections >= 3


def test_send_gives_up_when_reconnect_does_not_succeed_in_time(
    short_tmp: Path, run: Any
) -> None:
    path = str(short_tmp / "gone.sock")
    peer = ScriptedPeer(path, lambda conn: conn.close())
    peer.__enter__()

    async def main() -> None:
        client = AsyncIPCClient(path, auto_reconnect=0.1)
        await client.connect()
        peer.stop()
        os.unlink(path)
        while client.connected:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(ServerClosed, match="could not be reopened"):
            await client.send("/x", timeout=0.5)
        assert time.monotonic() - started < 5
        await client.close()
        assert client._reconnect_task is None

    run(main())


def test_oversize_response_fails_its_request_and_closes(
    peer_factory: PeerFactory, run: Any
) -> None:
    gate = threading.Event()

    def big_answer(conn: PeerConn) -> None:
        first = conn.read_request()
        second = conn.read_request()
        assert first is not None and second is not None
        gate.wait(5)
        conn.send({"ipcReqID": second["ipcReqID"], "data": "z" * 5000})
        conn.read_request()

    peer = peer_factory(big_answer)

    async def main() -> list[Any]:
        async with AsyncIPCClient(
            peer.path, max_message_bytes=1000, auto_reconnect=0
        ) as client:
            tasks = [asyncio.ensure_future(client.send("/x")) for _ in range(2)]
            while len(peer.requests) < 2:
                await asyncio.sleep(0.01)
            gate.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            while client.connected:
                await asyncio.sleep(0.01)
            return results

    first, second = run(main())
    assert isinstance(second, MessageTooLarge) and second.limit == 1000  # LIMIT-3
    assert isinstance(first, ServerClosed)  # the connection closed under it


def test_close_fails_pending_and_leaves_no_fd_or_task(
    peer_factory: PeerFactory, run: Any
) -> None:
    def hang(conn: PeerConn) -> None:
        while conn.read_request(timeout=30) is not None:
            pass

    peer = peer_factory(hang)

    async def main() -> None:
        fds = open_sockets()
        tasks_before = len(asyncio.all_tasks())
        client = AsyncIPCClient(peer.path)
        await client.connect()
        assert client._conn is not None and client._conn.transport is not None
        ours = socket_name(client._conn.transport.get_extra_info("socket").fileno())
        pending = asyncio.ensure_future(client.send("/x"))
        while not peer.requests:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await client.close()
        with pytest.raises(ServerClosed, match="closed"):
            await pending
        assert time.monotonic() - started < 5
        assert ours not in open_sockets()  # released by the time close() returns
        assert len(asyncio.all_tasks()) == tasks_before
        with pytest.raises(ServerClosed, match="closed"):
            await client.send("/y")  # misuse: closed
        await client.close()  # idempotent
        await client.connect()  # reopens
        await client.close()
        # The peer closes its ends in its own threads, shortly after ours.
        for _ in range(300):
            if not open_sockets() - fds:
                break
            await asyncio.sleep(0.01)
        assert not open_sockets() - fds, open_sockets() - fds

    run(main())


def test_cancelled_send_forgets_its_request(
    peer_factory: PeerFactory, run: Any
) -> None:
    peer = peer_factory(lambda conn: [conn.read_request(timeout=30) for _ in range(3)])

    async def main() -> None:
        async with AsyncIPCClient(peer.path) as client:
            task = asyncio.ensure_future(client.send("/x"))
            while not peer.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.pending_count == 0 and client._futures == {}

    run(main())


def test_connect_errors_and_misuse(
    short_tmp: Path, peer_factory: PeerFactory, run: Any
) -> None:
    peer = peer_factory()

    async def main() -> None:
        with pytest.raises(ConnectError) as info:
            await AsyncIPCClient(str(short_tmp / "none.sock")).connect()
        assert info.value.reason == "missing"
        with pytest.raises(ConnectError) as info:
            await AsyncIPCClient(str(short_tmp / "none.sock")).send("/x")
        assert info.value.reason == "missing"
        async with AsyncIPCClient(peer.path) as client:
            with pytest.raises(TypeError, match="uri must be a str"):
                await client.send(b"/x")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await client.send("/x", {1j})
            with pytest.raises(ConfigError):
                await client.send("/x", timeout=0)
            assert await client.send("/x", "still fine") == "still fine"

    run(main())
    with pytest.raises(ConfigError):
        AsyncIPCClient(peer.path, request_timeout=float("nan"))


def test_short_timeout_after_a_long_one_still_fires_on_time(
    peer_factory: PeerFactory, run: Any
) -> None:
    def answer_first_only(conn: PeerConn) -> None:
        first = conn.read_request()
        assert first is not None
        conn.reply(first, "ok")
        while conn.read_request(timeout=30) is not None:
            pass

    peer = peer_factory(answer_first_only)

    async def main() -> None:
        async with AsyncIPCClient(peer.path) as client:
            assert await client.send("/a", timeout=20) == "ok"
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await client.send("/b", timeout=0.2)
            assert time.monotonic() - started < 5

    run(main())


def test_sends_wait_while_the_server_does_not_read(
    peer_factory: PeerFactory, run: Any
) -> None:
    stop = threading.Event()

    def never_read(conn: PeerConn) -> None:
        stop.wait(20)

    peer = peer_factory(never_read)

    async def main() -> list[Any]:
        async with AsyncIPCClient(peer.path, request_timeout=0.5) as client:
            started = time.monotonic()
            blob = "w" * (256 * 1024)
            results = await asyncio.gather(
                *(client.send("/x", blob) for _ in range(64)), return_exceptions=True
            )
            assert time.monotonic() - started < 5
            assert client.pending_count == 0 and client._futures == {}
            return results

    try:
        results = run(main())
    finally:
        stop.set()
    assert all(isinstance(r, RequestTimeout) for r in results), results


def test_connect_waits_for_a_full_backlog_then_times_out(
    short_tmp: Path, run: Any
) -> None:
    path = str(short_tmp / "busy.sock")
    backlog = FullBacklog(path)

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(ConnectError) as info:
            await AsyncIPCClient(path, connect_timeout=0.3).connect()
        assert info.value.reason == "timeout"
        return time.monotonic() - started

    try:
        elapsed = run(main())
    finally:
        backlog.close()
    assert 0.2 < elapsed < 5
