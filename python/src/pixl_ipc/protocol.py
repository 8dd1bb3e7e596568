"""Messages of the pixl-ipc protocol: building, checking and matching them.

Theory of operation
-------------------
A connection carries one JSON object per line in each direction (spec section
2). This module holds every protocol rule and no I/O; the server and the two
clients only move bytes between a socket and the two connection objects here.

:class:`ServerProtocol` is one server-side connection. Bytes go in through
:meth:`ServerProtocol.receive_data`; out come, in stream order, either an
:class:`IncomingRequest` (a valid request, for the router) or a
:class:`ProtocolReply` (an error the server answers at once without a
handler: ``no_uri``, ``bad_json``, ``message_too_large``). Lines that are
not messages (blank, or not starting with ``{``) produce nothing (FRAME-4,
FRAME-5). Everything else is routed, as the original does: any truthy
``ipcReqID`` is echoed, a truthy ``uri`` that is not a string is routed by its
JavaScript text (REQ-2, REQ-3). Replies are built with :func:`response`, :func:`error_reply`
and :func:`data_error`, and turned into bytes by :func:`~pixl_ipc.framing.encode_line`.

:class:`ClientProtocol` is one client, across its connections, and holds every
client rule: its life (:class:`ClientState`), request ids (``rq0``, ``rq1``,
... never reused, CORR-1), the ids that wait for an answer (``expect``,
``forget``), and the events incoming bytes complete: a response matched by id
alone (CORR-2), a late answer dropped (CORR-3), a push (PUSH-2, ERR-7), a
response over the limit with the requests it fails (LIMIT-3), and the
failures of every pending request when the connection ends (LIFE-3). The
blocking and asyncio clients only map ids to their waiters and move bytes.
:func:`response_outcome` turns a response into the caller's data or a
:class:`~pixl_ipc.errors.RemoteError`, with the original's ``codeToErr`` and
``messageTransform`` semantics.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._codec import decode_fast as _decode_fast
from ._codec import line_encoder as _encode_line
from ._js import js_falsy, js_string
from .errors import ErrorCode, MalformedMessage, MessageTooLarge, RemoteError, ServerClosed
from .framing import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LineDecoder,
    OversizeLine,
    decode_json,
)

__all__ = [
    "NO_DATA",
    "NO_URI_MESSAGE",
    "PROTOCOL_VERSION",
    "ClientProtocol",
    "ClientState",
    "IncomingPush",
    "IncomingRequest",
    "IncomingResponse",
    "LateResponse",
    "OversizeMessage",
    "ProtocolReply",
    "RequestFailed",
    "RequestFields",
    "ServerProtocol",
    "data_error",
    "error_reply",
    "is_falsy_id",
    "no_handler_found",
    "parse_request",
    "parse_request_line",
    "push_message",
    "recover_id",
    "reply_id",
    "response",
    "response_outcome",
]

#: The protocol version this kit speaks, the original's (VER-1).
PROTOCOL_VERSION = "1.1"
#: The original's exact text for ``no_uri`` (ERR-3).
NO_URI_MESSAGE = "Missing required uri parameter from request"

_WHITESPACE = b" \t\r"
# CORR-6: the first "ipcReqID" member, and the string or number after it, if any.
_ID_PATTERN = re.compile(
    rb'"ipcReqID"[ \t\r\n]*:[ \t\r\n]*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)?'
)
# What may follow a number that is not yet complete: nothing (the head ends
# there), or more of a number.
_NUMBER_GOES_ON = frozenset({b"", *(bytes([c]) for c in b"0123456789.eE+-")})

MessageTransform = Callable[[dict[str, Any]], Any]


class _NoData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_DATA"


#: A handler result meaning "answer without a ``data`` member", as a JavaScript
#: handler that answers ``undefined`` does (RESP-3, BUILTIN-1).
NO_DATA: Any = _NoData()


# --- building messages -------------------------------------------------------


def is_falsy_id(value: Any) -> bool:
    """True for the ids that mean "not correlated" (REQ-3): absent, null, "", 0, false."""
    return js_falsy(value)


def reply_id(request_id: Any) -> Any:
    """The ``ipcReqID`` a response carries for a request's id (RESP-2)."""
    return None if is_falsy_id(request_id) else request_id


