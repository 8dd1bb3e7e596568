"""Cases, verdicts and results: the data every part of the suite shares.

Case files
    One case per JSON file, under ``conformance/cases/server/`` (ids ``S-...``)
    and ``conformance/cases/client/`` (ids ``C-...``). The format is defined by
    ``conformance/cases/case.schema.json`` and every file is validated against
    it when loaded. Members:

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
                     starts servers of its own)
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
    PASS, FAIL (a MUST case failed), WARN (a SHOULD case failed; counts as
    passed), SKIP (not run, with the reason in ``detail``). A result may carry
    ``xfail_reason`` when a known-failures file (``--expect-fail``) lists it:
    an expected FAIL does not fail the run, an unexpected PASS is reported.
"""

from __future__ import annotations

import enum
import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Reporter
    from .schemas import SpecSchemas

__all__ = [
    "CASES_DIR",
    "CASE_SCHEMA_PATH",
    "PACKAGE_DIR",
    "REPO_ROOT",
    "Case",
    "CaseFileError",
    "CaseResult",
    "RunOptions",
    "Verdict",
    "apply_expected_failures",
    "exit_status",
    "load_case_file",
    "load_cases",
    "load_expected_failures",
    "not_run",
    "result_for",
    "select_cases",
    "skipped",
]

#: The package's source directory (``conformance/src/pixl_ipc_conformance``).
PACKAGE_DIR = Path(__file__).resolve().parent
#: The kit's root (holds ``spec/``, ``conformance/``, ``python/``, ``php/``).
REPO_ROOT = PACKAGE_DIR.parent.parent.parent
#: Where the case files live.
CASES_DIR = REPO_ROOT / "conformance" / "cases"
#: The JSON Schema of a case file.
CASE_SCHEMA_PATH = CASES_DIR / "case.schema.json"

KINDS = ("server", "client")
LEVELS = ("MUST", "SHOULD")


class Verdict(enum.StrEnum):
    """The outcome of one case."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"

    def __str__(self) -> str:
        return self.value


class CaseFileError(ValueError):
    """A case file (or a known-failures file) that cannot be used.

    Args:
        path: the file.
        problems: what is wrong with it, one entry per problem.
    """

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
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
    path: Path | None = None

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

    @property
    def failed(self) -> bool:
        """True for a FAIL that is not an expected failure: it fails the run."""
        return self.verdict is Verdict.FAIL and self.xfail_reason is None

    @property
    def unexpected_pass(self) -> bool:
        """True when a listed known failure passed."""
        return self.xfail_reason is not None and self.verdict in (Verdict.PASS, Verdict.WARN)

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (used by the JSON report)."""
        return {
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
    reporter: Reporter | None = None
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
    """The result of a case that could not run because the peer is unusable.

    It fails like the case would (FAIL for MUST, WARN for SHOULD): a peer that
    cannot be started has not shown that it conforms.
    """
    return result_for(case, ok=False, expected=case.expect, got=reason, detail=reason)


@cache
def _case_validator() -> Any:
    import jsonschema  # type: ignore[import-untyped]  # no stubs installed

    schema = json.loads(CASE_SCHEMA_PATH.read_text(encoding="utf-8"))
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


def load_case_file(path: Path) -> Case:
    """Load and validate one case file.

    Raises:
        CaseFileError: the file is not JSON or does not follow the case schema.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(path, [str(exc)]) from exc
    problems = case_schema_problems(document)
    expected_prefix = "S-" if document.get("kind") == "server" else "C-"
    if not problems and not document["id"].startswith(expected_prefix):
        problems.append(
            f"id {document['id']!r} of a {document['kind']} case must start with {expected_prefix}"
        )
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
        path=path,
    )


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
    patterns: list[str] = []
    if isinstance(pattern, str):
        patterns = [p.strip() for p in pattern.split(",") if p.strip()]
    elif pattern is not None:
        patterns = [p for item in pattern for p in item.split(",") if p.strip()]
    wanted_level = level.upper() if level else None
    chosen = []
    for case in cases:
        if patterns and not any(fnmatch.fnmatchcase(case.id.upper(), p.upper()) for p in patterns):
            continue
        if wanted_level and case.level != wanted_level:
            continue
        chosen.append(case)
    return chosen


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
        cases_dir: the directory holding ``server/`` and ``client/``
            (default :data:`CASES_DIR`).

    Returns:
        The cases.

    Raises:
        ValueError: ``kind`` or ``level`` is not one of the known values.
        CaseFileError: a case file is invalid, or two files share an id.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if level is not None and level.upper() not in LEVELS:
        raise ValueError(f"level must be 'must' or 'should', not {level!r}")
    root = (cases_dir or CASES_DIR) / kind
    cases = [load_case_file(path) for path in sorted(root.glob("*.json"))]
    seen: dict[str, Path | None] = {}
    for case in cases:
        if case.kind != kind:
            raise CaseFileError(case.path or root, [f"a {case.kind} case in the {kind} directory"])
        if case.id in seen:
            raise CaseFileError(case.path or root, [f"duplicate id {case.id} (also in {seen[case.id]})"])
        seen[case.id] = case.path
    cases.sort(key=lambda c: c.id)
    return select_cases(cases, pattern, level)


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


def exit_status(results: Iterable[CaseResult]) -> int:
    """1 when a MUST case failed (and was not an expected failure), else 0."""
    return 1 if any(r.failed for r in results) else 0
