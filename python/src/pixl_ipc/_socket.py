"""The listening socket: safe binding, systemd socket activation, safe removal.

Start-up never destroys what is not its own (LIFE-6): the path is examined
with ``lstat`` (a symbolic link is never followed), a live server is left
serving, and only a stale socket (connecting is refused) is replaced. Shutdown
removes the path only while it is still the socket this process bound (LIFE-7).
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import StartupError

__all__ = [
    "LISTEN_BACKLOG",
    "Listener",
    "activated_socket",
    "bind_unix",
    "listen_fds",
    "raise_descriptor_limit",
    "unlink_if_ours",
]

#: systemd passes activated sockets from this descriptor on (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3
#: The listen backlog: Node's default, the original's.
LISTEN_BACKLOG = 511
# How long the liveness probe waits on a socket that neither accepts nor refuses.
_PROBE_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening socket and what is needed to remove its path later.

    Attributes:
        sock: the listening socket (non-blocking).
        path: the filesystem path it is bound to.
        identity: ``(st_dev, st_ino)`` of the path right after bind, or None
            for an inherited socket, which this process must never remove.
    """

    sock: socket.socket
    path: str
    identity: tuple[int, int] | None


def _probe(path: str) -> str:
    """Is a server accepting on ``path``? Returns "alive", "stale" or an error text."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return "stale"
    except (BlockingIOError, TimeoutError):
        # A full backlog: someone listens there but is busy.
        return "alive"
    except FileNotFoundError:
        return "gone"
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        probe.close()
    return "alive"


def _clear_path(path: str) -> None:
    """Make ``path`` free to bind, or raise StartupError leaving it untouched (LIFE-6)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartupError(f"cannot examine socket path {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        kind = (
            "a symbolic link"
            if stat.S_ISLNK(info.st_mode)
            else "a directory"
            if stat.S_ISDIR(info.st_mode)
            else "a regular file"
            if stat.S_ISREG(info.st_mode)
            else "not a socket"
        )
        raise StartupError(f"refusing to start: {path} exists and is {kind}; it was left untouched")
    state = _probe(path)
    if state == "alive":
        raise StartupError(f"refusing to start: another server is accepting connections on {path}")
    if state == "gone":
        return
    if state != "stale":
        raise StartupError(f"refusing to start: cannot check the socket at {path}: {state}")
    # A stale socket left by a server that died: replace it. Only unlink if
    # it is still the same inode that was probed.
    try:
        again = os.lstat(path)
        if (again.st_dev, again.st_ino) == (info.st_dev, info.st_ino):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StartupError(f"cannot remove the stale socket {path}: {exc.strerror}") from None


