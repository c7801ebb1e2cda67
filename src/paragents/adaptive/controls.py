"""Controls: small feedback rules, each deciding one kind of adaptation.

Theory of operation
-------------------
Each control is a pure object fed observations (from :mod:`.monitors`) and asked for a
decision; none touches the scheduler or a driver (the manager does).  They are
independent: any subset may be switched on.

* :class:`Aimd` — concurrency of one endpoint by additive increase, multiplicative
  decrease (TCP congestion control): until the first overload each success adds one
  slot (slow start: the limit doubles per window), then each success adds ``increase /
  limit`` (one slot per window of ``limit`` successes) while the latency EWMA is under its target (if one
  is set); a 429 (or a latency past the target) multiplies the limit by ``decrease``, at
  most once per ``cooldown_s`` so that one burst of 429s from the same overload cuts
  once.  The limit stays within ``[floor, ceiling]``.
* :class:`DurationEstimator` — per task kind, an EWMA of ``measured x speed / declared``
  (the factor by which the kind's declared durations are off).  A factor is *published*
  once ``min_samples`` were seen and it moved more than ``tolerance`` (relative) from the
  one last published; the manager then rescales the kind's unstarted tasks.
* :class:`HedgeTrigger` — per task kind, a streaming ``quantile`` (P-square) of the
  normalised duration (``latency x speed / estimate``).  A running attempt whose elapsed
  normalised time passes ``factor x`` that quantile is a straggler, once the kind has
  ``min_samples``; before that, one past ``cold_factor x`` its own estimate (the
  normalised time of an attempt that runs as estimated is 1).  Extra calls are capped: hedges may not exceed ``budget`` x attempts
  dispatched so far.
* :class:`OutlierDetector` — an agent is *slow* when its normalised-duration EWMA is at
  least ``slow_factor`` x the median of the agents', or *failing* when its error rate is at
  least ``error_rate`` (each after ``min_samples`` outcomes).  An agent flagged is avoided
  for ``probation_s``, then let back with its statistics forgotten (ejection with
  probation, as service meshes do with outlier hosts).
* :class:`ReplanTrigger` — a task that failed ``after_failures`` times asks once for the
  remaining graph to be rewritten.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from .monitors import Ewma, P2Quantile, Rate

__all__ = ["Aimd", "DurationEstimator", "HedgeTrigger", "OutlierDetector", "ReplanTrigger"]


class Aimd:
    """Additive-increase / multiplicative-decrease concurrency limit of one endpoint."""

    __slots__ = (
        "_cut_at", "ceiling", "cooldown_s", "decrease", "floor", "increase", "latency", "slow_start", "target_s", "value",
    )

    def __init__(
        self,
        initial: int,
        ceiling: int,
        *,
        floor: int = 1,
        increase: float = 1.0,
        decrease: float = 0.7,
        latency_target_s: float | None = None,
        cooldown_s: float = 1.0,
    ) -> None:
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got {floor} and {ceiling}")
        if not 0 < decrease < 1 or increase <= 0:
            raise ValueError("need 0 < decrease < 1 and increase > 0")
        self.floor, self.ceiling = floor, ceiling
        self.increase, self.decrease = increase, decrease
        self.target_s = latency_target_s
        self.cooldown_s = cooldown_s
        self.value = float(min(max(initial, floor), ceiling))
        self.latency = Ewma(0.2)
        self.slow_start = True
        self._cut_at = -float("inf")

    @property
    def limit(self) -> int:
        return int(self.value)

    def success(self, latency: float, now: float) -> None:
        lat = self.latency.add(latency)
        if self.target_s is not None and lat > self.target_s:
            self.overload(now)
        else:
            step = 1.0 if self.slow_start else self.increase / max(self.value, 1.0)
            self.value = min(float(self.ceiling), self.value + step)

    def overload(self, now: float) -> bool:
        """A 429 or a latency past target: cut, unless a cut happened within the cooldown."""
        if now - self._cut_at < self.cooldown_s:
            return False
        self._cut_at = now
        self.slow_start = False
        self.value = max(float(self.floor), self.value * self.decrease)
        return True


class DurationEstimator:
    """Per task kind, the factor by which declared durations are off (see the module docstring)."""

    def __init__(self, *, alpha: float = 0.3, tolerance: float = 0.2, min_samples: int = 3) -> None:
        self.alpha, self.tolerance, self.min_samples = alpha, tolerance, min_samples
        self._factor: dict[str, Ewma] = {}
        self.published: dict[str, float] = {}

    def add(self, kind: str, ratio: float) -> None:
        e = self._factor.get(kind)
        if e is None:
            e = self._factor[kind] = Ewma(self.alpha)
        e.add(ratio)

    def factor(self, kind: str) -> float | None:
        e = self._factor.get(kind)
        return e.value if e is not None and e.count >= self.min_samples else None

    def changed(self) -> dict[str, float]:
        """Kinds whose factor moved past the tolerance since last published; publishes them."""
        out: dict[str, float] = {}
        for kind in self._factor:
            f = self.factor(kind)
            if f is None or f <= 0:
                continue
            old = self.published.get(kind, 1.0)
            if abs(f - old) > self.tolerance * old:
                self.published[kind] = out[kind] = f
        return out


class HedgeTrigger:
    """When a running attempt is a straggler, and whether the extra-call budget allows a hedge."""

    def __init__(
        self,
        *,
        quantile: float = 0.9,
        factor: float = 1.5,
        budget: float = 0.1,
        min_samples: int = 20,
        cold_factor: float = 3.0,
    ) -> None:
        self.quantile, self.factor, self.budget, self.min_samples = quantile, factor, budget, min_samples
        self.cold_factor = cold_factor
        self._q: dict[str, P2Quantile] = {}
        self.hedges = 0

    def add(self, kind: str, norm: float) -> None:
        q = self._q.get(kind)
        if q is None:
            q = self._q[kind] = P2Quantile(self.quantile)
        q.add(norm)

    def warm(self, kind: str) -> bool:
        """The kind has enough samples for its quantile to be trusted."""
        q = self._q.get(kind)
        return q is not None and q.count >= self.min_samples and q.value is not None

    def threshold(self, kind: str) -> float:
        """Normalised elapsed time past which an attempt of ``kind`` is a straggler."""
        q = self._q.get(kind)
        if q is None or q.value is None or not self.warm(kind):
            return self.cold_factor  # no quantile yet: a generous multiple of the estimate
        return self.factor * q.value

    def allowed(self, dispatched: int) -> bool:
        return self.hedges + 1 <= self.budget * dispatched


class OutlierDetector:
    """Agents that are slow or failing compared with the others (see the module docstring)."""

    def __init__(
        self, *, slow_factor: float = 2.0, error_rate: float = 0.5, min_samples: int = 5, probation_s: float = 30.0
    ) -> None:
        self.slow_factor, self.error_rate = slow_factor, error_rate
        self.min_samples, self.probation_s = min_samples, probation_s
        self._norm: dict[str, Ewma] = {}
        self._errors: dict[str, Rate] = {}
        self.avoided: dict[str, float] = {}  # agent -> since when

    def add(self, agent: str, ok: bool, norm: float | None) -> None:
        self._errors.setdefault(agent, Rate(0.2)).add(not ok)
        if norm is not None:
            self._norm.setdefault(agent, Ewma(0.2)).add(norm)

    def verdicts(self, now: float) -> dict[str, tuple[bool, str]]:
        """Agents whose flag changes now: name -> (avoid?, reason)."""
        out: dict[str, tuple[bool, str]] = {}
        for name, since in list(self.avoided.items()):
            if now - since >= self.probation_s:
                del self.avoided[name]
                self._norm.pop(name, None)
                self._errors.pop(name, None)
                out[name] = (False, f"probation of {self.probation_s:g} s over")
        seen = {a: e.value for a, e in self._norm.items() if e.count >= self.min_samples and e.value is not None}
        median = statistics.median(seen.values()) if len(seen) >= 2 else None
        for name in set(seen) | set(self._errors):
            if name in self.avoided or name in out:
                continue
            reason = self._reason(name, seen, median)
            if reason is not None:
                self.avoided[name] = now
                out[name] = (True, reason)
        return out

    def _reason(self, name: str, seen: Mapping[str, float], median: float | None) -> str | None:
        err = self._errors.get(name)
        if err is not None and err.count >= self.min_samples and err.value >= self.error_rate:
            return f"error rate {err.value:.0%} >= {self.error_rate:.0%}"
        norm = seen.get(name)
        if norm is not None and median is not None and median > 0 and norm >= self.slow_factor * median:
            return f"{norm / median:.1f}x slower than the median agent"
        return None


class ReplanTrigger:
    """Tasks that failed ``after_failures`` times, each reported once."""

    def __init__(self, *, after_failures: int = 3) -> None:
        self.after_failures = after_failures
        self._failures: dict[str, int] = {}
        self._asked: set[str] = set()

    def failed(self, task: str) -> int | None:
        """Count a failure; the count when it reaches the threshold the first time."""
        n = self._failures[task] = self._failures.get(task, 0) + 1
        if n >= self.after_failures and task not in self._asked:
            self._asked.add(task)
            return n
        return None
