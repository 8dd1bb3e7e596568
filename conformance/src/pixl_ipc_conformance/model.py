"""Cases, verdicts and results: the data every part of the suite shares.

Case files
    One case per JSON file, under ``conformance/cases/server/`` (ids ``S-...``)
    and ``conformance/cases/client/`` (ids ``C-...``); the package carries them
    (:mod:`.resources`). The format is defined by ``case.schema.json`` beside
    them and every file is validated against it when loaded. A directory of
    further case files (``--cases-dir``) adds cases, and replaces a carried
    case that has the same id. Members:

    ``id``           unique, ``S-`` for server cases, ``C-`` for client cases
    ``kind``         ``"server"`` or ``"client"``
    ``rules``        the spec rule IDs the case checks (``["FRAME-3"]``)
    ``level``        ``"MUST"`` or ``"SHOULD"``: a failed SHOULD case is a WARN
    ``title``        one line
    ``description``  what the case does
    ``expect``       the expectation in words (shown for a FAIL)
    ``needs``        capability names the peer must have, else SKIP
    ``tags``         free labels (``"big"``: moves many MiB; ``"heavy"``:
                     hundreds of messages or connections; ``"lifecycle"``:
                     starts servers of its own; ``"hostile"``: plays a
                     hostile local peer)
    ``differences``  (server cases) the rows of PROTOCOL.md's table
                     "Differences from the original" (``D4``) whose inputs
                     the case sends: where the kit answers otherwise than
                     the original, so ``compare`` declares those differences
    ``timeout_s``    the case's time bound: past it the case FAILs
    ``steps``        the step objects, each with an ``op``; server steps are
                     executed by :mod:`.server_runner`, client steps by
                     :mod:`.client_runner`

Runner API
    ``server_runner.run_server_cases(cases, target, options)`` and
    ``client_runner.run_client_cases(cases, adapter_command, options)`` both
    return ``list[CaseResult]`` in the order of ``cases``. They report progress
    through ``options.reporter`` when one is set, and never hang: each case is
    bounded by its ``timeout_s`` times ``options.timeout_scale``.

Verdicts
    PASS, FAIL (a MUST case failed), WARN (a SHOULD case failed), SKIP (not
    verified here, with the reason in ``detail``), ERROR (could not run: the
    server under test was gone or the adapter did not start; it fails the
    run). A result may carry ``xfail_reason`` when a known-failures file
    (``--expect-fail``) lists it: an expected FAIL or WARN does not fail the
    run, an unexpected PASS is reported.
"""

from __future__ import annotations

import enum
import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import resources
from .transcript import Transcript

if TYPE_CHECKING:
    from .schemas import SpecSchemas

__all__ = [
    "Case",
    "CaseFileError",
    "CaseResult",
    "Progress",
    "RunOptions",
    "Verdict",
    "apply_expected_failures",
    "exit_status",
    "load_case_file",
    "load_cases",
    "load_expected_failures",
    "not_run",
    "split_patterns",
    "unmatched_patterns",
    "result_for",
    "select_cases",
    "skipped",
]

KINDS = ("server", "client")
LEVELS = ("MUST", "SHOULD")


