"""Replaying spec/vectors/original-answers.json against a live server, and comparing answers.

Each entry's input goes on a fresh connection. Unless the entry half-closes,
a sentinel echo follows it on the same connection: the answers read before
the sentinel's, and those arriving within the settle time after it, are the
server's answers; end of stream before the sentinel's answer means the
connection was lost. An entry that half-closes reads until end of stream.

Answers compare as JSON values under VER-2 (PROTOCOL.md): numbers by exact
value (1.0 is 1, 1e2 is 100, -0.0 is 0), members in any order, answers of one
entry in any order (RESP-5).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pixl_ipc_conformance.compare_inputs import line_bytes, parts_bytes

REPO = Path(__file__).resolve().parent.parent.parent
ANSWERS = REPO / "spec" / "vectors" / "original-answers.json"
ANSWERS_SCHEMA = REPO / "spec" / "vectors" / "original-answers.schema.json"
MODEL = Path(__file__).resolve().parent / "original_model.js"

SENTINEL_ID = "original-answers-sentinel"
SENTINEL = (
    json.dumps(
        {"ipcReqID": SENTINEL_ID, "uri": "/ipcserver/test/echo", "data": "sentinel"}
    )
    + "\n"
).encode()
#: Codes whose ``message`` is free text (ERR-3): only its type is compared.
FREE_TEXT_CODES = {"bad_json", "message_too_large"}
_READ_TIMEOUT = 20.0
_SETTLE = 0.3


def load_answers() -> dict[str, Any]:
    """The recorded answers file."""
    return json.loads(ANSWERS.read_text(encoding="utf-8"))


@dataclass
class Outcome:
    """What a server did with one entry's input.

    Attributes:
        lines: the answer lines, without their LF, in arrival order.
        lost: the connection ended before the sentinel's answer (or, for a
            half-close, the connection broke instead of ending cleanly).
        elapsed: seconds from the end of the input to each answer.
    """

    lines: list[bytes]
    lost: bool
    elapsed: list[float]


def replay(path: str, entry: dict[str, Any]) -> Outcome:
    """Send one entry's input to the server at ``path`` and collect its answers."""
    data = parts_bytes(entry["input"])
    half_close = entry.get("half_close", False)
    settle = _SETTLE + max(
        (
            o.get("min_wait_ms", 0) / 1000.0
            for o in (entry.get("original", {}), entry.get("kit", {}))
        ),
        default=0.0,
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_READ_TIMEOUT)
    lines: list[bytes] = []
    elapsed: list[float] = []
    buffer = b""
    try:
        sock.connect(path)
        sock.sendall(data if half_close else data + SENTINEL)
        start = time.monotonic()
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        seen_sentinel = False
        deadline = start + _READ_TIMEOUT
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            sock.settimeout(deadline - now)
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            except ConnectionError:
                return Outcome(lines, True, elapsed)
            if not chunk:
                return Outcome(lines, not (half_close or seen_sentinel), elapsed)
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                if not half_close and _is_sentinel(line):
                    seen_sentinel = True
                    deadline = time.monotonic() + settle
                    continue
                lines.append(line)
                elapsed.append(time.monotonic() - start)
        return Outcome(lines, not (half_close or seen_sentinel), elapsed)
    finally:
        sock.close()


def _is_sentinel(line: bytes) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("ipcReqID") == SENTINEL_ID


def exact_json(line: bytes) -> Any:
    """Parse an answer line keeping every number exact."""
    return json.loads(line.decode("utf-8", "surrogatepass"), parse_float=Decimal)


def same_value(a: Any, b: Any, *, free_text: bool = False) -> bool:
    """VER-2 equality: numbers by value, members in any order, booleans are not numbers.

    With ``free_text``, the ``message`` of a top-level error whose code ERR-3
    leaves free (``bad_json``, ``message_too_large``) need only be a string.
    """
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return Decimal(a) == Decimal(b)
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        free = (
            free_text
            and a.get("code") in FREE_TEXT_CODES
            and b.get("code") == a.get("code")
        )
        return all(
            (
                free
                and key == "message"
                and isinstance(a[key], str)
                and isinstance(b[key], str)
            )
            or same_value(a[key], b[key])
            for key in a
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            same_value(x, y) for x, y in zip(a, b, strict=True)
        )
    return type(a) is type(b) and a == b


def mismatch(
    expected: dict[str, Any], got: Outcome, *, free_text: bool = False
) -> str | None:
    """Why ``got`` is not the expected outcome, or None when it is (answers in any order)."""
    if expected.get("connection_lost"):
        return (
            None
            if got.lost
            else f"expected the connection to be lost, got {_show(got.lines)}"
        )
    if got.lost:
        return f"the connection was lost after {_show(got.lines)}"
    left = [exact_json(line) for line in got.lines]
    for line in expected["lines"]:
        want = exact_json(line_bytes(line))
        match = next(
            (
                i
                for i, value in enumerate(left)
                if same_value(want, value, free_text=free_text)
            ),
            None,
        )
        if match is None:
            return (
                f"no answer equal to {_clip(line_bytes(line))}; got {_show(got.lines)}"
            )
        left.pop(match)
    if left:
        return f"answers not expected: {_show([json.dumps(v, default=str).encode() for v in left])}"
    wait = expected.get("min_wait_ms", 0) / 1000.0
    # Only a lower bound: load makes answers late, never early.
    if wait and got.elapsed and max(got.elapsed) < 0.8 * wait:
        return f"answered after {max(got.elapsed):.3f} s, before {wait:.3f} s"
    return None


def _clip(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= 200 else f"{text[:200]}... ({len(line)} bytes)"


def _show(lines: list[bytes]) -> str:
    return (
        "[" + ", ".join(_clip(line) for line in lines) + "]" if lines else "no answer"
    )
