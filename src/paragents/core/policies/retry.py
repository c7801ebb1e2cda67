"""Retry backoff: how long a failed task waits before its next attempt.

Exponential backoff with full-range jitter, seeded by the scheduler:
``delay(n) = min(max_s, base_s * factor**(n-1)) * (1 + jitter * u)`` with ``u`` uniform
in [-1, 1], for the n-th retry.  A server's Retry-After, when given, is a floor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        d = min(self.max_s, self.base_s * self.factor ** max(retry - 1, 0))
        if self.jitter:
            d *= 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return max(d, retry_after or 0.0, 0.0)
