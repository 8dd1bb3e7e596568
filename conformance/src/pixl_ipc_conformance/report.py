"""Reporting: a progress line, the result table, the summary, JSON and JUnit files.

:class:`Reporter` is what runners call while they work (``start``,
``case_started``, ``case_finished``) and what the CLI calls at the end
(``finish``). After the table come the cases that were not verified, grouped
by reason, then the closing summary line: ``N passed, N warned, N failed``,
followed by ``, N not verified`` when cases were skipped and ``, N expected
to fail`` when a known-failures file matched. A WARN (a failed SHOULD case)
is counted apart from the passes, so that a run full of warnings never reads
as a clean pass.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .model import Case, CaseResult, Verdict

__all__ = [
    "Reporter",
    "format_table",
    "not_verified",
    "summary_counts",
    "summary_line",
    "write_json",
    "write_junit",
]

_TERSE_LIMIT = 300
#: Characters XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE, U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clip(text: str, limit: int = _TERSE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verdict_label(result: CaseResult) -> str:
    """The verdict as shown in the table (``XFAIL``/``XPASS`` for known failures)."""
    if result.expected_failure:
        return "XFAIL"
    if result.unexpected_pass:
        return "XPASS"
    return result.verdict.value


def summary_counts(results: Sequence[CaseResult]) -> dict[str, int]:
    """Counts for the summary: passed, warned, failed, not_run, skipped (not verified), xfailed.

    A known failure that failed or warned counts as ``xfailed`` only; one that
    passed counts as passed.
    """
    counts = {"passed": 0, "warned": 0, "failed": 0, "not_run": 0, "skipped": 0, "xfailed": 0}
    for result in results:
        if result.expected_failure:
            counts["xfailed"] += 1
        elif result.verdict is Verdict.ERROR:
            counts["not_run"] += 1
        elif result.verdict is Verdict.SKIP:
            counts["skipped"] += 1
        elif result.verdict is Verdict.FAIL:
            counts["failed"] += 1
        elif result.verdict is Verdict.WARN:
            counts["warned"] += 1
        else:
            counts["passed"] += 1
    return counts


def summary_line(results: Sequence[CaseResult]) -> str:
    """``N passed, N warned, N failed``, then ``N not run``, ``N not verified``, ``N expected to fail``.

    The last three only when there are any.
    """
    counts = summary_counts(results)
    line = f"{counts['passed']} passed, {counts['warned']} warned, {counts['failed']} failed"
    if counts["not_run"]:
        line += f", {counts['not_run']} not run"
    if counts["skipped"]:
        line += f", {counts['skipped']} not verified"
    if counts["xfailed"]:
        line += f", {counts['xfailed']} expected to fail"
    return line


def not_verified(results: Sequence[CaseResult]) -> list[tuple[str, list[str]]]:
    """The skipped cases grouped by reason, in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for result in results:
        if result.verdict is Verdict.SKIP:
            groups.setdefault(result.detail, []).append(result.case_id)
    return list(groups.items())


def format_not_verified(results: Sequence[CaseResult]) -> str:
    """The block that lists what was not verified, or '' when everything ran."""
    groups = not_verified(results)
    if not groups:
        return ""
    lines = [f"not verified ({sum(len(ids) for _, ids in groups)}):"]
    for reason, ids in groups:
        lines.append(f"  {reason}: {', '.join(ids)}")
    return "\n".join(lines)


def format_table(results: Sequence[CaseResult], *, transcripts: bool = False) -> str:
    """The result table: case, level, verdict, and the why for FAIL and WARN rows.

    Why a case was skipped is in the "not verified" block, once per reason.

    Args:
        results: the results.
        transcripts: also show the wire transcript under each FAIL and WARN row.
    """
    width = max([len("case"), *(len(r.case_id) for r in results)])
    lines = [f"{'case':<{width}}  {'level':<6}  verdict", f"{'-' * width}  {'-' * 6}  -------"]
    for result in results:
        label = verdict_label(result)
        row = f"{result.case_id:<{width}}  {result.level:<6}  {label}"
        notes = []
        if result.verdict in (Verdict.FAIL, Verdict.WARN):
            notes.append(f"expected {_clip(result.expected)}; got {_clip(result.got)}")
            if result.detail and result.detail not in result.got:
                notes.append(_clip(result.detail))
        elif result.not_run:
            notes.append(_clip(result.detail))
        if result.expected_failure or result.unexpected_pass:
            prefix = "known failure" if result.expected_failure else "listed as a known failure but passed"
            notes.append(f"{prefix}: {_clip(result.xfail_reason or '')}")
        lines.append(row)
        lines.extend(f"{' ' * width}    {note}" for note in notes)
        if transcripts and result.transcript is not None and result.verdict in (Verdict.FAIL, Verdict.WARN):
            lines.append(f"{' ' * width}    wire transcript (> the suite wrote, < it read, = an event):")
            lines.extend(f"{' ' * width}      {line}" for line in result.transcript.format().splitlines())
    return "\n".join(lines)


