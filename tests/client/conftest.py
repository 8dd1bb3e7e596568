"""Fixtures for client tests: scripted peers and resource counting."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer import Script, ScriptedPeer


@pytest.fixture
def peer_factory(short_tmp: Path) -> Iterator[Callable[..., ScriptedPeer]]:
    """Start scripted peers on fresh socket paths; all are stopped afterwards."""
    peers: list[ScriptedPeer] = []

    def factory(script: Script | None = None, path: str | None = None) -> ScriptedPeer:
        peer = ScriptedPeer(
            path or str(short_tmp / f"p{len(peers)}.sock"),
            *([script] if script else []),
        )
        peer.__enter__()
        peers.append(peer)
        return peer

    yield factory
    for peer in peers:
        peer.stop()
    errors = [e for peer in peers for e in peer.errors]
    assert not errors, errors
