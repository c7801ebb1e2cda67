"""The adaptive workflow manager: watches a run through its log and adapts it as it runs.

Theory of operation
-------------------
:class:`AdaptiveManager` is pure, like the core: a driver hands it every new log event
(:meth:`~AdaptiveManager.observe`) and calls :meth:`~AdaptiveManager.tick` at a fixed
period with the current ``now``.  ``observe`` only learns (monitors, controls' statistics);
``tick`` decides.  Pure adaptations are made directly on the scheduler — new duration
estimates (``update_estimates``), hedges (``hedge``), avoiding an agent
(``set_avoided``) — and the scheduler's resulting decisions are returned for the driver
to carry out like any others.  Adaptations of the world outside the scheduler are
returned as actions: :class:`SetConcurrency` (an endpoint's concurrency limit, AIMD) and
:class:`Replan` (ask the planner to rewrite the remaining graph: the asyncio runtime's
``replanner`` returns tasks that take the failing task's place, through
``Scheduler.replace``; goal runs pass the planner's).  Every adaptation is an
``adapted`` event in the log, with its control and reason: the scheduler logs its own,
the manager annotates the driver-side ones when it returns them.

:class:`AdaptiveConfig` holds one switch per control with its parameters (all off by
default); a workflow file's ``adaptive:`` section builds one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.events import Decision, Event
from ..core.scheduler import Scheduler
from .controls import (
    Aimd,
    DurationEstimator,
    HedgeTrigger,
    OutlierDetector,
    ReplanTrigger,
)
from .monitors import RunMonitor, task_kind

__all__ = [
    "Action",
    "AdaptiveConfig",
    "AdaptiveManager",
    "AimdConfig",
    "AvoidConfig",
    "EstimateConfig",
    "HedgeConfig",
    "Replan",
    "ReplanConfig",
    "SetConcurrency",
]


@dataclass(frozen=True, slots=True)
class AimdConfig:
    """Concurrency per endpoint by AIMD (see ``controls.Aimd``)."""

    enabled: bool = False
    initial: int = 4
    ceiling: int = 64
    floor: int = 1
    increase: float = 1.0
    # A 429 from a rate limit says the sender is just over the limit, and its Retry-After
    # pause already drains the overload: a 10% cut brings it under.  (TCP halves a
    # congested window; here 0.7 measured 93% of the limit, 0.9 measured 95-96%.)
    decrease: float = 0.9
    latency_target_s: float | None = None
    cooldown_s: float = 1.0


@dataclass(frozen=True, slots=True)
class EstimateConfig:
    """Online duration estimates per task kind fed back into priorities."""

    enabled: bool = False
    alpha: float = 0.3
    tolerance: float = 0.2
    min_samples: int = 3


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    """Hedged requests for stragglers, at most ``budget`` extra calls per dispatched one."""

    enabled: bool = False
    quantile: float = 0.9
    factor: float = 1.5
    budget: float = 0.1
    min_samples: int = 20
    cold_factor: float = 3.0  # before min_samples: hedge past this multiple of the estimate


@dataclass(frozen=True, slots=True)
class AvoidConfig:
    """Move queued work away from slow or failing agents."""

    enabled: bool = False
    slow_factor: float = 2.0
    error_rate: float = 0.5
    min_samples: int = 5
    probation_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ReplanConfig:
    """Ask for the remaining graph to be rewritten after repeated failure of a task."""

    enabled: bool = False
    after_failures: int = 3


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """Which controls run, and how; ``period_s`` is how often the driver calls ``tick``."""

    period_s: float = 0.5
    concurrency: AimdConfig = field(default_factory=AimdConfig)
    estimates: EstimateConfig = field(default_factory=EstimateConfig)
    hedging: HedgeConfig = field(default_factory=HedgeConfig)
    avoid: AvoidConfig = field(default_factory=AvoidConfig)
    replan: ReplanConfig = field(default_factory=ReplanConfig)

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s}")


class SetConcurrency(NamedTuple):
    """Set ``endpoint``'s concurrency limit to ``limit`` (the driver's admission control)."""

    endpoint: str
    limit: int
    reason: str


class Replan(NamedTuple):
    """``task`` failed ``failures`` times: the remaining subgraph should be rewritten
    (by the planner's ``replan``)."""

    task: str
    failures: int
    reason: str


Action = Decision | SetConcurrency | Replan


class AdaptiveManager:
    """Monitors plus the switched-on controls of one run (see the module docstring).

    ``endpoints`` maps agent names to the endpoint each one calls (for AIMD and the
    per-endpoint monitors)."""

    def __init__(self, config: AdaptiveConfig, endpoints: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.monitor = RunMonitor(endpoints)
        c = config
        self.aimd: dict[str, Aimd] = {}
        if c.concurrency.enabled:
            a = c.concurrency
            for ep in sorted(set(self.monitor.endpoints.values())):
                self.aimd[ep] = Aimd(
                    a.initial, a.ceiling, floor=a.floor, increase=a.increase, decrease=a.decrease,
                    latency_target_s=a.latency_target_s, cooldown_s=a.cooldown_s,
                )
        e, h, v = c.estimates, c.hedging, c.avoid
        self.estimator = DurationEstimator(alpha=e.alpha, tolerance=e.tolerance, min_samples=e.min_samples) if e.enabled else None
        self.hedger = (
            HedgeTrigger(
                quantile=h.quantile, factor=h.factor, budget=h.budget, min_samples=h.min_samples,
                cold_factor=h.cold_factor,
            )
            if h.enabled else None
        )
        self.outliers = (
            OutlierDetector(slow_factor=v.slow_factor, error_rate=v.error_rate, min_samples=v.min_samples,
                            probation_s=v.probation_s)
            if v.enabled else None
        )
        self.replanner = ReplanTrigger(after_failures=c.replan.after_failures) if c.replan.enabled else None
        self._limits = {ep: ctl.limit for ep, ctl in self.aimd.items()}  # as last told to the driver
        self._base: dict[str, float] = {}  # task id -> its duration as first declared
        self._replans: list[Replan] = []
        self._dispatched = 0

    def initial_actions(self) -> list[SetConcurrency]:
        """The starting concurrency of each AIMD-controlled endpoint (no log event)."""
        return [SetConcurrency(ep, n, "initial limit") for ep, n in self._limits.items()]

    # ------------------------------------------------------------- learning
    def observe(self, event: Event, scheduler: Scheduler) -> None:
        """Learn from one new log event (call it for every event, in order)."""
        kind = event.kind
        if kind == "started":
            for t in scheduler.graph:
                self._base.setdefault(t.id, t.duration)
        elif kind == "added":
            for tid in (event.data or {}).get("tasks", ()):
                self._base.setdefault(tid, scheduler.graph[tid].duration)
        elif kind == "dispatched":
            self._dispatched += 1
        out = self.monitor.observe(event, scheduler)
        if out is None:
            return
        ctl = self.aimd.get(out.endpoint) if out.endpoint is not None else None
        if ctl is not None:
            if out.ok:
                ctl.success(out.latency, event.time)
            elif out.limited:
                ctl.overload(event.time)
        if self.outliers is not None:
            self.outliers.add(out.agent, out.ok, out.norm)
        if not out.ok:
            if self.replanner is not None:
                n = self.replanner.failed(out.task)
                if n is not None:
                    self._replans.append(Replan(out.task, n, f"failed {n} times"))
            return
        if self.hedger is not None and out.norm is not None:
            self.hedger.add(out.kind, out.norm)
        if self.estimator is not None:
            base = self._base.get(out.task)
            agent = scheduler.agents.get(out.agent)
            if base and agent is not None:
                self.estimator.add(out.kind, out.latency * agent.speed / base)

    # ------------------------------------------------------------- deciding
    def tick(self, now: float, scheduler: Scheduler) -> list[Action]:
        """Decide the adaptations due now; returns what the driver must carry out."""
        actions: list[Action] = []
        for ep, ctl in self.aimd.items():
            limit = ctl.limit
            if limit != self._limits[ep]:
                reason = "429 from the endpoint" if limit < self._limits[ep] else "no 429s: additive increase"
                self._limits[ep] = limit
                actions.append(SetConcurrency(ep, limit, reason))
                data = {"control": "concurrency", "reason": reason, "endpoint": ep, "limit": limit}
                scheduler.annotate("adapted", now, data=data)
        if self.estimator is not None:
            self._reestimate(now, scheduler, actions)
        if self.outliers is not None:
            for name, (avoid, reason) in sorted(self.outliers.verdicts(now).items()):
                if name in scheduler.agents:
                    actions.extend(scheduler.set_avoided(name, avoid, now=now, reason=reason))
        if self.hedger is not None:
            self._hedge(now, scheduler, actions)
        for r in self._replans:
            scheduler.annotate("adapted", now, r.task, data={"control": "replan", "reason": r.reason})
            actions.append(r)
        self._replans.clear()
        return actions

    def _reestimate(self, now: float, scheduler: Scheduler, actions: list[Action]) -> None:
        assert self.estimator is not None
        factors = self.estimator.changed()
        if not factors:
            return
        waiting = ("pending", "ready", "backoff")
        durations = {
            t.id: self._base.get(t.id, t.duration) * factors[k]
            for t in scheduler.graph
            if (k := task_kind(t)) in factors and scheduler.state(t.id).value in waiting
        }
        reason = ", ".join(f"kind {k!r} takes {f:.2f}x its declared duration" for k, f in sorted(factors.items()))
        actions.extend(scheduler.update_estimates(durations, now, reason))

    def _hedge(self, now: float, scheduler: Scheduler, actions: list[Action]) -> None:
        hedger = self.hedger
        assert hedger is not None
        for (tid, attempt), o in list(self.monitor.open.items()):
            if not hedger.allowed(self._dispatched):
                return
            if scheduler.attempt(tid) != attempt or scheduler.hedged(tid) or o.estimate <= 0:
                continue
            kind = task_kind(scheduler.graph[tid])
            limit = hedger.threshold(kind)
            elapsed = (now - o.start) * o.speed / o.estimate
            if limit is None or elapsed <= limit:
                continue
            rule = f"p{hedger.quantile * 100:g} x {hedger.factor:g}" if hedger.warm(kind) else "cold start"
            reason = f"ran {elapsed:.1f}x its estimate, past {limit:.1f}x ({rule})"
            got = scheduler.hedge(tid, now, reason)
            if got:
                hedger.hedges += 1
                actions.extend(got)

    def snapshot(self) -> dict[str, Any]:
        """What the monitors know now, and each control's state."""
        out = self.monitor.snapshot()
        out["concurrency"] = dict(self._limits)
        if self.estimator is not None:
            out["estimates"] = dict(self.estimator.published)
        if self.hedger is not None:
            out["hedges"] = self.hedger.hedges
        if self.outliers is not None:
            out["avoided"] = sorted(self.outliers.avoided)
        return out
