"""The server's JavaScript conversions (String() of a uri, Number() of a delay) agree with Node's.

Each value is converted by :mod:`pixl_ipc._js` and by Node itself, which
stands for the original here; the values are JSON texts so both sides read
the same input.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from pixl_ipc._js import js_number, js_string
from pixl_ipc.framing import decode_json

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

#: JSON texts of values a uri or a delay may hold.
VALUES = [
    "42",
    "-7",
    "0",
    "-0.0",
    "1.0",
    "1.5",
    "0.1",
    "1e21",
    "1e20",
    "123456789012345680000",
    "1e-7",
    "1e-6",
    "0.000001234",
    "5e-324",
    "1.7976931348623157e308",
    "9007199254740993",
    "12345678901234567890",
    "true",
    "false",
    "null",
    "{}",
    '{"a":1}',
    "[]",
    '["/a","b"]',
    "[null,1,[2,[3]],[]]",
    "[[],[]]",
    '[{"a":1},true]',
    '"300"',
    '" 300 "',
    '"0x10"',
    '"0X1f"',
    '"0b101"',
    '"0o17"',
    '"-0x10"',
    '"1e3"',
    '".5"',
    '"5."',
    '"+5"',
    '"-5"',
    '""',
    '"  "',
    '"Infinity"',
    '"-Infinity"',
    '"inf"',
    '"nan"',
    '"1_000"',
    '"12px"',
    '"\\u00a0 7 \\u2028"',
    "[5]",
    '["7"]',
    '["1","2"]',
    "[null]",
    "2147483648",
]


def _node(expression: str) -> list[str]:
    script = f"const values = JSON.parse(process.argv[1]); console.log(JSON.stringify(values.map(v => {expression})));"
    # Node parses the JSON texts itself, big integers included, as the original would.
    texts = "[" + ",".join(VALUES) + "]"
    out = subprocess.run(
        [NODE or "node", "-e", script, texts],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def test_string_of_each_value_is_javascripts() -> None:
    expected = _node("String(v)")
    got = [js_string(decode_json(v.encode())) for v in VALUES]
    assert dict(zip(VALUES, got, strict=True)) == dict(
        zip(VALUES, expected, strict=True)
    )


def test_number_of_each_value_is_javascripts() -> None:
    # Node writes NaN and Infinity as null: compare their text instead.
    expected = _node("String(Number(v))")
    got = [js_string(js_number(decode_json(v.encode()))) for v in VALUES]
    assert dict(zip(VALUES, got, strict=True)) == dict(
        zip(VALUES, expected, strict=True)
    )
