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
from .model import Case, CaseResult, RunOptions, result_for, skipped
from .server_context import ServerCaseContext, StepFailed
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


def run_server_cases(cases: Sequence[Case], socket_path: str, options: RunOptions) -> list[CaseResult]:
    """Run server cases in order against the server at ``socket_path``.

    Args:
        cases: server cases.
        socket_path: where the server under test listens.
        options: the run's options (its reporter gets progress calls).

    Returns:
        One result per case, in order.
    """
    reporter = options.reporter
    if reporter is not None:
        reporter.start(len(cases))
    results = []
    for case in cases:
        if reporter is not None:
            reporter.case_started(case)
        result = run_server_case(case, socket_path, options)
        results.append(result)
        if reporter is not None:
            reporter.case_finished(result)
    return results
