"""pixl_ipc.sdnotify: datagrams to NOTIFY_SOCKET, by path and in the abstract namespace."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
from pixl_ipc.sdnotify import notify, notify_address


def test_notify_sends_one_datagram_of_lines(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    assert notify("READY=1", "STATUS=listening", environ={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening"


def test_notify_reaches_an_abstract_namespace_socket() -> None:
    name = f"pixl-ipc-test-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert notify("STOPPING=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_notify_socket_nothing_is_sent() -> None:
    assert notify("READY=1", environ={}) is False
    assert notify_address({"NOTIFY_SOCKET": ""}) is None
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert notify_address({"NOTIFY_SOCKET": "@"}) is None


def test_a_missing_notify_socket_is_logged_not_raised(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pixl_ipc.sdnotify"):
        sent = notify("READY=1", environ={"NOTIFY_SOCKET": str(short_tmp / "gone")})
    assert sent is False
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize("line", ["READY", "STATUS=a\nREADY=1"])
def test_a_line_that_is_not_an_assignment_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        notify(line, environ={})
