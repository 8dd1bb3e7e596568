"""The sans-I/O core and the schemas agree: what the core accepts, refuses and builds.

Request vectors are fed to :class:`pixl_ipc.protocol.ServerProtocol` as wire
lines; the messages the core builds are checked against the schema of their
kind; server-message vectors are fed to :class:`ClientProtocol`, which must
tell responses from pushes as the schemas do.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pixl_ipc._js import js_string
from pixl_ipc.errors import ErrorCode
from pixl_ipc.framing import DEFAULT_MAX_MESSAGE_BYTES, OversizeLine
from pixl_ipc.protocol import (
    NO_DATA,
    NO_URI_MESSAGE,
    ClientProtocol,
    IncomingPush,
    IncomingRequest,
    IncomingResponse,
    ProtocolReply,
    ServerProtocol,
    data_error,
    error_reply,
    no_handler_found,
    oversize_reply,
    push_message,
    response,
)
from spec_support import BASE, Vector, validator, vectors

REQUEST = BASE + "request.schema.json"
RESPONSE = BASE + "response.schema.json"
ERROR_RESPONSE = BASE + "error-response.schema.json"
PUSH = BASE + "push.schema.json"
MESSAGE = BASE + "message.schema.json"

REQUEST_VECTORS = [
    v for v in vectors() if v.ref.startswith(REQUEST) and isinstance(v.data, dict)
]
SERVER_MESSAGE = MESSAGE + "#/$defs/serverMessage"
# An id of type object or array is echoed by servers (RESP-2) but never sent by
# a client of this kit, so its answer matches no pending request (CORR-3): the
# client core sets it aside as a push, which the schemas cannot say.
SERVER_VECTORS = [
    v
    for v in vectors()
    if isinstance(v.data, dict)
    and not isinstance(v.data.get("ipcReqID"), (dict, list))
    and v.ref.split("#")[0] in (RESPONSE, ERROR_RESPONSE, PUSH, MESSAGE)
    and validator(SERVER_MESSAGE).is_valid(v.data)
]


def js_falsy(value: Any) -> bool:
    """JavaScript truthiness, as the original tests ``uri`` and ``ipcReqID`` (REQ-2, REQ-3)."""
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) in (int, float) and value == 0)
    )


def server_events(message: dict[str, Any]) -> list[Any]:
    return ServerProtocol().receive_data(json.dumps(message).encode("utf-8") + b"\n")


def errors_of(ref: str, value: Any) -> list[str]:
    return [
        f"{list(e.absolute_path)}: {e.message}"
        for e in validator(ref).iter_errors(value)
    ]


def test_there_are_request_vectors_both_ways() -> None:
    assert {v.valid for v in REQUEST_VECTORS} == {True, False}


@pytest.mark.parametrize("vector", REQUEST_VECTORS, ids=lambda v: v.name)
def test_server_core_accepts_exactly_the_requests_the_schema_accepts(
    vector: Vector,
) -> None:
    message = vector.data
    # A server accepts what the root request schema accepts; stricter client
    # shapes ($defs/clientRequest) only add SHOULDs a server does not enforce.
    accepted = validator(REQUEST).is_valid(message)
    events = server_events(message)
    assert len(events) == 1, (
        f"{vector.name}: one line must give one event, got {events}"
    )
    event = events[0]
    if accepted:
        assert isinstance(event, IncomingRequest), (
            f"{vector.name}: schema accepts it, core answers {event}"
        )
        assert event.uri == js_string(
            message["uri"]
        )  # REQ-2: a uri of another type is routed by its text
        assert event.message == message  # REQ-1: extra members kept
        request_id = message.get("ipcReqID")
        assert event.id == (None if js_falsy(request_id) else request_id)  # RESP-2
        return
    assert isinstance(event, ProtocolReply), (
        f"{vector.name}: schema refuses it, core accepts it"
    )
    reply = event.message
    # REQ-2: the only request a server refuses is one without a truthy uri.
    assert js_falsy(message.get("uri")), f"{vector.name}: core refuses it"
    assert reply["code"] == "no_uri", f"{vector.name}: core answers {reply}"
    assert errors_of(ERROR_RESPONSE + "#/$defs/noUri", reply) == []


@pytest.mark.parametrize("vector", SERVER_VECTORS, ids=lambda v: v.name)
def test_client_core_tells_pushes_from_responses_as_the_schemas_do(
    vector: Vector,
) -> None:
    events = ClientProtocol().receive_data(
        json.dumps(vector.data).encode("utf-8") + b"\n"
    )
    assert len(events) == 1
    if validator(PUSH).is_valid(vector.data):
        assert isinstance(events[0], IncomingPush), (
            f"{vector.name}: a push (PUSH-1) read as {events[0]}"
        )
    else:
        assert isinstance(events[0], IncomingResponse), (
            f"{vector.name}: a response read as {events[0]}"
        )
        assert events[0].id == vector.data["ipcReqID"]


BUILT: list[tuple[str, dict[str, Any], str]] = [
    ("response to rq0", response("rq0", {"a": 1}), RESPONSE),
    ("response to a numeric id", response(7, [1, 2]), RESPONSE),
    ("response to an absent id", response(None, None), RESPONSE),
    ("response to id 0", response(0, "x"), RESPONSE),
    ("response to id ''", response("", []), RESPONSE),
    ("response to id false", response(False, {}), RESPONSE),
    (
        "no_uri",
        error_reply("rq0", ErrorCode.NO_URI, NO_URI_MESSAGE),
        ERROR_RESPONSE + "#/$defs/noUri",
    ),
    (
        "no_uri to id 0",
        error_reply(0, ErrorCode.NO_URI, NO_URI_MESSAGE),
        ERROR_RESPONSE + "#/$defs/noUri",
    ),
    (
        "bad_json",
        error_reply("rq1", ErrorCode.BAD_JSON, "invalid JSON"),
        ERROR_RESPONSE + "#/$defs/badJson",
    ),
    (
        "no_uri echoing the id true",
        error_reply(True, ErrorCode.NO_URI, NO_URI_MESSAGE),
        ERROR_RESPONSE + "#/$defs/noUri",
    ),
    ("response to the id true", response(True, 1), RESPONSE),
    ("response to an object id", response({"n": 1}, 1), RESPONSE),
    ("response without data", response("rq0", NO_DATA), RESPONSE),
    (
        "access_denied",
        error_reply(None, ErrorCode.ACCESS_DENIED, "peer not allowed"),
        ERROR_RESPONSE + "#/$defs/accessDenied",
    ),
    (
        "message_too_large",
        oversize_reply(
            OversizeLine(
                b'{"ipcReqID":"rq3","uri":"/x","data":"',
                DEFAULT_MAX_MESSAGE_BYTES + 1,
                DEFAULT_MAX_MESSAGE_BYTES,
            )
        ).message,
        ERROR_RESPONSE + "#/$defs/messageTooLarge",
    ),
    (
        "no_handler_found",
        no_handler_found("rq2", "/myapp/missing"),
        RESPONSE + "#/$defs/noHandlerFound",
    ),
    (
        "no_handler_found uncorrelated",
        no_handler_found(None, "/x"),
        RESPONSE + "#/$defs/noHandlerFound",
    ),
    (
        "handler_error",
        data_error("rq4", ErrorCode.HANDLER_ERROR, "handler failed"),
        RESPONSE + "#/$defs/handlerError",
    ),
    ("push", push_message({"event": "reload"}), PUSH + "#/$defs/kitPush"),
    ("push of null", push_message(None), PUSH + "#/$defs/kitPush"),
]


@pytest.mark.parametrize(
    ("message", "ref"), [b[1:] for b in BUILT], ids=[b[0] for b in BUILT]
)
def test_messages_the_core_builds_match_their_schemas(
    message: dict[str, Any], ref: str
) -> None:
    assert errors_of(ref, message) == []
    assert errors_of(MESSAGE, message) == []


def test_message_too_large_recovers_the_id() -> None:
    reply = oversize_reply(
        OversizeLine(b'{"ipcReqID":"rq3","data":"', 10, DEFAULT_MAX_MESSAGE_BYTES)
    ).message
    assert reply["ipcReqID"] == "rq3"


@pytest.mark.parametrize(
    ("line", "ref"),
    [
        (b'{"ipcReqID":"rq9","uri":"/x",}\n', ERROR_RESPONSE + "#/$defs/badJson"),
        (
            b'{"ipcReqID":"rq9","uri":"/x","data":NaN}\n',
            ERROR_RESPONSE + "#/$defs/badJson",
        ),
        (b'{"uri":"/x","data":"\xff"}\n', ERROR_RESPONSE + "#/$defs/badJson"),
        (b'{"ipcReqID":"rq9","data":{}}\n', ERROR_RESPONSE + "#/$defs/noUri"),
        (b'{"ipcReqID":true}\n', ERROR_RESPONSE + "#/$defs/noUri"),
        (b'{"ipcReqID":"rq9","data":1e400}\n', ERROR_RESPONSE + "#/$defs/badJson"),
    ],
)
def test_protocol_replies_of_the_server_core_match_their_schemas(
    line: bytes, ref: str
) -> None:
    events = ServerProtocol().receive_data(line)
    assert len(events) == 1 and isinstance(events[0], ProtocolReply)
    assert errors_of(ref, events[0].message) == []


def test_requests_the_client_core_writes_are_client_requests() -> None:
    client = ClientProtocol(user_agent="Python/IPCClient/home/app", pid=4242)
    samples: list[Any] = [[], {"a": 1}, None, "x"]
    for data in samples:
        request_id, line = client.encode_request("/ipcserver/test/echo", data)
        message = json.loads(line)
        assert errors_of(REQUEST + "#/$defs/clientRequest", message) == []
        assert message["ipcReqID"] == request_id
        assert errors_of(REQUEST + "#/$defs/recommendedRequest", message) == []
        # The Node client's member order, ipcReqID before data (CORR-6).
        assert list(message) == ["ipcReqID", "uri", "data", "pid", "userAgent"]