def response(request_id: Any, data: Any) -> dict[str, Any]:
    """A success response (RESP-3); without ``data`` when ``data`` is :data:`NO_DATA`."""
    if data is NO_DATA:
        return {"ipcReqID": reply_id(request_id)}
    return {"ipcReqID": reply_id(request_id), "data": data}


def error_reply(request_id: Any, code: ErrorCode | str, message: str, **extra: Any) -> dict[str, Any]:
    """A top-level error response (ERR-2): no ``data`` member."""
    reply: dict[str, Any] = {"ipcReqID": reply_id(request_id), "code": str(code), "message": message}
    reply.update(extra)
    return reply


def data_error(request_id: Any, code: ErrorCode | str, message: str, **extra: Any) -> dict[str, Any]:
    """An error placed inside ``data`` (ERR-2), as the original does for routing."""
    error: dict[str, Any] = {"code": str(code), "message": message}
    error.update(extra)
    return {"ipcReqID": reply_id(request_id), "data": error}


def no_handler_found(request_id: Any, uri: str) -> dict[str, Any]:
    """The original's answer when no handler matches (ROUTE-2)."""
    return data_error(request_id, ErrorCode.NO_HANDLER_FOUND, f"No handler found for {uri}")


def push_message(data: Any) -> dict[str, Any]:
    """A server push: a message without ``ipcReqID`` (PUSH-1)."""
    return {"data": data}


def recover_id(head: bytes) -> Any:
    """Find the ``ipcReqID`` in the first bytes of a line that cannot be parsed (CORR-6).

    Only the first ``"ipcReqID":`` counts: the id is the complete string or
    number after it, if it is truthy, else None (``null`` there is not passed
    over for a later one).
    """
    head = head[:4096]
    match = _ID_PATTERN.search(head)
    if match is None or match.group(1) is None:
        return None
    if head[match.start(1)] != 0x22 and head[match.end(1) : match.end(1) + 1] in _NUMBER_GOES_ON:
        return None  # a number cut at the end of the head: the whole id or none (CORR-6)
    try:
        value = decode_json(match.group(1))
    except MalformedMessage:
        return None
    return reply_id(value)


# --- server side -------------------------------------------------------------


# Not frozen: a frozen dataclass's __init__ costs three times as much, and one
# is made per request.
@dataclass(slots=True)
class IncomingRequest:
    """A well-formed request for the router.

    Attributes:
        message: the request object as received (REQ-1), extra members kept.
        uri: its ``uri`` as text: the string itself, or the JavaScript text
            of a truthy value of another type (REQ-2).
        id: the ``ipcReqID`` to answer with (None when not correlated).
    """

    message: dict[str, Any]
    uri: str
    id: Any


@dataclass(frozen=True, slots=True)
class ProtocolReply:
    """An error the server answers at once, without a handler.

    Attributes:
        message: the reply to send.
        reason: why (for logs and stats), e.g. ``"bad_json"``.
    """

    message: dict[str, Any]
    reason: str


ServerEvent = IncomingRequest | ProtocolReply


#: A well-formed request as :func:`parse_request` gives it: the request
#: object, its uri as text, the id to answer with (see :class:`IncomingRequest`).
RequestFields = tuple[dict[str, Any], str, Any]


def _check_request(message: dict[str, Any], request_id: Any, uri: Any) -> RequestFields | ProtocolReply:
    if type(uri) is str and uri:
        if type(request_id) is str:
            # What the original clients send: nothing more to check.
            return message, uri, request_id or None
        return message, uri, reply_id(request_id)
    if js_falsy(uri):
        # REQ-2: the id is answered as any other (RESP-2), so {"ipcReqID":true} gets true.
        return ProtocolReply(error_reply(request_id, ErrorCode.NO_URI, NO_URI_MESSAGE), "no_uri")
    # REQ-2: a truthy uri of another type is routed by its JavaScript text.
    return message, js_string(uri), reply_id(request_id)


def _is_message_line(line: bytes) -> bool:
    """True when the line's first non-blank byte is ``{`` (FRAME-4, FRAME-5)."""
    return line[:1] == b"{" or line.lstrip(_WHITESPACE)[:1] == b"{"


