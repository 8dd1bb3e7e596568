"""``python -m pixl_ipc_conformance``: the same as the ``pixl-ipc-conformance`` command."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
