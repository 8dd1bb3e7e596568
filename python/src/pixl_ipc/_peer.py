"""Who is on the other end of a connection, and whether it may be served (SEC-2).

The kernel reports the peer's credentials as they were when it connected:
SO_PEERCRED gives its pid, uid and gid (the effective ones), and on Linux
SO_PEERGROUPS its supplementary groups. Neither can be forged by the peer,
unlike the request's ``pid`` claim (SEC-3), and neither goes through the pid:
reading ``/proc/PID/status`` instead would race with the pid being reused.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Set
from typing import Any, NamedTuple

__all__ = ["AccessRule", "PeerCredentials", "read_peer_credentials"]

_PEERCRED = struct.Struct("3i")
# SO_PEERGROUPS (Linux 4.13) is 59 except on the architectures that number
# their socket options their own way; the socket module does not export it.
_SO_PEERGROUPS: int | None = getattr(socket, "SO_PEERGROUPS", None)
if _SO_PEERGROUPS is None and sys.platform.startswith("linux"):
    import platform

    if not platform.machine().startswith(("sparc", "parisc")):
        _SO_PEERGROUPS = 59
# Groups read at most: NGROUPS_MAX is 65536 on Linux.
_MAX_GROUPS = 65536


class PeerCredentials(NamedTuple):
    """The kernel-verified identity of the peer process (SO_PEERCRED, SEC-2).

    Unlike the request's ``pid`` claim (SEC-3), these can be trusted. Fields are
    None where the platform does not report them.

    Attributes:
        pid: the peer's process id when it connected.
        uid: its effective user id.
        gid: its effective group id.
        groups: its supplementary group ids (SO_PEERGROUPS); empty where the
            platform does not report them.
    """

    pid: int | None
    uid: int | None
    gid: int | None
    groups: tuple[int, ...] = ()


UNKNOWN_PEER = PeerCredentials(None, None, None)


def _peer_groups(sock: Any) -> tuple[int, ...]:
    if _SO_PEERGROUPS is None:
        return ()
    size = 64 * 4
    while True:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, size)
        except OSError as exc:
            # ERANGE: more groups than the buffer holds; others: not supported.
            if exc.errno == 34 and size < _MAX_GROUPS * 4:
                size *= 16
                continue
            return ()
        return struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])


def read_peer_credentials(sock: Any) -> PeerCredentials:
    """The credentials of the peer of a connected AF_UNIX socket (or socket-like object).

    Returns:
        The credentials, or :data:`UNKNOWN_PEER` where they cannot be read.
    """
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return UNKNOWN_PEER
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return UNKNOWN_PEER
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid, _peer_groups(sock))


class AccessRule:
    """Which peers a server serves (SEC-2): everyone, or listed users and groups.

    A peer is allowed when its uid is in ``uids``, or its gid or one of its
    supplementary groups is in ``gids``.

    Args:
        uids: the allowed user ids, or None.
        gids: the allowed group ids, or None. With both None, everyone is allowed.
    """

    __slots__ = ("gids", "uids")

    def __init__(self, uids: Set[int] | None = None, gids: Set[int] | None = None) -> None:
        self.uids = uids
        self.gids = gids

    @property
    def open(self) -> bool:
        """True when every peer is allowed."""
        return self.uids is None and self.gids is None

    def allows(self, peer: PeerCredentials) -> bool:
        """Whether ``peer`` may be served."""
        uids, gids = self.uids, self.gids
        if uids is None and gids is None:
            return True
        if uids is not None and peer.uid in uids:
            return True
        return gids is not None and (peer.gid in gids or not gids.isdisjoint(peer.groups))
