"""The bytes a client case's ``write`` step sends, and the checks of the adapter's answers.

A write part is one of ``{"respond": LABEL, ...}`` (the answer to the
request taken as LABEL: with ``data``, ``echo`` (the request's data),
``line_bytes`` (data padded so the line is that long), ``nested_depth``,
``error`` (top-level error members) or ``omit_data``, plus ``members``
(further top-level members) and ``cut`` (only the first bytes)),
``{"push": VALUE, "null_id": bool}``, ``{"message": OBJECT}``,
``{"malformed_for": LABEL}`` (a broken ``{`` line carrying that request's
id) and ``{"text": STRING}`` (raw text, no LF added). ``eol`` and ``ascii``
adjust how a message part is encoded.

An expectation (``$defs/client_expect``) is ``data`` (exact), ``data_written``
(the data written for a request label), ``error`` (a kind or kinds, with
optional ``code`` and ``message``), ``any_of`` several, or ``{}`` (any
success).
"""

from __future__ import annotations

from typing import Any

from .adapter_driver import AdapterAnswer
from .client_context import CaseScriptError, StepContext, StepFailed
from .scripted_server import ReceivedRequest
from .wirekit import encode_message, json_equal, padded_string, show

__all__ = ["build_part", "check_answer", "describe_expect", "expected_data_text"]


def _encode(message: Any, part: dict[str, Any]) -> bytes:
    return encode_message(message, ascii=bool(part.get("ascii", False))) + str(part.get("eol", "\n")).encode()


def build_part(ctx: StepContext, part: dict[str, Any]) -> tuple[bytes, ReceivedRequest | None]:
    """The bytes of one write part, and the request it answers (if any)."""
    if "text" in part:
        return str(part["text"]).encode("utf-8"), None
    if "message" in part:
        return _encode(part["message"], part), None
    if "push" in part:
        push: dict[str, Any] = {"data": part["push"]}
        if part.get("null_id"):
            push = {"ipcReqID": None, **push}
        return _encode(push, part), None
    if "malformed_for" in part:
        request = ctx.request(part["malformed_for"])
        # Starts with "{" and carries the pending id, but does not parse (FRAME-7).
        return b'{"ipcReqID":' + encode_message(request.id) + b',"data":{"x":tru' + str(
            part.get("eol", "\n")
        ).encode(), None
    if "respond" in part:
        label = part["respond"]
        request = ctx.request(label)
        message: dict[str, Any] = {"ipcReqID": request.id}
        if "error" in part:
            message.update(part["error"])
        elif not part.get("omit_data"):
            if part.get("echo"):
                data = request.message.get("data")
            elif "nested_depth" in part:
                data = 1
                for _ in range(int(part["nested_depth"])):
                    data = [data]
            elif "line_bytes" in part:
                overhead = len(_encode({"ipcReqID": request.id, "data": ""}, {"eol": ""}))
                data = padded_string(int(part["line_bytes"]) - overhead)
            else:
                data = part.get("data")
            message["data"] = data
            ctx.written[label] = data
        message.update(part.get("members", {}))
        encoded = _encode(message, part)
        if "cut" in part:
            # Part of the line only: the connection will end inside it.
            return encoded[: int(part["cut"])], None
        return encoded, request
    raise CaseScriptError(f"unknown write part {show(part)}")


def check_answer(ctx: StepContext, index: int, answer: AdapterAnswer, expect: dict[str, Any]) -> None:
    if "any_of" in expect:
        for choice in expect["any_of"]:
            try:
                check_answer(ctx, index, answer, choice)
                return
            except StepFailed:
                continue
        raise StepFailed(index, describe_expect(ctx, expect), answer.describe())
    if "error" in expect:
        want = expect["error"]
        if answer.ok:
            raise StepFailed(index, f"an error {show(want)}", answer.describe())
        kinds = want["kind"] if isinstance(want["kind"], list) else [want["kind"]]
        if answer.error.get("kind") not in kinds:
            raise StepFailed(index, f"an error of kind {' or '.join(kinds)}", answer.describe())
        for key in ("code", "message"):
            if key in want and answer.error.get(key) != want[key]:
                raise StepFailed(index, f"an error with {key} {show(want[key])}", answer.describe())
        return
    if not answer.ok:
        raise StepFailed(index, "success" + expected_data_text(ctx, expect), answer.describe())
    if "data" in expect or "data_written" in expect:
        want_data = expect["data"] if "data" in expect else ctx.written.get(expect["data_written"])
        if "data" not in answer.result:
            raise StepFailed(index, "a result with data", answer.describe())
        got = answer.result["data"]
        if not json_equal(got, want_data):
            raise StepFailed(index, f"data {show(want_data)}", f"data {show(got)}")


def describe_expect(ctx: StepContext, expect: dict[str, Any]) -> str:
    """An expectation in words: "an error of kind closed", "data 1", "an answer"."""
    if "any_of" in expect:
        return " or ".join(describe_expect(ctx, choice) for choice in expect["any_of"])
    if "error" in expect:
        kinds = expect["error"]["kind"]
        kinds = " or ".join(kinds) if isinstance(kinds, list) else kinds
        code = expect["error"].get("code")
        return f"an error of kind {kinds}" + (f" (code {code})" if code else "")
    data = expected_data_text(ctx, expect)
    return "an answer" + data


def expected_data_text(ctx: StepContext, expect: dict[str, Any]) -> str:
    if "data" in expect:
        return f" with data {show(expect['data'])}"
    if "data_written" in expect:
        return f" with data {show(ctx.written.get(expect['data_written']))}"
    return ""
