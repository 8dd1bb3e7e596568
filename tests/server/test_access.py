"""Access control by kernel-verified peer credentials (SEC-2, SEC-3)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pixl_ipc.server import IPCServer, Request
from server_helpers import RawClient, ServerThread, echo
from support import wait_until

OTHER_ID = 4_000_000  # an id no test process runs as


def test_refused_peer_gets_one_access_denied_with_null_id_and_is_closed(
    sock_path: str,
) -> None:
    calls: list[Request] = []
    server = IPCServer(sock_path, allowed_uids=[OTHER_ID])
    server.add_uri_handler("/record", "record", calls.append)
    with ServerThread(server) as running, RawClient(sock_path) as client:
        client.send(b'{"ipcReqID":"rq0","uri":"/record","data":1,"pid":1}\n')
        received = client.read_until_eof(5)
        lines = received.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(
            b'{"ipcReqID":null,"code":"access_denied","message":'
        )
        stats = running.call(server.get_stats)
        assert stats["accessDenied"] == 1
        assert stats["connections"] == 0
    assert calls == []  # no request of a refused peer is processed


def test_allowed_uid_is_served(sock_path: str) -> None:
    with (
        ServerThread(IPCServer(sock_path, allowed_uids=[OTHER_ID, os.getuid()])),
        RawClient(sock_path) as client,
    ):
        assert echo(client, "in")["data"] == "in"


def test_allowed_gid_is_served_even_if_the_uid_is_not_listed(sock_path: str) -> None:
    server = IPCServer(sock_path, allowed_uids=[OTHER_ID], allowed_gids=[os.getgid()])
    with ServerThread(server), RawClient(sock_path) as client:
        assert echo(client, "by group")["data"] == "by group"


def test_gid_not_listed_is_refused(sock_path: str) -> None:
    with (
        ServerThread(IPCServer(sock_path, allowed_gids=[OTHER_ID])),
        RawClient(sock_path) as client,
    ):
        assert b'"code":"access_denied"' in client.read_until_eof(5)


def test_refusal_is_logged(sock_path: str, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level("WARNING", logger="pixl_ipc"),
        ServerThread(IPCServer(sock_path, allowed_uids=[OTHER_ID])),
        RawClient(sock_path) as client,
    ):
        client.read_until_eof(5)
        assert wait_until(
            lambda: any("access denied" in r.getMessage() for r in caplog.records),
            timeout=5,
        )
    message = next(
        r.getMessage() for r in caplog.records if "access denied" in r.getMessage()
    )
    assert f"uid={os.getuid()}" in message


def test_config_block_accepts_allowed_ids(short_tmp: Path) -> None:
    path = str(short_tmp / "c.sock")
    server = IPCServer.from_config(
        {"socket_path": path, "allowed_uids": [OTHER_ID], "allowed_gids": []}
    )
    with ServerThread(server), RawClient(path) as client:
        reply: Any = client.read_until_eof(5)
        assert b"access_denied" in reply
