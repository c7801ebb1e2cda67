"""Shared test configuration.

Hypothesis runs derandomized and without its example database by default, so the core's
property tests are deterministic and write nothing to disk.  Set
``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples on each run.
Runs the command line records go to a temporary store (``PARAGENTS_HOME``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
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


@pytest.fixture(autouse=True, scope="session")
def _private_run_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs recorded by the CLI go to a store of the test session's own, not the user's."""
    old = os.environ.get("PARAGENTS_HOME")
    os.environ["PARAGENTS_HOME"] = str(tmp_path_factory.mktemp("paragents_home"))
    yield
    if old is None:
        os.environ.pop("PARAGENTS_HOME", None)
    else:
        os.environ["PARAGENTS_HOME"] = old
