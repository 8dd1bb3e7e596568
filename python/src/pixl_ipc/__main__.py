"""``python -m pixl_ipc``: the command line."""

import sys

from .cli import main

sys.exit(main())
