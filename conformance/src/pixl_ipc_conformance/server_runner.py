"""Runs server cases against a server listening on a socket path.

Entry points: :func:`run_server_cases` (a list of cases, one result each, in
order) and :func:`run_server_case` (one case). A case's steps run in order
over a :class:`~.server_context.ServerCaseContext`, each through the step
table :data:`STEPS` (``$defs/server_step`` of ``case.schema.json``):

- :mod:`.server_steps`: ``connect``, ``send``, ``expect``, ``expect_none``,
  ``expect_closed``, ``shutdown_write``, ``close``, ``sleep``, ``probe``;
- :mod:`.server_load`: ``fanout``, ``flood``;
- :mod:`.server_lifecycle`: ``spawn``, ``signal``, ``expect_mode``, ``expect_exit``.

Every message received is checked against the spec's schemas besides the
case's matchers (:mod:`.matchers`). Starting servers lives in
:mod:`.server_process`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from . import server_lifecycle, server_load, server_steps
from .model import Case, CaseResult, Progress, RunOptions, Verdict, not_run, result_for, skipped
from .server_context import ServerCaseContext, StepFailed
from .server_process import ServerStartError, ServerUnderTest, gone_reason
from .wirekit import show

__all__ = ["SERVER_NEEDS", "STEPS", "run_server_case", "run_server_cases"]

#: The step table: each ``op`` and the function that runs it.
STEPS: dict[str, Callable[[ServerCaseContext, dict[str, Any]], None]] = {
    **server_steps.STEPS,
    **server_load.STEPS,
    **server_lifecycle.STEPS,
}
#: What a server case may list in ``needs``, and why the case is not verified without it.
SERVER_NEEDS = {
    "max_message_bytes": "the server's --max-message-bytes is not known to the runner",
    "start_command": "the runner did not start the server (--start), so it cannot start more",
    "chmod": "the start command has no {chmod} placeholder for the socket's mode",
    "app_handlers": "the server has not declared the conformance handlers (--capability app_handlers)",
    "access_control": "the start command has no {access_config} placeholder for an allow-list",
}


def _unmet_need(case: Case, options: RunOptions) -> str | None:
    """Why the case cannot be verified with these options, or None."""
    command = options.start_command or ""
    met = {
        "max_message_bytes": options.max_message_bytes is not None,
        "start_command": options.start_command is not None,
        "chmod": "{chmod}" in command,
        "access_control": "{access_config}" in command,
        "app_handlers": "app_handlers" in options.server_capabilities,
    }
    for need in case.needs:
        if need not in SERVER_NEEDS:
            return f"unknown need {need!r}"
        if not met[need]:
            return SERVER_NEEDS[need]
    return None


def _run_steps(ctx: ServerCaseContext) -> None:
    steps = ctx.case.steps
    for index, step in enumerate(steps):
        try:
            STEPS[step["op"]](ctx, step)
        except StepFailed as exc:
            where = f"step {index + 1} of {len(steps)}: {show(step, 160)}"
            exc.detail = f"{where}: {exc.detail}" if exc.detail else where
            raise


def run_server_case(
    case: Case, socket_path: str, options: RunOptions, *, server_pid: int | None = None
) -> CaseResult:
    """Run one server case; never raises for the server's faults, never hangs.

    Args:
        case: a server case.
        socket_path: where the server under test listens.
        options: the run's options.
        server_pid: the server's process id, when the runner started it.

    Returns:
        The case's result (SKIP when a need is not met). A result that is not
        a PASS carries the case's wire transcript.
    """
    reason = _unmet_need(case, options)
    if reason is not None:
        return skipped(case, reason)
    ctx = ServerCaseContext(case, socket_path, options, server_pid)
    try:
        _run_steps(ctx)
    except StepFailed as exc:
        result = result_for(
            case,
            ok=False,
            expected=exc.expected,
            got=exc.got,
            detail=exc.detail,
            duration_s=time.monotonic() - ctx.started,
        )
        result.transcript = ctx.transcript
        return result
    finally:
        ctx.close_all()
    return result_for(case, ok=True, duration_s=time.monotonic() - ctx.started)


def _died_during(case: Case, result: CaseResult, why: str) -> CaseResult:
    """The result of a case during which the server died: a FAIL whatever the level.

    A server MUST NOT crash on any input (LIMIT-4).
    """
    if result.verdict is Verdict.PASS:
        result = result_for(case, ok=False, duration_s=result.duration_s)
        result.expected = "the server to keep running (a server MUST NOT crash on any input, LIMIT-4)"
        result.got = why
    else:
        result.detail = f"{why}\n{result.detail}" if result.detail else why
    result.verdict = Verdict.FAIL
    return result


def run_server_cases(
    cases: Sequence[Case], target: str | ServerUnderTest, options: RunOptions
) -> list[CaseResult]:
    """Run server cases in order against a server.

    After each case the runner looks whether the server is still there. A
    server it started (``target`` a :class:`~.server_process.ServerUnderTest`)
    whose process exited fails that case, naming the exit status, and is
    started again for the remaining cases; one that will not start again, or
    a server at a socket path that stopped accepting connections, leaves the
    remaining cases not run (ERROR). Each is said once in the reporter's notes.

    Args:
        cases: server cases.
        target: the socket path of a running server, or the server the runner started.
        options: the run's options (its reporter gets progress calls and notes).

    Returns:
        One result per case, in order.
    """
    reporter = options.reporter
    server = target if isinstance(target, ServerUnderTest) else None
    path = target.path if isinstance(target, ServerUnderTest) else target
    if reporter is not None:
        reporter.start(len(cases))
    results = []
    gone = gone_reason(path) if server is None else None
    if gone is not None and reporter is not None:
        reporter.note(f"no server serves at {path}: {gone}")
    for case in cases:
        if reporter is not None:
            reporter.case_started(case)
        if gone is not None:
            result = not_run(case, gone)
        else:
            result = run_server_case(case, path, options, server_pid=server.pid if server else None)
            result, gone = _after_case(case, result, server, path, reporter)
        results.append(result)
        if reporter is not None:
            reporter.case_finished(result)
    return results


def _after_case(
    case: Case, result: CaseResult, server: ServerUnderTest | None, path: str, reporter: Progress | None
) -> tuple[CaseResult, str | None]:
    """Look whether the server survived ``case``; returns the result and why the rest cannot run."""
    if server is not None:
        status = server.exited()
        if status is None:
            return result, None
        why = f"the server process exited with status {status} during this case; its output ends: "
        result = _died_during(case, result, why + server.output_tail())
        try:
            server.restart()
        except ServerStartError as exc:
            text = f"the server exited with status {status} during {case.id} and did not start again: {exc}"
            if reporter is not None:
                reporter.note(text)
            return result, f"the server exited during {case.id} and did not start again"
        if reporter is not None:
            reporter.note(f"the server exited with status {status} during {case.id}; restarted for the rest")
        return result, None
    reason = gone_reason(path)
    if reason is None:
        return result, None
    result = _died_during(case, result, f"the server stopped serving during this case: {reason}")
    if reporter is not None:
        reporter.note(
            f"the server stopped serving during {case.id} ({reason}); the cases after it did not run"
        )
    return result, f"the server stopped serving during {case.id}"
