"""The inputs ``compare`` replays: recorded answers, the server cases' requests, the user's own.

An :class:`Input` is what one fresh connection carries: its writes, in order,
and whether the client then shuts down its sending side. Three sources:

- every entry of ``spec/vectors/original-answers.json`` (the package carries
  it): its bytes, ``half_close``, and where the kit answers otherwise than the
  original, the row of PROTOCOL.md's table "Differences from the original"
  with both recorded answers (:func:`recorded_inputs`);
- the requests of the server cases: each connection of a case whose steps
  only write, read and wait becomes one input, ``CASE`` (or ``CASE/CONN``
  when the case uses several connections); a case that needs more (a
  server's limit or handlers, starting servers, many connections at once, a
  connection closed before its answers) is set aside with the reason, and so
  is one that asks for statistics, which no two runs answer alike
  (:func:`case_inputs`). A case that names rows of that table
  (``differences``) keeps what it expects on each connection, so that a
  server answering as the case expects, beside one that does not, is a
  declared difference;
- a file of the user's own (``--inputs``, :func:`load_inputs_file`), in the
  format of original-answers.json.

No network I/O here.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from . import resources
from .model import Case, CaseFileError, split_patterns
from .payloads import DELAY_URI, send_payload
from .server_context import DEFAULT_CONN, StepFailed
from .wirekit import decode_line, strip_cr

__all__ = [
    "ANSWERS_FILE",
    "CaseAnswers",
    "Input",
    "agreed_inputs",
    "case_inputs",
    "delay_wait_ms",
    "line_bytes",
    "load_inputs_file",
    "parts_bytes",
    "recorded_inputs",
    "select_inputs",
    "unmatched_patterns",
]

#: The recorded answers of the original server, as the package carries them.
ANSWERS_FILE = "original-answers.json"
_ANSWERS_SCHEMA = "original-answers.schema.json"
#: Steps of a server case that a replay can stand for: writes, and what only reads or waits.
_REPLAYABLE = {
    "send",
    "expect",
    "expect_none",
    "expect_closed",
    "shutdown_write",
    "sleep",
    "probe",
    "connect",
}
#: Why a case that uses one of these steps is set aside.
_NOT_REPLAYABLE = {
    "close": "closes a connection before its answers are read",
    "fanout": "opens many connections at once",
    "flood": "writes until the server stops reading",
    "storm": "opens and closes many connections",
    "tiny_flood": "times answers on one connection while another floods",
    "poll": "asks again until an answer changes",
    "count_fds": "counts the server's descriptors",
    "expect_fds": "counts the server's descriptors",
    "replay_answers": "replays original-answers.json, whose entries are inputs already",
}
#: Why a case that needs one of these (spec/SERVER-UNDER-TEST.md) is set aside.
_NEEDS = {
    "start_command": "starts, signals or stops servers of its own",
    "max_message_bytes": "depends on the server's message limit",
    "info": "depends on what the server's /ipcserver/info reports",
    "inflight_cap": "depends on what the server's /ipcserver/info reports",
    "app_handlers": "needs the conformance application handlers",
    "server_process": "looks at the server's process",
}
#: Statistics (BUILTIN-5): what they report depends on each server's history and clock.
STATS_URI = "/ipcserver/stats"
#: The longest wait of Node's setTimeout, which the delay built-in uses (BUILTIN-2).
_MAX_DELAY_MS = 2**31 - 1
#: A decimal number as JavaScript's Number() reads a string (hex and "Infinity" aside).
_JS_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class CaseAnswers:
    """What a server case expects on one connection (its ``expect`` and ``expect_closed`` steps).

    Attributes:
        matchers: every matcher of the connection's ``expect`` steps.
        generated: the data the answers to generated requests must carry, by id.
        closes: the case expects the server to end the stream.
    """

    matchers: tuple[dict[str, Any], ...]
    generated: dict[Any, Any]
    closes: bool = False


@dataclass(frozen=True)
class Input:
    """What one connection carries, and what is known about its answers.

    Attributes:
        id: unique among the inputs of a run: an entry's id, ``CASE`` or ``CASE/CONN``.
        source: where it comes from (``original-answers.json``, ``case S-ECHO``, a file name).
        title: what it shows (an entry's ``fact``, a case's title).
        writes: ``(pause_s, bytes)`` pairs: each written in one write after that pause.
        half_close: the client shuts down its sending side after the writes.
        differences: the rows of PROTOCOL.md's table "Differences from the original"
            (``D7``) under which the kit answers this input otherwise than the original.
        recorded: the recorded answers, ``{"original": outcome, "kit": outcome}`` in the
            format of original-answers.json, when a difference is declared.
        expected: for an input from a case that names rows, what the case expects
            on this connection.
        min_wait_ms: the longest recorded wait before an answer (``min_wait_ms``).
        group: the case the input comes from (its id), for ``--case``; else ``id``.
        rules: the rules the case checks, for an input from a case.
    """

    id: str
    source: str
    title: str
    writes: tuple[tuple[float, bytes], ...]
    half_close: bool = False
    differences: tuple[str, ...] = ()
    recorded: dict[str, Any] | None = None
    expected: CaseAnswers | None = None
    min_wait_ms: float = 0.0
    group: str = ""
    rules: tuple[str, ...] = ()

    @cached_property
    def data(self) -> bytes:
        """Every byte written, in order."""
        return b"".join(data for _, data in self.writes)

    @cached_property
    def wait_s(self) -> float:
        """How long its answers may take by design: recorded waits, and those asked of the delay built-in."""
        return max(self.min_wait_ms, delay_wait_ms(self.data)) / 1000.0


def parts_bytes(parts: list[Any]) -> bytes:
    """The bytes of original-answers.json's ``parts``: ``text`` (UTF-8), ``hex``, ``fill`` (repeated)."""
    out = bytearray()
    for part in parts:
        if "text" in part:
            out += part["text"].encode("utf-8", "surrogatepass")
        elif "hex" in part:
            out += bytes.fromhex(part["hex"])
        else:
            out += part["fill"]["text"].encode("utf-8", "surrogatepass") * part["fill"]["count"]
    return bytes(out)


