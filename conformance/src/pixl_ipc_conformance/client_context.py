"""What the steps of one client case share: the adapter, the scripted server, the labels.

A step (:mod:`.client_steps`) is a coroutine ``(ctx, index, step)`` that raises
:class:`StepFailed` when its expectation does not hold, :class:`CaseScriptError`
when the case itself is wrong, and :class:`CaseSkipped` when it cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapter_driver import AdapterDriver, PendingCommand
from .model import Case
from .scripted_server import ReceivedRequest, ScriptedServer

__all__ = [
    "DEFAULT_ANSWER_GRACE_S",
    "DEFAULT_COMMAND_WITHIN_S",
    "DEFAULT_REQUEST_WITHIN_S",
    "KNOWN_CAPABILITIES",
    "POLL_S",
    "CaseScriptError",
    "CaseSkipped",
    "StepContext",
    "StepFailed",
]

#: Default bounds of the steps that wait.
DEFAULT_REQUEST_WITHIN_S = 5.0
DEFAULT_ANSWER_GRACE_S = 5.0
DEFAULT_COMMAND_WITHIN_S = 5.0
POLL_S = 0.1
#: Capabilities ADAPTER.md defines; others an adapter lists are ignored.
KNOWN_CAPABILITIES = (
    "concurrent",
    "push",
    "auto_reconnect",
    "reconnect",
    "max_message_bytes",
    "timeout",
    "introspect",
    "code_to_err",
)


class StepFailed(Exception):
    """An expectation of a step did not hold."""

    def __init__(self, step: int, expected: str, got: str, detail: str = "") -> None:
        self.step = step
        self.expected = expected
        self.got = got
        self.detail = detail
        super().__init__(f"step {step}: expected {expected}; got {got}")


class CaseScriptError(Exception):
    """The case itself is wrong (an unknown label, two commands in flight without ``concurrent``)."""


class CaseSkipped(Exception):
    """The case cannot be run here (the reason is the text)."""


@dataclass
class StepContext:
    """What the steps of one case share: both peers, the labels taken so far."""

    case: Case
    driver: AdapterDriver
    server: ScriptedServer
    directory: Path
    capabilities: set[str]
    start_result: dict[str, Any]
    scale: float
    sends: dict[str, PendingCommand] = field(default_factory=dict)
    requests: dict[str, ReceivedRequest] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict)
    connections_seen: int = 0
    #: When the scripted server last dropped the client's connections (``time.monotonic()``).
    dropped_at: float | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    stash: list[ReceivedRequest] = field(default_factory=list)

    def request(self, label: str) -> ReceivedRequest:
        """The request taken as ``label`` (CaseScriptError when there is none)."""
        if label not in self.requests:
            raise CaseScriptError(f"no request was taken as {label!r}")
        return self.requests[label]

    def pending_send(self, label: str) -> PendingCommand:
        """The send made as ``label`` (CaseScriptError when there is none)."""
        if label not in self.sends:
            raise CaseScriptError(f"no send was made as {label!r}")
        return self.sends[label]
