"""What ``compare`` shows: a table on the terminal, and every input in a JSON file.

The table has a row per input with its verdict (:mod:`.compare`); under each
input that differs come its bytes, the answers that only one server gave, how
each exchange ended when that is not a plain answer, and the row of
PROTOCOL.md's table "Differences from the original" when the input has one.
The JSON file holds every input, both outcomes whole (long lines cut to
64 KiB) and the verdict.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .compare import CompareVerdict, Comparison
from .compare_inputs import Input
from .compare_replay import End, Outcome, Side

__all__ = ["Progress", "counts", "format_skipped", "format_table", "summary_line", "write_json"]

#: Characters of an input or an answer shown on the terminal.
_SHOWN = 240
#: Bytes of a line kept in the JSON file.
_KEPT = 64 * 1024
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_ALIKE = (CompareVerdict.SAME, CompareVerdict.EQUAL)


def _escaped(data: bytes, limit: int = _SHOWN) -> str:
    """Bytes as one line of text: invalid UTF-8 as ``\\xNN``, control characters escaped."""
    text = data[: limit * 4].decode("utf-8", "backslashreplace")
    text = "".join(
        _ESCAPES.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in text
    )
    if len(text) > limit or len(data) > limit * 4:
        return f"{text[:limit]}... ({len(data)} bytes)"
    return text


def _input_text(item: Input) -> str:
    text = _escaped(item.data)
    extras = []
    if len(item.writes) > 1:
        extras.append(f"in {len(item.writes)} writes")
    if item.half_close:
        extras.append("then a half-close")
    return f"{text}   ({', '.join(extras)})" if extras else text


def _end_text(outcome: Outcome) -> str:
    text = str(outcome.end)
    if outcome.detail:
        text += f": {outcome.detail}"
    if outcome.server:
        text += f" ({outcome.server})"
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _verdict_text(comparison: Comparison) -> str:
    verdict = comparison.verdict
    if verdict is CompareVerdict.DECLARED:
        return f"declared {', '.join(comparison.input.differences)}"
    if verdict is CompareVerdict.DIFFER:
        return "DIFFERS"
    if verdict is CompareVerdict.NOT_COMPARED:
        return "NOT COMPARED"
    return str(verdict)


def _details(comparison: Comparison) -> list[tuple[str, str]]:
    """The labelled lines shown under an input that differs."""
    item, a, b = comparison.input, comparison.a, comparison.b
    about = f"{', '.join(item.rules)}: {item.title}" if item.rules else item.title
    rows = [("about", about)] if about else []
    rows.append(("input", _input_text(item)))
    if comparison.verdict is CompareVerdict.NOT_COMPARED:
        rows += [(label, _end_text(o)) for label, o in (("A", a), ("B", b)) if o.end is End.UNREACHABLE]
        return rows
    for label, outcome, only, other in (
        ("A", a, comparison.only_a, comparison.only_b),
        ("B", b, comparison.only_b, comparison.only_a),
    ):
        if only:
            rows += [(f"{label} only", _escaped(outcome.lines[i])) for i in only]
        elif other:
            rows.append((f"{label} only", "-"))
    common = len(a.lines) - len(comparison.only_a)
    if common and (comparison.only_a or comparison.only_b):
        rows.append(("alike", f"{common} other answer{'s' if common != 1 else ''}, the same from both"))
    for label, outcome in (("A", a), ("B", b)):
        if outcome.end is not End.ANSWERED or a.end is not b.end or outcome.server:
            rows.append((f"{label} ended", _end_text(outcome)))
    row = ", ".join(item.differences)
    roles = comparison.declared_as
    if roles is not None and item.recorded is not None:
        rows.append(
            (
                row,
                f'declared in spec/PROTOCOL.md, "Differences from the original": A answers as the'
                f" {roles['A']}, B as the {roles['B']}",
            )
        )
    elif roles is not None:
        kit, unlike = ("A", "B") if roles["A"] == "case" else ("B", "A")
        rows.append(
            (
                row,
                f'declared in spec/PROTOCOL.md, "Differences from the original": {kit} answers as'
                f" {item.source} expects of the kit, {unlike} does not",
            )
        )
    elif item.recorded is not None:
        rows.append(
            (
                row,
                'declared in spec/PROTOCOL.md, "Differences from the original", but neither server'
                f" answered as {item.source} records the original's and the kit's answers",
            )
        )
    elif row:
        rows.append(
            (
                row,
                'declared in spec/PROTOCOL.md, "Differences from the original", but the answers'
                f" differ otherwise: neither or both answered as {item.source} expects",
            )
        )
    return rows


def format_table(comparisons: Sequence[Comparison], *, only_differences: bool = False) -> str:
    """The table: input and verdict, with the details under each input that differs."""
    shown = [c for c in comparisons if not (only_differences and c.verdict in _ALIKE)]
    width = min(40, max([len("input"), *(len(c.input.id) for c in shown)]))
    lines = [f"{'input':<{width}}  verdict", f"{'-' * width}  -------"]
    for comparison in shown:
        lines.append(f"{comparison.input.id:<{width}}  {_verdict_text(comparison)}")
        if comparison.verdict not in _ALIKE:
            details = _details(comparison)
            label_width = max(len(label) for label, _ in details)
            lines.extend(f"    {label:<{label_width}}  {text}" for label, text in details)
    return "\n".join(lines)


def counts(comparisons: Sequence[Comparison]) -> dict[str, int]:
    """How many inputs got each verdict."""
    return {v.value: sum(c.verdict is v for c in comparisons) for v in CompareVerdict}


def summary_line(comparisons: Sequence[Comparison], skipped: Sequence[tuple[str, str]]) -> str:
    """``N inputs: N same, N equal, N declared, N differ``, then what could not be compared or replayed."""
    tally = counts(comparisons)
    line = f"{len(comparisons)} inputs: " + ", ".join(
        f"{tally[v.value]} {v.value}" for v in CompareVerdict if v is not CompareVerdict.NOT_COMPARED
    )
    if tally[CompareVerdict.NOT_COMPARED.value]:
        line += f", {tally[CompareVerdict.NOT_COMPARED.value]} not compared"
    if skipped:
        line += f"; {len(skipped)} server cases not replayed"
    return line


def format_skipped(skipped: Sequence[tuple[str, str]]) -> str:
    """The server cases set aside, grouped by reason, or '' when none was."""
    groups: dict[str, list[str]] = {}
    for case_id, reason in skipped:
        groups.setdefault(reason, []).append(case_id)
    if not groups:
        return ""
    lines = [f"server cases not replayed ({len(skipped)}):"]
    lines += [f"  {reason}: {', '.join(ids)}" for reason, ids in groups.items()]
    return "\n".join(lines)


class Progress:
    """A progress line on a terminal (one line per input elsewhere), or nothing.

    Args:
        total: how many inputs will run.
        out: where it goes (stderr), or None for no progress.
    """

    def __init__(self, total: int, out: TextIO | None = sys.stderr) -> None:
        self.total = total
        self.out = out
        self._tty = bool(out is not None and out.isatty())

    def __call__(self, index: int, comparison: Comparison) -> None:
        """Show that input ``index`` finished."""
        if self.out is None:
            return
        text = f"[{index + 1}/{self.total}] {comparison.input.id} {comparison.verdict}"
        self.out.write(("\r\x1b[K" + text[:100]) if self._tty else text + "\n")
        self.out.flush()

    def done(self) -> None:
        """Clear the progress line."""
        if self.out is not None and self._tty:
            self.out.write("\r\x1b[K")
            self.out.flush()


def _bytes_json(data: bytes) -> dict[str, Any]:
    """Bytes in the parts format of original-answers.json (``text`` or ``hex``), cut to 64 KiB."""
    kept = data[:_KEPT]
    document: dict[str, Any] = {"bytes": len(data)}
    try:
        document["text"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        document["hex"] = kept.hex()
    if len(data) > _KEPT:
        document["clipped"] = True
    return document


def _outcome_json(outcome: Outcome, only: Sequence[int]) -> dict[str, Any]:
    return {
        "end": str(outcome.end),
        "detail": outcome.detail,
        "server": outcome.server,
        "answers": [
            {**_bytes_json(line), "at_s": round(at, 4), "only_here": index in only}
            for index, (line, at) in enumerate(zip(outcome.lines, outcome.at, strict=True))
        ],
    }


def write_json(
    comparisons: Sequence[Comparison],
    skipped: Sequence[tuple[str, str]],
    sides: Sequence[Side],
    path: Path,
    *,
    status: int,
) -> None:
    """Write every input, both outcomes and the verdicts as JSON.

    ``{"servers", "summary", "counts", "exit_status", "not_replayed", "notes",
    "inputs": [{"id", "source", "title", "verdict", "difference",
    "declared_as", "input", "half_close", "writes", "A", "B"}]}``; each
    outcome is ``{"end", "detail", "server", "answers": [{"bytes", "text" or
    "hex", "clipped", "at_s", "only_here"}]}``.
    """
    document = {
        "servers": {side.label: side.description for side in sides},
        "summary": summary_line(comparisons, skipped),
        "counts": counts(comparisons),
        "exit_status": status,
        "not_replayed": [{"case": case_id, "reason": reason} for case_id, reason in skipped],
        "notes": [note for side in sides for note in side.notes],
        "inputs": [
            {
                "id": c.input.id,
                "source": c.input.source,
                "title": c.input.title,
                "verdict": str(c.verdict),
                "difference": ", ".join(c.input.differences) or None,
                "declared_as": c.declared_as,
                "input": _bytes_json(c.input.data),
                "half_close": c.input.half_close,
                "writes": len(c.input.writes),
                "A": _outcome_json(c.a, c.only_a),
                "B": _outcome_json(c.b, c.only_b),
            }
            for c in comparisons
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