def _chmod_own_socket(path: str, mode: int) -> tuple[int, int]:
    """Set the mode of the socket this process just bound at ``path``, following nothing.

    ``chmod(path)`` would follow a symbolic link swapped in after bind by
    anyone who can write the directory, and change the mode of its target.
    Instead the entry at ``path`` is opened without following it (O_PATH |
    O_NOFOLLOW), checked to be a socket of this user with no other link, and
    the mode is set through that descriptor, on that inode alone.

    Returns:
        ``(st_dev, st_ino)`` of the socket file.

    Raises:
        StartupError: the entry is not such a socket, or the mode cannot be set.
    """
    o_path = getattr(os, "O_PATH", None)
    if o_path is None:
        # No O_PATH (not Linux): lchmod never follows a link.
        try:
            os.chmod(path, mode, follow_symlinks=False)
        except (NotImplementedError, OSError) as exc:
            raise StartupError(f"cannot set the mode of {path} without following links: {exc}") from None
        info = os.lstat(path)
        if not stat.S_ISSOCK(info.st_mode):
            raise StartupError(f"refusing to start: {path} was replaced while starting")
        return info.st_dev, info.st_ino
    try:
        fd = os.open(path, o_path | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise StartupError(
            f"refusing to start: {path} was replaced while starting ({exc.strerror})"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
            raise StartupError(f"refusing to start: {path} was replaced while starting")
        try:
            # chmod through /proc reaches the inode the descriptor holds (fchmod
            # does not work on an O_PATH descriptor).
            os.chmod(f"/proc/self/fd/{fd}", mode)
        except OSError as exc:
            raise StartupError(f"cannot set the mode of {path}: {exc.strerror}") from None
        return info.st_dev, info.st_ino
    finally:
        os.close(fd)


def _listens_at(sock: socket.socket, path: str) -> tuple[bool, list[socket.socket]]:
    """Whether connecting to ``path`` reaches ``sock`` (a listening socket of this process).

    Peers may connect as soon as ``sock`` listens, ahead of the probe: their
    connections are accepted on the way to the probe's and returned, to be
    served like any other (closing them would refuse a client for being early).
    """
    early: list[socket.socket] = []
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except OSError:
        return False, early
    deadline = time.monotonic() + _PROBE_TIMEOUT
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                accepted, _ = sock.accept()
            except OSError:
                break
            if not hasattr(socket, "SO_PEERCRED"):
                # Whose it is cannot be told: serve it (the probe's only sees an end).
                early.append(accepted)
                return True, early
            raw = accepted.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            if int.from_bytes(raw[:4], sys.byteorder, signed=True) == os.getpid():
                accepted.close()
                return True, early
            early.append(accepted)
        return False, early
    finally:
        probe.close()
        sock.settimeout(None)


def bind_unix(path: str, mode: int | None) -> tuple[Listener, list[socket.socket]]:
    """Bind and listen on ``path``, applying ``mode`` before listening (SEC-1).

    The mode is set on the bound socket's own inode, never through a link
    someone swapped in; and before the server reports ready it checks that
    connecting to ``path`` reaches its socket, so that it never serves on a
    socket that was unlinked meanwhile.

    Args:
        path: the socket path.
        mode: the permission bits for the socket file, or None to leave them.

    Returns:
        The listener, and the connections of peers that connected while it
        was being checked, accepted already and still to be served.

    Raises:
        StartupError: the path is taken (a live server, something that is not
            a socket), cannot be bound, or was replaced while starting; the
            message says which.
    """
    _clear_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"refusing to start: {path} was taken while starting") from None
            raise StartupError(f"cannot bind {path}: {exc.strerror}") from None
        # Before listen(): no peer can connect before the mode applies.
        if mode is not None:
            identity = _chmod_own_socket(path, mode)
        else:
            try:
                info = os.lstat(path)
            except OSError as exc:
                raise StartupError(
                    f"refusing to start: {path} was removed while starting ({exc.strerror})"
                ) from None
            identity = (info.st_dev, info.st_ino)
        try:
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            unlink_if_ours(Listener(sock, path, identity))
            raise StartupError(f"cannot listen on {path}: {exc.strerror}") from None
        ours, early = _listens_at(sock, path)
        if not ours:
            for peer in early:
                peer.close()
            # Someone replaced the socket file: what is at the path is theirs.
            raise StartupError(f"refusing to start: {path} was replaced while starting")
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return Listener(sock, path, identity), early


def raise_descriptor_limit(wanted: int) -> int:
    """Raise the soft limit of open descriptors (RLIMIT_NOFILE) to ``wanted``, within the hard limit.

    Never lowers it.

    Returns:
        The soft limit now in force.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return soft
        return target
    return soft


def listen_fds(environ: Mapping[str, str] | None = None) -> int:
    """How many sockets systemd socket activation passed to this process; 0 when not activated.

    Reads ``LISTEN_PID`` and ``LISTEN_FDS`` (sd_listen_fds(3)); they apply only
    when ``LISTEN_PID`` is this process.
    """
    env = os.environ if environ is None else environ
    try:
        if int(env.get("LISTEN_PID", "")) != os.getpid():
            return 0
        return max(0, int(env.get("LISTEN_FDS", "")))
    except ValueError:
        return 0


def activated_socket(environ: dict[str, str] | None = None) -> socket.socket | None:
    """The listening socket passed by systemd socket activation, if any.

    See :func:`listen_fds`. The variables are removed so that child
    processes do not take the socket for theirs.

    Returns:
        The socket on descriptor 3, or None when not activated.

    Raises:
        StartupError: the variables are set for this process but descriptor 3
            is not a listening AF_UNIX stream socket.
    """
    env = os.environ if environ is None else environ
    if listen_fds(env) < 1:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise StartupError(f"socket activation: descriptor 3 is not a socket: {exc.strerror}") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise StartupError("socket activation: descriptor 3 is not an AF_UNIX stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise StartupError("socket activation: descriptor 3 is not listening")
    sock.set_inheritable(False)
    sock.setblocking(False)
    return sock


def unlink_if_ours(listener: Listener) -> bool:
    """Remove the socket path if it is still the one bound by ``listener`` (LIFE-7).

    Returns:
        True if the path was removed.
    """
    if listener.identity is None:
        return False
    try:
        info = os.lstat(listener.path)
    except OSError:
        return False
    if (info.st_dev, info.st_ino) != listener.identity:
        return False
    try:
        os.unlink(listener.path)
    except OSError:
        return False
    return True
