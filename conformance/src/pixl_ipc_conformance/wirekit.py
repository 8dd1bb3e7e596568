"""The suite's wire toolkit: what the runner, the scripted server and the broken peers share.

No I/O here, and nothing of pixl_ipc: bytes and values in, bytes and values
out, so that every part of the suite reads and writes the wire the same way,
written once from spec/PROTOCOL.md.

Encoding and decoding
    :func:`encode_message` writes one compact JSON text (FRAME-1);
    :func:`decode_strict` reads one as a sender must have written it (UTF-8,
    no NaN or Infinity: FRAME-9), with every number's exact value on request,
    and :func:`decode_line` says why it could not. :func:`json_equal` compares
    decoded values as JSON does (``true`` is not ``1``, ``1`` is ``1.0``).
    :func:`show` gives a short JSON text of a value
    for a report, so that a message says ``true``, never Python's ``True``.

Lines
    :class:`LineSplitter` cuts a byte stream into lines at LF (FRAME-2,
    FRAME-3), with an optional limit past which a line is discarded unbuffered
    and reported as an :class:`Oversize` (LIMIT-2, LIMIT-3). :func:`strip_cr`
    removes the CR of a CRLF. :func:`recover_id` finds the ``ipcReqID`` in the
    head of a line that could not be read (CORR-6).

Payloads and placeholders
    :func:`padded_string` and :func:`padded_echo` build data and echo lines of
    an exact size; :func:`fill_command` splits a command line as a shell would
    (:mod:`shlex`, no shell) and fills its ``{placeholders}``;
    :func:`resolve_vars` fills the ``{"$var": NAME}`` values of a case.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "ECHO_URI",
    "ID_HEAD_BYTES",
    "DecodeError",
    "LineSplitter",
    "Oversize",
    "decode_line",
    "decode_strict",
    "echo_line",
    "encode_message",
    "falsy",
    "fill_command",
    "json_equal",
    "padded_echo",
    "padded_string",
    "recover_id",
    "resolve_vars",
    "show",
    "strip_cr",
]

ECHO_URI = "/ipcserver/test/echo"
#: CORR-6: the id of an unreadable line is looked for in its first 4096 bytes.
ID_HEAD_BYTES = 4096
#: Padding: a mix of characters, not one run, so that a peer that mangles,
#: drops or reorders pieces is caught; ASCII only, so a byte count is exact.
_PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
#: Lone surrogates: text that no UTF-8 output can carry, shown as their JSON escapes.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: CORR-6: the first "ipcReqID" member, and the JSON string or number after it, if any.
_ID_IN_HEAD = re.compile(
    rb'"ipcReqID"[ \t\r\n]*:[ \t\r\n]*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)?'
)
#: What may follow a number that goes on (or nothing: the bytes end there).
_NUMBER_GOES_ON = frozenset({b"", *(bytes([c]) for c in b"0123456789.eE+-")})


class DecodeError(ValueError):
    """A line is not the JSON text a sender must write; the text says why."""


def encode_message(value: Any, *, ascii: bool = False) -> bytes:
    """Serialize one value as compact JSON, UTF-8, without the LF (FRAME-1).

    Args:
        value: any JSON value.
        ascii: escape every non-ASCII character (receivers must read both forms).

    Returns:
        The bytes.
    """
    return json.dumps(value, ensure_ascii=ascii, separators=(",", ":"), allow_nan=False).encode(
        "utf-8", "surrogatepass"
    )


def _no_constants(name: str) -> Any:
    raise DecodeError(f"non-finite number {name} (FRAME-9)")


def decode_strict(line: bytes, *, exact: bool = False) -> Any:
    """Decode one line as strict JSON: UTF-8, no NaN or Infinity (FRAME-1, FRAME-9).

    Args:
        line: the line, without its LF.
        exact: read numbers with a fraction or an exponent as
            :class:`~decimal.Decimal`, so that each keeps its exact value
            (``9007199254740993.0`` stays apart from ``9007199254740992``,
            ``1e400`` is not infinite); integers are exact either way.

    Raises:
        DecodeError: the line is not such a JSON text.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 (FRAME-9): {exc}") from exc
    try:
        if exact:
            return json.loads(text, parse_constant=_no_constants, parse_float=Decimal)
        return json.loads(text, parse_constant=_no_constants)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not JSON: {exc}") from exc


