"""Settings of the reliability tests: hypothesis profiles.

The ``ci`` profile (the default) is derandomized and keeps no example
database, so every run tries the same examples and writes nothing; set
``PIXL_HYPOTHESIS_PROFILE=explore`` for a randomized run with more examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("PIXL_HYPOTHESIS_PROFILE", "ci"))
