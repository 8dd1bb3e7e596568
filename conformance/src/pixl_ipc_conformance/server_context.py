"""What the steps of one server case share: the connections, the time bound, the variables.

A step (:mod:`.server_steps`, :mod:`.server_load`, :mod:`.server_hostile`,
:mod:`.server_lifecycle`, :mod:`.server_resources`) is a function
``(ctx, step) -> None`` that raises :class:`StepFailed` when its expectation
does not hold. The
:class:`ServerCaseContext` gives it the server's socket path, named
connections opened on first use, the case's deadline, the run's options, the
variables known at run time, the servers the case started itself and the
case's wire transcript.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import Case, RunOptions
from .transcript import Transcript
from .wire import Received, WireConnection, WireError, WireTimeout
from .wirekit import show

if TYPE_CHECKING:
    from .server_process import Spawned

__all__ = ["DEFAULT_CONN", "Conn", "ServerCaseContext", "StepFailed", "is_push"]

DEFAULT_CONN = "main"
_CLIP = 240


class StepFailed(Exception):
    """A step's expectation did not hold.

    Args:
        expected: what the step expected.
        got: what came instead.
        detail: anything else worth knowing (schema problems, the reason of a mismatch).
    """

    def __init__(self, expected: str, got: str, detail: str = "") -> None:
        super().__init__(f"expected {expected}; got {got}")
        self.expected = expected
        self.got = got
        self.detail = detail


#: In the text of the exception the application handler conformance-fail raises
#: (spec/SERVER-UNDER-TEST.md): no message of any case may hold it (ERR-5).
HANDLER_SECRET = b"conformance-secret"


def is_push(value: Any) -> bool:
    """PUSH-1: a message without an ``ipcReqID`` member is a push."""
    return isinstance(value, dict) and "ipcReqID" not in value


@dataclass
class Conn:
    """A named connection of a case and what was sent on it.

    Attributes:
        wire: the connection.
        pending: generated requests whose answers an ``expect generated``
            waits for, by id, with the data each answer must carry.
        answered: ids of generated requests already answered.
        pushes: the data of the pushes set aside.
    """

    wire: WireConnection
    pending: dict[Any, Any] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    pushes: list[Any] = field(default_factory=list)


class ServerCaseContext:
    """The state of one server case while its steps run.

    Args:
        case: the case.
        path: the socket path of the server under test.
        options: the run's options.
        server_pid: the process id of the server under test when the runner
            started it (the resource steps look at it), else None.
        facts: values known of the server before the case (from its
            ``/ipcserver/info``), which the case's ``{"$var": NAME}`` can use.
    """

    def __init__(
        self,
        case: Case,
        path: str,
        options: RunOptions,
        server_pid: int | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.case = case
        self.path = path
        self.options = options
        self.server_pid = server_pid
        self.scale = options.timeout_scale
        self.started = time.monotonic()
        self.deadline = self.started + case.timeout_s * self.scale
        self.transcript = Transcript()
        self.conns: dict[str, Conn] = {}
        #: Connections a ``fanout`` with ``keep`` left open, by name.
        self.crowds: dict[str, list[WireConnection]] = {}
        self.variables: dict[str, Any] = {"max_message_bytes": options.max_message_bytes, **(facts or {})}
        self.probes = 0
        self.spawned: dict[str, Spawned] = {}
        self.scratch: str | None = None
        #: What to close when the case ends (sockets a step made).
        self.closers: list[Callable[[], None]] = []

    def clip(self, value: Any, limit: int = _CLIP) -> str:
        """A short printable form of a received value or line."""
        return show(value, limit)

    def bound(self, seconds: float | None) -> float:
        """The deadline of a wait of ``seconds`` (scaled), never past the case's."""
        if seconds is None:
            return self.deadline
        return min(self.deadline, time.monotonic() + seconds * self.scale)

    def conn(self, step: dict[str, Any]) -> Conn:
        """The step's named connection (``conn``, default ``main``), opened on first use."""
        name = step.get("conn", DEFAULT_CONN)
        if name not in self.conns:
            self.conns[name] = Conn(self.connect(name=name))
        return self.conns[name]

    def connect(
        self, path: str | None = None, *, name: str = DEFAULT_CONN, within_s: float = 5.0
    ) -> WireConnection:
        """A new connection to the server under test (or to ``path``).

        Raises:
            StepFailed: it could not be made.
        """
        try:
            return WireConnection(
                path or self.path, self.bound(within_s), name=name, transcript=self.transcript
            )
        except WireError as exc:
            raise StepFailed("a connection to the server", str(exc)) from exc

    def check_schema(self, received: Received) -> None:
        """Every message the server sends must be JSON and valid as its kind
        (FRAME-1), and never carry the text of the failing application
        handler's exception (ERR-5, spec/SERVER-UNDER-TEST.md).

        Raises:
            StepFailed: it is not, or does.
        """
        if HANDLER_SECRET in received.raw:
            raise StepFailed(
                "no details of an unexpected failure on the wire (ERR-5)",
                self.clip(received.raw),
                "the message holds the text of the conformance-fail handler's exception",
            )
        if received.error is not None:
            raise StepFailed(
                "a JSON message (FRAME-1)",
                f"a line that is not JSON: {self.clip(received.raw)}",
                received.error,
            )
        problems = self.options.schemas.check_server_message(received.value)
        if problems:
            raise StepFailed(
                "a message valid against the spec's schema",
                self.clip(received.value),
                "; ".join(problems[:3]),
            )

    def read(self, conn: Conn, deadline: float, waiting_for: str) -> Received:
        """The next message on ``conn``, checked against the schemas.

        Raises:
            StepFailed: nothing came before the deadline, or the connection ended.
        """
        try:
            received = conn.wire.read_message(deadline)
        except WireTimeout as exc:
            budget = "the case's time bound" if deadline >= self.deadline else "the step's time bound"
            raise StepFailed(waiting_for, f"nothing within {budget}") from exc
        except WireError as exc:
            raise StepFailed(waiting_for, str(exc)) from exc
        if received is None:
            raise StepFailed(waiting_for, "the server closed the connection")
        self.check_schema(received)
        return received

    def close_all(self) -> None:
        """Close every connection, stop the servers the case started, remove its files."""
        for conn in self.conns.values():
            conn.wire.close()
        for crowd in self.crowds.values():
            for wire in crowd:
                wire.close()
        for spawned in self.spawned.values():
            spawned.stop()
        for close in self.closers:
            close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
