"""What a server case's ``send`` writes: encoded messages, raw bytes, generated requests.

:func:`send_payload` turns a ``send`` step into the bytes to write.
Generators (``$defs/generator``) build requests that are too big or too many
to write out in a case file; each registers, on its connection, the data its
answer must carry, which a later ``expect`` with ``generated`` checks:

``echo_batch``  ``count`` echo requests ``id_prefix0``.., data ``{"i": n}``
``echo_big``    one echo request whose line is exactly ``bytes`` long
``oversize``    one echo request ``over`` bytes longer than the server's limit
                (``over`` 0: exactly the limit, for a line whose CR passes it)
``nested``      ``depth`` nested arrays, as an echo's data or ``bare``
``delay_batch`` ``count`` delay requests ``id_prefix0``.. of ``delay_ms`` each
``straddling_id`` a malformed line whose numeric ``ipcReqID`` starts just
                before byte 4096 and ends after it (CORR-6); with ``over``,
                that many bytes longer than the server's limit
``long_uri``    one request whose uri is ``bytes`` long and unlike any other,
                routed to no handler (``no_handler_found``) or, with ``route``
                ``echo``, under the echo built-in's prefix
"""

from __future__ import annotations

from typing import Any

from .server_context import StepFailed
from .wirekit import (
    ECHO_URI,
    ID_HEAD_BYTES,
    echo_line,
    encode_message,
    padded_echo,
    padded_string,
    resolve_vars,
)

DELAY_URI = "/ipcserver/test/delay"
#: The uri ``long_uri`` requests no handler for (ROUTE-2).
CHURN_URI = "/conformance/churn/"

__all__ = ["EXPECTED_NESTING_MAX", "generate", "send_payload"]

#: Up to this depth a nested request's echo is expected by ``expect generated``;
#: deeper, the server may refuse it (LIMIT-4) and the case says what it accepts.
EXPECTED_NESTING_MAX = 256


def send_payload(pending: dict[Any, Any], step: dict[str, Any], variables: dict[str, Any]) -> bytes:
    """The bytes a ``send`` step writes: ``message``, ``messages``, ``text``, ``hex`` or ``generate``.

    ``eol`` (default LF) ends each message; ``ascii`` escapes non-ASCII characters.
    A generator registers in ``pending`` (a connection's, see :func:`generate`)
    the data each of its answers must carry.

    Raises:
        StepFailed: a generator needs a value the runner does not know.
    """
    eol = str(step.get("eol", "\n")).encode()
    ascii_only = bool(step.get("ascii", False))
    if "message" in step:
        return encode_message(step["message"], ascii=ascii_only) + eol
    if "messages" in step:
        return b"".join(encode_message(m, ascii=ascii_only) + eol for m in step["messages"])
    if "text" in step:
        return str(step["text"]).encode("utf-8", "surrogatepass")
    if "hex" in step:
        return bytes.fromhex(step["hex"])
    spec: dict[str, Any] = resolve_vars(step["generate"], variables)
    return generate(pending, spec, variables) + eol


def generate(pending: dict[Any, Any], spec: dict[str, Any], variables: dict[str, Any]) -> bytes:
    """The bytes of one generated request (without the LF); registers its expected answer in ``pending``.

    Raises:
        StepFailed: the generator needs the server's limit and it is not known.
    """
    kind = spec["kind"]
    if kind == "echo_batch":
        lines = []
        for n in range(spec["count"]):
            request_id = f"{spec['id_prefix']}{n}"
            pending[request_id] = {"i": n}
            lines.append(echo_line(request_id, {"i": n}))
        return b"\n".join(lines)
    if kind == "echo_big":
        line, data = padded_echo(spec["id"], spec["bytes"])
        pending[spec["id"]] = data
        return line
    if kind == "oversize":
        line, _ = padded_echo(spec["id"], _limit(variables) + spec["over"])
        return line
    if kind == "delay_batch":
        lines = []
        for n in range(spec["count"]):
            request_id = f"{spec['id_prefix']}{n}"
            pending[request_id] = {"delay": spec["delay_ms"]}
            lines.append(
                encode_message(
                    {"ipcReqID": request_id, "uri": DELAY_URI, "data": {"delay": spec["delay_ms"]}}
                )
            )
        return b"\n".join(lines)
    if kind == "nested":
        depth: int = spec["depth"]
        arrays = b"[" * depth + b"]" * depth
        if spec.get("bare"):
            return arrays
        request_id = spec.get("id", "nested")
        if depth <= EXPECTED_NESTING_MAX:
            expected: Any = []
            for _ in range(depth - 1):
                expected = [expected]
            pending[request_id] = expected
        head = encode_message({"ipcReqID": request_id, "uri": ECHO_URI})[:-1]
        return head + b',"data":' + arrays + b"}"
    if kind == "straddling_id":
        return _straddling_id(spec, variables)
    if kind == "long_uri":
        return _long_uri(pending, spec)
    raise StepFailed("a known generator", kind)


def _limit(variables: dict[str, Any]) -> int:
    limit = variables.get("max_message_bytes")
    if limit is None:
        raise StepFailed("the server's message limit", "none given (--max-message-bytes)")
    return int(limit)


def _straddling_id(spec: dict[str, Any], variables: dict[str, Any]) -> bytes:
    """A malformed line whose ``"ipcReqID":<id>`` straddles byte 4096 (padded past the limit with ``over``).

    A server that recovers the id from the first 4096 bytes only sees the
    first digits of it: CORR-6 wants the whole id or none, never a prefix
    that could be another request's id.
    """
    digits = str(spec["id"]).encode()
    prefix = b'{"uri":"' + ECHO_URI.encode() + b'","pad":"'
    member = b'","ipcReqID":'
    pad = ID_HEAD_BYTES - len(prefix) - len(member) - len(digits) // 2
    line = prefix + b"p" * pad + member + digits + b',"broken":}'
    if "over" not in spec:
        return line
    over: int = spec["over"]
    return line + b" " * (_limit(variables) + over - len(line))


def _long_uri(pending: dict[Any, Any], spec: dict[str, Any]) -> bytes:
    """A request whose uri is ``bytes`` long and holds its id; registers its answer."""
    request_id = spec["id"]
    echo = spec.get("route") == "echo"
    head = f"{ECHO_URI}/{request_id}/" if echo else f"{CHURN_URI}{request_id}/"
    uri = head + padded_string(spec["bytes"] - len(head))
    if echo:
        pending[request_id] = {"id": request_id}
        return encode_message({"ipcReqID": request_id, "uri": uri, "data": {"id": request_id}})
    pending[request_id] = {"code": "no_handler_found", "message": f"No handler found for {uri}"}
    return encode_message({"ipcReqID": request_id, "uri": uri})
