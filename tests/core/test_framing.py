"""Unit tests of :mod:`pixl_ipc.framing`: bytes in, lines out; values in, bytes out.

Every stream case is fed three ways, as h11 does: whole, one byte at a time,
and followed by trailing data (the start of a line that has not ended yet),
which must neither produce an event nor change the events before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pixl_ipc.errors import MalformedMessage
from pixl_ipc.framing import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ID_RECOVERY_BYTES,
    MIN_MAX_MESSAGE_BYTES,
    LineDecoder,
    OversizeLine,
    decode_json,
    encode_line,
)

TRAILING = b'{"ipcReqID":"rq9","uri":"/unfinished'

Event = bytes | OversizeLine


def chunks_whole(data: bytes, trailing: bytes) -> Iterator[bytes]:
    yield data


def chunks_bytewise(data: bytes, trailing: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def chunks_trailing(data: bytes, trailing: bytes) -> Iterator[bytes]:
    # The trailing bytes come in the same read as the end of the stream.
    yield data + trailing


FEEDS: dict[str, Callable[[bytes, bytes], Iterator[bytes]]] = {
    "whole": chunks_whole,
    "bytewise": chunks_bytewise,
    "trailing": chunks_trailing,
}


def feed_all(
    decoder: LineDecoder, data: bytes, feed: str, trailing: bytes = TRAILING
) -> list[Event]:
    """Feed ``data`` as ``feed`` says; check the memory bound after every call.

    ``trailing`` must fit the decoder's limit, so that it stays pending.
    """
    events: list[Event] = []
    for chunk in FEEDS[feed](data, trailing):
        events.extend(decoder.feed(chunk))
        assert decoder.buffered <= decoder.max_line_bytes
    return events


# (name, stream, lines expected). FRAME-1 to FRAME-4: the decoder only splits;
# classifying lines is the protocol's job, so blank lines come out as b"".
LINE_CASES: list[tuple[str, bytes, list[bytes]]] = [
    ("one line", b'{"a":1}\n', [b'{"a":1}']),
    (
        "two lines in one read (FRAME-3)",
        b'{"a":1}\n{"b":2}\n',
        [b'{"a":1}', b'{"b":2}'],
    ),
    ("CRLF loses its CR (FRAME-2)", b'{"a":1}\r\n', [b'{"a":1}']),
    ("only the CR just before LF is dropped (FRAME-2)", b"a\r\rb\r\r\n", [b"a\r\rb\r"]),
    ("a lone CR is not a line end (FRAME-2)", b"a\rb\n", [b"a\rb"]),
    ("empty lines are lines (FRAME-4)", b"\n\n", [b"", b""]),
    ("a CR-only line becomes empty (FRAME-2)", b"\r\n", [b""]),
    ("whitespace is kept", b"  \t {}\n", [b"  \t {}"]),
    (
        "U+2028 and U+2029 are not line ends (FRAME-8)",
        '{"a":"x\u2028y\u2029z"}\n'.encode(),
        ['{"a":"x\u2028y\u2029z"}'.encode()],
    ),
    ("NUL bytes pass through", b"a\x00b\n", [b"a\x00b"]),
    ("invalid UTF-8 passes through", b"\xff\xfe{\n", [b"\xff\xfe{"]),
    ("no LF means no line", b'{"a":1}', []),
    ("nothing in, nothing out", b"", []),
]


LONG = b'{"data":"' + b"x" * 3000 + b'"}'

# A read that starts with a long line is cut with find(), one with short lines
# with split(): the same lines must come out of both, whatever follows.
LONG_LINE_CASES: list[tuple[str, bytes, list[bytes]]] = [
    ("a long line alone", LONG + b"\n", [LONG]),
    (
        "a long line, then short ones",
        LONG + b"\n{}\n\n[1]\n",
        [LONG, b"{}", b"", b"[1]"],
    ),
    ("short lines, then a long one", b"{}\n" + LONG + b"\n", [b"{}", LONG]),
    ("long lines with CRLF", LONG + b"\r\n" + LONG + b"\r\n", [LONG, LONG]),
    ("a long line, then an unfinished one", LONG + b"\n" + LONG, [LONG]),
]


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize(
    ("name", "stream", "expected"),
    LINE_CASES + LONG_LINE_CASES,
    ids=[c[0] for c in LINE_CASES + LONG_LINE_CASES],
)
def test_decoder_splits_stream_into_lines_however_it_is_cut(
    name: str, stream: bytes, expected: list[bytes], feed: str
) -> None:
    decoder = LineDecoder(4096)
    assert feed_all(decoder, stream, feed) == expected
    unfinished = len(stream) - (stream.rfind(b"\n") + 1)
    assert decoder.buffered == unfinished + (len(TRAILING) if feed == "trailing" else 0)


@pytest.mark.parametrize("feed", list(FEEDS))
def test_decoder_accepts_a_line_of_exactly_the_limit(feed: str) -> None:
    line = b"{" + b"x" * 62 + b"}"
    decoder = LineDecoder(64)
    assert feed_all(decoder, line + b"\n" + b"{}\n", feed) == [line, b"{}"]


@pytest.mark.parametrize("feed", list(FEEDS))
def test_decoder_counts_a_cr_before_lf_in_the_limit(feed: str) -> None:
    # The limit applies to the line as it came, CR included (LIMIT-1 counts bytes without the LF).
    decoder = LineDecoder(4)
    events = feed_all(decoder, b"abcd\r\nok\n", feed, trailing=b"{")
    assert isinstance(events[0], OversizeLine)
    assert events[1:] == [b"ok"]


# (name, limit, stream, expected) where an OversizeLine is given by the line it
# stands for. LIMIT-2: reported once, the rest dropped, next lines served.
OVERSIZE_CASES: list[tuple[str, int, bytes, list[bytes | tuple[str, bytes]]]] = [
    ("one byte over", 8, b"123456789\nok\n", [("over", b"123456789"), b"ok"]),
    ("far over", 8, b"x" * 100 + b"\nok\n", [("over", b"x" * 100), b"ok"]),
    (
        "over between two good lines",
        8,
        b"a\n" + b"y" * 20 + b"\nb\n",
        [b"a", ("over", b"y" * 20), b"b"],
    ),
    (
        "two oversize lines in a row",
        4,
        b"aaaaaa\nbbbbbb\nc\n",
        [("over", b"aaaaaa"), ("over", b"bbbbbb"), b"c"],
    ),
    (
        "long lines over and under the limit in one read",
        2048,
        b"q" * 3000 + b"\n" + b"r" * 1500 + b"\n" + b"s" * 2049 + b"\r\nok\n",
        [("over", b"q" * 3000), b"r" * 1500, ("over", b"s" * 2049 + b"\r"), b"ok"],
    ),
    (
        "oversize at the end of the stream",
        4,
        b"ok\n" + b"z" * 10,
        [b"ok", ("over", b"z" * 10)],
    ),
]


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize(
    ("name", "limit", "stream", "expected"),
    OVERSIZE_CASES,
    ids=[c[0] for c in OVERSIZE_CASES],
)
def test_decoder_reports_each_oversize_line_once_and_keeps_going(
    name: str,
    limit: int,
    stream: bytes,
    expected: list[bytes | tuple[str, bytes]],
    feed: str,
) -> None:
    decoder = LineDecoder(limit)
    events = feed_all(decoder, stream, feed, trailing=b"{")
    assert len(events) == len(expected)
    for event, want in zip(events, expected, strict=True):
        if isinstance(want, bytes):
            assert event == want
            continue
        line = want[1]
        assert isinstance(event, OversizeLine)
        assert event.limit == limit
        assert limit < event.size <= len(line) + (1 if feed == "trailing" else 0)
        # The head is the start of the line, at least as much as was seen before the limit passed.
        assert (line + b"{").startswith(event.head)
        assert len(event.head) >= min(limit + 1, len(line), ID_RECOVERY_BYTES)


@pytest.mark.parametrize("feed", ["whole", "bytewise"])
def test_decoder_keeps_the_id_recovery_head_of_a_large_oversize_line(feed: str) -> None:
    head = b'{"ipcReqID":"rq7","uri":"/x","data":"'
    line = head + b"a" * 10_000 + b'"}'
    decoder = LineDecoder(5_000)
    events = feed_all(decoder, line + b"\n", feed)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, OversizeLine)
    assert event.head == line[:ID_RECOVERY_BYTES]


def test_decoder_memory_never_exceeds_the_limit_while_discarding() -> None:
    decoder = LineDecoder(100)
    assert isinstance(decoder.feed(b"x" * 101)[0], OversizeLine)
    for _ in range(100):
        assert decoder.feed(b"y" * 1000) == []
        assert decoder.buffered == 0
    assert decoder.feed(b"end\nnext\n") == [b"next"]


def test_decoder_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="positive"):
        LineDecoder(0)


def test_default_limit_meets_the_spec_floor() -> None:
    # LIMIT-1: at least 16 MiB; the reference default is 64 MiB.
    assert MIN_MAX_MESSAGE_BYTES == 16 * 1024 * 1024
    assert DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    assert LineDecoder().max_line_bytes == DEFAULT_MAX_MESSAGE_BYTES


# One table drives the encoder and the decoder: (name, value, wire bytes).
CODEC_CASES: list[tuple[str, Any, bytes]] = [
    (
        "object, compact, LF-terminated (FRAME-1)",
        {"ipcReqID": "rq0", "data": [1, 2]},
        b'{"ipcReqID":"rq0","data":[1,2]}\n',
    ),
    ("empty object", {}, b"{}\n"),
    ("empty list", [], b"[]\n"),
    ("null", None, b"null\n"),
    ("booleans", [True, False], b"[true,false]\n"),
    ("negative integer", -42, b"-42\n"),
    ("float", 1.5, b"1.5\n"),
    ("raw UTF-8 text", {"t": "héllo ☃"}, '{"t":"héllo ☃"}\n'.encode()),
    ("astral character written raw (FRAME-8)", "\U0001f600", '"\U0001f600"\n'.encode()),
    ("U+2028 and U+2029 (FRAME-8)", "a\u2028b\u2029c", '"a\u2028b\u2029c"\n'.encode()),
    ("NUL escaped (FRAME-8)", "a\x00b", b'"a\\u0000b"\n'),
    ("LF escaped, so a line stays one line (FRAME-1)", "a\nb", b'"a\\nb"\n'),
    ("largest unsigned 64-bit integer", 2**64 - 1, b"18446744073709551615\n"),
    (
        "integer past 64 bits keeps its digits (FRAME-9)",
        2**64,
        b"18446744073709551616\n",
    ),
    ("negative integer past 64 bits (FRAME-9)", -(2**70), b"-1180591620717411303424\n"),
    ("lone surrogate escaped (FRAME-8)", "\ud800", b'"\\ud800"\n'),
]


@pytest.mark.parametrize(
    ("name", "value", "wire"), CODEC_CASES, ids=[c[0] for c in CODEC_CASES]
)
def test_encode_line_writes_the_expected_bytes(
    name: str, value: Any, wire: bytes
) -> None:
    assert encode_line(value) == wire


@pytest.mark.parametrize(
    ("name", "value", "wire"), CODEC_CASES, ids=[c[0] for c in CODEC_CASES]
)
def test_decode_json_reads_the_same_value_back(
    name: str, value: Any, wire: bytes
) -> None:
    decoded = decode_json(wire[:-1])
    assert decoded == value
    assert type(decoded) is type(value)


def test_encode_line_writes_deep_nesting_orjson_refuses() -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    wire = encode_line(value)
    assert wire == b"[" * 300 + b"1" + b"]" * 300 + b"\n"
    assert decode_json(wire[:-1]) == value


@pytest.mark.parametrize(
    "bad",
    [object(), {(1, 2): 3}, {"a": {1, 2}}, b"bytes"],
    ids=["object", "tuple key", "set", "bytes"],
)
def test_encode_line_refuses_values_json_cannot_hold(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode_line(bad)


def test_encode_line_refuses_a_circular_reference() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises((TypeError, ValueError)):
        encode_line(loop)


# Inputs that decode to a value equal to what the stdlib reads.
DECODE_OK: list[tuple[str, bytes, Any]] = [
    (
        "escaped surrogate pair is one astral character (FRAME-8)",
        b'"\\ud83d\\ude00"',
        "\U0001f600",
    ),
    ("escaped U+2028 (FRAME-8)", b'"\\u2028"', "\u2028"),
    ("escaped NUL is preserved (FRAME-8)", b'"\\u0000"', "\x00"),
    ("CR before LF tolerated by JSON itself", b'{"a":1}\r', {"a": 1}),
    ("leading whitespace", b' \t{"a":1}', {"a": 1}),
    ("19-digit integer exact", b"1234567890123456789", 1234567890123456789),
    (
        "integer past 64 bits exact (FRAME-9)",
        b"[123456789012345678901234567890]",
        [123456789012345678901234567890],
    ),
    ("long fraction read as the nearest double", b"0.1000000000000000000001", 0.1),
    (
        "big integer inside a string stays a string",
        b'{"n":"12345678901234567890123"}',
        {"n": "12345678901234567890123"},
    ),
]


@pytest.mark.parametrize(
    ("name", "wire", "value"), DECODE_OK, ids=[c[0] for c in DECODE_OK]
)
def test_decode_json_accepts_valid_json(name: str, wire: bytes, value: Any) -> None:
    assert decode_json(wire) == value


@pytest.mark.parametrize("depth", [256, 512])
def test_decode_json_accepts_deep_nesting(depth: int) -> None:
    # LIMIT-4 asks for 256 levels; walked without recursion, as == would recurse.
    # The decoder stops near the interpreter's recursion limit (1,000 frames).
    value = decode_json(b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}")
    levels = 1  # the object
    node: Any = value["a"]
    while isinstance(node, list):
        levels += 1
        assert len(node) <= 1
        node = node[0] if node else None
    assert levels == depth


DECODE_BAD: list[tuple[str, bytes]] = [
    ("syntax error", b'{"a":}'),
    ("truncated object", b'{"a":1'),
    ("trailing garbage", b'{"a":1}x'),
    ("two objects on one line", b"{}{}"),
    ("NaN (FRAME-9)", b'{"a":NaN}'),
    ("Infinity (FRAME-9)", b'{"a":Infinity}'),
    ("-Infinity (FRAME-9)", b'{"a":-Infinity}'),
    ("NaN with a long integer elsewhere", b'{"a":NaN,"b":12345678901234567890}'),
    ("number that overflows to infinity (FRAME-6)", b'{"a":1e400}'),
    ("negative number that overflows to infinity (FRAME-6)", b'{"a":-1e400}'),
    (
        "long literal that overflows to infinity (FRAME-6)",
        b'{"a":1' + b"0" * 400 + b".0}",
    ),
    ("invalid UTF-8 (FRAME-6)", b'{"a":"\xff"}'),
    ("truncated UTF-8 sequence (FRAME-6)", b'{"a":"\xe2\x82"}'),
    ("UTF-8 encoded surrogate (FRAME-6)", b'{"a":"\xed\xa0\x80"}'),
    ("raw control character in a string", b'{"a":"\x01"}'),
    ("single quotes", b"{'a':1}"),
    ("100,000 levels of nesting (LIMIT-4)", b"[" * 100_000 + b"]" * 100_000),
    ("100,000 levels of objects (LIMIT-4)", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("empty line", b""),
]


@pytest.mark.parametrize(("name", "wire"), DECODE_BAD, ids=[c[0] for c in DECODE_BAD])
def test_decode_json_raises_malformed_message_on_invalid_json(
    name: str, wire: bytes
) -> None:
    with pytest.raises(MalformedMessage):
        decode_json(wire)


def test_encode_line_raises_value_error_on_nesting_past_the_stack() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ValueError, match="deep"):
        encode_line(value)