def decode_line(line: bytes, *, exact: bool = False) -> tuple[Any, str | None]:
    """:func:`decode_strict` without the exception: ``(value, None)`` or ``(None, reason)``."""
    try:
        return decode_strict(line, exact=exact), None
    except DecodeError as exc:
        return None, str(exc)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values, types included.

    ``true`` never equals ``1``; ``1`` equals ``1.0`` (JSON has one number type);
    NaN equals nothing. Numbers decoded ``exact`` (:class:`~decimal.Decimal`)
    compare by their exact value.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        numbers = (int, float, Decimal)
        return isinstance(a, numbers) and isinstance(b, numbers) and Decimal(a) == Decimal(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b and not (isinstance(a, float) and math.isnan(a))
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return False


def falsy(value: Any) -> bool:
    """JavaScript's falsiness for JSON values: absent (None), null, false, 0, ""."""
    return value is None or value is False or value == "" or (isinstance(value, int | float) and value == 0)


def show(value: Any, limit: int = 200) -> str:
    """A short text of a value for a report: JSON for decoded values, escapes for bytes.

    A lone surrogate (``"\\ud800"`` is valid JSON, FRAME-8) is shown as its
    escape, so that the text can be written as UTF-8.
    """
    if isinstance(value, bytes | bytearray):
        text = bytes(value[: limit + 1]).decode("utf-8", "backslashreplace")
        size = len(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
        size = len(text)
    if len(text) > limit:
        return text[:limit] + f"... ({size} {'bytes' if isinstance(value, bytes | bytearray) else 'chars'})"
    return text


# -- lines -----------------------------------------------------------------------


@dataclass(frozen=True)
class Oversize:
    """A line longer than the splitter's limit, discarded without being buffered.

    Attributes:
        head: its first :data:`ID_HEAD_BYTES` bytes (for :func:`recover_id`),
            or one more than the limit when the limit is smaller.
        complete: True once its LF was seen; False when the stream ended inside it.
    """

    head: bytes
    complete: bool = True


class LineSplitter:
    """Cuts a byte stream into lines at LF; bytes in, lines out, no I/O.

    Args:
        max_line: the longest line kept, in bytes before the LF (a CR
            included); a longer one is reported once as an :class:`Oversize`
            and its bytes are dropped up to the next LF. None: no limit.
    """

    def __init__(self, max_line: int | None = None) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._head: bytes | None = None  # set while an oversize line is skipped

    @property
    def buffered(self) -> int:
        """Bytes held of the line not yet complete."""
        return len(self._buffer)

    @property
    def over_limit(self) -> bytes | None:
        """The head of the unfinished line being skipped because it passed the limit, or None.

        Set as soon as more bytes than the limit came without an LF, before
        the line ends: a client acts then (LIMIT-3).
        """
        return self._head

    @property
    def in_line(self) -> bool:
        """True when bytes of an unfinished line were received (or are being skipped)."""
        return bool(self._buffer) or self._head is not None

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        """Add received bytes.

        Returns:
            The lines completed by them, in order, without their LF (a CR
            before it is kept: see :func:`strip_cr`), and an :class:`Oversize`
            in place of each line over the limit.
        """
        out: list[bytes | Oversize] = []
        start = 0
        while start <= len(data):
            newline = data.find(b"\n", start)
            piece = data[start:] if newline < 0 else data[start:newline]
            if self._head is None:
                self._buffer += piece
                if self.max_line is not None and len(self._buffer) > self.max_line:
                    # The same head however the bytes arrived (CORR-6).
                    self._head = bytes(self._buffer[: min(ID_HEAD_BYTES, self.max_line + 1)])
                    self._buffer.clear()
            if newline < 0:
                break
            if self._head is not None:
                out.append(Oversize(self._head))
                self._head = None
            else:
                out.append(bytes(self._buffer))
                self._buffer.clear()
            start = newline + 1
        return out

    def end(self) -> bytes | Oversize | None:
        """The stream ended: what was left of an unfinished line, if anything."""
        head, self._head = self._head, None
        if head is not None:
            return Oversize(head, complete=False)
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest or None


def strip_cr(line: bytes) -> tuple[bytes, bool]:
    """FRAME-2: the line without the CR that ended it, and whether there was one."""
    if line.endswith(b"\r"):
        return line[:-1], True
    return line, False


def recover_id(head: bytes) -> Any:
    """CORR-6: the ``ipcReqID`` (a JSON string or number) in the first 4096 bytes, or None.

    Only the first ``"ipcReqID":`` counts: when a value of another type
    (``null``, ``true``) or a cut string follows it, there is no id, however
    many members named ipcReqID come later. A falsy value found counts as none
    (RESP-2), and so does a number that reaches the end of those bytes or is
    followed by more number characters: it may be cut, and its prefix could
    be another request's id.
    """
    head = head[:ID_HEAD_BYTES]
    match = _ID_IN_HEAD.search(head)
    if match is None or match.group(1) is None:
        return None
    if head[match.start(1)] != ord('"') and head[match.end(1) : match.end(1) + 1] in _NUMBER_GOES_ON:
        return None  # a number that may be cut (at byte 4096, or inside "12.5x"): the whole id or none
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    return None if falsy(value) else value


# -- payloads and placeholders -------------------------------------------------------------


def padded_string(length: int) -> str:
    """A recognizable ASCII string of ``length`` characters (truncation shows)."""
    if length <= 0:
        return ""
    return (_PATTERN * (length // len(_PATTERN) + 1))[:length]


def echo_line(request_id: Any, data: Any) -> bytes:
    """An echo request, compact, without the LF."""
    return encode_message({"ipcReqID": request_id, "uri": ECHO_URI, "data": data})


def padded_echo(request_id: Any, size: int) -> tuple[bytes, str]:
    """An echo request whose line is exactly ``size`` bytes (without the LF).

    Returns:
        The line and its data (a string).

    Raises:
        ValueError: ``size`` is too small to hold an echo request.
    """
    overhead = len(echo_line(request_id, ""))
    if size < overhead:
        raise ValueError(f"a line of {size} bytes cannot hold an echo request")
    data = padded_string(size - overhead)
    return echo_line(request_id, data), data


def fill_command(command: str, values: dict[str, str]) -> list[str]:
    """Split a command line with :mod:`shlex` (no shell) and fill ``{name}`` in each word.

    Args:
        command: the command line, e.g. ``"{python} server.py --socket {socket}"``.
        values: what each placeholder stands for.

    Returns:
        The argument vector.
    """
    words = []
    for word in shlex.split(command):
        for key, value in values.items():
            word = word.replace("{" + key + "}", value)
        words.append(word)
    return words


def resolve_vars(value: Any, variables: dict[str, Any]) -> Any:
    """``value`` with each ``{"$var": NAME}`` inside it replaced by ``variables[NAME]``."""
    if isinstance(value, dict):
        if set(value) == {"$var"}:
            return variables.get(value["$var"])
        return {k: resolve_vars(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_vars(v, variables) for v in value]
    return value
