"""The JSON codec's choices: exact numbers, lone surrogates, both encoders, allocation failure.

``encode_line`` is orjson's encoder, or msgspec's where an allocation may
fail (see :mod:`pixl_ipc._codec`); both are checked here on the same values,
and each survives a failed allocation in a process under ``RLIMIT_AS``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixl_ipc._codec import decode_json, encode_fast, encode_safe
from pixl_ipc.errors import MalformedMessage

ENCODERS: list[Callable[[Any], bytes]] = [encode_fast, encode_safe]
ENCODER_IDS = ["orjson", "msgspec"]

# (name, value, wire): written by both encoders, read back by decode_json.
SURROGATE_CASES: list[tuple[str, Any, bytes]] = [
    ("lone high surrogate", "\ud800", b'"\\ud800"\n'),
    ("lone low surrogate after text", "x\udc00", b'"x\\udc00"\n'),
    (
        "in a key, beside raw non-ASCII that stays raw",
        {"k\udfff": "é☃"},
        '{"k\\udfff":"é☃"}\n'.encode(),
    ),
    (
        "beside an integer past 64 bits, which keeps its digits",
        {"s": "\ud800", "n": 2**80},
        b'{"s":"\\ud800","n":1208925819614629174706176}\n',
    ),
]


@pytest.mark.parametrize("encode", ENCODERS, ids=ENCODER_IDS)
@pytest.mark.parametrize(
    ("name", "value", "wire"), SURROGATE_CASES, ids=[c[0] for c in SURROGATE_CASES]
)
def test_a_lone_surrogate_is_read_and_written_back_escaped(
    encode: Callable[[Any], bytes], name: str, value: Any, wire: bytes
) -> None:
    # The original echoes "\ud800" escaped; so must the kit's server.
    assert encode(value) == wire
    assert decode_json(wire[:-1]) == value


@pytest.mark.parametrize(
    "wire",
    [
        b'{"a":"\\ud800","b":NaN}',
        b'{"a":"\\ud800","b":1e400}',
        b'{"a":"\\ud800","b":"\xff"}',
        b'{"a":"\\ud800"',
        b'{"a":"\\ud800"}x',
        b'{"a":"\\ud800","b":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["NaN", "1e400", "invalid UTF-8", "truncated", "trailing garbage", "deep"],
)
def test_a_line_with_a_lone_surrogate_is_still_refused_when_invalid(
    wire: bytes,
) -> None:
    with pytest.raises(MalformedMessage):
        decode_json(wire)


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    assert decode_json(b'"\\uD83D\\uDE00"') == "\U0001f600"


@pytest.mark.parametrize("digits", [19, 20, 40, 300, 4000])
def test_integers_of_any_length_keep_every_digit(digits: int) -> None:
    # FRAME-9 without a scan of the line: the decoder itself is exact.
    number = int("9" * digits)
    line = b'{"n":[' + str(number).encode() + b",-" + str(number).encode() + b"]}"
    assert decode_json(line) == {"n": [number, -number]}


def test_an_integer_past_the_interpreters_digit_limit_is_refused() -> None:
    # Python refuses int() of over 4,300 digits (a quadratic conversion).
    with pytest.raises(MalformedMessage):
        decode_json(b"[" + b"7" * 5000 + b"]")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_both_encoders_write_values_that_read_back_equal(value: Any) -> None:
    fast, safe = encode_fast(value), encode_safe(value)
    assert fast.endswith(b"\n") and fast.count(b"\n") == 1
    assert safe.endswith(b"\n") and safe.count(b"\n") == 1
    assert decode_json(fast[:-1]) == value
    assert decode_json(safe[:-1]) == value


@pytest.mark.parametrize("encode", ENCODERS, ids=ENCODER_IDS)
@pytest.mark.parametrize(
    "bad",
    [object(), {(1, 2): 3}],
    ids=["object", "tuple key"],
)
def test_both_encoders_refuse_what_json_cannot_hold(
    encode: Callable[[Any], bytes], bad: Any
) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode(bad)


@pytest.mark.parametrize("encode", ENCODERS, ids=ENCODER_IDS)
def test_both_encoders_refuse_a_circular_value(encode: Callable[[Any], bytes]) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        encode(loop)


# A process that limits its address space (ulimit -v), then decodes and
# encodes a 48 MiB message with less room than that takes. Each step must
# either work or raise MemoryError: the process may not die. A limit is in
# force when pixl_ipc is imported, as ulimit -v sets it before the program
# starts; it is lowered to the headroom wanted once the imports are done.
ALLOCATION_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    def limit_to(headroom):
        with open("/proc/self/status") as status:
            size = next(int(l.split()[1]) << 10 for l in status if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + headroom, resource.RLIM_INFINITY))
    limit_to(1 << 30)
    from pixl_ipc._codec import allocation_may_fail, decode_json, encode_line
    assert allocation_may_fail()
    entry = b'"' + b"x" * 1000 + b'"'
    line = b'{"ipcReqID":"rq1","data":[' + b",".join([entry] * 48_000) + b"]}"
    value = {"ipcReqID": "rq1", "data": ["y" * 1000] * 48_000}
    limit_to(int(sys.argv[1]) << 20)
    results = []
    for step in (lambda: decode_json(line), lambda: encode_line(value)):
        try:
            step()
            results.append("ok")
        except MemoryError:
            results.append("MemoryError")
    print(" ".join(results))
    """
)


def test_allocation_failure_raises_memory_error_instead_of_crashing() -> None:
    seen: dict[str, set[str]] = {"decode": set(), "encode": set()}
    for headroom_mib in (8, 16, 32, 48, 64, 96):
        done = subprocess.run(
            [sys.executable, "-c", ALLOCATION_SCRIPT, str(headroom_mib)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (
            headroom_mib,
            done.returncode,
            done.stderr[-2000:],
        )
        decode, encode = done.stdout.split()
        seen["decode"].add(decode)
        seen["encode"].add(encode)
    # The limits were tight enough to fail each step at least once.
    assert "MemoryError" in seen["decode"]
    assert "MemoryError" in seen["encode"]