class Verdict(enum.StrEnum):
    """The outcome of one case."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


class CaseFileError(ValueError):
    """A case file (or a known-failures file) that cannot be used.

    Args:
        path: the file.
        problems: what is wrong with it, one entry per problem.
    """

    def __init__(self, path: Path | Traversable | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{self.path}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Case:
    """One conformance case, as loaded from its file (see the module docstring)."""

    id: str
    kind: str
    rules: list[str]
    level: str
    title: str
    description: str
    expect: str
    steps: list[dict[str, Any]]
    timeout_s: float
    needs: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    path: str | None = None

    @property
    def is_must(self) -> bool:
        """True when a failure of this case fails the run."""
        return self.level == "MUST"


@dataclass
class CaseResult:
    """The result of running (or skipping) one case.

    Attributes:
        case_id: the case's id.
        level: ``"MUST"`` or ``"SHOULD"``.
        verdict: the :class:`Verdict`.
        detail: why it failed or was skipped (empty for a plain PASS).
        expected: what the case expected (for FAIL and WARN).
        got: what came instead (for FAIL and WARN).
        rules: the rule IDs the case checks.
        duration_s: wall time spent on the case.
        xfail_reason: set when a known-failures file lists the case.
        transcript: what went over the wire, for a case that did not pass.
    """

    case_id: str
    level: str
    verdict: Verdict
    detail: str
    expected: str
    got: str
    rules: list[str]
    duration_s: float
    xfail_reason: str | None = None
    transcript: Transcript | None = None

    @property
    def failed(self) -> bool:
        """True for a FAIL that is not an expected failure: it fails the run."""
        return self.verdict is Verdict.FAIL and self.xfail_reason is None

    @property
    def not_run(self) -> bool:
        """True for an ERROR: the case could not run, which fails the run."""
        return self.verdict is Verdict.ERROR

    @property
    def warned(self) -> bool:
        """True for a WARN that is not an expected failure (it fails a ``--strict`` run)."""
        return self.verdict is Verdict.WARN and self.xfail_reason is None

    @property
    def expected_failure(self) -> bool:
        """True for a FAIL or WARN that a known-failures file lists."""
        return self.xfail_reason is not None and self.verdict in (Verdict.FAIL, Verdict.WARN)

    @property
    def unexpected_pass(self) -> bool:
        """True when a listed known failure passed."""
        return self.xfail_reason is not None and self.verdict is Verdict.PASS

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (used by the JSON report)."""
        document: dict[str, Any] = {
            "case": self.case_id,
            "level": self.level,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "expected": self.expected,
            "got": self.got,
            "rules": list(self.rules),
            "duration_s": round(self.duration_s, 4),
            "xfail_reason": self.xfail_reason,
        }
        if self.transcript is not None:
            document["transcript"] = self.transcript.to_json()
        return document


class Progress(Protocol):
    """What a runner tells while it works (:class:`~.report.Reporter` is one)."""

    def start(self, total: int) -> None:
        """``total`` cases are about to run."""

    def note(self, text: str) -> None:
        """Something about the whole run, said once (the server exited and was restarted)."""

    def case_started(self, case: Case) -> None:
        """A case starts."""

    def case_finished(self, result: CaseResult) -> None:
        """A case ended with ``result``."""


@dataclass
class RunOptions:
    """What a runner needs besides the cases and the peer under test.

    Attributes:
        schemas: the spec's schemas; every message received is checked.
        reporter: receives ``case_started``/``case_finished`` calls, or None.
        timeout_scale: multiplies every time bound (``timeout_s``,
            ``within_s``; slow machines); quiet windows (``for_s``) stay as
            they are.
        max_message_bytes: the server's message limit, when known; cases that
            need it (``needs: ["max_message_bytes"]``) are skipped otherwise.
        cwd: working directory of the commands the runner starts.
        start_command: the command that starts the server under test
            (``{socket}`` substituted), when the runner started it; cases
            that start more servers (``needs: ["start_command"]``) are
            skipped otherwise.
        server_capabilities: what the server under test offers beyond the
            protocol (``app_handlers``: the conformance application handlers,
            conformance/README.md); cases that need one are skipped otherwise.
    """

    schemas: SpecSchemas
    reporter: Progress | None = None
    timeout_scale: float = 1.0
    max_message_bytes: int | None = None
    cwd: Path | None = None
    start_command: str | None = None
    server_capabilities: list[str] = field(default_factory=list)


