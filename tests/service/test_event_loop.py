"""The server runs on uvloop when the extra is installed, and on plain asyncio without it.

``tests/without_uvloop`` on PYTHONPATH makes ``import uvloop`` fail as it does
where the extra is not installed; ``make test`` runs the CLI and service tests
and the server's conformance cases that way. This test shows the switch works.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from support import RawClient, start_server

HIDE_UVLOOP = str(Path(__file__).resolve().parents[1] / "without_uvloop")


def mapped_uvloop(pid: int) -> bool:
    """Has the process loaded uvloop's extension module?"""
    with open(f"/proc/{pid}/maps") as maps:
        return any("/uvloop/" in line for line in maps)


def echo_once(path: str) -> object:
    with RawClient(path) as client:
        client.send_json({"ipcReqID": "e", "uri": "/ipcserver/test/echo", "data": [1]})
        return client.read_message()


def test_without_uvloop_the_server_serves_on_plain_asyncio(short_tmp: Path) -> None:
    hidden = os.pathsep.join(filter(None, [HIDE_UVLOOP, os.environ.get("PYTHONPATH")]))
    server = start_server(str(short_tmp / "a.sock"), env={"PYTHONPATH": hidden})
    try:
        assert echo_once(server.path) == {"ipcReqID": "e", "data": [1]}
        assert not mapped_uvloop(server.pid)
    finally:
        assert server.stop() == 0
    assert not os.path.lexists(server.path)


@pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None
    or HIDE_UVLOOP in os.environ.get("PYTHONPATH", ""),
    reason="the uvloop extra is not installed, or hidden in this run",
)
def test_with_the_extra_the_server_runs_on_uvloop(short_tmp: Path) -> None:
    server = start_server(str(short_tmp / "u.sock"))
    try:
        assert echo_once(server.path) == {"ipcReqID": "e", "data": [1]}
        assert mapped_uvloop(server.pid)
    finally:
        server.stop()
