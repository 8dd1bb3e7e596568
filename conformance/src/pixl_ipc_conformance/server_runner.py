"""Runs server cases against a server listening on a socket path.

Entry points: :func:`run_server_cases` (a list of cases, one result each, in
order) and :func:`run_server_case` (one case). A case's steps run in order
over a :class:`~.server_context.ServerCaseContext`, each through the step
table :data:`STEPS` (``$defs/server_step`` of ``case.schema.json``):

- :mod:`.server_steps`: ``connect``, ``send``, ``expect``, ``expect_none``,
  ``expect_closed``, ``shutdown_write``, ``close``, ``sleep``, ``probe``;
- :mod:`.server_load`: ``fanout``, ``flood``;
- :mod:`.server_hostile`: ``storm``, ``tiny_flood``;
- :mod:`.server_lifecycle`: ``spawn``, ``signal``, ``expect_mode``,
  ``replace_path``, ``expect_exit``;
- :mod:`.server_resources`: ``count_fds``, ``expect_fds``, ``poll``.

Before the first case that needs it, the runner asks the server's
``/ipcserver/info`` once: what it reports (its limits) is then known to the
cases as variables, so that they can check that the server does what it
says (BUILTIN-4).

Every message received is checked against the spec's schemas besides the
case's matchers (:mod:`.matchers`). Starting servers lives in
:mod:`.server_process`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from . import server_hostile, server_lifecycle, server_load, server_resources, server_steps
from .model import Case, CaseResult, Progress, RunOptions, Verdict, not_run, result_for, skipped
from .server_context import ServerCaseContext, StepFailed
from .server_process import ServerStartError, ServerUnderTest, gone_reason
from .wire import WireConnection, WireError
from .wirekit import encode_message, show

__all__ = ["SERVER_NEEDS", "STEPS", "run_server_case", "run_server_cases"]

#: The step table: each ``op`` and the function that runs it.
STEPS: dict[str, Callable[[ServerCaseContext, dict[str, Any]], None]] = {
    **server_steps.STEPS,
    **server_load.STEPS,
    **server_hostile.STEPS,
    **server_lifecycle.STEPS,
    **server_resources.STEPS,
}
#: The most requests a case writes to fill a server's per-connection maximum.
MAX_INFLIGHT_FILLED = 4096
#: What a server case may list in ``needs``, and why the case is not verified without it.
SERVER_NEEDS = {
    "max_message_bytes": "the server's --max-message-bytes is not known to the runner",
    "start_command": "the runner did not start the server (--start), so it cannot start more",
    "chmod": "the start command has no {chmod} placeholder for the socket's mode",
    "app_handlers": "the server has not declared the conformance handlers (--capability app_handlers)",
    "access_control": "the start command has no {access_config} placeholder for an allow-list",
    "server_process": "the runner did not start the server (--start) or cannot see its descriptors (/proc)",
    "info": "the server does not serve /ipcserver/info (an extension), so what it reports cannot be checked",
    "inflight_cap": "the server's /ipcserver/info reports no max_inflight_per_connection from 1 to 4096",
}
#: How long a case that failed waits for a server process that is dying to be seen gone.
_EXIT_GRACE_S = 0.25
#: Needs that need the server's /ipcserver/info first.
_INFO_NEEDS = {"info", "inflight_cap"}


def _unmet_need(case: Case, options: RunOptions, server_pid: int | None, facts: dict[str, Any]) -> str | None:
    """Why the case cannot be verified with these options, or None."""
    command = options.start_command or ""
    inflight = facts.get("max_inflight_per_connection")
    met = {
        "max_message_bytes": options.max_message_bytes is not None,
        "start_command": options.start_command is not None,
        "chmod": "{chmod}" in command,
        "access_control": "{access_config}" in command,
        "app_handlers": "app_handlers" in options.server_capabilities,
        "server_process": server_resources.descriptors_visible(server_pid),
        "info": bool(facts),
        "inflight_cap": isinstance(inflight, int) and 1 <= inflight <= MAX_INFLIGHT_FILLED,
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


def server_facts(socket_path: str, options: RunOptions) -> dict[str, Any]:
    """What the server's ``/ipcserver/info`` reports, as variables for the cases.

    Returns:
        ``info`` (the whole answer), ``info_max_message_bytes`` and
        ``max_inflight_per_connection``; empty when the server does not answer
        it with an object other than an error (the original answers
        ``no_handler_found`` in data). Whether the object is valid is the
        info cases' to say.
    """
    try:
        wire = WireConnection(socket_path, time.monotonic() + 5.0 * options.timeout_scale, name="info")
    except WireError:
        return {}
    try:
        deadline = time.monotonic() + 5.0 * options.timeout_scale
        wire.send_bytes(
            encode_message({"ipcReqID": "runner-info", "uri": "/ipcserver/info"}) + b"\n", deadline
        )
        while True:
            received = wire.read_message(deadline)
            if received is None or (isinstance(received.value, dict) and "ipcReqID" in received.value):
                break
    except WireError:
        return {}
    finally:
        wire.close()
    info = received.value.get("data") if received is not None and isinstance(received.value, dict) else None
    if not isinstance(info, dict) or "code" in info:
        return {}
    limits = info["limits"] if isinstance(info.get("limits"), dict) else {}
    return {
        "info": info,
        "info_max_message_bytes": limits.get("max_message_bytes"),
        "max_inflight_per_connection": limits.get("max_inflight_per_connection"),
    }


def run_server_case(
    case: Case,
    socket_path: str,
    options: RunOptions,
    *,
    server_pid: int | None = None,
    facts: dict[str, Any] | None = None,
) -> CaseResult:
    """Run one server case; never raises for the server's faults, never hangs.

    Args:
        case: a server case.
        socket_path: where the server under test listens.
        options: the run's options.
        server_pid: the server's process id, when the runner started it.
        facts: what the server's ``/ipcserver/info`` reports (:func:`server_facts`);
            asked here when the case needs it and this is None.

    Returns:
        The case's result (SKIP when a need is not met). A result that is not
        a PASS carries the case's wire transcript.
    """
    if facts is None and _INFO_NEEDS & set(case.needs):
        facts = server_facts(socket_path, options)
    reason = _unmet_need(case, options, server_pid, facts or {})
    if reason is not None:
        return skipped(case, reason)
    ctx = ServerCaseContext(case, socket_path, options, server_pid, facts)
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
    results: list[CaseResult] = []
    facts: dict[str, Any] | None = None
    gone = None if server is not None else _waited_for(path, options)
    if gone is not None and reporter is not None:
        reporter.note(f"no server serves at {path}: {gone}")
    for case in cases:
        if server is not None and results and gone is None and server.exited() is not None:
            # It died late in the case before (after its result was taken).
            results[-1], gone = _after_case(cases[len(results) - 1], results[-1], server, path, reporter)
        if reporter is not None:
            reporter.case_started(case)
        if gone is not None:
            result = not_run(case, gone)
        else:
            if facts is None and _INFO_NEEDS & set(case.needs):
                facts = server_facts(path, options)
            pid = server.pid if server else None
            result = run_server_case(case, path, options, server_pid=pid, facts=facts)
            result, gone = _after_case(case, result, server, path, reporter)
        results.append(result)
        if reporter is not None:
            reporter.case_finished(result)
    return results


def _waited_for(path: str, options: RunOptions) -> str | None:
    """Why nothing serves at ``path``, after giving a server started just now 5 s to listen."""
    deadline = time.monotonic() + 5.0 * options.timeout_scale
    while (reason := gone_reason(path)) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return reason


def _after_case(
    case: Case, result: CaseResult, server: ServerUnderTest | None, path: str, reporter: Progress | None
) -> tuple[CaseResult, str | None]:
    """Look whether the server survived ``case``; returns the result and why the rest cannot run."""
    if server is not None:
        # A process that just died may not be reaped yet: a failed case waits a moment.
        status = server.exited(0.0 if result.verdict in (Verdict.PASS, Verdict.SKIP) else _EXIT_GRACE_S)
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
    if result.verdict not in (Verdict.PASS, Verdict.SKIP):
        time.sleep(_EXIT_GRACE_S)  # a server that is dying may still hold its listener a moment
    reason = gone_reason(path)
    if reason is None:
        return result, None
    result = _died_during(case, result, f"the server stopped serving during this case: {reason}")
    if reporter is not None:
        reporter.note(
            f"the server stopped serving during {case.id} ({reason}); the cases after it did not run"
        )
    return result, f"the server stopped serving during {case.id}"