def line_bytes(line: str | list[Any]) -> bytes:
    """A recorded answer line of original-answers.json as bytes: its text, or parts for a long line."""
    return line.encode("utf-8", "surrogatepass") if isinstance(line, str) else parts_bytes(line)


def _js_number(value: Any) -> float:
    """JavaScript's ``Number()`` of a JSON value, for the types a delay is given as."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        return float(text) if _JS_DECIMAL.fullmatch(text) else math.nan
    if isinstance(value, list):
        return 0.0 if not value else _js_number(value[0]) if len(value) == 1 else math.nan
    return math.nan


def _requests(data: bytes) -> Iterator[dict[str, Any]]:
    """The requests with a string ``uri`` among the lines of ``data``."""
    for raw in data.split(b"\n"):
        value, _ = decode_line(strip_cr(raw)[0])
        if isinstance(value, dict) and isinstance(value.get("uri"), str):
            yield value


def delay_wait_ms(data: bytes) -> float:
    """The longest wait the requests in ``data`` ask of the delay built-in (BUILTIN-2), in ms.

    A request to ``/ipcserver/test/delay...`` whose ``data.delay`` reads as a
    number from 1 to 2^31 - 1 waits that long; anything else is answered at
    once. Lines that are not such requests count 0.
    """
    longest = 0.0
    for value in _requests(data):
        body = value.get("data")
        if value["uri"].startswith(DELAY_URI) and isinstance(body, dict):
            wait = _js_number(body.get("delay"))
            if 1 <= wait <= _MAX_DELAY_MS:
                longest = max(longest, wait)
    return longest


def _entry_input(entry: dict[str, Any], source: str) -> Input:
    recorded = None
    if "difference" in entry:
        recorded = {"original": entry["original"], "kit": entry["kit"]}
    waits = [o.get("min_wait_ms", 0) for o in (entry.get("original", {}), entry.get("kit", {}))]
    return Input(
        id=entry["id"],
        source=source,
        title=entry.get("fact", ""),
        writes=((0.0, parts_bytes(entry["input"])),),
        half_close=bool(entry.get("half_close", False)),
        differences=(entry["difference"],) if "difference" in entry else (),
        recorded=recorded,
        min_wait_ms=float(max(waits)),
        group=entry["id"],
    )


def _recorded_entries() -> list[dict[str, Any]]:
    path = resources.vectors_root() / ANSWERS_FILE
    entries: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["entries"]
    return entries


def recorded_inputs() -> list[Input]:
    """Every entry of original-answers.json, as the package carries it."""
    return [_entry_input(entry, ANSWERS_FILE) for entry in _recorded_entries()]


def agreed_inputs() -> list[tuple[Input, dict[str, Any]]]:
    """The entries of original-answers.json the kit answers as the original, each
    with the original's recorded outcome: what any server must answer (VER-2)."""
    return [
        (_entry_input(entry, ANSWERS_FILE), entry["original"])
        for entry in _recorded_entries()
        if "difference" not in entry
    ]


