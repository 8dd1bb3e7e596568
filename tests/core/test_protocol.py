"""Unit tests of :mod:`pixl_ipc.protocol`: lines in, events out, no sockets.

Each server and client case is fed whole, one byte at a time, and with
trailing data (the start of a further line), as h11's tests do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pixl_ipc.errors import ErrorCode, RemoteError
from pixl_ipc.framing import encode_line
from pixl_ipc.protocol import (
    NO_URI_MESSAGE,
    PROTOCOL_VERSION,
    ClientProtocol,
    IncomingPush,
    IncomingRequest,
    IncomingResponse,
    OversizeMessage,
    ProtocolReply,
    ServerProtocol,
    data_error,
    error_reply,
    is_falsy_id,
    no_handler_found,
    push_message,
    recover_id,
    reply_id,
    response,
    response_outcome,
)

TRAILING = b'{"ipcReqID":"rq99","uri":"/not/finished'
FEEDS = ["whole", "bytewise", "trailing"]


def chunks(data: bytes, feed: str) -> Iterator[bytes]:
    if feed == "whole":
        yield data
    elif feed == "bytewise":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        yield data + TRAILING


def feed_server(proto: ServerProtocol, data: bytes, feed: str) -> list[Any]:
    events: list[Any] = []
    for chunk in chunks(data, feed):
        events.extend(proto.receive_data(chunk))
    return events


def feed_client(proto: ClientProtocol, data: bytes, feed: str) -> list[Any]:
    events: list[Any] = []
    for chunk in chunks(data, feed):
        events.extend(proto.receive_data(chunk))
    return events


def req(uri: str, request_id: Any, message: dict[str, Any]) -> IncomingRequest:
    return IncomingRequest(message, uri, request_id)


# --- server side: one table of (name, line, expected) ------------------------
#
# expected is None (not a message: FRAME-4, FRAME-5), an IncomingRequest, or a
# dict giving the reply's members and its reason; a reply's "message" text is
# compared only where the spec fixes it (ERR-3).

BASIC = {"ipcReqID": "rq0", "uri": "/a", "data": {"x": 1}, "pid": 12, "userAgent": "t"}

SERVER_CASES: list[tuple[str, bytes, Any]] = [
    ("a Node-ordered request (REQ-1)", encode_line(BASIC), req("/a", "rq0", BASIC)),
    (
        "a PHP-ordered request, uri first (REQ-1)",
        b'{"uri":"/a","ipcReqID":"rq0","data":[]}\n',
        req("/a", "rq0", {"uri": "/a", "ipcReqID": "rq0", "data": []}),
    ),
    (
        "CRLF ending (FRAME-2)",
        b'{"ipcReqID":"rq1","uri":"/a"}\r\n',
        req("/a", "rq1", {"ipcReqID": "rq1", "uri": "/a"}),
    ),
    (
        "leading whitespace (FRAME-5)",
        b' \t{"uri":"/a"}\n',
        req("/a", None, {"uri": "/a"}),
    ),
    (
        "unknown members are kept (REQ-1)",
        b'{"ipcReqID":"rq2","uri":"/a","extra":[1],"pid":"not a number"}\n',
        req(
            "/a",
            "rq2",
            {"ipcReqID": "rq2", "uri": "/a", "extra": [1], "pid": "not a number"},
        ),
    ),
    (
        "no data member (REQ-4)",
        b'{"ipcReqID":"rq3","uri":"/a"}\n',
        req("/a", "rq3", {"ipcReqID": "rq3", "uri": "/a"}),
    ),
    (
        "numeric id (REQ-3)",
        b'{"ipcReqID":5,"uri":"/a"}\n',
        req("/a", 5, {"ipcReqID": 5, "uri": "/a"}),
    ),
    (
        "negative float id (REQ-3)",
        b'{"ipcReqID":-1.5,"uri":"/a"}\n',
        req("/a", -1.5, {"ipcReqID": -1.5, "uri": "/a"}),
    ),
    (
        "absent id is answered with null (RESP-2)",
        b'{"uri":"/a"}\n',
        req("/a", None, {"uri": "/a"}),
    ),
    (
        "null id (REQ-3)",
        b'{"ipcReqID":null,"uri":"/a"}\n',
        req("/a", None, {"ipcReqID": None, "uri": "/a"}),
    ),
    (
        '"" id (REQ-3)',
        b'{"ipcReqID":"","uri":"/a"}\n',
        req("/a", None, {"ipcReqID": "", "uri": "/a"}),
    ),
    (
        "0 id (REQ-3)",
        b'{"ipcReqID":0,"uri":"/a"}\n',
        req("/a", None, {"ipcReqID": 0, "uri": "/a"}),
    ),
    (
        "0.0 id (REQ-3)",
        b'{"ipcReqID":0.0,"uri":"/a"}\n',
        req("/a", None, {"ipcReqID": 0.0, "uri": "/a"}),
    ),
    (
        "false id (REQ-3)",
        b'{"ipcReqID":false,"uri":"/a"}\n',
        req("/a", None, {"ipcReqID": False, "uri": "/a"}),
    ),
    (
        "U+2028 inside the uri (FRAME-8)",
        '{"ipcReqID":"rq4","uri":"/a\u2028b"}\n'.encode(),
        req("/a\u2028b", "rq4", {"ipcReqID": "rq4", "uri": "/a\u2028b"}),
    ),
    (
        "true id is echoed (REQ-3)",
        b'{"ipcReqID":true,"uri":"/a"}\n',
        req("/a", True, {"ipcReqID": True, "uri": "/a"}),
    ),
    (
        "object id is echoed (REQ-3)",
        b'{"ipcReqID":{},"uri":"/a"}\n',
        req("/a", {}, {"ipcReqID": {}, "uri": "/a"}),
    ),
    (
        "list id is echoed (REQ-3)",
        b'{"ipcReqID":[1],"uri":"/a"}\n',
        req("/a", [1], {"ipcReqID": [1], "uri": "/a"}),
    ),
    (
        "absent uri is no_uri (REQ-2)",
        b'{"ipcReqID":"rq5"}\n',
        {
            "ipcReqID": "rq5",
            "code": "no_uri",
            "message": NO_URI_MESSAGE,
            "reason": "no_uri",
        },
    ),
    (
        "null uri (REQ-2)",
        b'{"ipcReqID":"rq5","uri":null}\n',
        {
            "ipcReqID": "rq5",
            "code": "no_uri",
            "message": NO_URI_MESSAGE,
            "reason": "no_uri",
        },
    ),
    (
        '"" uri (REQ-2)',
        b'{"ipcReqID":"rq5","uri":""}\n',
        {
            "ipcReqID": "rq5",
            "code": "no_uri",
            "message": NO_URI_MESSAGE,
            "reason": "no_uri",
        },
    ),
    (
        "0 uri (REQ-2)",
        b'{"ipcReqID":"rq5","uri":0}\n',
        {
            "ipcReqID": "rq5",
            "code": "no_uri",
            "message": NO_URI_MESSAGE,
            "reason": "no_uri",
        },
    ),
    (
        "false uri (REQ-2)",
        b'{"ipcReqID":"rq5","uri":false}\n',
        {
            "ipcReqID": "rq5",
            "code": "no_uri",
            "message": NO_URI_MESSAGE,
            "reason": "no_uri",
        },
    ),
    (
        "no_uri with a falsy id answers null (RESP-2)",
        b'{"ipcReqID":0}\n',
        {
            "ipcReqID": None,
            "code": "no_uri",
            "message": NO_URI_MESSAGE,
            "reason": "no_uri",
        },
    ),
    (
        "numeric uri is routed as its text (REQ-2)",
        b'{"ipcReqID":"rq6","uri":7}\n',
        req("7", "rq6", {"ipcReqID": "rq6", "uri": 7}),
    ),
    (
        "true uri is routed as its text (REQ-2)",
        b'{"ipcReqID":"rq6","uri":true}\n',
        req("true", "rq6", {"ipcReqID": "rq6", "uri": True}),
    ),
    (
        "list uri is routed as its text (REQ-2)",
        b'{"ipcReqID":"rq6","uri":["/a"]}\n',
        req("/a", "rq6", {"ipcReqID": "rq6", "uri": ["/a"]}),
    ),
    (
        "syntax error is bad_json (FRAME-6)",
        b"{oops\n",
        {"ipcReqID": None, "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "bad_json keeps a string id found before the error (CORR-6)",
        b'{"ipcReqID":"rq7","uri":"/a","data":}\n',
        {"ipcReqID": "rq7", "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "bad_json keeps a numeric id (CORR-6)",
        b'{"ipcReqID": 42 ,"uri":"/a","data":[1,}\n',
        {"ipcReqID": 42, "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "bad_json recovers an id with an escaped quote (CORR-6)",
        b'{"ipcReqID":"r\\"q","uri":\n',
        {"ipcReqID": 'r"q', "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "bad_json answers null for a falsy recovered id (CORR-6)",
        b'{"ipcReqID":"","uri":\n',
        {"ipcReqID": None, "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "bad_json answers null when the id is past 4096 bytes (CORR-6)",
        b'{"pad":"' + b"p" * 4100 + b'","ipcReqID":"rq8","uri":\n',
        {"ipcReqID": None, "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "NaN is bad_json (FRAME-6)",
        b'{"ipcReqID":"rq9","uri":"/a","data":NaN}\n',
        {"ipcReqID": "rq9", "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "1e400 is bad_json (FRAME-6)",
        b'{"ipcReqID":"rq9","uri":"/a","data":1e400}\n',
        {"ipcReqID": "rq9", "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "invalid UTF-8 is bad_json (FRAME-6)",
        b'{"ipcReqID":"rq10","uri":"/\xff"}\n',
        {"ipcReqID": "rq10", "code": "bad_json", "reason": "bad_json"},
    ),
    (
        "100,000 levels of nesting are bad_json, not a crash (LIMIT-4)",
        b'{"ipcReqID":"rq11","uri":"/a","data":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}\n",
        {"ipcReqID": "rq11", "code": "bad_json", "reason": "bad_json"},
    ),
    ("a blank line is nothing (FRAME-4)", b"\n", None),
    ("a whitespace line is nothing (FRAME-4)", b" \t \r\n", None),
    ("a JSON list is not a message (FRAME-5)", b"[1,2]\n", None),
    ("a JSON string is not a message (FRAME-5)", b'"x"\n', None),
    ("a JSON number is not a message (FRAME-5)", b"42\n", None),
    ("null is not a message (FRAME-5)", b"null\n", None),
    ("text is not a message (FRAME-5)", b"GET / HTTP/1.1\n", None),
    ("invalid UTF-8 not starting with { is not a message (FRAME-5)", b"\xff{}\n", None),
]


def check_server_event(event: Any, expected: Any) -> None:
    if isinstance(expected, IncomingRequest):
        assert event == expected
        return
    assert isinstance(event, ProtocolReply)
    want = dict(expected)
    assert event.reason == want.pop("reason")
    for key, value in want.items():
        assert event.message[key] == value, key
    # ERR-1, ERR-2: a top-level error has a string message and no data member.
    assert isinstance(event.message["message"], str) and event.message["message"]
    assert "data" not in event.message
    assert set(event.message) >= {"ipcReqID", "code", "message"}


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(
    ("name", "line", "expected"), SERVER_CASES, ids=[c[0] for c in SERVER_CASES]
)
def test_server_protocol_turns_each_line_into_the_right_event(
    name: str, line: bytes, expected: Any, feed: str
) -> None:
    events = feed_server(ServerProtocol(), line, feed)
    if expected is None:
        assert events == []
    else:
        assert len(events) == 1
        check_server_event(events[0], expected)


def test_server_protocol_answers_lines_of_one_read_in_order() -> None:
    # FRAME-3: every line of one read, in order, whatever they are.
    stream = b"".join(line for _, line, _ in SERVER_CASES)
    expected = [want for _, _, want in SERVER_CASES if want is not None]
    events = ServerProtocol().receive_data(stream)
    assert len(events) == len(expected)
    for event, want in zip(events, expected, strict=True):
        check_server_event(event, want)


@pytest.mark.parametrize("feed", FEEDS)
def test_server_protocol_answers_an_oversize_line_and_serves_the_next(
    feed: str,
) -> None:
    # LIMIT-2: message_too_large with limit and recovered id, then the next line.
    big = b'{"ipcReqID":"rq12","uri":"/a","data":"' + b"z" * 200 + b'"}\n'
    nxt = b'{"ipcReqID":"rq13","uri":"/b"}\n'
    events = feed_server(ServerProtocol(max_message_bytes=100), big + nxt, feed)
    assert len(events) == 2
    check_server_event(
        events[0],
        {
            "ipcReqID": "rq12",
            "code": "message_too_large",
            "limit": 100,
            "reason": "message_too_large",
        },
    )
    assert events[1] == req("/b", "rq13", {"ipcReqID": "rq13", "uri": "/b"})


@pytest.mark.parametrize("feed", FEEDS)
def test_server_protocol_accepts_a_line_of_exactly_the_limit(feed: str) -> None:
    line = b'{"ipcReqID":"rq1","uri":"/a","data":"'
    line += b"y" * (100 - len(line) - 2) + b'"}'
    assert len(line) == 100
    events = feed_server(ServerProtocol(max_message_bytes=100), line + b"\n", feed)
    assert len(events) == 1 and isinstance(events[0], IncomingRequest)


# --- client side ---------------------------------------------------------------

CLIENT_CASES: list[tuple[str, bytes, Any]] = [
    (
        "a response (RESP-3)",
        b'{"ipcReqID":"rq0","data":{"a":1}}\n',
        IncomingResponse("rq0", {"ipcReqID": "rq0", "data": {"a": 1}}),
    ),
    (
        "a response without data (RESP-3)",
        b'{"ipcReqID":"rq1"}\n',
        IncomingResponse("rq1", {"ipcReqID": "rq1"}),
    ),
    (
        "a numeric id (CORR-2)",
        b'{"ipcReqID":3,"data":null}\n',
        IncomingResponse(3, {"ipcReqID": 3, "data": None}),
    ),
    (
        "a top-level error is a response (ERR-2)",
        b'{"ipcReqID":"rq2","code":"no_uri","message":"m"}\n',
        IncomingResponse("rq2", {"ipcReqID": "rq2", "code": "no_uri", "message": "m"}),
    ),
    (
        "unknown members are kept (RESP-4)",
        b'{"ipcReqID":"rq3","data":1,"later":true}\r\n',
        IncomingResponse("rq3", {"ipcReqID": "rq3", "data": 1, "later": True}),
    ),
    ("no id is a push (PUSH-1)", b'{"data":"hi"}\n', IncomingPush({"data": "hi"})),
    (
        "a null id is a push (PUSH-1)",
        b'{"ipcReqID":null,"data":1}\n',
        IncomingPush({"ipcReqID": None, "data": 1}),
    ),
    (
        'a "" id is a push (PUSH-1)',
        b'{"ipcReqID":"","data":1}\n',
        IncomingPush({"ipcReqID": "", "data": 1}),
    ),
    (
        "a 0 id is a push (PUSH-1)",
        b'{"ipcReqID":0,"data":1}\n',
        IncomingPush({"ipcReqID": 0, "data": 1}),
    ),
    (
        "a list id cannot match a request",
        b'{"ipcReqID":["rq0"],"data":1}\n',
        IncomingPush({"ipcReqID": ["rq0"], "data": 1}),
    ),
    (
        "a malformed line is ignored (FRAME-7)",
        b'{"ipcReqID":"rq0","data":\n',
        "malformed",
    ),
    (
        "invalid UTF-8 is ignored (FRAME-7)",
        b'{"ipcReqID":"rq0","data":"\xff"}\n',
        "malformed",
    ),
    (
        "deep nesting is ignored, not a crash (LIMIT-4)",
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        None,
    ),
    (
        "deep nesting in an object is ignored (LIMIT-4)",
        b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        "malformed",
    ),
    ("a non-object line is ignored (FRAME-5)", b'["rq0"]\n', None),
    ("a blank line is ignored (FRAME-4)", b"\r\n", None),
]


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(
    ("name", "line", "expected"), CLIENT_CASES, ids=[c[0] for c in CLIENT_CASES]
)
def test_client_protocol_turns_each_line_into_the_right_event(
    name: str, line: bytes, expected: Any, feed: str
) -> None:
    proto = ClientProtocol()
    for request_id in ("rq0", "rq1", "rq2", "rq3", 3):
        proto.expect(request_id)
    events = feed_client(proto, line, feed)
    if expected is None or expected == "malformed":
        assert events == []
        assert proto.malformed == (1 if expected == "malformed" else 0)
    else:
        assert events == [expected]
        assert proto.malformed == 0


@pytest.mark.parametrize("feed", FEEDS)
def test_client_protocol_reports_an_oversize_response_with_its_id(feed: str) -> None:
    # LIMIT-3 with CORR-6: the client can fail the request the line belonged to.
    big = b'{"ipcReqID":"rq4","data":"' + b"q" * 300 + b'"}\n'
    proto = ClientProtocol(max_message_bytes=100)
    proto.expect("rq4")
    events = feed_client(proto, big + b'{"ipcReqID":"rq5","data":1}\n', feed)
    over = events[0]
    assert isinstance(over, OversizeMessage)
    assert over.limit == 100 and over.size > 100 and over.id == "rq4"
    # The connection is done: the answer after the line is not read.
    assert [type(e).__name__ for e in events[1:]] == ["RequestFailed"]


def test_client_protocol_numbers_requests_from_rq0_and_never_reuses_an_id() -> None:
    proto = ClientProtocol()
    ids = [proto.encode_request("/a", None)[0] for _ in range(1000)]
    assert ids[:3] == ["rq0", "rq1", "rq2"]
    assert len(set(ids)) == 1000  # CORR-1


def test_client_protocol_writes_the_id_before_data_on_one_line() -> None:
    # CORR-6 asks senders to write ipcReqID before data; FRAME-1: one line.
    proto = ClientProtocol(user_agent="UA", pid=77)
    request_id, wire = proto.encode_request("/p", {"t": "a\nb"})
    assert request_id == "rq0"
    assert (
        wire
        == b'{"ipcReqID":"rq0","uri":"/p","data":{"t":"a\\nb"},"pid":77,"userAgent":"UA"}\n'
    )
    assert wire.count(b"\n") == 1


def test_client_protocol_uses_this_process_pid_by_default() -> None:
    assert ClientProtocol().pid == os.getpid()


def test_client_protocol_refuses_data_json_cannot_hold() -> None:
    with pytest.raises((TypeError, ValueError)):
        ClientProtocol().encode_request("/a", {"x": object()})


# One table drives both peers in memory, as h11's ConnectionPair does: the
# request the client encodes is what the server reads, and the response the
# server encodes is what the client reads, matched by id (CORR-2).
def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


PAIR_DATA: list[tuple[str, Any]] = [
    ("an object", {"a": [1, 2.5, None, True]}),
    ("an empty list, as PHP sends (REQ-4)", []),
    ("null", None),
    ("a scalar", "text"),
    ("astral and U+2028 (FRAME-8)", "\U0001f600\u2028\u2029"),
    ("a big integer (FRAME-9)", 2**80),
    ("nesting of 256 below the request (LIMIT-4)", nested(254)),
]


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(("name", "data"), PAIR_DATA, ids=[c[0] for c in PAIR_DATA])
def test_client_and_server_protocols_carry_a_request_and_its_answer(
    name: str, data: Any, feed: str
) -> None:
    client = ClientProtocol(user_agent="ua", pid=1)
    server = ServerProtocol()
    request_id, wire = client.encode_request("/echo", data)
    client.expect(request_id)
    events = feed_server(server, wire, feed)
    assert len(events) == 1
    incoming = events[0]
    assert isinstance(incoming, IncomingRequest)
    assert incoming.uri == "/echo" and incoming.id == request_id
    assert incoming.message == {
        "ipcReqID": request_id,
        "uri": "/echo",
        "data": data,
        "pid": 1,
        "userAgent": "ua",
    }
    answer = encode_line(response(incoming.id, incoming.message["data"]))
    got = feed_client(client, answer, feed)
    assert got == [IncomingResponse(request_id, {"ipcReqID": request_id, "data": data})]
    assert response_outcome(got[0].message) == data


# --- builders and helpers --------------------------------------------------------

FALSY_IDS: list[tuple[Any, bool]] = [
    (None, True),
    (False, True),
    ("", True),
    (0, True),
    (0.0, True),
    (-0.0, True),
    ("0", False),
    ("rq0", False),
    (1, False),
    (-1, False),
    (0.5, False),
    (True, False),
    ([], False),
    ({}, False),
]


@pytest.mark.parametrize(
    ("value", "falsy"), FALSY_IDS, ids=[repr(v) for v, _ in FALSY_IDS]
)
def test_is_falsy_id_follows_the_original_truthiness(value: Any, falsy: bool) -> None:
    # REQ-3, RESP-2: absent, null, "", 0 and false are "not correlated".
    assert is_falsy_id(value) is falsy
    assert reply_id(value) == (None if falsy else value)


def test_response_builders_place_errors_where_err3_says() -> None:
    assert response("rq1", [1]) == {"ipcReqID": "rq1", "data": [1]}
    assert response(0, 1) == {"ipcReqID": None, "data": 1}
    assert error_reply("rq2", ErrorCode.MESSAGE_TOO_LARGE, "big", limit=5) == {
        "ipcReqID": "rq2",
        "code": "message_too_large",
        "message": "big",
        "limit": 5,
    }
    assert data_error("rq3", ErrorCode.HANDLER_ERROR, "failed") == {
        "ipcReqID": "rq3",
        "data": {"code": "handler_error", "message": "failed"},
    }
    assert no_handler_found("rq4", "/nope") == {
        "ipcReqID": "rq4",
        "data": {"code": "no_handler_found", "message": "No handler found for /nope"},
    }
    assert push_message({"p": 1}) == {"data": {"p": 1}}
    assert PROTOCOL_VERSION == "1.1"


RECOVER_CASES: list[tuple[str, bytes, Any]] = [
    ("string id", b'{"ipcReqID":"rq5","uri":', "rq5"),
    ("spaces around the colon", b'{"ipcReqID" :  "rq6"', "rq6"),
    ("integer id", b'{"ipcReqID":12,', 12),
    ("negative exponent id", b'{"ipcReqID":-1.5e3}', -1500.0),
    ("escaped characters", b'{"ipcReqID":"a\\\\b\\u0041"', "a\\bA"),
    ("falsy id", b'{"ipcReqID":0,', None),
    ("true is not recovered", b'{"ipcReqID":true,', None),
    ("an unterminated string", b'{"ipcReqID":"rq', None),
    ("invalid UTF-8 inside the id", b'{"ipcReqID":"\xff",', None),
    ("no id at all", b'{"uri":"/a"', None),
    ("id in data only counts as found", b'{"data":{"ipcReqID":"inner"}', "inner"),
    (
        "only the first counts: null",
        b'{"ipcReqID":null,"data":{"ipcReqID":"rq5"},',
        None,
    ),
    ("only the first counts: true", b'{"ipcReqID" : true,"d":{"ipcReqID":"rq5"}', None),
    ("only the first counts: a string", b'{"ipcReqID":"a","d":{"ipcReqID":"b"},', "a"),
]


@pytest.mark.parametrize(
    ("name", "head", "expected"), RECOVER_CASES, ids=[c[0] for c in RECOVER_CASES]
)
def test_recover_id_finds_the_id_in_a_broken_line(
    name: str, head: bytes, expected: Any
) -> None:
    assert recover_id(head) == expected


# --- response_outcome: the original's codeToErr and messageTransform ----------------


def test_response_outcome_returns_data_of_a_success() -> None:
    assert response_outcome({"ipcReqID": "rq0", "data": {"a": 1}}) == {"a": 1}
    assert response_outcome({"ipcReqID": "rq0"}) is None  # RESP-3


def test_response_outcome_raises_a_top_level_error_always() -> None:
    message = {"ipcReqID": "rq0", "code": "no_uri", "message": NO_URI_MESSAGE}
    for code_to_err in (False, True):
        with pytest.raises(RemoteError) as info:
            response_outcome(message, code_to_err=code_to_err)
        assert info.value.code == "no_uri"
        assert info.value.message == NO_URI_MESSAGE
        assert info.value.data == message


def test_response_outcome_raises_an_unknown_code_as_that_code() -> None:
    # ERR-6: never success, never a protocol violation.
    with pytest.raises(RemoteError) as info:
        response_outcome({"ipcReqID": "rq0", "code": "from_the_future", "message": "m"})
    assert info.value.code == "from_the_future"


def test_response_outcome_returns_an_error_in_data_unless_code_to_err() -> None:
    # ERR-4: mirrors the original with codeToErr off; raises with it on.
    message = no_handler_found("rq0", "/x")
    assert response_outcome(message) == message["data"]
    with pytest.raises(RemoteError) as info:
        response_outcome(message, code_to_err=True)
    assert info.value.code == "no_handler_found"
    assert info.value.message == "No handler found for /x"
    assert info.value.data == message["data"]


def test_response_outcome_ignores_a_falsy_code_in_data() -> None:
    message = {"ipcReqID": "rq0", "data": {"code": 0, "rows": []}}
    assert response_outcome(message, code_to_err=True) == {"code": 0, "rows": []}


def test_response_outcome_lets_message_transform_decide() -> None:
    message = {"ipcReqID": "rq0", "code": "no_uri", "message": "m", "data": 5}
    assert response_outcome(message, message_transform=lambda m: (None, m["data"])) == 5
    with pytest.raises(RemoteError) as info:
        response_outcome(
            {"data": 1},
            message_transform=lambda m: ({"code": "mine", "message": "x"}, None),
        )
    assert (info.value.code, info.value.message) == ("mine", "x")
    with pytest.raises(KeyError):
        response_outcome({"data": 1}, message_transform=lambda m: (KeyError("k"), None))
    with pytest.raises(RemoteError) as info:
        response_outcome({"data": 1}, message_transform=lambda m: ("plain text", None))
    assert info.value.code == "error" and info.value.message == "plain text"


def test_response_outcome_refuses_a_transform_that_does_not_return_a_pair() -> None:
    with pytest.raises(TypeError, match="pair"):
        response_outcome({"data": 1}, message_transform=lambda m: 5)
    with pytest.raises(TypeError, match="pair"):
        response_outcome({"data": 1}, message_transform=lambda m: (1, 2, 3))
