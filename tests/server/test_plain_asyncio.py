"""The server on plain asyncio, where connections read into a shared buffer (BufferedConnection).

uvloop is optional: without it the server runs on asyncio's own loop, whose
transports hand a BufferedProtocol one read at a time. Every connection of
a server reads into the same buffer, so these tests interleave connections
and send lines longer than the buffer.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pixl_ipc.connection import READ_BUFFER_BYTES, BufferedConnection, Connection
from pixl_ipc.server import IPCServer
from server_helpers import ServerThread, echo
from support import RawClient, wait_until


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(
        IPCServer(str(tmp_path / "s.sock")), asyncio.new_event_loop
    ) as thread:
        yield thread


@pytest.fixture
def path(plain: ServerThread) -> str:
    return plain.server.socket_path


def _connections(thread: ServerThread) -> list[Connection]:
    return thread.call(lambda: list(thread.server._ctx.connections))


def test_connections_on_plain_asyncio_read_into_the_shared_buffer(
    plain: ServerThread, path: str
) -> None:
    client = RawClient(path)
    assert echo(client, {"a": 1}) == {"ipcReqID": "rq0", "data": {"a": 1}}
    assert [type(conn) for conn in _connections(plain)] == [BufferedConnection]
    client.sock.close()


def test_lines_longer_than_the_buffer_from_two_connections_at_once_come_back_whole(
    path: str,
) -> None:
    # Each line takes several reads; the two streams alternate through the
    # one buffer, so a read not copied out at once would corrupt the other.
    big_a = "a" * (READ_BUFFER_BYTES * 2 + 123)
    big_b = "b" * (READ_BUFFER_BYTES + 7)
    first, second = RawClient(path), RawClient(path)
    line_a = (
        json.dumps(
            {"ipcReqID": "A", "uri": "/ipcserver/test/echo", "data": big_a}
        ).encode()
        + b"\n"
    )
    line_b = (
        json.dumps(
            {"ipcReqID": "B", "uri": "/ipcserver/test/echo", "data": big_b}
        ).encode()
        + b"\n"
    )
    step = 50_000
    for pos in range(0, max(len(line_a), len(line_b)), step):
        first.send(line_a[pos : pos + step])
        second.send(line_b[pos : pos + step])
    assert first.read_message() == {"ipcReqID": "A", "data": big_a}
    assert second.read_message() == {"ipcReqID": "B", "data": big_b}


def test_many_pipelined_requests_in_one_write_are_all_answered_in_order(
    path: str,
) -> None:
    # 200 KiB: the answers fit the socket buffers while the write goes on.
    client = RawClient(path)
    lines = b"".join(
        json.dumps(
            {"ipcReqID": f"rq{i}", "uri": "/ipcserver/test/echo", "data": "x" * 1000}
        ).encode()
        + b"\n"
        for i in range(200)
    )
    client.send(lines)
    assert [client.read_message()["ipcReqID"] for _ in range(200)] == [
        f"rq{i}" for i in range(200)
    ]


def test_oversize_line_is_refused_and_the_connection_goes_on(tmp_path: Path) -> None:
    limit = 16 * 1024 * 1024
    server = IPCServer(str(tmp_path / "s.sock"), max_message_bytes=limit)
    with ServerThread(server, asyncio.new_event_loop):
        client = RawClient(server.socket_path, timeout=30)
        client.send(
            b'{"ipcReqID":"big","uri":"/ipcserver/test/echo","data":"'
            + b"x" * limit
            + b'"}\n'
        )
        reply = client.read_message(30)
        assert (reply["ipcReqID"], reply["code"]) == ("big", "message_too_large")
        assert echo(client, 1, "after") == {"ipcReqID": "after", "data": 1}


def test_half_closed_peer_gets_its_answers_then_end_of_stream(path: str) -> None:
    client = RawClient(path)
    client.send(
        b"".join(
            json.dumps(
                {"ipcReqID": f"rq{i}", "uri": "/ipcserver/test/echo", "data": i}
            ).encode()
            + b"\n"
            for i in range(3)
        )
    )
    client.sock.shutdown(socket.SHUT_WR)  # LIFE-2
    answers = [json.loads(line) for line in client.read_until_eof().splitlines()]
    assert answers == [{"ipcReqID": f"rq{i}", "data": i} for i in range(3)]


def test_a_closed_connection_leaves_the_registry(
    plain: ServerThread, path: str
) -> None:
    client = RawClient(path)
    echo(client, 1)
    client.sock.close()
    assert wait_until(lambda: not _connections(plain), timeout=10)
