"""Logging what peers send without letting them write the log, and without flooding it.

Anything a peer controls (a uri, an exception message built from its data)
may hold a newline followed by text shaped like a log record. :func:`printable`
escapes control characters in such values; :func:`format_failure` writes a
traceback with every line indented, so that no line of it can pass for a
record of its own. :class:`Throttle` keeps a message that a storm of peers
can trigger to one line a second.
"""

from __future__ import annotations

import re
import time
import traceback
from typing import Any

__all__ = ["Throttle", "format_failure", "printable"]

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Characters of a peer's value written to the log; the rest is counted.
PRINTABLE_LIMIT = 256
_INDENT = "    | "


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, limit: int = PRINTABLE_LIMIT) -> str:
    """``value`` as text fit for one log line: control characters escaped, long text cut.

    Args:
        value: anything; a non-string is converted with ``str()``.
        limit: characters kept; what is cut is counted in the text.
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    text = _CONTROL.sub(_escape, text)
    return f"{text}... ({cut} more characters)" if cut > 0 else text


def format_failure(exc: BaseException) -> str:
    """A traceback of ``exc`` whose every line is indented and free of other control characters."""
    lines = "".join(traceback.format_exception(exc)).splitlines()
    return "\n".join(_INDENT + _CONTROL.sub(_escape, line) for line in lines)


class Throttle:
    """Lets a message through at most once per ``interval`` seconds, counting the rest.

    Args:
        interval: seconds between two messages.
    """

    __slots__ = ("_next", "_suppressed", "interval")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0
        self._suppressed = 0

    def ready(self) -> int | None:
        """None if the message must be left out now; else how many were left out since the last one."""
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return None
        self._next = now + self.interval
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