def result_for(
    case: Case,
    *,
    ok: bool,
    detail: str = "",
    expected: str = "",
    got: str = "",
    duration_s: float = 0.0,
) -> CaseResult:
    """Build the result of a case that ran: PASS, or FAIL/WARN by the case's level.

    Args:
        case: the case.
        ok: whether every expectation held.
        detail: why it failed.
        expected: what was expected (defaults to the case's ``expect`` text).
        got: what came instead.
        duration_s: wall time.

    Returns:
        The :class:`CaseResult`.
    """
    verdict = Verdict.PASS if ok else Verdict.FAIL if case.is_must else Verdict.WARN
    return CaseResult(
        case_id=case.id,
        level=case.level,
        verdict=verdict,
        detail=detail,
        expected=expected or ("" if ok else case.expect),
        got=got,
        rules=list(case.rules),
        duration_s=duration_s,
    )


def skipped(case: Case, reason: str) -> CaseResult:
    """The SKIP result of a case that was not run, with the reason."""
    return CaseResult(case.id, case.level, Verdict.SKIP, reason, "", "", list(case.rules), 0.0)


def not_run(case: Case, reason: str) -> CaseResult:
    """The ERROR result of a case that could not run because the peer is unusable.

    A peer that cannot be started, or is gone, has not shown that it
    conforms: the run fails. ``reason`` is short; the run's notes say the rest once.
    """
    return CaseResult(case.id, case.level, Verdict.ERROR, f"not run: {reason}", "", "", list(case.rules), 0.0)


@cache
def _case_validator() -> Any:
    import jsonschema  # type: ignore[import-untyped]  # no stubs installed

    schema = json.loads(resources.case_schema().read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def case_schema_problems(document: Any) -> list[str]:
    """Validate a decoded case file against ``case.schema.json``.

    Returns:
        One text per problem; empty when the document is a valid case.
    """
    validator = _case_validator()
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"{where}: {error.message}")
    return problems


def load_case_file(path: Path | Traversable) -> Case:
    """Load and validate one case file.

    Raises:
        CaseFileError: the file is not JSON or does not follow the case schema.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(path, [str(exc)]) from exc
    problems = case_schema_problems(document)
    if problems:
        raise CaseFileError(path, problems)
    return Case(
        id=document["id"],
        kind=document["kind"],
        rules=list(document["rules"]),
        level=document["level"],
        title=document["title"],
        description=document["description"],
        expect=document["expect"],
        steps=list(document["steps"]),
        timeout_s=float(document["timeout_s"]),
        needs=list(document.get("needs", [])),
        tags=list(document.get("tags", [])),
        differences=list(document.get("differences", [])),
        path=str(path),
    )


def split_patterns(pattern: str | Sequence[str] | None) -> list[str]:
    """The ids and globs of a ``--case`` selection (comma-separated, repeatable)."""
    items = [pattern] if isinstance(pattern, str) else list(pattern or [])
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def unmatched_patterns(cases: Iterable[Case], pattern: str | Sequence[str] | None) -> list[str]:
    """The ids and globs of a selection that match none of ``cases``."""
    ids = [case.id.upper() for case in cases]
    return [p for p in split_patterns(pattern) if not fnmatch.filter(ids, p.upper())]


def select_cases(
    cases: Iterable[Case], pattern: str | Sequence[str] | None = None, level: str | None = None
) -> list[Case]:
    """Filter cases by id (exact or glob, case-insensitive) and level.

    Args:
        cases: the cases.
        pattern: an id or glob (``S-FRAME-*``), a comma-separated list of them,
            or a sequence of them; None keeps every case.
        level: ``"must"`` or ``"should"`` (any case); None keeps both.

    Returns:
        The matching cases, in their original order.
    """
    patterns = split_patterns(pattern)
    wanted_level = level.upper() if level else None
    chosen = []
    for case in cases:
        if patterns and not any(fnmatch.fnmatchcase(case.id.upper(), p.upper()) for p in patterns):
            continue
        if wanted_level and case.level != wanted_level:
            continue
        chosen.append(case)
    return chosen


def _json_files(directory: Path | Traversable) -> list[Path | Traversable]:
    return sorted(
        (item for item in directory.iterdir() if item.is_file() and item.name.endswith(".json")),
        key=lambda item: item.name,
    )


def _load_dir(directory: Path | Traversable, kind: str) -> list[Case]:
    """The cases of ``kind`` in ``directory/<kind>/``, and the ``*.json`` files of
    ``directory`` itself that are cases of that kind; duplicate ids refused."""
    files = [f for f in _json_files(directory) if f.name != "case.schema.json"]
    own = directory / kind
    loose = [load_case_file(f) for f in files]
    cases = [c for c in loose if c.kind == kind]
    if own.is_dir():
        for case in map(load_case_file, _json_files(own)):
            if case.kind != kind:
                raise CaseFileError(case.path or str(own), [f"a {case.kind} case in the {kind} directory"])
            cases.append(case)
    seen: dict[str, str | None] = {}
    for case in cases:
        if case.id in seen:
            problem = f"duplicate id {case.id} (also in {seen[case.id]})"
            raise CaseFileError(case.path or str(directory), [problem])
        seen[case.id] = case.path
    return cases


def load_cases(
    kind: str,
    pattern: str | Sequence[str] | None = None,
    level: str | None = None,
    *,
    cases_dir: Path | None = None,
) -> list[Case]:
    """Load every case of one kind, sorted by id, optionally filtered.

    Args:
        kind: ``"server"`` or ``"client"``.
        pattern: see :func:`select_cases`.
        level: see :func:`select_cases`.
        cases_dir: a directory of further cases (in ``server/`` and ``client/``
            below it, or directly in it): each is added, or replaces the
            carried case with the same id.

    Returns:
        The cases.

    Raises:
        ValueError: ``kind`` or ``level`` is not one of the known values.
        CaseFileError: a case file is invalid, two files of one directory
            share an id, or ``cases_dir`` is not a directory.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if level is not None and level.upper() not in LEVELS:
        raise ValueError(f"level must be 'must' or 'should', not {level!r}")
    cases = {case.id: case for case in _load_dir(resources.cases_root(), kind)}
    if cases_dir is not None:
        if not cases_dir.is_dir():
            raise CaseFileError(cases_dir, ["not a directory of case files"])
        cases.update((case.id, case) for case in _load_dir(cases_dir, kind))
    chosen = sorted(cases.values(), key=lambda c: c.id)
    return select_cases(chosen, pattern, level)


