"""Matchers: what one expected server message must look like (``$defs/matcher``).

:func:`mismatch` says why a received message does not satisfy a matcher (or
None when it does); :func:`describe` says what a matcher wants, in words, for
the report. No I/O; JSON values compare with :func:`~.wirekit.json_equal`.

A matcher lists what must hold: ``ipcReqID`` (exact) or ``ipcReqID_in``,
``code``, ``message``, ``message_not_pattern``, ``data`` (exact, types
included), ``data_absent``, ``data_schema`` (a JSON Schema that may ``$ref``
the spec's), ``members``, ``absent``, ``kind`` (valid as this schema kind),
``any_of``, ``list`` (a JSON Pointer's array starts and ends with given
items), ``value`` (a JSON Pointer's value equals, or is at least or at most,
a given value ``plus`` an offset) and ``exact`` (no member but those named).
``{"$var": NAME}`` in ``members`` and ``value`` stands for a value known at
run time; ``capture`` (``{NAME: POINTER}``) sets such values from the message
that matched (:func:`capture`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .wirekit import json_equal, resolve_vars, show

if TYPE_CHECKING:
    from .schemas import SpecSchemas

__all__ = ["capture", "describe", "mismatch", "pointed"]

#: The matcher keys that name each top-level member (for ``exact``).
_NAMING = {
    "ipcReqID": ("ipcReqID", "ipcReqID_in"),
    "code": ("code",),
    "message": ("message", "message_not_pattern"),
    "data": ("data", "data_schema"),
}
_CLIP = 240
_MISSING = object()


def _clip(value: Any, limit: int = _CLIP) -> str:
    return show(value, limit)


def pointed(document: Any, pointer: str) -> Any:
    """The value a JSON Pointer (RFC 6901) designates in ``document``, or a sentinel when none."""
    value = document
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return _MISSING
    return value


def mismatch(
    matcher: dict[str, Any], message: Any, schemas: SpecSchemas, variables: dict[str, Any]
) -> str | None:
    """Why a received message does not satisfy a matcher, or None when it does.

    Args:
        matcher: the matcher.
        message: the decoded message.
        schemas: for ``kind`` and ``data_schema``.
        variables: the values ``{"$var": NAME}`` stands for.
    """
    if not isinstance(message, dict):
        return "the message is not a JSON object"
    if "any_of" in matcher:
        reasons = [mismatch(m, message, schemas, variables) for m in matcher["any_of"]]
        if all(r is not None for r in reasons):
            return "none of the alternatives holds: " + " | ".join(r for r in reasons if r)
    for check in (_id_mismatch, _error_mismatch, _members_mismatch, _data_mismatch):
        reason = check(matcher, message, variables)
        if reason is not None:
            return reason
    if "kind" in matcher:
        problems = schemas.validate(message, matcher["kind"])
        if problems:
            return f"not a valid {matcher['kind']}: {problems[0]}"
    if "data_schema" in matcher:
        problems = schemas.validate_with(matcher["data_schema"], message.get("data"))
        if problems:
            return f"data does not have the expected shape: {problems[0]}"
    return _structure_mismatch(matcher, message, variables)


def _id_mismatch(matcher: dict[str, Any], message: dict[str, Any], variables: dict[str, Any]) -> str | None:
    if "ipcReqID" in matcher:
        if "ipcReqID" not in message:
            return "ipcReqID is missing"
        if not json_equal(message["ipcReqID"], matcher["ipcReqID"]):
            return f"ipcReqID is {_clip(message['ipcReqID'])}, not {_clip(matcher['ipcReqID'])}"
    if "ipcReqID_in" in matcher:
        if "ipcReqID" not in message:
            return "ipcReqID is missing"
        if not any(json_equal(message["ipcReqID"], v) for v in matcher["ipcReqID_in"]):
            return f"ipcReqID is {_clip(message['ipcReqID'])}, not one of {_clip(matcher['ipcReqID_in'])}"
    return None


def _error_mismatch(
    matcher: dict[str, Any], message: dict[str, Any], variables: dict[str, Any]
) -> str | None:
    if "code" in matcher and message.get("code") != matcher["code"]:
        return f"top-level code is {_clip(message.get('code'))}, not {_clip(matcher['code'])}"
    if "message" in matcher and message.get("message") != matcher["message"]:
        return f"top-level message is {_clip(message.get('message'))}, not {_clip(matcher['message'])}"
    if "message_not_pattern" in matcher:
        text = message.get("message")
        if not isinstance(text, str):
            return f"top-level message is {_clip(text)}, not a string"
        found = re.search(matcher["message_not_pattern"], text)
        if found:
            return f"top-level message {_clip(text)} holds {_clip(found.group(0))}"
    return None


def _members_mismatch(
    matcher: dict[str, Any], message: dict[str, Any], variables: dict[str, Any]
) -> str | None:
    for name, expected in resolve_vars(matcher.get("members", {}), variables).items():
        if name not in message:
            return f"member {name} is missing"
        if not json_equal(message[name], expected):
            return f"member {name} is {_clip(message[name])}, not {_clip(expected)}"
    for name in matcher.get("absent", []):
        if name in message:
            return f"member {name} is present ({_clip(message[name])}) but must not be"
    return None


def _data_mismatch(matcher: dict[str, Any], message: dict[str, Any], variables: dict[str, Any]) -> str | None:
    if matcher.get("data_absent") and "data" in message:
        return f"data is present ({_clip(message['data'])}) but must not be"
    if "data" in matcher:
        if "data" not in message:
            return "data is missing"
        if not json_equal(message["data"], matcher["data"]):
            return f"data is {_clip(message['data'])}, not {_clip(matcher['data'])}"
    return None


def _structure_mismatch(
    matcher: dict[str, Any], message: dict[str, Any], variables: dict[str, Any]
) -> str | None:
    if "list" in matcher:
        reason = _list_mismatch(matcher["list"], message)
        if reason is not None:
            return reason
    if "value" in matcher:
        reason = _value_mismatch(matcher["value"], message, variables)
        if reason is not None:
            return reason
    if matcher.get("exact"):
        allowed = _named_members(matcher)
        extra = [name for name in message if name not in allowed]
        if extra:
            return (
                f"member {extra[0]} is present ({_clip(message[extra[0]])}) but the message"
                f" may hold only {', '.join(sorted(allowed))}"
            )
    return None


_BOUNDS = {"equals": "", "at_least": "at least ", "at_most": "at most "}


def _value_wanted(check: dict[str, Any], variables: dict[str, Any]) -> tuple[str, Any]:
    """The comparison of a ``value`` check and the value it compares with (``plus`` added)."""
    key = next(k for k in _BOUNDS if k in check)
    wanted = resolve_vars(check[key], variables)
    if "plus" in check and isinstance(wanted, int | float) and not isinstance(wanted, bool):
        wanted += check["plus"]
    return key, wanted


def _value_mismatch(check: dict[str, Any], message: dict[str, Any], variables: dict[str, Any]) -> str | None:
    found = pointed(message, check["pointer"])
    if found is _MISSING:
        return f"{check['pointer']} is missing"
    key, wanted = _value_wanted(check, variables)
    if key == "equals":
        ok = json_equal(found, wanted)
    else:
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (found, wanted))
        ok = numbers and (found >= wanted if key == "at_least" else found <= wanted)
    return None if ok else f"{check['pointer']} is {_clip(found)}, not {_BOUNDS[key]}{_clip(wanted)}"


def capture(matcher: dict[str, Any], message: Any) -> dict[str, Any]:
    """The values a matcher's ``capture`` (``{NAME: POINTER}``) takes from a message it matched."""
    taken = {}
    for name, pointer in matcher.get("capture", {}).items():
        value = pointed(message, pointer)
        taken[name] = None if value is _MISSING else value
    return taken