def _inputs_validator() -> Any:
    """Checks ``--inputs`` files: original-answers.json's shape, only ``id`` and ``input`` required."""
    import jsonschema  # type: ignore[import-untyped]  # no stubs installed
    import referencing
    import referencing.jsonschema

    base: Traversable = resources.vectors_root() / _ANSWERS_SCHEMA
    contents = json.loads(base.read_text(encoding="utf-8"))
    resource = referencing.Resource.from_contents(
        contents, default_specification=referencing.jsonschema.DRAFT202012
    )
    uri = contents["$id"]
    entry = {
        "type": "object",
        "required": ["id", "input"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "fact": {"type": "string"},
            "input": {"$ref": f"{uri}#/$defs/parts"},
            "half_close": {"type": "boolean"},
            "difference": {"type": "string", "pattern": "^D[1-9][0-9]*$"},
            "original": {"$ref": f"{uri}#/$defs/outcome"},
            "kit": {"$ref": f"{uri}#/$defs/outcome"},
        },
        "dependentRequired": {"difference": ["original", "kit"]},
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["entries"],
        "properties": {"entries": {"type": "array", "items": entry}},
    }
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(uri, resource)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def load_inputs_file(path: Path) -> list[Input]:
    """Read a file of inputs of the user's own (``--inputs``).

    The format is original-answers.json's: ``{"entries": [...]}``, each entry
    with an ``id`` and an ``input`` (a list of parts: ``{"text": ...}``,
    ``{"hex": ...}``, ``{"fill": {"text": ..., "count": N}}``), and
    optionally ``half_close``, ``fact``, and ``difference`` with the
    ``original`` and ``kit`` answers. Other members are ignored, so
    original-answers.json itself is such a file.

    Raises:
        CaseFileError: the file cannot be read, is not of that shape, or repeats an id.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(path, [str(exc)]) from exc
    errors = sorted(_inputs_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise CaseFileError(
            path, [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors[:5]]
        )
    inputs = [_entry_input(entry, Path(path).name) for entry in document["entries"]]
    ids = [i.id for i in inputs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise CaseFileError(path, [f"the id {i!r} is used more than once" for i in repeated])
    return inputs


def _unreplayable(case: Case) -> str | None:
    """Why a server case's requests cannot be replayed as plain exchanges, or None."""
    if case.needs:
        return _NEEDS.get(case.needs[0], f"needs {case.needs[0]}")
    for step in case.steps:
        op = step["op"]
        if op in _NOT_REPLAYABLE:
            return _NOT_REPLAYABLE[op]
        if op not in _REPLAYABLE or (op == "connect" and "server" in step):
            return "starts or signals servers of its own"
    return None


