"""Monitors: online statistics of a run, in constant memory and O(1) per observation.

Theory of operation
-------------------
The adaptive manager learns while the run goes on, so every statistic here is
*streaming*: it is updated by one observation at a time and never keeps the history.

* :class:`Ewma` — exponentially weighted moving average with weight ``alpha`` for the
  newest sample (the first sample initialises it); a recent mean that forgets.
* :class:`P2Quantile` — the P-square estimator of Jain and Chlamtac (CACM 1985): five
  markers whose heights approximate the minimum, ``q/2``, ``q``, ``(1+q)/2`` quantiles and
  the maximum; each observation moves the markers' positions and adjusts heights by
  piecewise-parabolic interpolation.  Until five samples have arrived it is exact.
* :class:`Rate` — a count of outcomes (errors, 429s) among attempts, as an EWMA of 0/1.
* :class:`Series` — the bundle kept per agent, per endpoint and per task kind: latency
  EWMA and high quantiles, error and 429 rates, tokens per second, and a count.

:class:`RunMonitor` feeds those series from the scheduler's event log (``dispatched``,
``finished``, ``retry``, ``failed``): the latency of an attempt is dispatch -> end, its
*normalised* duration is that latency x the agent's speed / the task's estimate at
dispatch (1.0 = as estimated), queue lengths and utilisation are read from the
scheduler on demand.  Nothing here reads a clock: times come with the events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Ewma", "Outcome", "P2Quantile", "Rate", "RunMonitor", "Series", "task_kind"]


class Ewma:
    """Exponentially weighted moving average (``None`` until the first sample)."""

    __slots__ = ("alpha", "count", "value")

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.value: float | None = None
        self.count = 0

    def add(self, x: float) -> float:
        self.count += 1
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
        return self.value


class P2Quantile:
    """Streaming estimate of the ``q`` quantile by the P-square algorithm (5 markers)."""

    __slots__ = ("_dn", "_heights", "_n", "_pos", "_want", "q")

    def __init__(self, q: float) -> None:
        if not 0 < q < 1:
            raise ValueError(f"q must be in (0, 1), got {q}")
        self.q = q
        self._heights: list[float] = []
        self._pos = [1.0, 2.0, 3.0, 4.0, 5.0]
        self._want = [1.0, 1 + 2 * q, 1 + 4 * q, 3 + 2 * q, 5.0]
        self._dn = [0.0, q / 2, q, (1 + q) / 2, 1.0]
        self._n = 0

    @property
    def count(self) -> int:
        return self._n

    def add(self, x: float) -> None:
        self._n += 1
        h = self._heights
        if len(h) < 5:
            h.append(x)
            h.sort()
            return
        if x < h[0]:
            h[0] = x
            k = 0
        elif x >= h[4]:
            h[4] = x
            k = 3
        else:
            k = next(i for i in range(4) if h[i] <= x < h[i + 1])
        pos, want = self._pos, self._want
        for i in range(k + 1, 5):
            pos[i] += 1
        for i in range(5):
            want[i] += self._dn[i]
        for i in (1, 2, 3):
            d = want[i] - pos[i]
            if (d >= 1 and pos[i + 1] - pos[i] > 1) or (d <= -1 and pos[i - 1] - pos[i] < -1):
                s = 1.0 if d > 0 else -1.0
                new = self._parabolic(i, s)
                if not h[i - 1] < new < h[i + 1]:
                    j = i + int(s)
                    new = h[i] + s * (h[j] - h[i]) / (pos[j] - pos[i])
                h[i] = new
                pos[i] += s

    def _parabolic(self, i: int, s: float) -> float:
        h, n = self._heights, self._pos
        return h[i] + s / (n[i + 1] - n[i - 1]) * (
            (n[i] - n[i - 1] + s) * (h[i + 1] - h[i]) / (n[i + 1] - n[i])
            + (n[i + 1] - n[i] - s) * (h[i] - h[i - 1]) / (n[i] - n[i - 1])
        )

    @property
    def value(self) -> float | None:
        """The estimate (exact nearest rank while fewer than five samples); None if empty."""
        h = self._heights
        if not h:
            return None
        if self._n < 5:
            return h[min(len(h) - 1, max(0, math.ceil(self.q * len(h)) - 1))]
        return h[2]


class Rate:
    """The recent share of attempts with some outcome (an EWMA of 0 and 1)."""

    __slots__ = ("_ewma",)

    def __init__(self, alpha: float = 0.1) -> None:
        self._ewma = Ewma(alpha)

    def add(self, hit: bool) -> None:
        self._ewma.add(1.0 if hit else 0.0)

    @property
    def value(self) -> float:
        return self._ewma.value or 0.0

    @property
    def count(self) -> int:
        return self._ewma.count


@dataclass(slots=True)
class Series:
    """What is known about one agent, endpoint or task kind."""

    alpha: float = 0.2
    latency: Ewma = field(init=False)
    p50: P2Quantile = field(default_factory=lambda: P2Quantile(0.5))
    p90: P2Quantile = field(default_factory=lambda: P2Quantile(0.9))
    p99: P2Quantile = field(default_factory=lambda: P2Quantile(0.99))
    norm: Ewma = field(init=False)  # latency x speed / estimate: 1.0 = as estimated
    norm_p: P2Quantile = field(default_factory=lambda: P2Quantile(0.9))
    tokens: Ewma = field(init=False)
    tokens_per_s: Ewma = field(init=False)
    errors: Rate = field(default_factory=Rate)
    limited: Rate = field(default_factory=Rate)  # 429s (a failure with Retry-After)
    finished: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self.latency = Ewma(self.alpha)
        self.norm = Ewma(self.alpha)
        self.tokens = Ewma(self.alpha)
        self.tokens_per_s = Ewma(self.alpha)

    def success(self, latency: float, norm: float | None, tokens: float) -> None:
        self.finished += 1
        self.latency.add(latency)
        for q in (self.p50, self.p90, self.p99):
            q.add(latency)
        if norm is not None:
            self.norm.add(norm)
            self.norm_p.add(norm)
        if tokens > 0:
            self.tokens.add(tokens)
            if latency > 0:
                self.tokens_per_s.add(tokens / latency)
        self.errors.add(False)
        self.limited.add(False)

    def failure(self, rate_limited: bool) -> None:
        self.failed += 1
        self.errors.add(True)
        self.limited.add(rate_limited)

    def to_dict(self) -> dict[str, Any]:
        return {
            "finished": self.finished,
            "failed": self.failed,
            "latency_ewma_s": self.latency.value,
            "p50_s": self.p50.value,
            "p90_s": self.p90.value,
            "p99_s": self.p99.value,
            "error_rate": self.errors.value,
            "rate_limited": self.limited.value,
            "tokens_per_s": self.tokens_per_s.value,
        }


def task_kind(task: Any) -> str:
    """A task's kind for learning: ``meta["kind"]``, else its sorted skills, else ``"*"``."""
    meta = getattr(task, "meta", None)
    if meta and meta.get("kind"):
        return str(meta["kind"])
    skills = getattr(task, "skills", ())
    return ",".join(sorted(skills)) or "*"


