"""``compare``: the same inputs sent to two live servers, and where their answers differ.

For each input (:mod:`.compare_inputs`) both servers get it on a fresh
connection, side by side (:mod:`.compare_replay`), and their outcomes are
compared under VER-2 (spec/PROTOCOL.md): each answer line is read as a JSON
value, numbers compare by their exact value, members in any order, the answers
of one input in any order (RESP-5); so bytes may differ only in number
spelling, member order and escaping. The ``message`` of an error whose text
ERR-3 leaves free (``bad_json``, ``message_too_large``, ``handler_error``,
``access_denied``, ``server_busy``) compares as a string unless
``exact_messages`` is set. How the exchange ended (answered, connection lost,
no answer within the bound) is compared too. Lines that are not JSON compare
as bytes.

Verdicts, per input:

``same``          the same answer bytes (in any order), ended the same way
``equal``         the same JSON values, bytes differing only as VER-2 allows
``declared``      they differ as a row of PROTOCOL.md's table "Differences
                  from the original" says: one server answered as the
                  original was recorded to, the other as the kit; or, for
                  the input of a server case that names rows, one server
                  answered as the case expects and the other did not
``differ``        any other difference
``not compared``  a server could not be reached for this input

:func:`compare_outcomes` is pure; :func:`run_compare` does the I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .compare_inputs import CaseAnswers, Input, line_bytes
from .compare_replay import Bounds, End, Outcome, Side
from .matchers import mismatch
from .schemas import SpecSchemas
from .wirekit import decode_line, json_equal

__all__ = [
    "FREE_TEXT_CODES",
    "CompareVerdict",
    "Comparison",
    "answers_as_case",
    "compare_outcomes",
    "exit_status",
    "matches_recorded",
    "run_compare",
]

#: Error codes whose ``message`` is free text (ERR-3): compared as strings only.
FREE_TEXT_CODES = frozenset(
    {"bad_json", "message_too_large", "handler_error", "access_denied", "server_busy"}
)


class CompareVerdict(enum.StrEnum):
    """What the comparison of one input found."""

    SAME = "same"
    EQUAL = "equal"
    DECLARED = "declared"
    DIFFER = "differ"
    NOT_COMPARED = "not compared"

    @property
    def counts_against(self) -> bool:
        """True for an undeclared difference, or an input that could not be compared."""
        return self in (CompareVerdict.DIFFER, CompareVerdict.NOT_COMPARED)


@dataclass(frozen=True)
class _Raw:
    """An answer line that is not JSON: it compares by its bytes."""

    line: bytes


def _value(line: bytes) -> Any:
    value, error = decode_line(line, exact=True)
    return _Raw(line) if error is not None else value


def _equal(a: Any, b: Any, free_text: bool) -> bool:
    """VER-2 equality of two decoded answers; see the module docstring for ``free_text``."""
    if isinstance(a, _Raw) or isinstance(b, _Raw):
        return isinstance(a, _Raw) and isinstance(b, _Raw) and a.line == b.line
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        loose = free_text and a.get("code") in FREE_TEXT_CODES and a.get("code") == b.get("code")
        return all(
            (loose and key == "message" and isinstance(a[key], str) and isinstance(b[key], str))
            or _equal(a[key], b[key], free_text)
            for key in a
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y, free_text) for x, y in zip(a, b, strict=True))
    return json_equal(a, b)


def _unmatched(a: Sequence[bytes], b: Sequence[bytes], free_text: bool) -> tuple[list[int], list[int]]:
    """The indices of the lines of ``a`` and of ``b`` that have no equal line on the other side."""
    left = [_value(line) for line in a]
    right = [_value(line) for line in b]
    free = list(range(len(right)))
    only_a = []
    for index, value in enumerate(left):
        match = next((j for j in free if _equal(value, right[j], free_text)), None)
        if match is None:
            only_a.append(index)
        else:
            free.remove(match)
    return only_a, free


def matches_recorded(recorded: dict[str, Any], outcome: Outcome) -> bool:
    """Whether an outcome is the one recorded in original-answers.json's format.

    ``connection_lost`` is matched by a connection lost; ``lines`` by an
    answered exchange with equal answers in any order (free-text messages as
    strings, ERR-3).
    """
    if recorded.get("connection_lost"):
        return outcome.end is End.CLOSED
    if outcome.end is not End.ANSWERED:
        return False
    expected = [line_bytes(line) for line in recorded["lines"]]
    only_a, only_b = _unmatched(outcome.lines, expected, True)
    return not only_a and not only_b


def answers_as_case(expected: CaseAnswers, outcome: Outcome, schemas: SpecSchemas) -> bool:
    """Whether an outcome is what a server case expects on its connection.

    Every answer (pushes aside) must satisfy one of the case's matchers, or
    be the echo of a generated request; every matcher and generated request
    must be answered; the exchange must end answered (or, when the case
    expects it, with the server ending the stream). Order is not looked at.
    """
    if outcome.end is End.CLOSED and not expected.closes:
        return False
    if outcome.end not in (End.ANSWERED, End.CLOSED):
        return False
    matchers = list(expected.matchers)
    generated = dict(expected.generated)
    for line in outcome.lines:
        value, error = decode_line(line)
        if error is not None or not isinstance(value, dict):
            return False
        if "ipcReqID" not in value:
            continue  # a push (PUSH-1)
        request_id = value["ipcReqID"]
        if isinstance(request_id, str) and request_id in generated:
            if not json_equal(value.get("data"), generated.pop(request_id)):
                return False
            continue
        match = next((m for m in matchers if mismatch(m, value, schemas, {}) is None), None)
        if match is None:
            return False
        matchers.remove(match)
    return not matchers and not generated


@dataclass
class Comparison:
    """One input, both outcomes, and the verdict.

    Attributes:
        input: the input.
        a: what server A did.
        b: what server B did.
        verdict: the :class:`CompareVerdict`.
        only_a: indices of A's answers that B did not give an equal of.
        only_b: indices of B's answers that A did not give an equal of.
        declared_as: for ``declared``: ``{"A": "original", "B": "kit"}`` (or the reverse)
            for a recorded input; ``{"A": "case", "B": "other"}`` (or the reverse) for
            the input of a case: A answered as the case expects, B did not.
    """

    input: Input
    a: Outcome
    b: Outcome
    verdict: CompareVerdict
    only_a: list[int] = field(default_factory=list)
    only_b: list[int] = field(default_factory=list)
    declared_as: dict[str, str] | None = None


def compare_outcomes(
    item: Input,
    a: Outcome,
    b: Outcome,
    *,
    exact_messages: bool = False,
    schemas: SpecSchemas | None = None,
) -> Comparison:
    """Compare what two servers did with one input (no I/O).

    Args:
        item: the input.
        a: server A's outcome.
        b: server B's outcome.
        exact_messages: compare the free-text messages of ERR-3 exactly too.
        schemas: the spec's schemas, for the matchers of a case's input
            (loaded when needed and not given).

    Returns:
        The :class:`Comparison`.
    """
    if End.UNREACHABLE in (a.end, b.end):
        return Comparison(item, a, b, CompareVerdict.NOT_COMPARED)
    only_a, only_b = _unmatched(a.lines, b.lines, not exact_messages)
    if a.end is b.end and not only_a and not only_b:
        same = sorted(a.lines) == sorted(b.lines)
        return Comparison(item, a, b, CompareVerdict.SAME if same else CompareVerdict.EQUAL)
    if item.recorded is not None:
        for roles in (("original", "kit"), ("kit", "original")):
            if matches_recorded(item.recorded[roles[0]], a) and matches_recorded(item.recorded[roles[1]], b):
                declared = {"A": roles[0], "B": roles[1]}
                return Comparison(item, a, b, CompareVerdict.DECLARED, only_a, only_b, declared)
    elif item.expected is not None:
        schemas = schemas or SpecSchemas()
        a_case, b_case = (answers_as_case(item.expected, o, schemas) for o in (a, b))
        if a_case != b_case:
            declared = {"A": "case" if a_case else "other", "B": "case" if b_case else "other"}
            return Comparison(item, a, b, CompareVerdict.DECLARED, only_a, only_b, declared)
    return Comparison(item, a, b, CompareVerdict.DIFFER, only_a, only_b)


def exit_status(comparisons: Sequence[Comparison]) -> int:
    """0 when no input differs but as a declared row says, 1 otherwise (the README's table)."""
    return 1 if any(c.verdict.counts_against for c in comparisons) else 0


def run_compare(
    inputs: Sequence[Input],
    sides: Sequence[Side],
    bounds: Bounds,
    *,
    exact_messages: bool = False,
    schemas: SpecSchemas | None = None,
    progress: Callable[[int, Comparison], None] | None = None,
) -> list[Comparison]:
    """Replay every input against both servers, one input at a time, both servers at once.

    The sides must be open (:meth:`~.compare_replay.Side.open`). A server
    that dies is reported on that input's outcome and, when the side started
    it, started again for the rest.

    Args:
        inputs: what to replay, in order.
        sides: servers A and B.
        bounds: the time bounds of each replay.
        exact_messages: see :func:`compare_outcomes`.
        schemas: see :func:`compare_outcomes`.
        progress: called after each input with its index and comparison.

    Returns:
        One comparison per input, in order.
    """
    results = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for index, item in enumerate(inputs):
            a, b = (future.result() for future in [pool.submit(side.run, item, bounds) for side in sides])
            comparison = compare_outcomes(item, a, b, exact_messages=exact_messages, schemas=schemas)
            results.append(comparison)
            if progress is not None:
                progress(index, comparison)
    return results