def parse_request(line: bytes) -> RequestFields | ProtocolReply | None:
    """:func:`parse_request_line` for a server's hot path: a request comes as a
    :data:`RequestFields` tuple, not an :class:`IncomingRequest`.

    Returns None for a line that is not a message.
    """
    if line[:1] != b"{" and not _is_message_line(line):
        return None
    try:
        message = _decode_fast(line)
    except Exception:
        try:
            message = decode_json(line)  # the whole rule, and its error
        except MalformedMessage as exc:
            reply = error_reply(recover_id(line[:4096]), ErrorCode.BAD_JSON, f"invalid JSON: {exc}")
            return ProtocolReply(reply, "bad_json")
    if type(message) is not dict:  # "{" guarantees an object unless it is malformed
        reply = error_reply(None, ErrorCode.BAD_JSON, "invalid JSON: not an object")
        return ProtocolReply(reply, "bad_json")
    request_id = message.get("ipcReqID")
    uri = message.get("uri")
    if type(uri) is str and uri and type(request_id) is str and request_id:
        return message, uri, request_id  # what clients send: nothing more to check
    return _check_request(message, request_id, uri)


def parse_request_line(line: bytes) -> ServerEvent | None:
    """Classify one line received by a server (FRAME-4 to FRAME-6, REQ-1 to REQ-3).

    Returns None for a line that is not a message.
    """
    event = parse_request(line)
    if isinstance(event, tuple):
        return IncomingRequest(*event)
    return event


def oversize_reply(event: OversizeLine) -> ProtocolReply:
    """The ``message_too_large`` answer to an oversize line (LIMIT-2)."""
    reply = error_reply(
        recover_id(event.head),
        ErrorCode.MESSAGE_TOO_LARGE,
        f"message exceeds the limit of {event.limit} bytes",
        limit=event.limit,
    )
    return ProtocolReply(reply, "message_too_large")


class ServerProtocol:
    """The protocol state of one server-side connection.

    Args:
        max_message_bytes: the largest request line accepted (LIMIT-1).
    """

    __slots__ = ("decoder",)

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.decoder = LineDecoder(max_message_bytes)

    def receive_data(self, data: bytes) -> list[ServerEvent]:
        """Feed bytes read from the connection; return the events they complete."""
        events: list[ServerEvent] = []
        for item in self.decoder.feed(data):
            if type(item) is not bytes:
                assert isinstance(item, OversizeLine)
                events.append(oversize_reply(item))
                continue
            event = parse_request_line(item)
            if event is not None:
                events.append(event)
        return events


# --- client side -------------------------------------------------------------


# Not frozen, like IncomingRequest: one is made per response.
@dataclass(slots=True)
class IncomingResponse:
    """A response to a request this client waits for (CORR-2); it is no longer outstanding."""

    id: Any
    message: dict[str, Any]


@dataclass(slots=True)
class LateResponse(IncomingResponse):
    """A message with an id nobody waits for: a timed-out or abandoned request's late
    answer, or an id this client never sent. Dropped quietly (CORR-3)."""


