"""Starting and stopping the servers under test, and looking at their socket paths.

:func:`started_server` runs a server command on a temporary socket for the
length of a ``with`` block; :class:`Spawned` is a server a lifecycle case
starts itself (LIFE-6, LIFE-7, SEC-1, SEC-2); :func:`fingerprint` tells what
is at a path without following a symbolic link.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .wirekit import fill_command

__all__ = [
    "DEFAULT_CHMOD",
    "PREPARED",
    "ServerStartError",
    "Spawned",
    "accepts",
    "command_argv",
    "describe_fingerprint",
    "fingerprint",
    "log_tail",
    "started_server",
    "write_access_config",
]

#: The socket mode the server under test is started with: the original's default.
DEFAULT_CHMOD = "777"


class ServerStartError(RuntimeError):
    """A server command did not come up (exited, or never accepted connections)."""


def command_argv(command: str, **values: str) -> list[str]:
    """A server or adapter command as an argument vector, its placeholders filled.

    ``{python}`` is this interpreter unless ``values`` says otherwise; the
    command is split with :mod:`shlex`, no shell is used.
    """
    return fill_command(command, {"python": sys.executable, **values})


def write_access_config(directory: str, *, allow_runner: bool) -> str:
    """Write the ``{access_config}`` file: ``{"allowed_uids": [...]}`` (SEC-2).

    Args:
        directory: where to write it.
        allow_runner: allow the runner's own uid, or only a uid that is not it.

    Returns:
        The file's path.
    """
    uid = os.getuid()
    allowed = uid if allow_runner else (uid + 4242) % 60000 or 4242
    path = os.path.join(directory, "access-allowed.json" if allow_runner else "access-refused.json")
    Path(path).write_text(json.dumps({"allowed_uids": [allowed]}) + "\n", encoding="utf-8")
    return path


class Spawned:
    """A server process a lifecycle case starts itself, with its output kept."""

    def __init__(
        self, name: str, path: str, command: str, cwd: Path | None, chmod: str, *, allow_runner: bool = True
    ) -> None:
        self.name = name
        self.path = path
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        access = write_access_config(os.path.dirname(path), allow_runner=allow_runner)
        self.proc = subprocess.Popen(
            command_argv(command, socket=path, chmod=chmod, access_config=access),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )

    def output_tail(self) -> str:
        """The end of what it wrote on stdout and stderr."""
        return log_tail(self.log)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; its output is then gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


PREPARED = {
    "regular_file": "the regular file",
    "directory": "the directory",
    "symlink": "the symbolic link",
    "stale_socket": "the stale socket",
    "same_as": "the live server's socket",
}


def fingerprint(path: str) -> Any:
    """What is at a path, without following a symbolic link: kind, inode, contents."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return ("symlink", info.st_ino, os.readlink(path))
    if stat.S_ISREG(info.st_mode):
        return ("file", info.st_ino, Path(path).read_bytes())
    if stat.S_ISDIR(info.st_mode):
        return ("directory", info.st_ino, tuple(sorted(os.listdir(path))))
    if stat.S_ISSOCK(info.st_mode):
        return ("socket", info.st_ino, None)
    return ("other", info.st_ino, None)


def describe_fingerprint(fingerprint: Any) -> str:
    if fingerprint is None:
        return "nothing"
    return f"a {fingerprint[0]} (inode {fingerprint[1]})"


def accepts(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


@contextlib.contextmanager
def started_server(
    command: str,
    *,
    cwd: Path | None = None,
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start a server command on a fresh temporary socket; stop it afterwards.

    ``{socket}``, ``{python}``, ``{chmod}`` (the original's default mode,
    777) and ``{access_config}`` (a JSON file ``{"allowed_uids": [<the
    runner's uid>]}``) in the command are substituted. The server is
    ready when its socket accepts a connection. On exit it gets SIGTERM, then
    SIGKILL after 5 seconds.

    Args:
        command: the command line (no shell).
        cwd: its working directory.
        timeout: seconds to wait for the socket to accept.
        env: extra environment variables.

    Yields:
        The socket path.

    Raises:
        ServerStartError: the server exited or did not accept connections in time.
    """
    directory = tempfile.mkdtemp(prefix="pxc-")
    path = os.path.join(directory, "server.sock")
    access = write_access_config(directory, allow_runner=True)
    argv = command_argv(command, socket=path, chmod=DEFAULT_CHMOD, access_config=access)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below, after the server stops
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise ServerStartError(f"cannot start {command!r}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while not (os.path.exists(path) and accepts(path)):
            if proc.poll() is not None:
                raise ServerStartError(f"{command!r} exited with status {proc.returncode}: {log_tail(log)}")
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{command!r} did not accept connections within {timeout} s: {log_tail(log)}"
                )
            time.sleep(0.02)
        yield path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def log_tail(log: Any) -> str:
    log.seek(0)
    text: str = log.read().decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", text[-600:]).strip()
    return text or "(no output)"
