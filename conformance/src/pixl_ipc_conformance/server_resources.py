"""Server case steps that watch what the server holds and what it says about itself.

``count_fds``    note how many file descriptors the server holds (it and its
                 child processes, through ``/proc``), as variable ``as``
``expect_fds``   the server holds at most ``at_most`` (+ ``plus``) descriptors
                 within ``within_s``: what closed connections held is freed
                 (LIFE-5)
``poll``         ask ``message`` again on connection ``conn`` (each time with
                 a new id), until the answer satisfies ``until`` or
                 ``within_s`` passes; ``every_s`` apart

They need the server's process (``needs: ["server_process"]``): the runner
started it, on a system with ``/proc``. With ``optional``, ``count_fds`` and
``expect_fds`` do nothing where the descriptors cannot be seen, so that a
case can check them when the runner started the server and still run
against a server it did not start.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .matchers import capture, describe, mismatch
from .server_context import Conn, ServerCaseContext, StepFailed, is_push
from .wire import WireError
from .wirekit import encode_message, resolve_vars

__all__ = ["STEPS", "descriptor_count", "descriptors_visible", "process_tree"]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a start command may be a wrapper that runs the server)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as handle:
                    todo.extend(int(child) for child in handle.read().split())
            except OSError:
                continue
    return found


def descriptor_count(pid: int) -> int:
    """The file descriptors open in ``pid`` and its descendants.

    Raises:
        OSError: ``/proc/<pid>/fd`` cannot be read.
    """
    total = len(os.listdir(f"/proc/{pid}/fd"))
    for child in process_tree(pid)[1:]:
        try:
            total += len(os.listdir(f"/proc/{child}/fd"))
        except OSError:
            continue  # it ended meanwhile
    return total


def descriptors_visible(pid: int | None) -> bool:
    """Whether the descriptors of the server process ``pid`` can be counted (it is known, and /proc)."""
    return pid is not None and os.path.isdir(f"/proc/{pid}/fd")


def _count(ctx: ServerCaseContext) -> int:
    if ctx.server_pid is None:
        raise StepFailed("the server's process to count its descriptors", "the runner did not start it")
    try:
        return descriptor_count(ctx.server_pid)
    except OSError as exc:
        raise StepFailed("the server's descriptors (/proc)", str(exc)) from exc


def op_count_fds(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    if step.get("optional") and not descriptors_visible(ctx.server_pid):
        return
    ctx.variables[step["as"]] = _count(ctx)


def op_expect_fds(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    if step.get("optional") and not descriptors_visible(ctx.server_pid):
        return
    limit = int(resolve_vars(step["at_most"], ctx.variables)) + int(step.get("plus", 0))
    deadline = ctx.bound(step.get("within_s", 5.0))
    while True:
        count = _count(ctx)
        if count <= limit:
            return
        if time.monotonic() >= deadline:
            raise StepFailed(
                f"the server to free what closed connections held: at most {limit} file descriptors (LIFE-5)",
                f"it holds {count}, {count - limit} more (a descriptor kept per connection?)",
            )
        time.sleep(0.1)


def op_poll(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    conn = ctx.conn(step)
    deadline = ctx.bound(step.get("within_s", 5.0))
    until = dict(step["until"])
    last = "no answer"
    while True:
        ctx.probes += 1
        request_id = f"poll{ctx.probes}"
        message = {**step["message"], "ipcReqID": request_id}
        try:
            conn.wire.send_bytes(encode_message(message) + b"\n", deadline)
        except WireError as exc:
            raise StepFailed(describe(until, ctx.variables), str(exc)) from exc
        answer = _answer_to(ctx, conn, request_id, deadline, describe(until, ctx.variables))
        reason = mismatch(until, answer, ctx.options.schemas, ctx.variables)
        if reason is None:
            ctx.variables.update(capture(until, answer))
            return
        last = f"{ctx.clip(answer)} ({reason})"
        if time.monotonic() + step.get("every_s", 0.1) >= deadline:
            raise StepFailed(
                f"{describe(until, ctx.variables)} within {step.get('within_s', 5.0):g} s",
                f"the last answer: {last}",
            )
        time.sleep(step.get("every_s", 0.1))


def _answer_to(ctx: ServerCaseContext, conn: Conn, request_id: str, deadline: float, waiting: str) -> Any:
    while True:
        received = ctx.read(conn, deadline, f"the answer to {request_id}: {waiting}")
        if is_push(received.value):
            continue
        if isinstance(received.value, dict) and received.value.get("ipcReqID") == request_id:
            return received.value
        raise StepFailed(f"the answer to {request_id}", ctx.clip(received.value))


STEPS = {"count_fds": op_count_fds, "expect_fds": op_expect_fds, "poll": op_poll}
