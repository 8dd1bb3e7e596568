"""Property tests and fuzzing of the sans-I/O core, and of a live server fed garbage.

Hypothesis settings come from ``conftest.py`` (derandomized ``ci`` profile by
default); example counts are sized so that this file runs in well under a
minute on a busy two-core machine.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pixl_ipc._js import js_string
from pixl_ipc.errors import MalformedMessage
from pixl_ipc.framing import LineDecoder, OversizeLine, decode_json, encode_line
from pixl_ipc.protocol import (
    ClientProtocol,
    IncomingPush,
    IncomingRequest,
    IncomingResponse,
    OversizeMessage,
    ProtocolReply,
    ServerProtocol,
    response,
)
from support import RawClient, Server, start_server

# --- strategies ------------------------------------------------------------------

# Characters the wire must carry intact (FRAME-8): astral, the JS line
# separators, NUL, and the characters JSON escapes.
SPECIAL_CHARS = st.sampled_from(
    [
        "\u2028",
        "\u2029",
        "\U0001f600",
        "\U0010ffff",
        "\x00",
        "\n",
        "\r",
        '"',
        "\\",
        "\ufeff",
        "é",
    ]
)
TEXT = st.text(
    alphabet=st.one_of(st.characters(exclude_categories=["Cs"]), SPECIAL_CHARS),
    max_size=12,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    # Past 64 bits (FRAME-9: a receiver that can hold them must not lose precision).
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=20,
)


def _wrap(depth: int, use_dicts: bool, inner: Any) -> Any:
    value = inner
    for level in range(depth):
        value = {"k": value} if use_dicts and level % 2 else [value]
    return value


# The request or response object adds one level: data nested up to 255 makes
# messages up to 256 deep, the depth every receiver must accept (LIMIT-4).
DEEP_VALUES = st.builds(_wrap, st.integers(1, 255), st.booleans(), SCALARS)
DATA = st.one_of(JSON_VALUES, DEEP_VALUES)
REQUEST_IDS = st.one_of(
    TEXT.filter(bool),
    st.integers(min_value=1, max_value=2**60),
    st.integers(max_value=-1, min_value=-(2**60)),
)

FRAGMENTS = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"ipcReqID":',
        b'"uri":',
        b'"/ipcserver/test/echo"',
        b'"data":',
        b'"rq1"',
        b",",
        b":",
        b'"',
        b"\\",
        b"\n",
        b"\r\n",
        b" ",
        b"0",
        b"-",
        b"1e400",
        b"NaN",
        b"null",
        b"true",
        b"\xff",
        b"\xed\xa0\x80",
        b"\\ud800",
        b"12345678901234567890123",
    ]
)
# Bytes that are mostly noise but often look like the protocol.
GARBAGE = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=16)), max_size=60).map(
    b"".join
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    """Cut ``stream`` at the given offsets (any order, duplicates allowed)."""
    bounds = sorted({0, len(stream), *(p % (len(stream) + 1) for p in points)})
    return [stream[i:j] for i, j in itertools.pairwise(bounds)]


def chunked(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """Either one byte per chunk (for short streams) or random cuts."""
    if len(stream) <= 2048 and draw(st.booleans()):
        return [stream[i : i + 1] for i in range(len(stream))]
    return cut(stream, draw(st.lists(st.integers(min_value=0), max_size=40)))


@st.composite
def framed_streams(draw: st.DrawFn) -> tuple[list[Any], bytes, list[bytes]]:
    messages = draw(
        st.lists(st.dictionaries(TEXT, JSON_VALUES, max_size=3), max_size=8)
    )
    crlf = draw(st.booleans())
    lines = [encode_line(m)[:-1] for m in messages]
    stream = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    return messages, stream, chunked(draw, stream)


@st.composite
def garbage_in_chunks(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream = draw(GARBAGE)
    return stream, chunked(draw, stream)


# --- framing ---------------------------------------------------------------------


@settings(max_examples=100)
@given(framed_streams())
def test_decoder_yields_the_same_messages_however_the_stream_is_cut(
    case: tuple[list[Any], bytes, list[bytes]],
) -> None:
    # FRAME-2, FRAME-3: any cut, down to one byte; CRLF or LF endings.
    messages, _stream, chunks = case
    decoder = LineDecoder()
    lines: list[bytes | OversizeLine] = []
    for chunk in chunks:
        lines.extend(decoder.feed(chunk))
    assert decoder.buffered == 0
    assert len(lines) == len(messages)
    for line, message in zip(lines, messages, strict=True):
        assert isinstance(line, bytes)
        assert same(decode_json(line), message)


@settings(max_examples=300)
@given(garbage_in_chunks(), st.integers(min_value=1, max_value=64))
def test_decoder_memory_stays_bounded_and_cutting_changes_nothing(
    case: tuple[bytes, list[bytes]], limit: int
) -> None:
    # LIMIT-2: whatever comes in, at most the limit is held; the lines (and the
    # places of the oversize ones) do not depend on how the stream was cut.
    stream, chunks = case
    decoder = LineDecoder(limit)
    got: list[bytes | str] = []
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if isinstance(item, OversizeLine):
                assert item.size > limit and item.limit == limit
                got.append("oversize")
            else:
                assert len(item) <= limit
                got.append(item)
        assert 0 <= decoder.buffered <= limit
    whole = LineDecoder(limit).feed(stream)
    assert got == [
        "oversize" if isinstance(item, OversizeLine) else item for item in whole
    ]


@settings(max_examples=400)
@given(st.one_of(GARBAGE, st.binary(max_size=200)))
def test_decode_json_raises_only_malformed_message(data: bytes) -> None:
    try:
        decode_json(data)
    except MalformedMessage:
        pass


@settings(max_examples=300)
@given(garbage_in_chunks(), st.sampled_from([16, 64, 4096, 64 * 1024 * 1024]))
def test_server_protocol_never_raises_and_every_reply_can_be_sent(
    case: tuple[bytes, list[bytes]], limit: int
) -> None:
    # FRAME-6, LIMIT-2, LIMIT-4: bad input gives events, never an exception, and
    # every protocol reply is itself a valid message (ERR-1, RESP-2).
    _, chunks = case
    proto = ServerProtocol(max_message_bytes=limit)
    for chunk in chunks:
        for event in proto.receive_data(chunk):
            assert isinstance(event, (IncomingRequest, ProtocolReply))
            if isinstance(event, ProtocolReply):
                wire = encode_line(event.message)
                back = json.loads(wire)
                assert isinstance(back["code"], str) and isinstance(
                    back["message"], str
                )
                assert "ipcReqID" in back and "data" not in back
            else:
                assert isinstance(event.uri, str) and event.uri
        assert proto.decoder.buffered <= limit


@settings(max_examples=300)
@given(garbage_in_chunks(), st.sampled_from([16, 4096, 64 * 1024 * 1024]))
def test_client_protocol_never_raises_on_garbage(
    case: tuple[bytes, list[bytes]], limit: int
) -> None:
    # FRAME-7: malformed lines are ignored; nothing raises.
    _, chunks = case
    proto = ClientProtocol(max_message_bytes=limit)
    for chunk in chunks:
        for event in proto.receive_data(chunk):
            assert isinstance(event, (IncomingResponse, IncomingPush, OversizeMessage))
        assert proto.decoder.buffered <= limit


# --- round trips against the stdlib's reading of the same bytes -----------------


@settings(max_examples=250)
@given(TEXT.filter(bool), DATA)
def test_a_request_arrives_as_the_stdlib_reads_its_bytes(uri: str, data: Any) -> None:
    client = ClientProtocol(user_agent="prop", pid=4242)
    request_id, wire = client.encode_request(uri, data)
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1  # FRAME-1
    reference = json.loads(wire)
    events = ServerProtocol().receive_data(wire)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, IncomingRequest)
    assert same(event.message, reference)
    assert same(event.message["data"], data)
    assert event.uri == uri and event.id == request_id


@settings(max_examples=250)
@given(REQUEST_IDS, DATA)
def test_a_response_arrives_as_the_stdlib_reads_its_bytes(
    request_id: Any, data: Any
) -> None:
    wire = encode_line(response(request_id, data))
    assert wire.count(b"\n") == 1
    reference = json.loads(wire)
    events = ClientProtocol().receive_data(wire)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, IncomingResponse)
    assert same(event.message, reference)
    assert same(event.id, request_id)
    assert same(event.message["data"], data)


# --- a live server fed random byte streams ---------------------------------------


@pytest.fixture(scope="module")
def live_server() -> Iterator[Server]:
    directory = tempfile.mkdtemp(prefix="pxp-")
    server = start_server(f"{directory}/s.sock")
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)


_counter = iter(range(1_000_000))


@settings(max_examples=50)
@given(st.one_of(GARBAGE, st.binary(max_size=2048)))
def test_server_answers_a_good_request_after_any_garbage(
    live_server: Server, garbage: bytes
) -> None:
    # LIMIT-6, FRAME-5, FRAME-6: the garbage gets spec answers or none, and the
    # request after it is answered on the same connection.
    token = f"tok-{next(_counter)}"
    with RawClient(live_server.path, timeout=10) as conn:
        conn.send(garbage + b"\n")
        conn.send_request(token, "/ipcserver/test/echo", {"token": token})
        answer, before = conn.read_until_id(token, timeout=10)
    assert answer == {"ipcReqID": token, "data": {"token": token}}
    for message in before:
        assert "ipcReqID" in message, message
        if "code" in message:
            assert message["code"] in {"bad_json", "no_uri"}, message
    assert live_server.proc.poll() is None, live_server.log()


@pytest.fixture(scope="module")
def blocking_client(live_server: Server) -> Iterator[Any]:
    from pixl_ipc.client import IPCClient

    client = IPCClient(live_server.path, request_timeout=20.0)
    try:
        yield client
    finally:
        client.close()


@settings(max_examples=60)
@given(DATA)
def test_any_json_value_comes_back_unchanged_through_a_live_server(
    blocking_client: Any, data: Any
) -> None:
    # BUILTIN-1 end to end: client encoder, server decoder and encoder, client
    # decoder; astral, U+2028, 256-deep nesting and big integers (FRAME-8, FRAME-9, LIMIT-4).
    assert same(blocking_client.send("/ipcserver/test/echo", data), data)


ANY_ID = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 0.0, -0.0, "", "0"]),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(TEXT, st.integers(), max_size=2),
)
ANY_URI = st.one_of(
    ANY_ID,
    st.sampled_from(["/ipcserver/test/echo", "/no/such/handler"]),
    TEXT.map(lambda t: "/zz-unrouted/" + t),
)


def _falsy(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) in (int, float) and value == 0)
    )


@st.composite
def request_objects(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["ipcReqID"] = draw(ANY_ID)
    if draw(st.integers(0, 9)) > 0:
        message["uri"] = draw(ANY_URI)
    if draw(st.booleans()):
        message["data"] = draw(JSON_VALUES)
    for key in draw(
        st.lists(
            st.sampled_from(["pid", "userAgent", "extra"]), max_size=3, unique=True
        )
    ):
        message[key] = draw(SCALARS)
    return message


@pytest.fixture(scope="module")
def raw_connection(live_server: Server) -> Iterator[RawClient]:
    with RawClient(live_server.path, timeout=20) as conn:
        yield conn


@settings(max_examples=120)
@given(request_objects())
def test_server_answers_any_request_object_once_as_err3_says(
    raw_connection: RawClient, message: dict[str, Any]
) -> None:
    # RESP-1: exactly one answer; RESP-2: its id; ERR-2, ERR-3: the code and its
    # place; REQ-1: unknown members allowed; ROUTE-2, BUILTIN-1.
    conn = raw_connection
    conn.send(json.dumps(message).encode() + b"\n")
    token = f"sentinel-{next(_counter)}"
    conn.send_request(token, "/ipcserver/test/echo", None)
    answer = conn.read_message(20)
    assert conn.read_message(20) == {"ipcReqID": token, "data": None}, (
        "not exactly one answer"
    )
    request_id = message.get("ipcReqID")
    uri = message.get("uri")
    expected_id = None if _falsy(request_id) else request_id
    assert same(answer["ipcReqID"], expected_id), answer
    if _falsy(uri):
        assert answer == {
            "ipcReqID": expected_id,
            "code": "no_uri",
            "message": "Missing required uri parameter from request",
        }
    elif uri == "/ipcserver/test/echo":
        # BUILTIN-1: no data member when the request had none
        expected = {
            "ipcReqID": expected_id,
            **({"data": message["data"]} if "data" in message else {}),
        }
        assert same(answer, expected), answer
    else:
        # REQ-2: a uri of another type is named by its JavaScript text
        text = uri if isinstance(uri, str) else js_string(uri)
        assert answer == {
            "ipcReqID": expected_id,
            "data": {
                "code": "no_handler_found",
                "message": f"No handler found for {text}",
            },
        }
