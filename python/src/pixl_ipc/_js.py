"""JavaScript's value conversions, as the original server applies them to JSON values.

The original is a Node.js program: it turns a non-string ``uri`` into text with
``String()`` (REQ-2) and hands ``data.delay`` to ``setTimeout``, which reads it
with ``Number()`` (BUILTIN-2). These functions give the same results for any
value :func:`~pixl_ipc.framing.decode_json` returns, so that the server answers
as the original does (VER-2). Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["js_falsy", "js_number", "js_number_text", "js_string"]

#: Integers up to this magnitude are exact doubles: their text is their digits.
_EXACT_INT = 2**53
# StrWhiteSpaceChar of ECMA-262: WhiteSpace and LineTerminator.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    map(chr, range(0x2000, 0x200B))
)
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", re.ASCII)
_RADIX = {
    "0x": (16, re.compile(r"[0-9a-fA-F]+")),
    "0o": (8, re.compile(r"[0-7]+")),
    "0b": (2, re.compile(r"[01]+")),
}


def js_falsy(value: Any) -> bool:
    """True for the JSON values JavaScript reads as false: absent (None), null, false, 0, ""."""
    return value is None or value is False or value == "" or (type(value) in (int, float) and value == 0)


def js_number_text(number: float) -> str:
    """``Number.prototype.toString()`` of a double: ``1e21`` -> ``"1e+21"``, ``-0.0`` -> ``"0"``."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    if number < 0:
        return "-" + js_number_text(-number)
    # repr() gives the shortest digits that read back as the same double, as
    # JavaScript does; only the placement of the point and exponent differs.
    mantissa, _, exp_text = repr(number).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exp_text or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    size = len(digits)
    if size <= point <= 21:
        return digits + "0" * (point - size)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    sign = "+" if exponent >= 0 else "-"
    head = digits if size == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(exponent)}"


def _number_text(value: int | float) -> str:
    if type(value) is int and -_EXACT_INT <= value <= _EXACT_INT:
        return str(value)
    try:
        return js_number_text(float(value))
    except OverflowError:  # an integer past the largest double reads as Infinity
        return "Infinity" if value > 0 else "-Infinity"


def js_string(value: Any) -> str:
    """``String(value)`` for a JSON value.

    ``42`` -> ``"42"``, ``true`` -> ``"true"``, ``{}`` -> ``"[object Object]"``,
    ``[]`` -> ``""``, ``["/a", "b"]`` -> ``"/a,b"`` (arrays join their items
    with commas, null items as empty text), ``1e21`` -> ``"1e+21"``.
    """
    if type(value) is str:
        return value
    if type(value) is list:
        return _join(value)
    return _scalar_string(value)


def _scalar_string(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (int, float)):
        return _number_text(value)
    return str(value)


def _join(value: list[Any]) -> str:
    """``Array.prototype.join(",")``, nested arrays included, without recursion."""
    parts: list[list[str]] = [[]]
    items = [iter(value)]
    while True:
        item = next(items[-1], _END)
        if item is _END:
            items.pop()
            text = ",".join(parts.pop())
            if not parts:
                return text
            parts[-1].append(text)
        elif type(item) is list:
            items.append(iter(item))
            parts.append([])
        elif type(item) is str:
            parts[-1].append(item)
        else:
            parts[-1].append("" if item is None else _scalar_string(item))


_END: Any = object()


def js_number(value: Any) -> float:
    """``Number(value)`` for a JSON value: ``"300"`` -> 300, ``true`` -> 1, ``{}`` -> NaN.

    Strings follow StringToNumber: surrounding white space is ignored, empty
    text is 0, ``0x``/``0o``/``0b`` prefixes and ``Infinity`` are read, and
    anything else that is not a decimal literal is NaN.
    """
    if value is None or value is False:
        return 0.0
    if value is True:
        return 1.0
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, dict):
        return math.nan
    text = js_string(value).strip(_JS_SPACE)
    if not text:
        return 0.0
    radix = _RADIX.get(text[:2].lower())
    if radix is not None:
        base, pattern = radix
        return float(int(text[2:], base)) if pattern.fullmatch(text[2:]) else math.nan
    if not _DECIMAL.fullmatch(text):
        return math.nan
    return float(text.replace("Infinity", "inf"))
