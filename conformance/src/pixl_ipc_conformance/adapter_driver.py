"""Drives a conformance adapter: a child process speaking JSON lines (spec/ADAPTER.md).

:class:`AdapterDriver` starts the adapter command, sends it commands with
increasing integer ids, and dispatches its answers by id to the callers, so
that several ``send`` commands may be in flight (the ``concurrent``
capability). Every wait has a deadline: an adapter that hangs, dies or writes
something that is not an answer is reported, never waited for. At the end the
adapter's stdin is closed (the contract says it must then exit with status 0),
and it is killed if it does not. Its stderr is kept, bounded, for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .transcript import Transcript
from .wirekit import show

__all__ = ["AdapterAnswer", "AdapterDriver", "AdapterError", "PendingCommand"]

#: An adapter echoes response data back; client cases move up to 16 MiB in one
#: answer, and JSON escaping can grow that several times.
MAX_ANSWER_LINE = 256 * 1024 * 1024
#: How much of the adapter's stderr is kept (its tail).
STDERR_KEEP = 64 * 1024
ERROR_KINDS = ("connect", "timeout", "closed", "remote", "too_large", "protocol", "unsupported")


class AdapterError(RuntimeError):
    """The adapter broke its contract: it died, hung, or wrote a bad answer."""


@dataclass(frozen=True)
class AdapterAnswer:
    """One answer of the adapter.

    Attributes:
        id: the command id it answers.
        ok: True for a result, False for an error.
        result: the ``result`` object (empty for an error).
        error: the ``error`` object (empty for a result).
        raw: the answer as decoded.
        at: ``time.monotonic()`` when it was read.
    """

    id: int
    ok: bool
    result: dict[str, Any]
    error: dict[str, Any]
    raw: dict[str, Any]
    at: float

    def describe(self) -> str:
        """A short text for reports."""
        if self.ok:
            return "ok " + show(self.result)
        return "error " + show(self.error)


@dataclass
class PendingCommand:
    """A command sent to the adapter whose answer may not have come yet.

    Attributes:
        id: the command id.
        command: the command as sent.
        sent_at: ``time.monotonic()`` when it was written.
        future: resolves to the :class:`AdapterAnswer`.
    """

    id: int
    command: dict[str, Any]
    sent_at: float
    future: asyncio.Future[AdapterAnswer]


class AdapterDriver:
    """One running adapter process.

    Args:
        command: the adapter command line (split like a shell would) or argv.
        cwd: its working directory.
        env: extra environment variables.
        transcript: where its commands and answers are noted (channel ``adapter``).
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        self.transcript = transcript
        if not self.argv:
            raise ValueError("empty adapter command")
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.problems: list[str] = []
        self.exit_status: int | None = None
        self._next_id = 0
        self._pending: dict[int, PendingCommand] = {}
        self._stderr = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._eof = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._stopped = False

    # -- life ---------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the process.

        Raises:
            AdapterError: the command cannot be started.
        """
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
                limit=MAX_ANSWER_LINE,
                # Its own process group, so that whatever it starts dies with it.
                start_new_session=True,
            )
        except OSError as exc:
            raise AdapterError(f"cannot start the adapter {shlex.join(self.argv)}: {exc}") from exc
        self._tasks = [
            asyncio.create_task(self._read_answers()),
            asyncio.create_task(self._read_stderr()),
        ]

    @property
    def stderr_text(self) -> str:
        """The tail of what the adapter wrote to stderr."""
        return self._stderr.decode("utf-8", errors="replace")

    def stderr_tail(self, limit: int = 1500) -> str:
        """`` adapter stderr (tail): ...`` for a report, or '' when it wrote nothing."""
        text = self.stderr_text.strip()
        return f"adapter stderr (tail): {text[-limit:]}" if text else ""

    @property
    def outstanding(self) -> int:
        """How many commands wait for their answer."""
        return len(self._pending)

    async def stop(self, timeout: float = 3.0) -> int | None:
        """Close stdin, wait up to ``timeout`` s for the exit, then kill.

        Returns:
            The exit status, or None when the adapter had to be killed.
        """
        proc = self.proc
        if proc is None:
            return None
        if self._stopped:
            return self.exit_status
        self._stopped = True
        if proc.stdin is not None and not proc.stdin.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                proc.stdin.close()
        status: int | None
        try:
            status = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            status = None
            self.problems.append(f"the adapter did not exit within {timeout:g} s of its stdin closing")
        self._kill_group()
        if status is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
        # Read what it wrote to the end (its stderr tells why it failed),
        # but not forever: a child it left behind may hold the pipes open.
        await asyncio.wait(self._tasks, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self.exit_status = status
        return status

    def _kill_group(self) -> None:
        proc = self.proc
        if proc is None:
            return
        # The group of the adapter we started (start_new_session), nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    # -- commands -------------------------------------------------------------

    async def submit(self, command: dict[str, Any]) -> PendingCommand:
        """Send a command with the next id; do not wait for its answer.

        Args:
            command: the command without ``id``.

        Returns:
            The :class:`PendingCommand`.

        Raises:
            AdapterError: the adapter's stdin is closed (it died).
        """
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise AdapterError("the adapter is not running")
        command_id = self._next_id
        self._next_id += 1
        full = {"id": command_id, **command}
        line = json.dumps(full, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        future: asyncio.Future[AdapterAnswer] = asyncio.get_running_loop().create_future()
        pending = PendingCommand(command_id, full, time.monotonic(), future)
        self._pending[command_id] = pending
        if self.transcript is not None:
            self.transcript.record("out", "adapter", line)
        try:
            async with self._write_lock:
                proc.stdin.write(line)
                await proc.stdin.drain()
        except (ConnectionError, OSError) as exc:
            self._pending.pop(command_id, None)
            # It is most likely exiting: say with what status.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
            raise AdapterError(self._death_note(f"cannot write to the adapter: {exc}")) from exc
        return pending

    async def wait(self, pending: PendingCommand, timeout: float) -> AdapterAnswer | None:
        """Wait up to ``timeout`` s for the answer to ``pending``.

        Returns:
            The answer, or None when it did not come in time (the command stays
            pending: a later wait may still get it).

        Raises:
            AdapterError: the adapter's stdout ended before it answered.
        """
        if pending.future.done():
            return pending.future.result()
        eof: asyncio.Future[Any] = asyncio.ensure_future(self._eof.wait())
        answer: asyncio.Future[Any] = pending.future
        try:
            done, _ = await asyncio.wait({answer, eof}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            eof.cancel()
        if pending.future in done:
            return pending.future.result()
        if self._eof.is_set():
            if self.proc is not None:
                # Its stdout ended: it is most likely exiting; say with what status.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 1.0)
            raise AdapterError(
                self._death_note(f"the adapter ended its stdout before answering command {pending.id}")
            )
        return None

    async def call(self, command: dict[str, Any], timeout: float) -> AdapterAnswer:
        """Send a command and wait for its answer.

        Raises:
            AdapterError: no answer within ``timeout`` s, or the adapter died.
        """
        pending = await self.submit(command)
        answer = await self.wait(pending, timeout)
        if answer is None:
            raise AdapterError(f"the adapter did not answer {show(pending.command)} within {timeout:g} s")
        return answer

    def _death_note(self, text: str) -> str:
        proc = self.proc
        if proc is not None and proc.returncode is not None:
            text += f" (it exited with status {proc.returncode})"
        return text

    # -- readers --------------------------------------------------------------

    async def _read_answers(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        try:
            while True:
                try:
                    raw = await proc.stdout.readline()
                except ValueError:
                    self.problems.append(f"the adapter wrote a stdout line over {MAX_ANSWER_LINE} bytes")
                    break
                if not raw:
                    break
                self._answer_line(raw)
        except (ConnectionError, OSError):
            pass
        finally:
            self._eof.set()

    def _answer_line(self, raw: bytes) -> None:
        if self.transcript is not None:
            self.transcript.record("in", "adapter", raw)
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            answer = json.loads(text)
        except ValueError:
            self.problems.append(f"the adapter wrote a stdout line that is not JSON: {text[:160]!r}")
            return
        problem = _answer_problem(answer)
        if problem:
            self.problems.append(f"{problem}: {text[:160]!r}")
            return
        command_id = answer["id"]
        pending = self._pending.pop(command_id, None)
        if pending is None:
            self.problems.append(
                f"the adapter answered command {command_id}, which is not pending: {text[:160]!r}"
            )
            return
        parsed = AdapterAnswer(
            id=command_id,
            ok=answer["ok"],
            result=(answer.get("result") or {}) if answer["ok"] else {},
            error={} if answer["ok"] else answer["error"],
            raw=answer,
            at=time.monotonic(),
        )
        if not pending.future.done():
            pending.future.set_result(parsed)

    async def _read_stderr(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                chunk = await proc.stderr.read(65536)
                if not chunk:
                    break
                self._stderr += chunk
                if len(self._stderr) > STDERR_KEEP:
                    del self._stderr[: len(self._stderr) - STDERR_KEEP]


def _answer_problem(answer: Any) -> str:
    """What is wrong with an answer's shape (ADAPTER.md, Channel), or ''."""
    if not isinstance(answer, dict):
        return "the adapter wrote a JSON value that is not an object"
    command_id = answer.get("id")
    if not isinstance(command_id, int) or isinstance(command_id, bool):
        return "the adapter wrote an answer without an integer id"
    ok = answer.get("ok")
    if ok is True:
        if not isinstance(answer.get("result", {}), dict):
            return "the adapter wrote a result that is not an object"
        return ""
    if ok is False:
        error = answer.get("error")
        if not isinstance(error, dict):
            return "the adapter wrote an error answer without an error object"
        if error.get("kind") not in ERROR_KINDS:
            return f"the adapter wrote an error kind outside the vocabulary {ERROR_KINDS}"
        return ""
    return "the adapter wrote an answer whose ok is neither true nor false"
