"""Starting and stopping the servers under test, and looking at their socket paths.

:class:`ServerUnderTest` is the server the runner starts for a run
(``--start``), on a temporary socket, watched so that one that dies is
reported and started again; :func:`running_server` gives one for the length
of a ``with`` block (:func:`started_server` only its socket path).
:class:`Spawned` is a server a lifecycle case starts itself (LIFE-6, LIFE-7,
SEC-1, SEC-2); :func:`fingerprint` tells what is at a path without following
a symbolic link; :func:`gone_reason` tells whether a
server the runner did not start is gone.
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
    "ServerUnderTest",
    "Spawned",
    "accepts",
    "gone_reason",
    "running_server",
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
        #: What a ``replace_path`` step put at the path (its fingerprint).
        self.replaced_by: Any = None
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


def gone_reason(path: str, timeout: float = 5.0) -> str | None:
    """Why nothing serves at ``path`` any more, or None when something may still.

    Only a definite answer counts: the path is gone, or connecting is
    refused. A connection that is slow to be accepted (a loaded server)
    does not.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(path)
    except FileNotFoundError:
        return f"there is no socket at {path}"
    except ConnectionRefusedError:
        return f"nothing accepts connections at {path} any more (connection refused)"
    except OSError:
        return None
    finally:
        probe.close()
    return None


class ServerUnderTest:
    """A server the runner starts on a temporary socket, watches, and restarts.

    ``{socket}``, ``{python}``, ``{chmod}`` (the original's default mode,
    777) and ``{access_config}`` (a JSON file ``{"allowed_uids": [<the
    runner's uid>]}``) in the command are filled in. The server is ready when
    its socket accepts a connection. It is stopped with SIGTERM, then SIGKILL
    after 5 seconds (spec/SERVER-UNDER-TEST.md).

    Args:
        command: the command line (split with shlex, no shell).
        cwd: its working directory (default: the current one).
        timeout: seconds to wait for the socket to accept, at each start.
        env: extra environment variables.
    """

    def __init__(
        self,
        command: str,
        *,
        cwd: Path | None = None,
        timeout: float = 15.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.cwd = cwd
        self.timeout = timeout
        self.env = {**os.environ, **(env or {})}
        self.directory = tempfile.mkdtemp(prefix="pxc-")
        self.path = os.path.join(self.directory, "server.sock")
        self.access_config = write_access_config(self.directory, allow_runner=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    @property
    def pid(self) -> int | None:
        """The running server's process id."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def exited(self, wait_s: float = 0.0) -> int | None:
        """The exit status when the server process has ended (within ``wait_s``), else None."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(wait_s) if wait_s else self.proc.poll()
        except subprocess.TimeoutExpired:
            return None

    def output_tail(self) -> str:
        """The end of what the server wrote on stdout and stderr."""
        return log_tail(self.log) if self.log is not None else "(no output)"

    def start(self) -> None:
        """Start the command and wait until its socket accepts a connection.

        Raises:
            ServerStartError: it could not be started, exited, or did not accept in time.
        """
        argv = command_argv(
            self.command, socket=self.path, chmod=DEFAULT_CHMOD, access_config=self.access_config
        )
        if self.log is not None:
            self.log.close()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close() or the next start
        try:
            self.proc = subprocess.Popen(
                argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=self.env
            )
        except OSError as exc:
            raise ServerStartError(f"cannot start {self.command!r}: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        while not (os.path.exists(self.path) and accepts(self.path)):
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"{self.command!r} exited with status {self.proc.returncode}: {self.output_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.command!r} did not accept connections within {self.timeout:g} s:"
                    f" {self.output_tail()}"
                )
            time.sleep(0.02)

    def restart(self) -> None:
        """Start the command again after its process ended (its stale socket file removed first).

        Raises:
            ServerStartError: as :meth:`start`.
        """
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 seconds."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self.log is not None:
            self.log.close()
            self.log = None
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running_server(
    command: str,
    *,
    cwd: Path | None = None,
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
) -> Iterator[ServerUnderTest]:
    """A :class:`ServerUnderTest`, started, for the length of a ``with`` block.

    Give it to :func:`~.server_runner.run_server_cases`, so that a server that
    dies is reported and started again, and its descriptors can be counted.

    Raises:
        ServerStartError: the server exited or did not accept connections in time.
    """
    server = ServerUnderTest(command, cwd=cwd, timeout=timeout, env=env)
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def started_server(
    command: str,
    *,
    cwd: Path | None = None,
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """As :func:`running_server`, but gives only the socket path.

    Raises:
        ServerStartError: the server exited or did not accept connections in time.
    """
    with running_server(command, cwd=cwd, timeout=timeout, env=env) as server:
        yield server.path


def log_tail(log: Any) -> str:
    log.seek(0)
    text: str = log.read().decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", text[-600:]).strip()
    return text or "(no output)"
