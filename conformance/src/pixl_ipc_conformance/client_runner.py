"""Runs client cases: an adapter drives the client, a scripted server plays the peer.

For each case the runner makes a short temporary directory, starts a
:class:`~.scripted_server.ScriptedServer` on a socket in it, starts the adapter
(:class:`~.adapter_driver.AdapterDriver`), does the ``start`` handshake, and
executes the case's steps in order. The adapter's answers and the bytes the
client wrote are both checked. Then the adapter is stopped (killed if it does
not exit), the server closed and the directory removed.

The steps are defined by :mod:`.client_steps`.

Verdicts
    A step whose expectation fails ends the case: FAIL for a MUST case, WARN
    for a SHOULD case. A wire violation the scripted server saw (a MUST rule
    broken by any request) is a FAIL in any case; a SHOULD rule broken is a WARN.
    The adapter breaking its own contract (spec/ADAPTER.md) is a FAIL.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapter_driver import AdapterDriver, AdapterError
from .client_steps import CaseScriptError, CaseSkipped, StepContext, StepFailed, run_steps
from .model import Case, CaseResult, RunOptions, Verdict, not_run, skipped
from .scripted_server import ScriptedServer
from .transcript import Transcript
from .wirekit import fill_command, show

__all__ = ["adapter_argv", "run_client_cases", "run_client_cases_async"]

#: How long the ``start`` handshake may take (interpreters and JITs start slowly).
START_TIMEOUT_S = 15.0
#: How long an adapter may take to exit once its stdin is closed (ADAPTER.md), times the scale.
STOP_TIMEOUT_S = 3.0


# -- one case ----------------------------------------------------------------------


@dataclass
class _Outcome:
    closers: list[Callable[[], None]] = field(default_factory=list)
    failure: StepFailed | None = None
    script_error: str = ""


def _request_validator(options: RunOptions) -> Callable[[Any], list[str]]:
    def validate(message: Any) -> list[str]:
        return options.schemas.validate(message, "request")

    return validate


def adapter_argv(command: str) -> list[str]:
    """Split an adapter command with shlex (no shell), ``{python}`` being this interpreter."""
    return fill_command(command, {"python": sys.executable})


async def _start_adapter(
    command: str, options: RunOptions, transcript: Transcript | None = None
) -> tuple[AdapterDriver, dict[str, Any]]:
    driver = AdapterDriver(adapter_argv(command), cwd=options.cwd, transcript=transcript)
    await driver.spawn()
    try:
        answer = await driver.call({"cmd": "start"}, START_TIMEOUT_S * options.timeout_scale)
        if not answer.ok:
            raise AdapterError(f"the adapter refused start: {answer.describe()}")
    except AdapterError as exc:
        await driver.stop(1.0)
        raise AdapterError("; ".join(filter(None, [str(exc), driver.stderr_tail()]))) from exc
    return driver, answer.result


async def _run_case(case: Case, command: str, options: RunOptions) -> CaseResult:
    started = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="pxc-"))
    transcript = Transcript()
    server = ScriptedServer(str(directory / "s.sock"), _request_validator(options), transcript)
    driver: AdapterDriver | None = None
    outcome = _Outcome()
    try:
        await server.start()
        try:
            driver, start_result = await _start_adapter(command, options, transcript)
        except AdapterError as exc:
            return not_run(case, f"the adapter did not start: {exc}")
        capabilities = set(start_result.get("capabilities") or [])
        missing = [n for n in case.needs if n not in capabilities]
        if missing:
            return skipped(case, "the adapter lacks " + ", ".join(missing))
        ctx = StepContext(case, driver, server, directory, capabilities, start_result, options.timeout_scale)
        ctx.closers = outcome.closers
        bound = case.timeout_s * options.timeout_scale
        try:
            await asyncio.wait_for(run_steps(ctx), bound)
        except StepFailed as exc:
            outcome.failure = exc
        except TimeoutError:
            outcome.failure = StepFailed(-1, f"the case to finish within {bound:g} s", "it did not")
        except AdapterError as exc:
            outcome.failure = StepFailed(-1, "a working adapter", str(exc))
        except CaseScriptError as exc:
            outcome.script_error = str(exc)
        except CaseSkipped as exc:
            return skipped(case, str(exc))
        # Let a request the client wrote at the very end reach the checks.
        await asyncio.sleep(0)
        # ADAPTER.md: at the end of its input the adapter closes and exits 0.
        status = await driver.stop(STOP_TIMEOUT_S * options.timeout_scale)
        if status is not None and status != 0 and outcome.failure is None:
            driver.problems.append(f"the adapter exited with status {status} at the end of its input, not 0")
        result = _judge(case, started, outcome, server, driver)
        if result.verdict is not Verdict.PASS:
            result.transcript = transcript
        return result
    finally:
        for close in outcome.closers:
            close()
        if driver is not None:
            await driver.stop(STOP_TIMEOUT_S * options.timeout_scale)
        await server.aclose()
        shutil.rmtree(directory, ignore_errors=True)


def _judge(
    case: Case, started: float, outcome: _Outcome, server: ScriptedServer, driver: AdapterDriver
) -> CaseResult:
    if outcome.script_error:
        return _result(case, started, Verdict.FAIL, "case script error: " + outcome.script_error, "", "")
    must = [v for v in server.violations if v.level == "MUST"]
    should = [v for v in server.violations if v.level == "SHOULD"]
    details: list[str] = []
    expected = got = ""
    verdict = Verdict.PASS
    failure = outcome.failure
    if failure is not None:
        verdict = Verdict.FAIL if case.is_must else Verdict.WARN
        expected, got = failure.expected, failure.got
        where = (
            f"step {failure.step + 1} of {len(case.steps)}: {show(case.steps[failure.step], 160)}"
            if failure.step >= 0
            else "case"
        )
        details.append(f"{where}: expected {failure.expected}; got {failure.got}")
        if failure.detail:
            details.append(failure.detail)
    if driver.problems:
        verdict = Verdict.FAIL
        details.extend(f"adapter contract: {p}" for p in driver.problems)
        expected = expected or "an adapter that follows spec/ADAPTER.md"
        got = got or driver.problems[0]
    if must:
        verdict = Verdict.FAIL
        details.extend(f"wire: {v}" for v in must)
        expected = expected or "requests that follow the spec"
        got = got or str(must[0])
    if should:
        if verdict is Verdict.PASS:
            verdict = Verdict.WARN
            expected = expected or "requests that follow the spec's SHOULD rules"
            got = got or str(should[0])
        details.extend(f"wire: {v}" for v in should)
    if verdict in (Verdict.FAIL, Verdict.WARN) and driver.stderr_tail():
        details.append(driver.stderr_tail())
    return _result(case, started, verdict, "\n".join(details), expected, got)


def _result(case: Case, started: float, verdict: Verdict, detail: str, expected: str, got: str) -> CaseResult:
    return CaseResult(
        case_id=case.id,
        level=case.level,
        verdict=verdict,
        detail=detail,
        expected=expected if verdict is not Verdict.PASS else "",
        got=got if verdict is not Verdict.PASS else "",
        rules=list(case.rules),
        duration_s=time.monotonic() - started,
    )


# -- entry points --------------------------------------------------------------


async def run_client_cases_async(
    cases: Sequence[Case], adapter_command: str, options: RunOptions
) -> list[CaseResult]:
    """Run client cases against one adapter; see :func:`run_client_cases`."""
    results: list[CaseResult] = []
    reporter = options.reporter
    if reporter is not None:
        reporter.start(len(cases))
    # Capabilities do not change between runs of one adapter: one start tells
    # them for every case, and spares starting it just to skip a case.
    try:
        capabilities: set[str] | None = await _probe_capabilities(adapter_command, options)
        broken = False
    except AdapterError as exc:
        # An adapter that cannot even start would cost every case its start
        # timeout for the same answer: say why once, and run none.
        capabilities, broken = None, True
        if reporter is not None:
            reporter.note(f"the adapter did not start: {exc}")
    for case in cases:
        if reporter is not None:
            reporter.case_started(case)
        missing = [n for n in case.needs if capabilities is not None and n not in capabilities]
        if broken:
            result = not_run(case, "the adapter did not start (see the note)")
        elif missing:
            result = skipped(case, "the adapter lacks " + ", ".join(missing))
        else:
            result = await _run_case(case, adapter_command, options)
        results.append(result)
        if reporter is not None:
            reporter.case_finished(result)
    return results


async def _probe_capabilities(command: str, options: RunOptions) -> set[str] | None:
    driver, start_result = await _start_adapter(command, options)
    await driver.stop(STOP_TIMEOUT_S * options.timeout_scale)
    capabilities = start_result.get("capabilities")
    return {c for c in capabilities if isinstance(c, str)} if isinstance(capabilities, list) else None


def run_client_cases(cases: Sequence[Case], adapter_command: str, options: RunOptions) -> list[CaseResult]:
    """Run client cases against the adapter command, one fresh adapter per case.

    Args:
        cases: the client cases (kind ``client``).
        adapter_command: the adapter command line (spec/ADAPTER.md), split like a shell.
        options: timeouts scale, schemas, reporter, working directory.

    Returns:
        One :class:`CaseResult` per case, in the order of ``cases``.
    """
    return asyncio.run(run_client_cases_async(cases, adapter_command, options))
