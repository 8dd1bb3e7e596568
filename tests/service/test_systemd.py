"""The systemd units of examples/systemd, run as systemd would run them.

``systemd-socket-activate`` plays the .socket unit: it listens on the unit's
path (moved to a temporary directory) and starts the .service unit's
ExecStart (the kit's ``pixl-ipc`` instead of /opt/pixl-ipc's) on the first
connection. The test plays systemd's notification socket and reads what the
server tells it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import RawClient, wait_until

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "examples" / "systemd"
PIXL_IPC = str(Path(sys.executable).with_name("pixl-ipc"))
# Where the .service expects the kit's command to be installed.
INSTALLED_PIXL_IPC = "/opt/pixl-ipc/bin/pixl-ipc"

needs_systemd_tools = pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None
    or shutil.which("systemd-analyze") is None,
    reason="systemd-socket-activate and systemd-analyze are not installed",
)


def read_unit(path: Path) -> dict[str, list[str]]:
    """A unit file's settings as ``{"Section.Key": [values in order]}``."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


SERVICE = read_unit(UNITS / "pixl-ipc.service")
SOCKET = read_unit(UNITS / "pixl-ipc.socket")


def exec_start() -> list[str]:
    """The service's ExecStart with the kit's own ``pixl-ipc`` as the program."""
    (command,) = SERVICE["Service.ExecStart"]
    argv = shlex.split(command)
    assert argv[0] == INSTALLED_PIXL_IPC
    return [PIXL_IPC, *argv[1:]]


def notification(sock: socket.socket) -> dict[str, str]:
    """The next datagram, as its KEY=VALUE lines."""
    lines = sock.recv(4096).decode().split("\n")
    return dict(line.split("=", 1) for line in lines)


def test_the_units_are_a_notify_service_activated_by_its_socket() -> None:
    assert SERVICE["Service.Type"] == ["notify"]
    assert SERVICE["Unit.Requires"] == ["pixl-ipc.socket"]
    assert SOCKET["Socket.ListenStream"] == ["/run/pixl-ipc/pixl-ipc.sock"]
    assert "--socket" not in exec_start()
    # systemctl reload: SIGHUP, which reopens log files and reloads (test_signals).
    assert SERVICE["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # Restrictive by default; the comment names the original's 0777.
    assert SOCKET["Socket.SocketMode"] == ["0660"]
    assert "SocketMode=0777" in (UNITS / "pixl-ipc.socket").read_text()


@needs_systemd_tools
def test_the_units_pass_systemd_analyze_verify(short_tmp: Path) -> None:
    for name in ("pixl-ipc.service", "pixl-ipc.socket"):
        text = (UNITS / name).read_text().replace(INSTALLED_PIXL_IPC, PIXL_IPC)
        (short_tmp / name).write_text(text)
    proc = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(short_tmp / "pixl-ipc.service"),
            str(short_tmp / "pixl-ipc.socket"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@needs_systemd_tools
def test_the_service_is_rated_safe_by_systemd_analyze_security() -> None:
    # --threshold is in tenths: fail above an exposure of 1.0 out of 10.
    proc = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--threshold=10",
            str(UNITS / "pixl-ipc.service"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "SAFE" in proc.stdout.splitlines()[-1]


@needs_systemd_tools
def test_exec_start_serves_the_activated_socket_and_notifies(
    short_tmp: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    receiver, notify_path = notify_socket
    path = str(short_tmp / "pixl-ipc.sock")
    proc = subprocess.Popen(
        [
            "systemd-socket-activate",
            "--listen",
            path,
            "--setenv",
            f"NOTIFY_SOCKET={notify_path}",
            *exec_start(),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: os.path.exists(path), timeout=20)
        # The first connection starts the server, which answers it.
        with RawClient(path, timeout=30) as client:
            client.send_json(
                {"ipcReqID": "a", "uri": "/ipcserver/test/echo", "data": "up"}
            )
            assert client.read_message() == {"ipcReqID": "a", "data": "up"}
        ready = notification(receiver)
        assert ready == {"READY": "1", "STATUS": f"listening on {path}"}

        proc.send_signal(signal.SIGTERM)
        stopping = notification(receiver)
        assert stopping["STOPPING"] == "1"
        assert stopping["STATUS"].startswith("stopping")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
        proc.stderr.close()
    assert f"listening on {path}\n" in log
    # The socket is the service manager's: the server leaves it in place.
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_serve_notifies_an_abstract_socket_without_activation(
    short_tmp: Path,
) -> None:
    name = f"pixl-ipc-test-{os.getpid()}-{short_tmp.name}"
    path = str(short_tmp / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(20)
        proc = subprocess.Popen(
            [PIXL_IPC, "serve", "--socket", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": "@" + name},
        )
        try:
            assert notification(receiver) == {
                "READY": "1",
                "STATUS": f"listening on {path}",
            }
            # READY=1 comes once the socket accepts connections.
            with RawClient(path) as client:
                client.send_json(
                    {"ipcReqID": 1, "uri": "/ipcserver/test/echo", "data": 2}
                )
                assert client.read_message() == {"ipcReqID": 1, "data": 2}
            proc.send_signal(signal.SIGTERM)
            assert notification(receiver)["STOPPING"] == "1"
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not os.path.lexists(path)