@dataclass(slots=True)
class IncomingPush:
    """A message from the server without an id (PUSH-1), or with a falsy one.

    That includes a top-level error with ``ipcReqID`` null: it matches no
    pending request (ERR-7).
    """

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OversizeMessage:
    """A line from the server over the client's limit (LIMIT-3).

    The :class:`RequestFailed` events that come with it fail every pending
    request; the front end closes the connection, and nothing after the line
    is read.

    Attributes:
        size: the bytes of the line seen when it passed the limit.
        limit: the limit in force.
        id: the ``ipcReqID`` recovered from the line's head (CORR-6), or None.
    """

    size: int
    limit: int
    id: Any = None


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A pending request that ends without an answer; ``error`` is what its caller gets."""

    id: Any
    error: Exception


ClientEvent = IncomingResponse | IncomingPush | OversizeMessage | RequestFailed


class ClientState(enum.Enum):
    """Where a client is in its life; see :class:`ClientProtocol`."""

    NEW = "new"  # never connected
    OPEN = "open"  # a connection is open
    LOST = "lost"  # the connection ended without close()
    CLOSED = "closed"  # close() was called


# Module constants: reading an Enum member through its class costs as much as
# a small function call, and receive_data checks the state on every read.
_OPEN = ClientState.OPEN
_LOST = ClientState.LOST
_CLOSED = ClientState.CLOSED


class ClientProtocol:
    """The protocol state of one client, across its connections.

    It numbers requests (``rq0``, ``rq1``, ... never reused by this client,
    CORR-1, as the original's counter goes on across reconnects), encodes
    them, keeps the ids of the requests that wait for an answer, and turns
    incoming bytes into events: :class:`IncomingResponse` for an id it
    expects, :class:`LateResponse` for any other id, :class:`IncomingPush`,
    and, when a response passes the limit, :class:`OversizeMessage` with a
    :class:`RequestFailed` for every pending request (LIMIT-3). When the
    connection ends, :meth:`connection_lost` fails every pending request
    (LIFE-3). A front end keeps only its map from id to waiter and moves bytes.

    Args:
        max_message_bytes: the largest response line accepted (LIMIT-1).
        user_agent: the ``userAgent`` member of every request (REQ-6).
        pid: the ``pid`` member (REQ-5); defaults to this process's id.
    """

    __slots__ = ("_counter", "decoder", "malformed", "outstanding", "pid", "state", "user_agent")

    def __init__(
        self,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        *,
        user_agent: str = "",
        pid: int | None = None,
    ) -> None:
        self.decoder = LineDecoder(max_message_bytes)
        self.user_agent = user_agent
        self.pid = os.getpid() if pid is None else pid
        self._counter = 0
        #: Where the client is; see :class:`ClientState`.
        self.state = ClientState.NEW
        #: Ids of the requests that wait for an answer.
        self.outstanding: set[Any] = set()
        #: How many malformed lines were ignored (FRAME-7).
        self.malformed = 0

    # --- life ---

    def must_connect(self, auto_reconnect: bool) -> bool:
        """Whether a request must open a connection first (LIFE-4).

        Args:
            auto_reconnect: whether the client reconnects after a drop.

        Raises:
            ServerClosed: the client was closed, or the connection was lost and
                ``auto_reconnect`` is off.
        """
        state = self.state
        if state is ClientState.OPEN:
            return False
        if state is ClientState.CLOSED:
            raise ServerClosed("the client is closed; call connect() to open it again")
        if state is ClientState.LOST and not auto_reconnect:
            raise ServerClosed("the connection was lost and auto_reconnect is off")
        return True

    def reopen(self) -> None:
        """``connect()`` after ``close()``: the client may connect again."""
        if self.state is ClientState.CLOSED:
            self.state = ClientState.NEW

    def connection_made(self) -> None:
        """A connection is open: read it from a clean line boundary."""
        self.decoder = LineDecoder(self.decoder.max_line_bytes)
        self.state = ClientState.OPEN

    def connection_lost(self, reason: str = "the server closed the connection") -> list[RequestFailed]:
        """The connection ended: every pending request fails with ServerClosed(reason) (LIFE-3)."""
        if self.state is not ClientState.CLOSED:
            self.state = ClientState.LOST
        return self._fail_all(reason)

    def close(self) -> list[RequestFailed]:
        """The client is closed: every pending request fails with ServerClosed."""
        self.state = ClientState.CLOSED
        return self._fail_all("the client was closed")

    def _fail_all(self, reason: str) -> list[RequestFailed]:
        failed = [RequestFailed(request_id, ServerClosed(reason)) for request_id in self.outstanding]
        self.outstanding.clear()
        return failed

    # --- requests ---

    @property
    def pending_count(self) -> int:
        """How many requests wait for an answer."""
        return len(self.outstanding)

    def encode_request(self, uri: str, data: Any) -> tuple[str, bytes]:
        """Build a request with a new id (the id comes before data, CORR-6).

        Returns:
            The id and the bytes to write, LF included.

        Raises:
            TypeError, ValueError: ``data`` cannot be encoded as JSON.
        """
        request_id = f"rq{self._counter}"  # never reused by this client (CORR-1)
        self._counter += 1
        message = {
            "ipcReqID": request_id,
            "uri": uri,
            "data": data,
            "pid": self.pid,
            "userAgent": self.user_agent,
        }
        return request_id, _encode_line(message)

    def expect(self, request_id: Any) -> None:
        """Wait for an answer to ``request_id``: it is pending from now on."""
        self.outstanding.add(request_id)

    def forget(self, request_id: Any) -> bool:
        """Stop waiting for ``request_id`` (a timeout, CORR-5; a cancelled send).

        Its answer, should it come, is a :class:`LateResponse` (CORR-3).

        Returns:
            Whether it was pending.
        """
        try:
            self.outstanding.remove(request_id)
        except KeyError:
            return False
        return True

    # --- responses ---

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        """Feed bytes read from the connection; return the events they complete."""
        state = self.state
        if state is _LOST or state is _CLOSED:
            return []  # after an oversize line or a close, nothing counts
        events: list[ClientEvent] = []
        outstanding = self.outstanding
        for item in self.decoder.feed(data):
            if type(item) is not bytes:
                assert isinstance(item, OversizeLine)
                events.extend(self._oversize(item))
                break
            if item[:1] != b"{" and not _is_message_line(item):
                continue
            try:
                message = _decode_fast(item)
            except Exception:
                try:
                    message = decode_json(item)  # the whole rule, and its error
                except MalformedMessage:
                    self.malformed += 1  # FRAME-7: ignored, never fails a request
                    continue
            if type(message) is not dict:
                self.malformed += 1
                continue
            request_id = message.get("ipcReqID")
            if type(request_id) is str and request_id in outstanding:  # the common case
                outstanding.remove(request_id)
                events.append(IncomingResponse(request_id, message))
            elif is_falsy_id(request_id) or isinstance(request_id, (dict, list)):
                events.append(IncomingPush(message))  # PUSH-1, ERR-7
            elif request_id in outstanding:
                outstanding.remove(request_id)
                events.append(IncomingResponse(request_id, message))
            else:
                events.append(LateResponse(request_id, message))
        return events

    def _oversize(self, line: OversizeLine) -> list[ClientEvent]:
        # LIMIT-3: the request the line answers fails as too large; the
        # connection closes, so the others fail as closed. When the line's id
        # names no pending request, any of them may be the one: all too large.
        owner = recover_id(line.head)
        if owner not in self.outstanding:
            owner = None
        events: list[ClientEvent] = [OversizeMessage(line.size, line.limit, owner)]
        closed = f"connection closed: a response exceeded the limit of {line.limit} bytes"
        for request_id in self.outstanding:
            if owner is None or request_id == owner:
                events.append(RequestFailed(request_id, MessageTooLarge(line.size, line.limit)))
            else:
                events.append(RequestFailed(request_id, ServerClosed(closed)))
        self.outstanding.clear()
        self.state = _LOST
        return events


def _as_error(err: Any, message: dict[str, Any]) -> BaseException:
    if isinstance(err, BaseException):
        return err
    if isinstance(err, dict) and err.get("code"):
        return RemoteError(str(err["code"]), str(err.get("message", "")), err)
    return RemoteError("error", str(err), message)


def response_outcome(
    message: dict[str, Any],
    *,
    code_to_err: bool = False,
    message_transform: MessageTransform | None = None,
) -> Any:
    """Turn a response into the caller's data, or raise its error (ERR-4).

    Args:
        message: the response as received.
        code_to_err: the original's ``codeToErr``: an error inside ``data``
            (a truthy ``data.code``) is raised too.
        message_transform: the original's ``messageTransform``: called with the
            message, returns ``(err, data)``; a truthy ``err`` is raised (an
            exception as it is, an object with ``code`` as RemoteError),
            otherwise ``data`` is returned. It replaces the rules above.

    Raises:
        RemoteError: the response is an error.
    """
    if message_transform is not None:
        result = message_transform(message)
        try:
            err, data = result
        except (TypeError, ValueError):
            raise TypeError("message_transform must return a pair (err, data)") from None
        if err:
            raise _as_error(err, message)
        return data
    code = message.get("code")
    if code:  # top-level error: always raised (ERR-4)
        raise RemoteError(str(code), str(message.get("message", "")), message)
    data = message.get("data")
    if code_to_err and isinstance(data, dict) and data.get("code"):
        raise RemoteError(str(data["code"]), str(data.get("message", "")), data)
    return data
