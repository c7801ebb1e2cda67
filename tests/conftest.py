"""Shared test configuration.

Hypothesis runs derandomized and without its example database by default, so the core's
property tests are deterministic and write nothing to disk.  Set
``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples on each run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "paragents",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "paragents"))
