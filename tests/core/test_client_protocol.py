"""The client core's rules, no sockets: its life, outstanding ids, and the events it reports.

Both clients are thin front ends over :class:`ClientProtocol`; what is checked
here holds for both. Stream inputs are fed whole, one byte at a time, and with
trailing data, as in the other core tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from pixl_ipc.errors import MessageTooLarge, ServerClosed
from pixl_ipc.protocol import (
    ClientProtocol,
    ClientState,
    IncomingPush,
    IncomingResponse,
    LateResponse,
    OversizeMessage,
    RequestFailed,
)
from test_protocol import FEEDS, feed_client


def open_client(*ids: str, limit: int = 1 << 20) -> ClientProtocol:
    proto = ClientProtocol(max_message_bytes=limit)
    proto.connection_made()
    for request_id in ids:
        proto.expect(request_id)
    return proto


def failures(events: list[Any]) -> dict[Any, type[BaseException]]:
    return {e.id: type(e.error) for e in events if isinstance(e, RequestFailed)}


@pytest.mark.parametrize("feed", FEEDS)
def test_an_answer_matches_its_request_once_then_is_late(feed: str) -> None:
    proto = open_client("rq0", "rq1")
    answer = b'{"ipcReqID":"rq0","data":1}\n'
    assert feed_client(proto, answer, feed) == [
        IncomingResponse("rq0", {"ipcReqID": "rq0", "data": 1})
    ]
    assert proto.pending_count == 1
    # A second answer with the same id waits for nobody: dropped (CORR-3).
    proto.connection_made()  # a clean line boundary after the trailing feed
    assert proto.receive_data(answer) == [
        LateResponse("rq0", {"ipcReqID": "rq0", "data": 1})
    ]
    assert proto.outstanding == {"rq1"}


@pytest.mark.parametrize("feed", FEEDS)
def test_a_forgotten_request_gets_its_late_answer_dropped(feed: str) -> None:
    # CORR-5: a timed-out id is forgotten, never reused; its answer is late.
    proto = open_client("rq0")
    assert proto.forget("rq0") is True
    assert proto.forget("rq0") is False
    events = feed_client(proto, b'{"ipcReqID":"rq0","data":"late"}\n', feed)
    assert [type(e) for e in events] == [LateResponse]
    assert proto.pending_count == 0


def test_an_id_this_client_never_sent_is_a_late_answer() -> None:
    proto = open_client("rq0")
    events = proto.receive_data(b'{"ipcReqID":"rq7","data":1}\n{"ipcReqID":5}\n')
    assert [type(e) for e in events] == [LateResponse, LateResponse]
    assert proto.outstanding == {"rq0"}


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(
    "line",
    [
        b'{"ipcReqID":null,"code":"bad_json","message":"invalid JSON"}\n',
        b'{"code":"server_busy","message":"busy"}\n',
        b'{"ipcReqID":"","code":"no_uri","message":"m"}\n',
    ],
    ids=["null id", "no id", "empty id"],
)
def test_a_top_level_error_without_an_id_fails_no_pending_request(
    line: bytes, feed: str
) -> None:
    # ERR-7: it matches no pending request; it is delivered as a push.
    proto = open_client("rq0", "rq1")
    events = feed_client(proto, line, feed)
    assert len(events) == 1 and isinstance(events[0], IncomingPush)
    assert proto.outstanding == {"rq0", "rq1"}


def oversize(request_id: str | None, limit: int) -> bytes:
    head = (
        b"{" if request_id is None else b'{"ipcReqID":"' + request_id.encode() + b'",'
    )
    return head + b'"data":"' + b"q" * limit + b'"}\n'


@pytest.mark.parametrize("feed", FEEDS)
def test_a_response_over_the_limit_fails_its_request_and_closes_the_rest(
    feed: str,
) -> None:
    # LIMIT-3: the request named by the line's id (CORR-6) is too large; the
    # connection closes, so every other pending request fails as closed.
    proto = open_client("rq0", "rq1", "rq2", limit=200)
    events = feed_client(proto, oversize("rq1", 200), feed)
    assert isinstance(events[0], OversizeMessage) and events[0].id == "rq1"
    assert failures(events) == {
        "rq1": MessageTooLarge,
        "rq0": ServerClosed,
        "rq2": ServerClosed,
    }
    assert proto.state is ClientState.LOST and proto.pending_count == 0


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(
    "line",
    [
        oversize(None, 200),
        oversize("rq9", 200),
        b'{"data":"' + b"q" * 5000 + b'","ipcReqID":"rq0"}\n',
    ],
    ids=["no id", "an id nobody waits for", "the id past the first 4096 bytes"],
)
def test_a_response_over_the_limit_naming_no_pending_request_fails_all_as_too_large(
    line: bytes, feed: str
) -> None:
    proto = open_client("rq0", "rq1", limit=200)
    events = feed_client(proto, line, feed)
    assert isinstance(events[0], OversizeMessage) and events[0].id is None
    assert failures(events) == {"rq0": MessageTooLarge, "rq1": MessageTooLarge}


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(("size", "too_large"), [(99, False), (100, True)])
def test_the_limit_counts_a_cr_before_the_lf(
    size: int, too_large: bool, feed: str
) -> None:
    # LIMIT-3: every byte before the LF counts, as the server counts.
    prefix = b'{"ipcReqID":"rq0","data":"'
    line = prefix + b"q" * (size - len(prefix) - 2) + b'"}'
    assert len(line) == size
    proto = open_client("rq0", limit=100)
    events = feed_client(proto, line + b"\r\n", feed)
    if too_large:
        assert isinstance(events[0], OversizeMessage)
        assert failures(events) == {"rq0": MessageTooLarge}
    else:
        assert [type(e) for e in events] == [IncomingResponse]


def test_nothing_after_an_oversize_line_is_read_until_a_new_connection() -> None:
    proto = open_client("rq0", "rq1", limit=100)
    events = proto.receive_data(oversize("rq0", 100) + b'{"ipcReqID":"rq1","data":1}\n')
    assert failures(events) == {"rq0": MessageTooLarge, "rq1": ServerClosed}
    assert proto.receive_data(b'{"ipcReqID":"rq1","data":1}\n') == []
    proto.connection_made()
    request_id, _ = proto.encode_request("/a", None)
    proto.expect(request_id)
    answer = b'{"ipcReqID":"' + request_id.encode() + b'","data":2}\n'
    assert [type(e) for e in proto.receive_data(answer)] == [IncomingResponse]


def test_a_lost_connection_fails_every_pending_request_as_closed() -> None:
    # LIFE-3: at once, each with its own exception carrying the reason.
    proto = open_client("rq0", "rq1")
    events = proto.connection_lost("the server closed the connection (reset)")
    assert failures(events) == {"rq0": ServerClosed, "rq1": ServerClosed}
    assert events[0].error is not events[1].error
    assert all("reset" in str(e.error) for e in events)
    assert proto.state is ClientState.LOST and proto.pending_count == 0


def test_a_new_connection_starts_at_a_line_boundary_and_ids_go_on() -> None:
    proto = open_client()
    first, _ = proto.encode_request("/a", None)
    proto.receive_data(b'{"ipcReqID":"rq0","da')  # cut by the drop
    proto.connection_lost()
    proto.connection_made()
    second, _ = proto.encode_request("/a", None)
    # CORR-1: the counter goes on across connections, as the original's does.
    assert (first, second) == ("rq0", "rq1")
    proto.expect(second)
    assert [type(e) for e in proto.receive_data(b'{"ipcReqID":"rq1"}\n')] == [
        IncomingResponse
    ]


@pytest.mark.parametrize(
    ("state", "auto_reconnect", "expected"),
    [
        (ClientState.NEW, False, True),
        (ClientState.OPEN, False, False),
        (ClientState.LOST, True, True),
        (ClientState.LOST, False, "auto_reconnect is off"),
        (ClientState.CLOSED, True, r"call connect\(\) to open it again"),
    ],
)
def test_must_connect_says_whether_a_request_may_connect(
    state: ClientState, auto_reconnect: bool, expected: bool | str
) -> None:
    proto = ClientProtocol()
    if state is not ClientState.NEW:
        proto.connection_made()
    if state is ClientState.LOST:
        proto.connection_lost()
    elif state is ClientState.CLOSED:
        proto.close()
    assert proto.state is state
    if isinstance(expected, str):
        with pytest.raises(ServerClosed, match=expected):
            proto.must_connect(auto_reconnect)
    else:
        assert proto.must_connect(auto_reconnect) is expected


def test_close_fails_pending_requests_and_stays_closed_until_reopened() -> None:
    proto = open_client("rq0")
    assert failures(proto.close()) == {"rq0": ServerClosed}
    proto.connection_lost()  # the socket's end, after close(): still closed
    assert proto.state is ClientState.CLOSED
    proto.reopen()
    assert proto.state is ClientState.NEW
    assert proto.must_connect(False) is True