class Reporter:
    """Shows progress while cases run, then the table and the summary.

    Args:
        out: where the table and summary go (default stdout).
        progress: where the progress line goes (default stderr); on a terminal
            it is rewritten in place, elsewhere one line per case is written.
            None disables progress.
        title: a heading printed before the table (e.g. the implementation).
        transcripts: show the wire transcript of each failed case in the table.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        progress: TextIO | bool | None = True,
        *,
        title: str = "",
        transcripts: bool = False,
    ) -> None:
        self.transcripts = transcripts
        self.out = out if out is not None else sys.stdout
        if progress is True:
            self.progress: TextIO | None = sys.stderr
        elif progress is False:
            self.progress = None
        else:
            self.progress = progress
        self.title = title
        self.notes: list[str] = []
        self.total = 0
        self.done = 0
        self._tty = bool(self.progress is not None and self.progress.isatty())

    def start(self, total: int) -> None:
        """Announce how many cases will run."""
        self.total = total
        self.done = 0

    def note(self, text: str) -> None:
        """Say something about the whole run now, and again before the summary."""
        self.notes.append(text)
        if self.progress is not None:
            self.progress.write(("\r\x1b[K" if self._tty else "") + f"note: {text}\n")
            self.progress.flush()

    def case_started(self, case: Case) -> None:
        """Show the case now running."""
        if self.progress is not None and self._tty:
            text = f"[{self.done + 1}/{self.total or '?'}] {case.id} ..."
            self.progress.write("\r\x1b[K" + text[:100])
            self.progress.flush()

    def case_finished(self, result: CaseResult) -> None:
        """Record that a case finished."""
        self.done += 1
        if self.progress is None:
            return
        text = f"[{self.done}/{self.total or '?'}] {result.case_id} {verdict_label(result)}"
        if self._tty:
            self.progress.write("\r\x1b[K" + text[:100])
        else:
            self.progress.write(text + "\n")
        self.progress.flush()

    def finish(self, results: Sequence[CaseResult]) -> str:
        """Print the table and the summary line.

        Returns:
            The summary line.
        """
        if self.progress is not None and self._tty:
            self.progress.write("\r\x1b[K")
            self.progress.flush()
        if self.title:
            self.out.write(f"{self.title}\n")
        self.out.write(format_table(results, transcripts=self.transcripts) + "\n")
        skipped = format_not_verified(results)
        if skipped:
            self.out.write(skipped + "\n")
        for text in self.notes:
            self.out.write(f"note: {text}\n")
        line = summary_line(results)
        self.out.write(line + "\n")
        self.out.flush()
        return line


def write_json(
    results: Sequence[CaseResult],
    path: Path | str,
    *,
    meta: dict[str, object] | None = None,
    notes: Sequence[str] = (),
) -> None:
    """Write the results as JSON: ``{"summary", "counts", "not_verified", "notes", "meta", "results"}``.

    A result that is not a PASS carries its wire transcript:
    ``{"entries": [{"t", "dir", "conn", "bytes", "data"}], "omitted": N}``.
    """
    document = {
        "summary": summary_line(results),
        "counts": summary_counts(results),
        "not_verified": [{"reason": reason, "cases": ids} for reason, ids in not_verified(results)],
        "notes": list(notes),
        "meta": meta or {},
        "results": [r.to_json() for r in results],
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A lone surrogate a server sent becomes its JSON escape, inside a string as it is.
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    target.write_text(text, encoding="utf-8", errors="backslashreplace")


def _xml_safe(text: str) -> str:
    """``text`` with what XML cannot carry written as escapes (``\\u0000``)."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_junit(
    results: Sequence[CaseResult], path: Path | str, *, suite: str = "pixl-ipc-conformance"
) -> None:
    """Write the results as JUnit XML (one testsuite, one testcase per case).

    FAIL becomes ``<failure>``; SKIP and expected failures become ``<skipped>``;
    WARN passes with its text in ``<system-out>``.
    """
    counts = summary_counts(results)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(counts["failed"]),
        errors=str(counts["not_run"]),
        skipped=str(counts["skipped"] + counts["xfailed"]),
        time=f"{sum(r.duration_s for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            root,
            "testcase",
            classname=f"{suite}.{result.level.lower()}",
            name=result.case_id,
            time=f"{result.duration_s:.3f}",
        )
        # JUnit's schema wants <properties> first in a <testcase>.
        ET.SubElement(case, "properties").extend(
            ET.Element("property", name="rule", value=rule) for rule in result.rules
        )
        why = _xml_safe(f"expected {result.expected}; got {result.got}")
        if result.detail:
            why += f"\n{_xml_safe(result.detail)}"
        if result.failed:
            failure = ET.SubElement(case, "failure", message=_clip(why, 500), type="FAIL")
            failure.text = why
        elif result.verdict is Verdict.SKIP:
            ET.SubElement(case, "skipped", message=f"not verified: {_xml_safe(_clip(result.detail, 480))}")
        elif result.not_run:
            ET.SubElement(case, "error", message=_xml_safe(_clip(result.detail, 500)), type="ERROR")
        elif result.expected_failure:
            reason = _xml_safe(_clip(result.xfail_reason or "", 400))
            ET.SubElement(case, "skipped", message=f"known failure: {reason}")
        elif result.verdict is Verdict.WARN:
            out = ET.SubElement(case, "system-out")
            out.text = f"WARN (SHOULD case failed): {why}"
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)
