"""Hides uvloop: with this directory first on PYTHONPATH, ``import uvloop`` fails
as it does where the ``uvloop`` extra is not installed, so the kit runs on plain
asyncio (``make test`` runs part of the suite that way)."""

raise ImportError("uvloop is hidden: tests/without_uvloop is on PYTHONPATH")
