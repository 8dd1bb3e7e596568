"""Large messages, the size limit, and bounded memory per connection (LIMIT-1, LIMIT-2, LIMIT-5, LIMIT-6)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc.server import IPCServer, Request
from server_helpers import RawClient, ServerThread, echo
from support import Server, rss_bytes, serve_in_tempdir, wait_until

MIB = 1024 * 1024
LIMIT = 16 * MIB


@pytest.fixture(scope="module")
def small_limit_server() -> Iterator[Server]:
    with serve_in_tempdir("--max-message-bytes", str(LIMIT)) as server:
        yield server


def test_messages_past_the_originals_1_mib_work_both_ways(
    small_limit_server: Server,
) -> None:
    blob = "x" * (3 * MIB)
    with RawClient(small_limit_server.path) as client:
        assert echo(client, {"blob": blob}) == {
            "ipcReqID": "rq0",
            "data": {"blob": blob},
        }


def test_message_just_under_the_limit_is_echoed(
    small_limit_server: Server,
) -> None:
    # LIMIT-1: the whole line, without LF, may be exactly the limit.
    head = b'{"ipcReqID":"rq7","uri":"/ipcserver/test/echo","data":"'
    blob = b"y" * (LIMIT - len(head) - 2)
    line = head + blob + b'"}'
    assert len(line) == LIMIT
    with RawClient(small_limit_server.path, timeout=30) as client:
        client.send(line + b"\n")
        assert client.read_line() == b'{"ipcReqID":"rq7","data":"' + blob + b'"}'


def test_message_over_the_limit_is_message_too_large_and_the_connection_goes_on(
    small_limit_server: Server,
) -> None:
    # LIMIT-2, CORR-6: id recovered from the head; the lines after it are served.
    line = (
        b'{"ipcReqID":"rq3","uri":"/ipcserver/test/echo","data":"'
        + b"z" * (LIMIT + 10)
        + b'"}'
    )
    with (
        RawClient(small_limit_server.path, timeout=30) as client,
        RawClient(small_limit_server.path) as other,
    ):
        client.send(
            line
            + b"\n"
            + b'{"ipcReqID":"rq4","uri":"/ipcserver/test/echo","data":"next"}\n'
        )
        answer = client.read_json()
        assert answer["ipcReqID"] == "rq3"
        assert answer["code"] == "message_too_large"
        assert answer["limit"] == LIMIT
        assert "data" not in answer
        assert client.read_json() == {"ipcReqID": "rq4", "data": "next"}
        assert echo(other, "unaffected")["data"] == "unaffected"


def test_oversize_line_is_not_buffered(small_limit_server: Server) -> None:
    # LIMIT-2: the server discards the rest of a long line as it arrives.
    pid = small_limit_server.proc.pid
    with RawClient(small_limit_server.path, timeout=30) as client:
        echo(client, 0)
        before = rss_bytes(pid)
        client.send(b'{"ipcReqID":"rq1","data":"')
        chunk = b"w" * MIB
        for _ in range(80):
            client.send(chunk)
        growth = rss_bytes(pid) - before
        client.send(b'"}\n')
        assert client.read_json()["code"] == "message_too_large"
        assert echo(client, 1)["data"] == 1
    assert growth < 8 * MIB, growth


def test_too_small_limit_is_refused() -> None:
    from pixl_ipc import ConfigError

    with pytest.raises(ConfigError, match="max_message_bytes"):
        IPCServer("/tmp/x.sock", max_message_bytes=LIMIT - 1)


def test_info_advertises_the_limits(small_limit_server: Server) -> None:
    with RawClient(small_limit_server.path) as client:
        info = client.request({"ipcReqID": "rq0", "uri": "/ipcserver/info"})["data"]
        assert info["limits"]["max_message_bytes"] == LIMIT


# --- LIMIT-5: a peer that sends without reading --------------------------------------


def test_slow_reader_does_not_grow_the_server_without_bound(server: Any) -> None:
    # The original grew by 313 MiB for 3,000 unread 100 KiB answers. Here the
    # server stops reading from that connection instead, and later answers all.
    count = 400
    payload = "p" * (100 * 1024)
    messages = [
        json.dumps(
            {"ipcReqID": f"rq{i}", "uri": "/ipcserver/test/echo", "data": payload}
        ).encode()
        + b"\n"
        for i in range(count)
    ]
    pid = server.proc.pid
    with (
        RawClient(server.path, timeout=60) as client,
        RawClient(server.path) as watcher,
    ):
        echo(watcher, 0)
        baseline = rss_bytes(pid)
        sent = [0]

        def sender() -> None:
            for message in messages:
                client.sock.sendall(message)
                sent[0] += 1

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        # Wait until the sender is stuck: the server has stopped reading.
        last, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 1.0 and thread.is_alive():
            if sent[0] != last:
                last, still_since = sent[0], time.monotonic()
            time.sleep(0.05)
        assert thread.is_alive(), (
            "every request was accepted without the client reading"
        )
        growth = rss_bytes(pid) - baseline
        stats = watcher.request({"ipcReqID": "rq1", "uri": "/ipcserver/stats"})["data"]
        assert stats["readPauses"] >= 1
        assert stats["totalStreamBackpressure"] >= 1
        # The other connection is served meanwhile (LIMIT-6).
        assert echo(watcher, "served")["data"] == "served"
        ids = set()
        for _ in range(count):
            ids.add(client.read_json(timeout=30)["ipcReqID"])
        thread.join(10)
    assert ids == {f"rq{i}" for i in range(count)}
    assert growth < 8 * MIB, growth


def test_in_flight_requests_per_connection_are_bounded(short_tmp: Path) -> None:
    path = str(short_tmp / "f.sock")
    server = IPCServer(path, max_inflight_per_connection=3)
    active = [0, 0]  # now, most seen

    async def slow(request: Request) -> Any:
        active[0] += 1
        active[1] = max(active[1], active[0])
        await asyncio.sleep(0.05)
        active[0] -= 1
        return request.data

    server.add_uri_handler("/slow", "slow", slow)
    with ServerThread(server) as running, RawClient(path) as client:
        client.send(
            b"".join(
                b'{"ipcReqID":"rq%d","uri":"/slow","data":%d}\n' % (i, i)
                for i in range(20)
            )
        )
        answers = {client.read_json()["ipcReqID"] for _ in range(20)}
        assert answers == {f"rq{i}" for i in range(20)}
        assert active[1] == 3
        stats = running.call(server.get_stats)
        assert stats["readPauses"] >= 1
        # Reading resumed: the connection still works.
        assert echo(client, "after")["data"] == "after"


def test_half_close_with_requests_waiting_for_a_slot_answers_them_all(
    short_tmp: Path,
) -> None:
    path = str(short_tmp / "g.sock")
    server = IPCServer(path, max_inflight_per_connection=2)

    async def slow(request: Request) -> Any:
        await asyncio.sleep(0.02)
        return request.data

    server.add_uri_handler("/slow", "slow", slow)
    with ServerThread(server), RawClient(path) as client:
        client.send(
            b"".join(
                b'{"ipcReqID":"rq%d","uri":"/slow","data":%d}\n' % (i, i)
                for i in range(10)
            )
        )
        client.sock.shutdown(socket.SHUT_WR)
        lines = client.read_until_eof().splitlines()
        assert sorted(json.loads(line)["data"] for line in lines) == list(range(10))


def test_many_idle_connections_are_cheap(server: Any) -> None:
    # About 10 KiB of server memory per idle connection at most.
    pid = server.proc.pid
    with RawClient(server.path) as first:
        echo(first, 0)
        baseline = rss_bytes(pid)
        clients = [RawClient(server.path) for _ in range(300)]
        try:
            assert wait_until(
                lambda: (
                    first.request({"ipcReqID": "s", "uri": "/ipcserver/stats"})["data"][
                        "connections"
                    ]
                    == 301
                ),
                timeout=10,
            )
            per_connection = (rss_bytes(pid) - baseline) / 300
        finally:
            for client in clients:
                client.close()
    assert per_connection < 10 * 1024, per_connection


def test_shutdown_answers_requests_still_waiting_for_an_in_flight_slot(
    short_tmp: Path,
) -> None:
    # LIFE-7 with LIMIT-5: requests already read are answered, even those that
    # had to wait for a slot when shutdown began.
    path = str(short_tmp / "w.sock")
    server = IPCServer(path, max_inflight_per_connection=2)

    async def slow(request: Request) -> Any:
        await asyncio.sleep(0.1)
        return request.data

    server.add_uri_handler("/slow", "slow", slow)
    running = ServerThread(server).start()
    try:
        with RawClient(path) as client:
            client.send(
                b"".join(
                    b'{"ipcReqID":"rq%d","uri":"/slow","data":%d}\n' % (i, i)
                    for i in range(6)
                )
            )
            assert wait_until(lambda: running.call(server.get_stats)["inflight"] == 2)
            running.stop()
            lines = client.read_until_eof().splitlines()
            assert sorted(json.loads(line)["data"] for line in lines) == list(range(6))
    finally:
        running.stop()


def _status_bytes(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise RuntimeError(key)


def test_a_64_mib_echo_peaks_at_about_twice_its_size(server: Any) -> None:
    # LIMIT-1 at the default limit, without copies that multiply the cost:
    # the line, the parsed value and the encoded reply may coexist, little more.
    head = b'{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":"'
    size = 64 * MIB - len(head) - 2
    with RawClient(server.path, timeout=60) as client:
        echo(client, 0)
        baseline = _status_bytes(server.proc.pid, "VmRSS:")
        client.send(head + b"e" * size + b'"}\n')
        reply = client.read_line()
        assert (
            reply.startswith(b'{"ipcReqID":"rq1","data":"eee')
            and len(reply) == size + 28
        )
        peak = _status_bytes(server.proc.pid, "VmHWM:")
    print(f"\n64 MiB echo: peak above baseline {(peak - baseline) / MIB:.1f} MiB")
    # The line is let go once parsed, so the parsed value and the encoded
    # reply coexist: 2x, measured. 2.5x catches a third copy, such as the line
    # kept while its request is handled.
    assert peak - baseline <= 2.5 * 64 * MIB, (peak - baseline) / MIB
