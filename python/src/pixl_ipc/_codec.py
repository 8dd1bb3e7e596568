"""JSON text to values and back: :func:`decode_json` and :func:`encode_line`.

Which library does what, measured in ``python/benchmarks`` (README, "The JSON
codec"):

- Decoding is msgspec's. It reads integers of any size exactly (FRAME-9)
  with no scan of the line, refuses invalid UTF-8, NaN, Infinity and numbers
  that overflow to infinity, stops deep nesting with RecursionError, and
  raises MemoryError when an allocation fails. orjson reads integers past 64
  bits as floats, so it needed a scan of every line for long digit runs, and
  it crashes the process when an allocation fails.
- The one thing msgspec refuses that the original accepts is an escaped lone
  surrogate (``"\\ud800"``); lines that hold one are read by the stdlib parser.
- Encoding is orjson's, ten times faster than msgspec's on long strings.
  orjson does not check that its output buffer could grow, so when an
  allocation can fail before the system runs out of memory (an address-space
  or data limit, ``ulimit -v``; strict overcommit) the encoder is msgspec's,
  into a bytearray, which raises MemoryError instead. The limits are read
  once, at import.
- Values orjson refuses (integers past 64 bits, lone surrogates, nesting past
  254 levels) are written by the stdlib encoder; non-ASCII stays raw UTF-8 and
  a lone surrogate is escaped, as JavaScript writes them.

Both encoders write the same bytes for JSON's types but for the spelling of
some exponents (``1e+16`` or ``1e16``). Other types (sets, bytes, datetimes,
dataclasses) are no part of the contract: each library treats them its way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from .errors import MalformedMessage

__all__ = [
    "allocation_may_fail",
    "decode_fast",
    "decode_json",
    "encode_fast",
    "encode_line",
    "encode_safe",
    "line_encoder",
]

_LF = b"\n"
_decode = msgspec.json.Decoder().decode
#: What :func:`decode_json` tries first, for hot paths that skip a call: it
#: returns what decode_json returns or raises; on any exception, call
#: decode_json for the rest of the rule (its fallback and its errors).
decode_fast: Callable[[bytes], Any] = _decode
_DecodeError = msgspec.DecodeError
# An escaped UTF-16 surrogate, paired or not: only such lines can be ones that
# msgspec refuses and the stdlib accepts.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def decode_json(line: bytes) -> Any:
    """Parse one line as JSON.

    Integers of any size come back exact (FRAME-9); an escaped lone surrogate
    is accepted (FRAME-8). At least 256 levels of nesting are read (LIMIT-4).

    Raises:
        MalformedMessage: the line is not valid UTF-8 JSON, holds a non-finite
            number, or nests deeper than the interpreter's recursion limit
            allows (LIMIT-4); the message says why.
        MemoryError: the value does not fit in memory.
    """
    try:
        return _decode(line)
    except _DecodeError as exc:
        if _SURROGATE_ESCAPE.search(line) is None:
            raise MalformedMessage(str(exc)) from None
        reason = str(exc)
    except RecursionError:
        raise MalformedMessage("JSON nested too deeply") from None
    return _decode_stdlib(line, reason)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e400 is valid syntax but overflows to infinity, a non-finite number
    # (FRAME-6), as msgspec says too.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _decode_stdlib(line: bytes, reason: str) -> Any:
    try:
        text = line.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"invalid UTF-8 at byte {exc.start}") from None
    except RecursionError:
        raise MalformedMessage("JSON nested too deeply") from None
    except ValueError:
        raise MalformedMessage(reason) from None


def _encode_stdlib(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        # Deeper than this thread's stack allows: a value error, not a crash.
        raise ValueError("value nested too deeply to encode") from None
    # A lone surrogate can only stand inside a string: backslashreplace
    # writes it as the JSON escape \udXXX, as JSON.stringify does.
    return text.encode("utf-8", "backslashreplace") + _LF


_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE
_orjson_dumps = orjson.dumps


def encode_fast(value: Any) -> bytes:
    """:func:`encode_line` with orjson, for processes where allocation cannot fail."""
    try:
        return _orjson_dumps(value, option=_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        pass
    return _encode_stdlib(value)


_encode_into = msgspec.json.Encoder().encode_into


def encode_safe(value: Any) -> bytes:
    """:func:`encode_line` with msgspec, which raises MemoryError when an allocation fails."""
    # Into a bytearray: msgspec's bytes output, like orjson's, does not
    # survive a failed allocation; a bytearray's growth does.
    buffer = bytearray()
    try:
        _encode_into(value, buffer)
    except (TypeError, ValueError, RecursionError):
        # Lone surrogates, circular values and what msgspec cannot encode:
        # the stdlib writes or refuses them as encode_fast does.
        del buffer
        return _encode_stdlib(value)
    buffer += _LF
    return bytes(buffer)


def allocation_may_fail() -> bool:
    """True when a memory allocation can fail before the system runs out of memory.

    That is under an address-space or data-segment limit (RLIMIT_AS,
    RLIMIT_DATA: ``ulimit -v``, ``ulimit -d``) or with strict overcommit
    (``vm.overcommit_memory=2``). Elsewhere Linux hands out memory and
    the OOM killer acts instead, whatever the library.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return False
    for limit in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        if resource.getrlimit(limit)[0] != resource.RLIM_INFINITY:
            return True
    try:
        with open("/proc/sys/vm/overcommit_memory", encoding="ascii") as policy:
            return policy.read().strip() == "2"
    except OSError:
        return False


#: The encoder :func:`encode_line` calls, chosen at import; hot paths bind it
#: once instead of calling encode_line.
line_encoder: Callable[[Any], bytes] = encode_safe if allocation_may_fail() else encode_fast


def encode_line(value: Any) -> bytes:
    """Serialize ``value`` as one JSON line ending in LF (FRAME-1).

    Integers of any size keep their digits (FRAME-9). Non-ASCII text is
    written as raw UTF-8; a lone surrogate is escaped (``"\\ud800"``), as
    JavaScript's ``JSON.stringify`` writes it. Non-finite floats (NaN,
    infinities) are written as ``null``, as ``JSON.stringify`` does: JSON
    cannot represent them. Values are JSON's types: dict (str keys), list,
    tuple, str, int, float, bool, None.

    Raises:
        TypeError: ``value`` holds something JSON cannot represent.
        ValueError: ``value`` holds a circular reference, nests deeper than
            the stack allows, or holds NaN beside a value only the stdlib
            encoder writes.
        MemoryError: the text does not fit in memory.
    """
    return line_encoder(value)