_ATTEMPT_KINDS = frozenset({"dispatched", "finished", "retry", "failed", "abandoned", "cancelled", "requeued"})


class Outcome(NamedTuple):
    """How one attempt ended: ``norm`` is latency x speed / estimate (successes only),
    ``limited`` a failure the endpoint answered with a 429 / Retry-After."""

    task: str
    kind: str
    agent: str
    endpoint: str | None
    latency: float
    norm: float | None
    ok: bool
    limited: bool


@dataclass(slots=True)
class _Open:
    agent: str
    start: float
    estimate: float
    speed: float


class RunMonitor:
    """Per-agent, per-endpoint and per-kind :class:`Series`, fed from log events.

    ``endpoints`` maps agent names to endpoint names (agents absent: no endpoint).
    :meth:`observe` answers the :class:`Outcome` of an attempt that ended, for the
    controls to act on."""

    def __init__(self, endpoints: Mapping[str, str] | None = None, alpha: float = 0.2) -> None:
        self.endpoints = dict(endpoints or {})
        self.alpha = alpha
        self.agents: dict[str, Series] = {}
        self.endpoint: dict[str, Series] = {}
        self.kinds: dict[str, Series] = {}
        self.open: dict[tuple[str, int], _Open] = {}  # (task, attempt) -> the running attempt

    def _series(self, table: dict[str, Series], key: str) -> Series:
        s = table.get(key)
        if s is None:
            s = table[key] = Series(self.alpha)
        return s

    def observe(self, event: Any, scheduler: Any) -> Outcome | None:
        """Update the series with one log event; the outcome of an attempt that ended well
        or failed (None for every other event)."""
        kind = event.kind
        if event.task is None or kind not in _ATTEMPT_KINDS:
            return None
        key = (event.task, event.attempt)
        if kind == "dispatched":
            agent = scheduler.agents.get(event.agent)
            speed = agent.speed if agent is not None else 1.0
            task = scheduler.graph[event.task]
            self.open[key] = _Open(event.agent, event.time, task.duration, speed)
            return None
        began = self.open.pop(key, None)
        if began is None or kind in ("abandoned", "cancelled", "requeued"):
            return None
        task = scheduler.graph[event.task]
        tkind = task_kind(task)
        latency = max(event.time - began.start, 0.0)
        data = event.data or {}
        tables = [self._series(self.agents, began.agent), self._series(self.kinds, tkind)]
        endpoint = self.endpoints.get(began.agent)
        if endpoint is not None:
            tables.append(self._series(self.endpoint, endpoint))
        if kind == "finished":
            norm = latency * began.speed / began.estimate if began.estimate > 0 else None
            tokens = float(data.get("completion_tokens", 0) or 0)
            for s in tables:
                s.success(latency, norm, tokens)
            return Outcome(event.task, tkind, began.agent, endpoint, latency, norm, True, False)
        limited = data.get("retry_after") is not None or "429" in str(data.get("error", ""))
        for s in tables:
            s.failure(limited)
        return Outcome(event.task, tkind, began.agent, endpoint, latency, None, False, limited)

    def running_since(self, task: str, attempt: int) -> float | None:
        o = self.open.get((task, attempt))
        return o.start if o is not None else None

    @staticmethod
    def utilization(scheduler: Any) -> dict[str, float]:
        """Share of each agent's slots in use now."""
        return {name: a.load for name, a in scheduler.agents.items()}

    @staticmethod
    def queue_length(scheduler: Any) -> int:
        """Tasks ready and waiting for a slot now."""
        return int(scheduler.counts.get("ready", 0))

    def snapshot(self) -> dict[str, Any]:
        return {
            "agents": {k: s.to_dict() for k, s in self.agents.items()},
            "endpoints": {k: s.to_dict() for k, s in self.endpoint.items()},
            "kinds": {k: s.to_dict() for k, s in self.kinds.items()},
        }
