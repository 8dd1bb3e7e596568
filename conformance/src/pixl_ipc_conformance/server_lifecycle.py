"""Server case steps that start servers of their own: start-up, shutdown, the socket file.

They need the command that started the server under test (``--start``);
each server they start gets a fresh path in the case's scratch directory.

``spawn``        start one at a path prepared as ``none``, ``regular_file``,
                 ``directory``, ``symlink``, ``stale_socket`` or ``same_as``
                 another's; it ``serves``, or ``refuses`` and leaves the
                 path as it was (LIFE-6)
``signal``       send it a signal (default SIGTERM)
``expect_mode``  its socket file has the mode it was given (SEC-1)
``replace_path`` put another socket (a listening one, as another server's)
                 or a regular file at its socket path
``expect_exit``  it exits within ``within_s`` and removes its socket path, or,
                 with ``path_kept``, leaves what ``replace_path`` put there
                 (LIFE-7: only the socket it created is its own)
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from .server_context import ServerCaseContext, StepFailed
from .server_process import DEFAULT_CHMOD, PREPARED, Spawned, accepts, describe_fingerprint, fingerprint

__all__ = ["STEPS"]


def _scratch(ctx: ServerCaseContext) -> str:
    if ctx.scratch is None:
        ctx.scratch = tempfile.mkdtemp(prefix="pxl-")
    return ctx.scratch


def _prepare(ctx: ServerCaseContext, step: dict[str, Any]) -> tuple[str, Any]:
    """Make the socket path a spawn step asks for; return it and a fingerprint."""
    scratch = _scratch(ctx)
    prepare = step.get("prepare", "none")
    if prepare == "same_as":
        path = ctx.spawned[step["same_as"]].path
    else:
        path = os.path.join(scratch, f"{step['name']}.sock")
    if prepare == "regular_file":
        Path(path).write_text("a file that is not a socket\n")
    elif prepare == "directory":
        os.mkdir(path)
    elif prepare == "symlink":
        target = os.path.join(scratch, f"{step['name']}.target")
        Path(target).write_text("the symbolic link's target\n")
        os.symlink(target, path)
    elif prepare == "stale_socket":
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()  # bound, never listening: connecting is refused
    return path, fingerprint(path)


def op_spawn(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    command = ctx.options.start_command
    if command is None:
        raise StepFailed("a start command", "none given (--start)")
    path, before = _prepare(ctx, step)
    spawned = Spawned(
        step["name"],
        path,
        command,
        ctx.options.cwd,
        step.get("chmod", DEFAULT_CHMOD),
        allow_runner=step.get("allow", "runner") == "runner",
    )
    ctx.spawned[step["name"]] = spawned
    deadline = ctx.bound(step.get("within_s", 5.0))
    if step["expect"] == "serves":
        while not accepts(path):
            if spawned.proc.poll() is not None:
                raise StepFailed(
                    f"the server to start at a path prepared as {step.get('prepare', 'none')}",
                    f"it exited with status {spawned.proc.returncode}: {spawned.output_tail()}",
                )
            if time.monotonic() > deadline:
                raise StepFailed("the server to accept connections", "it did not within the time bound")
            time.sleep(0.02)
        return
    # Refuses: it must leave what is at the path alone (LIFE-6), whether it
    # exits (the expected way) or keeps running.
    while spawned.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    after = fingerprint(path)
    if after != before:
        raise StepFailed(
            f"{PREPARED.get(step.get('prepare', 'none'), 'what was')} at the socket path left as it was",
            f"{describe_fingerprint(before)} became {describe_fingerprint(after)}",
        )
    if spawned.proc.poll() is None:
        spawned.stop()


def op_expect_mode(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    path = ctx.spawned[step["server"]].path
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise StepFailed(f"a socket file of mode {step['mode']}", str(exc)) from exc
    if mode != int(step["mode"], 8):
        raise StepFailed(f"the socket file's mode {step['mode']} (SEC-1)", f"mode {mode:03o}")


def op_signal(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    spawned = ctx.spawned[step["server"]]
    if spawned.proc.poll() is not None:
        raise StepFailed("the server running", f"it had exited with status {spawned.proc.returncode}")
    spawned.proc.send_signal(getattr(signal, step.get("signal", "SIGTERM")))


def op_replace_path(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    spawned = ctx.spawned[step["server"]]
    os.unlink(spawned.path)
    if step.get("with", "socket") == "socket":
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(spawned.path)
        other.listen(1)
        ctx.closers.append(other.close)
    else:
        Path(spawned.path).write_text("a file that is not the server's\n")
    spawned.replaced_by = fingerprint(spawned.path)


def op_expect_exit(ctx: ServerCaseContext, step: dict[str, Any]) -> None:
    spawned = ctx.spawned[step["server"]]
    deadline = ctx.bound(step.get("within_s"))
    while spawned.proc.poll() is None:
        if time.monotonic() > deadline:
            raise StepFailed("the server to exit", "it was still running at the time bound")
        time.sleep(0.02)
    now = fingerprint(spawned.path)
    if step.get("path_kept"):
        if now != spawned.replaced_by:
            raise StepFailed(
                f"{describe_fingerprint(spawned.replaced_by)} put at the path after start-up left alone"
                " at shutdown (LIFE-7: only the socket the server created is its own)",
                f"{describe_fingerprint(now)} at the path",
            )
    elif step.get("path_removed", True) and now is not None:
        raise StepFailed(
            "the socket path removed at shutdown (LIFE-7)",
            f"{describe_fingerprint(now)} left at the path",
        )


STEPS = {
    "spawn": op_spawn,
    "signal": op_signal,
    "expect_mode": op_expect_mode,
    "replace_path": op_replace_path,
    "expect_exit": op_expect_exit,
}
