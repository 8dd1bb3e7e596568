"""CORR-6: the id recovered from a line that cannot be parsed is the whole id, or none."""

from __future__ import annotations

import pytest
from pixl_ipc.protocol import recover_id


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"ipcReqID":12345,"uri":', 12345),
        (b'{"ipcReqID": 12 }', 12),
        (b'{"ipcReqID":"rq7","uri":"/x"', "rq7"),
        (b'{"ipcReqID":-1.5e3}', -1500.0),
        # Cut where the head ends: the number may go on past it.
        (b'{"uri":"/x","ipcReqID":12', None),
        (b'{"uri":"/x","ipcReqID":12.', None),
        (b'{"uri":"/x","ipcReqID":12e', None),
        (b'{"uri":"/x","ipcReqID":"rq', None),
    ],
)
def test_recover_id_takes_a_number_only_when_it_visibly_ends(
    head: bytes, expected: object
) -> None:
    assert recover_id(head) == expected


def test_recover_id_never_takes_a_number_cut_at_byte_4096() -> None:
    prefix = b'{"uri":"/x","pad":"' + b"p" * 4062 + b'","ipcReqID":'
    line = prefix + b"12345}"
    assert len(prefix) < 4096 < len(prefix) + 5
    assert recover_id(line[:4096]) is None
    assert recover_id(line) is None  # the search stops at 4096 bytes too


def test_recover_id_never_takes_a_string_cut_at_byte_4096() -> None:
    prefix = b'{"uri":"/x","pad":"' + b"p" * 4059 + b'","ipcReqID":"rq12'
    assert len(prefix) == 4096
    assert recover_id(prefix + b'345"}') is None