def load_expected_failures(path: Path) -> dict[str, str]:
    """Load a known-failures file: ``{"expected_failures": [{"case", "reason"}]}``.

    ``case`` is an id or a glob. See ``conformance/expected-failures.example.json``.

    Returns:
        A mapping of case id or glob to its reason.

    Raises:
        CaseFileError: the file cannot be read or has the wrong shape.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(path, [str(exc)]) from exc
    entries = document.get("expected_failures") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise CaseFileError(path, ["expected an object with an 'expected_failures' array"])
    known: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("case"), str)
            and isinstance(entry.get("reason"), str)
            and entry["reason"].strip()
        ):
            raise CaseFileError(path, [f"entry {index}: needs 'case' (string) and a non-empty 'reason'"])
        known[entry["case"]] = entry["reason"]
    return known


def apply_expected_failures(results: Iterable[CaseResult], known: dict[str, str]) -> list[CaseResult]:
    """Mark the results whose case a known-failures mapping lists.

    Returns:
        New results; listed ones carry ``xfail_reason``.
    """
    marked = []
    for result in results:
        reason = next(
            (r for p, r in known.items() if fnmatch.fnmatchcase(result.case_id.upper(), p.upper())), None
        )
        marked.append(replace(result, xfail_reason=reason) if reason is not None else result)
    return marked


def exit_status(results: Iterable[CaseResult], *, strict: bool = False) -> int:
    """The exit status of a run (the table is in conformance/README.md).

    Args:
        results: the results.
        strict: a WARN (a failed SHOULD case) fails the run too.

    Returns:
        1 when a MUST case failed (or, with ``strict``, a SHOULD case did),
        unless a known-failures file lists it, or when a case could not run;
        else 0.
    """
    return 1 if any(r.failed or r.not_run or (strict and r.warned) for r in results) else 0
