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
"""

from __future__ import annotations

from typing import Any

from .server_context import StepFailed
from .wirekit import ECHO_URI, echo_line, encode_message, padded_echo, resolve_vars

DELAY_URI = "/ipcserver/test/delay"

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
        limit = variables.get("max_message_bytes")
        if limit is None:
            raise StepFailed("the server's message limit", "none given (--max-message-bytes)")
        line, _ = padded_echo(spec["id"], limit + spec["over"])
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
    raise StepFailed("a known generator", kind)
