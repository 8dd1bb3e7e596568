"""The suite's wire toolkit: bytes in, lines and values out, no sockets.

Each stream is fed whole, one byte at a time, and with trailing data, as the
kit's own core tests do.
"""

from __future__ import annotations

from typing import Any

import pytest
from pixl_ipc_conformance.wirekit import (
    DecodeError,
    LineSplitter,
    Oversize,
    decode_strict,
    fill_command,
    json_equal,
    padded_echo,
    recover_id,
    resolve_vars,
    show,
    strip_cr,
)

STREAMS: list[tuple[bytes, list[bytes | Oversize]]] = [
    (b'{"a":1}\n', [b'{"a":1}']),
    (b"one\ntwo\n\nthree\r\n", [b"one", b"two", b"", b"three\r"]),
    (b"\xe2\x80\xa8 in\n", [b"\xe2\x80\xa8 in"]),
    (b"12345678\n123456789\nok\n", [b"12345678", Oversize(b"123456789"), b"ok"]),
    (b"12345678\r\n", [Oversize(b"12345678\r")]),  # the CR counts (LIMIT-1)
    (b"1234567890123\n", [Oversize(b"123456789")]),  # the head: one past the limit
]


def _feed_whole(data: bytes) -> list[bytes | Oversize]:
    return LineSplitter(8).feed(data)


def _feed_bytewise(data: bytes) -> list[bytes | Oversize]:
    splitter = LineSplitter(8)
    return [line for i in range(len(data)) for line in splitter.feed(data[i : i + 1])]


@pytest.mark.parametrize(("data", "lines"), STREAMS)
@pytest.mark.parametrize("feed", [_feed_whole, _feed_bytewise])
def test_line_splitter_cuts_at_lf_whole_or_byte_by_byte(
    data: bytes, lines: list[bytes | Oversize], feed: Any
) -> None:
    assert feed(data) == lines


@pytest.mark.parametrize(("data", "lines"), STREAMS)
def test_line_splitter_keeps_trailing_data_for_the_next_feed(
    data: bytes, lines: list[bytes | Oversize]
) -> None:
    splitter = LineSplitter(8)
    assert splitter.feed(data + b"par") == lines
    assert splitter.in_line and splitter.buffered == 3
    assert splitter.feed(b"t\n") == [b"part"]
    assert splitter.end() is None


def test_line_splitter_reports_what_the_stream_ended_inside() -> None:
    splitter = LineSplitter(4)
    splitter.feed(b"ab")
    assert splitter.end() == b"ab"
    splitter.feed(b"abcdefgh")
    assert splitter.buffered == 0  # an oversize line is not buffered
    assert splitter.end() == Oversize(b"abcde", complete=False)
    splitter.feed(b"ab\n")  # what follows is kept again
    assert splitter.feed(b"c\n") == [b"c"]


def test_strip_cr_removes_only_the_last_cr() -> None:
    assert strip_cr(b"a\r\r") == (b"a\r", True)
    assert strip_cr(b"a") == (b"a", False)


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (b'{"ipcReqID":"rq5","uri":', "rq5"),
        (b'{"uri":"/x","ipcReqID" : 7, "data":', 7),
        (b'{"ipcReqID":"a\\"b","data', 'a"b'),
        (b'{"ipcReqID":0,"uri":"/x"', None),  # falsy: null (RESP-2)
        (b'{"ipcReqID":"","uri":"/x"', None),
        (b'{"ipcReqID":true}', None),  # not a string or a number
        (b'{"data":"' + b"x" * 5000 + b'","ipcReqID":"late"}', None),  # past 4096 bytes
        # A number cut at byte 4096 is not taken for its prefix (12 of 12345).
        (b'{"pad":"' + b"p" * 4073 + b'","ipcReqID":12345,"b":}', None),
        (b'{"pad":"' + b"p" * 4060 + b'","ipcReqID":12345,"b":}', 12345),
        (b'{"ipcReqID":12', None),  # it may go on
        (b'{"ipcReqID":12.x', None),
        # Only the first ipcReqID counts (CORR-6): null there is no id.
        (b'{"ipcReqID":null,"data":{"ipcReqID":"rq5"},', None),
        (b'{"data":{"ipcReqID":"inner"},"ipcReqID":"rq5"', "inner"),
    ],
)
def test_recover_id_reads_the_head_of_a_line(head: bytes, found: Any) -> None:
    assert recover_id(head) == found


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"\xff{}", "UTF-8"),
        (b'{"a":NaN}', "NaN"),
        (b'{"a":Infinity}', "Infinity"),
        (b'{"a":', "not JSON"),
    ],
)
def test_decode_strict_refuses_what_a_sender_must_not_write(
    line: bytes, why: str
) -> None:
    with pytest.raises(DecodeError, match=why):
        decode_strict(line)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        (None, None, True),
        ({"a": [1, "x"]}, {"a": [1, "x"]}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
        (float("nan"), float("nan"), False),
    ],
)
def test_json_equal_compares_types_too(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (b"[1.0, 1e2, -0.0]", b"[1, 100, 0]", True),
        (b"[9007199254740993.0]", b"[9007199254740992]", False),
        (b"[1e400]", b"[1e401]", False),
        (b"[0.1]", b"[0.10]", True),
        (b"[true]", b"[1.0]", False),
    ],
)
def test_exact_numbers_compare_by_their_exact_value(
    a: bytes, b: bytes, equal: bool
) -> None:
    left, right = decode_strict(a, exact=True), decode_strict(b, exact=True)
    assert json_equal(left, right) is equal
    # Read as doubles, these two would be equal.
    assert json_equal(decode_strict(b"[1e400]"), decode_strict(b"[1e401]"))


def test_show_writes_json_not_python() -> None:
    assert show(True) == "true"
    assert show({"a": None}) == '{"a": null}'
    assert show(b"a\xffb") == "a\\xffb"
    assert show("x" * 300, 10).startswith('"xxxxxxxxx... (302 chars)')


def test_padded_echo_has_the_exact_size() -> None:
    for size in (60, 61, 1000, 70000):
        line, data = padded_echo("rq1", size)
        assert len(line) == size and data in line.decode()
    with pytest.raises(ValueError):
        padded_echo("rq1", 10)


def test_fill_command_splits_like_a_shell_without_one() -> None:
    argv = fill_command(
        "{python} 'my server.js' --socket={socket} $HOME",
        {"python": "/py", "socket": "/s"},
    )
    assert argv == ["/py", "my server.js", "--socket=/s", "$HOME"]


def test_resolve_vars_fills_values_known_at_run_time() -> None:
    value = {"a": [{"$var": "n"}, 2], "b": {"$var": "missing"}}
    assert resolve_vars(value, {"n": 5}) == {"a": [5, 2], "b": None}