def _list_mismatch(check: dict[str, Any], message: dict[str, Any]) -> str | None:
    """Why the list a ``list`` check points at does not start or end as it must."""
    pointer = check["pointer"]
    value = pointed(message, pointer)
    if not isinstance(value, list):
        return f"{pointer} is {'missing' if value is _MISSING else _clip(value)}, not a list"
    for key, expected in (("starts_with", check.get("starts_with")), ("ends_with", check.get("ends_with"))):
        if expected is None:
            continue
        part = value[: len(expected)] if key == "starts_with" else value[len(value) - len(expected) :]
        if len(value) < len(expected) or not json_equal(part, expected):
            verb = "start" if key == "starts_with" else "end"
            return f"{pointer} is {_clip(value)}, which does not {verb} with {_clip(expected)}"
    return None


def _named_members(matcher: dict[str, Any]) -> set[str]:
    """The top-level members a matcher names, which are all an ``exact`` one allows."""
    named = set(matcher.get("members", {}))
    for member, keys in _NAMING.items():
        if any(key in matcher for key in keys):
            named.add(member)
    return named


def describe(matcher: dict[str, Any], variables: dict[str, Any] | None = None) -> str:
    """A matcher in words, for the report."""
    if "any_of" in matcher:
        return " or ".join(f"({describe(m, variables)})" for m in matcher["any_of"])
    parts = []
    for key in ("ipcReqID", "code", "message", "data", "members"):
        if key in matcher:
            parts.append(f"{key} {_clip(resolve_vars(matcher[key], variables or {}), 80)}")
    if "ipcReqID_in" in matcher:
        parts.append(f"ipcReqID in {_clip(matcher['ipcReqID_in'], 80)}")
    if matcher.get("data_absent"):
        parts.append("no data member")
    if "absent" in matcher:
        parts.append("without " + ", ".join(matcher["absent"]))
    if "data_schema" in matcher:
        parts.append("data of the expected shape")
    if "message_not_pattern" in matcher:
        parts.append(f"a message without /{matcher['message_not_pattern']}/")
    if "kind" in matcher:
        parts.append(f"a valid {matcher['kind']}")
    if "list" in matcher:
        check = matcher["list"]
        for key, verb in (("starts_with", "starting"), ("ends_with", "ending")):
            if key in check:
                parts.append(f"{check['pointer']} {verb} with {_clip(check[key], 80)}")
    if "value" in matcher:
        key, wanted = _value_wanted(matcher["value"], variables or {})
        parts.append(f"{matcher['value']['pointer']} {_BOUNDS[key]}{_clip(wanted, 80)}")
    if matcher.get("exact"):
        parts.append("no other member")
    return "a message with " + ", ".join(parts) if parts else "a message"