@dataclass
class _CaseConn:
    """One connection of a case as a replay sees it: its writes and what the case expects."""

    writes: list[tuple[float, bytes]] = field(default_factory=list)
    half_close: bool = False
    matchers: list[dict[str, Any]] = field(default_factory=list)
    generated: dict[Any, Any] = field(default_factory=dict)
    closes: bool = False

    def answers(self) -> CaseAnswers:
        return CaseAnswers(tuple(self.matchers), self.generated, self.closes)


def _case_writes(case: Case) -> dict[str, _CaseConn]:
    """Each connection of a case, in the order they first write: its writes,
    whether it half-closes, and what the case expects on it.

    A ``sleep`` step becomes a pause before the next write.

    Raises:
        ValueError: the case writes nothing, a connection writes after its
            half-close, a generator needs a value only a server could give, or
            a request asks for statistics, whose answer no other run repeats.
    """
    conns: dict[str, _CaseConn] = {}
    pause = 0.0
    for step in case.steps:
        name = step.get("conn", DEFAULT_CONN)
        conn = conns.setdefault(name, _CaseConn())
        if step["op"] == "sleep":
            pause += float(step["s"])
        elif step["op"] == "shutdown_write":
            conn.half_close = True
        elif step["op"] == "expect":
            conn.matchers += step.get("responses", [])
        elif step["op"] == "expect_closed":
            conn.closes = True
        elif step["op"] == "send":
            if conn.half_close:
                raise ValueError("writes after its half-close")
            try:
                data = send_payload(conn.generated, step, {})
            except StepFailed as exc:
                raise ValueError(f"its request needs {exc.expected}") from exc
            chunk = step.get("chunk")
            pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
            between = float(step.get("chunk_pause_s", 0.002 if chunk else 0.0))
            for index, piece in enumerate(pieces):
                conn.writes.append((pause if index == 0 else between, piece))
            pause = 0.0
    writing = {name: conn for name, conn in conns.items() if conn.writes}
    if not writing:
        raise ValueError("writes nothing")
    for conn in writing.values():
        if any(r["uri"].startswith(STATS_URI) for r in _requests(b"".join(data for _, data in conn.writes))):
            raise ValueError("asks /ipcserver/stats, whose counters and times differ between any two runs")
    return writing


def case_inputs(cases: list[Case]) -> tuple[list[Input], list[tuple[str, str]]]:
    """The inputs the server cases' requests make, and the cases set aside.

    Returns:
        The inputs, in the cases' order, and ``(case id, why)`` for each case
        whose requests cannot be replayed as plain request/answer exchanges.
    """
    inputs: list[Input] = []
    skipped: list[tuple[str, str]] = []
    for case in cases:
        reason = _unreplayable(case)
        conns: dict[str, _CaseConn] = {}
        if reason is None:
            try:
                conns = _case_writes(case)
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            skipped.append((case.id, reason))
            continue
        for name, conn in conns.items():
            inputs.append(
                Input(
                    id=case.id if len(conns) == 1 else f"{case.id}/{name}",
                    source=f"case {case.id}",
                    title=case.title,
                    writes=tuple(conn.writes),
                    half_close=conn.half_close,
                    differences=tuple(case.differences),
                    expected=conn.answers() if case.differences else None,
                    group=case.id,
                    rules=tuple(case.rules),
                )
            )
    return inputs, skipped


def _matches(item: Input, pattern: str) -> bool:
    pattern = pattern.upper()
    return fnmatch.fnmatchcase(item.id.upper(), pattern) or fnmatch.fnmatchcase(item.group.upper(), pattern)


def unmatched_patterns(inputs: list[Input], pattern: list[str] | None) -> list[str]:
    """The ids and globs of a ``--case`` selection that match no input."""
    return [p for p in split_patterns(pattern) if not any(_matches(i, p) for i in inputs)]


def select_inputs(inputs: list[Input], pattern: list[str] | None) -> list[Input]:
    """The inputs whose id, or whose case's id, a ``--case`` selection names (ids or globs, any case)."""
    patterns = split_patterns(pattern)
    return [i for i in inputs if not patterns or any(_matches(i, p) for p in patterns)]
