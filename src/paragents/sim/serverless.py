"""Serverless GPU scenario: agents with fluctuating traffic share one GPU, window by window.

Theory of operation
-------------------
A discrete-event simulation on a virtual clock (nothing sleeps, no asyncio) of ``N``
agents that share one GPU of capacity ``1.0``.  Time advances in windows of
``window_s`` seconds (default 10 ms).  At the start of every window the simulator
measures each agent, asks an :class:`~paragents.resources.allocators.Allocator` how to
divide the GPU, and runs every agent's queue for one window at its share.  Everything
below is a field of :class:`ServerlessConfig`; the defaults are the reference scenario.

Agents (:data:`DEFAULT_AGENTS`)
    ``coordinator`` (min share 10 %, priority level 1, 100 req/s on the whole GPU,
    500 MB model), ``nlp`` (30 %, 2, 50 req/s, 2 GB), ``vision`` (25 %, 2, 60 req/s,
    1.5 GB), ``reasoning`` (35 %, 1, 30 req/s, 3 GB).

Traffic
    Agent ``i`` has a base rate ``load * split_i * full_rate_i`` req/s, where ``split_i``
    is its part of the load (default: its minimum share over the sum of minimum shares;
    the default shares sum to 1).  So ``sum_i base_i / full_rate_i = load``: at load 1.0
    the mean demand equals the GPU's capacity.  The rate fluctuates: time is cut into
    phases of ``phase_s`` (2 s); in each phase an agent is *off* (rate 0) with probability
    ``off_probability`` (0.2), otherwise its rate is ``base * X / (1 - off_probability)``
    with ``X`` log-normal of mean 1 and log-standard deviation ``burst_sigma`` (0.5).  The
    expected rate is therefore the base rate.  Within a phase arrivals are Poisson.
    Each request needs ``work`` seconds of the whole GPU, gamma distributed with mean
    ``1 / full_rate`` and coefficient of variation ``service_cv`` (1.0: exponential;
    0: every request the same).

Randomness
    ``numpy.random.SeedSequence(seed)`` is split into one stream per agent, and each
    agent's whole trace (phases, arrival times, work) is drawn up front, before any
    allocation.  So every allocator meets exactly the same requests for a given seed
    (common random numbers), one agent's trace does not depend on the others, and a run
    is a pure function of ``(allocator, load, seed, duration_s, config)``.
    :meth:`ServerlessSim.traces` hands the traces out, e.g. to compare a run with an
    idealised server on the very same requests.

Measurement (what the allocator sees at time ``T``)
    ``rate``: arrivals in ``(T - rate_window_s, T)`` divided by that span (100 ms, or
    ``T`` itself early on); ``backlog``: requests arrived and not finished (in service
    included); ``service_rate``: ``full_rate``; ``oldest_wait``: ``T`` minus the arrival
    time of the oldest unfinished request (0 with an empty queue).  ``min_share`` is the
    agent's minimum when its backlog is positive and 0 when it has nothing to do: a
    guarantee is claimed by an agent with work.  (The default minimums sum to 100 %, so if idle agents kept
    theirs no allocator could ever move capacity.)  The allocator is called with
    capacity 1.0 and the window's number; the shares must be non-negative and sum to at
    most 1 (:class:`~paragents.resources.allocators.AllocationError` otherwise).

Service
    Each agent serves its FIFO queue one request at a time.  With share ``s`` a request's
    remaining work shrinks at ``s`` per second, so the agent serves ``s * full_rate``
    req/s while busy; a request that is not finished at the end of a window carries its
    remaining work into the next one.  Share an agent cannot use (its queue is empty)
    is lost for that window: allocations are fixed for a window, as on a GPU partitioned
    by MPS or time slices.

Cold starts
    Every model is on the GPU at time 0.  When an agent's share has been 0 for at least
    ``keep_alive_s`` (5 s, RunPod's default idle timeout), checked at window boundaries,
    its model leaves the GPU.  The next time it gets a positive share it first loads the
    model: ``model_mb / 1000 / load_bandwidth_gb_s + init_s`` seconds (2 GB/s, 0.1 s),
    during which it serves nothing (the transfer proceeds whatever its share).  Each
    load counts as one cold start.

End of a run
    Arrivals stop at ``duration_s``; the windows go on (same allocator) until every
    queue is empty or ``max_drain_s`` (60 s) more have passed, so that every request's
    latency is measured rather than cut off.  Requests still unfinished then are counted
    in ``unfinished``, and as SLA violations if they are older than the SLA.

Metrics (:class:`ServerlessResult`, per agent and overall)
    Latency is completion minus arrival; mean, p95 and p99 (numpy's linear
    interpolation) over the completed requests.  Throughput: requests completed by
    ``duration_s``, divided by ``duration_s``.  Cost: GPU-seconds allocated, the
    integral of the agent's share over the whole simulated time (drain included): what a
    tenant pays for reserved share; a work-conserving allocator spends exactly the
    simulated time.  ``busy_gpu_s``: work actually done.  ``utilization``: busy over
    allocated (how much of what was reserved was used); ``utilization_capacity`` (overall
    only): busy over capacity times simulated time.  ``resident_gb_s``: model memory held
    on the GPU over time (what scaling to zero saves).  SLA violations: requests with
    latency above ``sla_s`` (200 ms), as a count and as a fraction of arrivals.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..resources.allocators import ALLOCATORS, AgentDemand, AllocationError, Allocator

__all__ = [
    "DEFAULT_AGENTS",
    "AgentResult",
    "ServerlessAgent",
    "ServerlessConfig",
    "ServerlessResult",
    "ServerlessSim",
    "WindowOutcome",
    "resolve_allocator",
    "run_serverless",
]

_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class ServerlessAgent:
    """One agent of the scenario: its guarantee, priority, speed and model size."""

    name: str
    min_share: float  # guaranteed fraction of the GPU while it has work
    priority_level: int  # 1 = high
    full_rate: float  # requests/s it serves with the whole GPU
    model_mb: float  # model size, loaded on a cold start


DEFAULT_AGENTS: tuple[ServerlessAgent, ...] = (
    ServerlessAgent("coordinator", 0.10, 1, 100.0, 500.0),
    ServerlessAgent("nlp", 0.30, 2, 50.0, 2000.0),
    ServerlessAgent("vision", 0.25, 2, 60.0, 1500.0),
    ServerlessAgent("reasoning", 0.35, 1, 30.0, 3000.0),
)


@dataclass(frozen=True, slots=True)
class ServerlessConfig:
    """Every modelling parameter of the scenario; see the module docstring."""

    agents: tuple[ServerlessAgent, ...] = DEFAULT_AGENTS
    split: tuple[float, ...] | None = None  # parts of the load; None: min shares, normalised
    window_s: float = 0.010
    sla_s: float = 0.200
    rate_window_s: float = 0.100
    phase_s: float = 2.0
    off_probability: float = 0.2
    burst_sigma: float = 0.5
    service_cv: float = 1.0
    keep_alive_s: float = 5.0
    load_bandwidth_gb_s: float = 2.0
    init_s: float = 0.1
    max_drain_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.agents:
            raise ValueError("the scenario needs at least one agent")
        if len({a.name for a in self.agents}) != len(self.agents):
            raise ValueError("agent names must be unique")
        for a in self.agents:
            if not (a.full_rate > 0 and a.model_mb >= 0 and a.min_share >= 0):
                raise ValueError(f"{a.name}: full_rate must be > 0, model_mb and min_share >= 0")
        if self.split is not None and (
            len(self.split) != len(self.agents) or min(self.split) < 0 or sum(self.split) <= 0
        ):
            raise ValueError("split needs one non-negative part per agent, not all zero")
        positive = (self.window_s, self.sla_s, self.rate_window_s, self.phase_s)
        if min(positive) <= 0 or self.load_bandwidth_gb_s <= 0:
            raise ValueError("window, SLA, rate window, phase and bandwidth must be > 0")
        if not 0 <= self.off_probability < 1:
            raise ValueError("off_probability must be in [0, 1)")
        if min(self.burst_sigma, self.service_cv, self.keep_alive_s, self.init_s) < 0:
            raise ValueError("burst_sigma, service_cv, keep_alive_s and init_s must be >= 0")
        if self.max_drain_s < 0:
            raise ValueError("max_drain_s must be >= 0")

    def parts(self) -> list[float]:
        """Each agent's fraction of the total load (sums to 1)."""
        raw = self.split or tuple(a.min_share for a in self.agents)
        total = math.fsum(raw)
        if total <= 0:
            return [1.0 / len(self.agents)] * len(self.agents)
        return [p / total for p in raw]

    def base_rates(self, load: float) -> list[float]:
        """Mean arrival rate of each agent (req/s): ``sum(rate / full_rate) == load``."""
        return [load * p * a.full_rate for p, a in zip(self.parts(), self.agents, strict=True)]

    def cold_start_s(self, agent: ServerlessAgent) -> float:
        """Seconds an agent whose model left the GPU needs before it can serve again."""
        return agent.model_mb / 1000.0 / self.load_bandwidth_gb_s + self.init_s


class WindowOutcome(NamedTuple):
    """What happened in one window, summed over agents."""

    accrued_latency_s: float  # integral of the number of requests in the system
    completed: int
    sla_violations: int  # completed in this window with latency > SLA


@dataclass(frozen=True, slots=True)
class AgentResult:
    """Metrics of one agent, or of all agents together (``name == "overall"``)."""

    name: str
    arrived: int
    completed: int
    unfinished: int
    mean_s: float | None  # None when nothing completed
    p95_s: float | None
    p99_s: float | None
    throughput_rps: float
    cost_gpu_s: float
    busy_gpu_s: float
    utilization: float  # busy / allocated
    sla_violations: int
    sla_violation_fraction: float  # of arrivals
    cold_starts: int
    resident_gb_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ServerlessResult:
    """One run: the scenario's knobs, every agent's metrics and the overall ones."""

    allocator: str
    load: float
    seed: int
    duration_s: float
    simulated_s: float  # drain included
    windows: int
    max_allocated: float  # the largest sum of shares any window handed out
    utilization_capacity: float  # busy GPU-seconds / simulated seconds
    overall: AgentResult
    agents: tuple[AgentResult, ...]

    def agent(self, name: str) -> AgentResult:
        for a in self.agents:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allocator": self.allocator,
            "load": self.load,
            "seed": self.seed,
            "duration_s": self.duration_s,
            "simulated_s": self.simulated_s,
            "windows": self.windows,
            "max_allocated": self.max_allocated,
            "utilization_capacity": self.utilization_capacity,
            "overall": self.overall.to_dict(),
            "agents": {a.name: a.to_dict() for a in self.agents},
        }


@dataclass(slots=True)
class _Queue:
    """One agent's trace and the mutable state of its queue and model."""

    spec: ServerlessAgent
    arrivals: list[float]  # sorted arrival times
    work: list[float]  # GPU-seconds each request needs on the whole GPU
    cum: list[float]  # cum[j] = sum of arrivals[:j]
    done_at: list[float] = field(init=False)
    arrived: int = 0  # arrivals before the current time
    head: int = 0  # completed requests; arrivals[head] is in service
    rem: float = 0.0  # remaining work of the request in service
    rate_lo: int = 0  # first arrival inside the rate window
    resident: bool = True
    load_left: float = 0.0  # seconds of model loading still to go
    zero_since: float | None = None
    cold_starts: int = 0
    allocated: float = 0.0  # share-seconds
    busy: float = 0.0
    resident_gb_s: float = 0.0

    def __post_init__(self) -> None:
        self.done_at = [math.nan] * len(self.arrivals)
        self.rem = self.work[0] if self.work else 0.0


def _trace(
    rng: np.random.Generator, rate: float, full_rate: float, duration: float, cfg: ServerlessConfig
) -> tuple[list[float], list[float]]:
    """Arrival times and work of one agent over ``[0, duration)`` (see "Traffic")."""
    phases = max(1, math.ceil(duration / cfg.phase_s))
    on = rng.random(phases) >= cfg.off_probability
    sigma = cfg.burst_sigma
    level = np.exp(sigma * rng.standard_normal(phases) - sigma * sigma / 2)
    multiplier = np.where(on, level / (1.0 - cfg.off_probability), 0.0)
    starts = np.arange(phases) * cfg.phase_s
    ends = np.minimum(starts + cfg.phase_s, duration)
    counts = rng.poisson(rate * multiplier * np.maximum(ends - starts, 0.0))
    times = np.sort(rng.uniform(np.repeat(starts, counts), np.repeat(ends, counts)))
    if cfg.service_cv == 0:
        work = np.full(times.size, 1.0 / full_rate)
    else:
        shape = 1.0 / cfg.service_cv**2
        work = rng.gamma(shape, 1.0 / (shape * full_rate), size=times.size)
    return times.tolist(), work.tolist()


class ServerlessSim:
    """The scenario as a stepwise environment: ``demands()``, then ``step(shares)``.

    :func:`run_serverless` drives it with an allocator; the RL trainer drives it one
    window at a time and learns from :class:`WindowOutcome`.
    """

    def __init__(
        self,
        config: ServerlessConfig | None = None,
        *,
        load: float = 0.8,
        seed: int = 0,
        duration_s: float = 60.0,
    ) -> None:
        if not (math.isfinite(load) and load >= 0):
            raise ValueError(f"load must be finite and >= 0, got {load!r}")
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be finite and > 0, got {duration_s!r}")
        self.config = cfg = config or ServerlessConfig()
        self.load, self.seed, self.duration_s = load, seed, duration_s
        self.window = 0
        self.now = 0.0
        self.max_allocated = 0.0
        streams = np.random.SeedSequence(seed).spawn(len(cfg.agents))
        self._queues: list[_Queue] = []
        for spec, rate, stream in zip(cfg.agents, cfg.base_rates(load), streams, strict=True):
            arrivals, work = _trace(
                np.random.default_rng(stream), rate, spec.full_rate, duration_s, cfg
            )
            cum = np.concatenate([[0.0], np.cumsum(arrivals)]).tolist()
            self._queues.append(_Queue(spec, arrivals, work, cum))

    def traces(self) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        """Each agent's whole trace, drawn up front: arrival times (sorted) and the work
        of each request (seconds of the whole GPU).  The same for every allocator."""
        return {q.spec.name: (tuple(q.arrivals), tuple(q.work)) for q in self._queues}

    @property
    def finished(self) -> bool:
        """Arrivals are over and every queue is empty, or the drain time is spent."""
        if self.now < self.duration_s:
            return False
        if self.now >= self.duration_s + self.config.max_drain_s:
            return True
        return all(q.head == len(q.arrivals) for q in self._queues)

    def demands(self) -> list[AgentDemand]:
        """What each agent shows the allocator now (see "Measurement")."""
        now = self.now
        lo = now - self.config.rate_window_s
        span = min(self.config.rate_window_s, now)
        out = []
        for q in self._queues:
            arrivals = q.arrivals
            while q.rate_lo < q.arrived and arrivals[q.rate_lo] <= lo:
                q.rate_lo += 1
            rate = (q.arrived - q.rate_lo) / span if span > 0 else 0.0
            backlog = q.arrived - q.head
            spec = q.spec
            claim = spec.min_share if backlog else 0.0
            oldest = now - arrivals[q.head] if backlog else 0.0
            out.append(
                AgentDemand(spec.name, claim, spec.priority_level, rate, backlog, spec.full_rate, oldest)
            )
        return out

    def step(self, shares: Mapping[str, float]) -> WindowOutcome:
        """Run one window with these shares of the GPU; advance the clock."""
        self._check_shares(shares)
        start = self.now
        end = (self.window + 1) * self.config.window_s
        accrued, completed, violations = 0.0, 0, 0
        for q in self._queues:
            share = float(shares.get(q.spec.name, 0.0))
            self._apply_share(q, share, start)
            a, c, v = self._serve(q, share, start, end)
            accrued += a
            completed += c
            violations += v
        self.window += 1
        self.now = end
        return WindowOutcome(accrued, completed, violations)

    def _check_shares(self, shares: Mapping[str, float]) -> None:
        names = {q.spec.name for q in self._queues}
        if unknown := set(shares) - names:
            raise AllocationError(f"shares for unknown agents: {sorted(unknown)}")
        if any(not (s >= 0) for s in shares.values()):
            raise AllocationError(f"negative or NaN share in {dict(shares)}")
        total = math.fsum(shares.values())
        if total > 1.0 + _TOLERANCE:
            raise AllocationError(f"shares sum to {total} > capacity 1.0")
        self.max_allocated = max(self.max_allocated, total)

    def _apply_share(self, q: _Queue, share: float, now: float) -> None:
        """Keep-alive, eviction and the start of a cold start (see "Cold starts")."""
        if share > 0:
            q.zero_since = None
            if not q.resident:
                q.resident = True
                q.load_left = self.config.cold_start_s(q.spec)
                q.cold_starts += 1
            return
        if q.zero_since is None:
            q.zero_since = now
        if (
            q.resident
            and q.load_left == 0
            and now - q.zero_since >= self.config.keep_alive_s - _TOLERANCE
        ):
            q.resident = False

    def _serve(self, q: _Queue, share: float, start: float, end: float) -> tuple[float, int, int]:
        """One window of one agent's FIFO queue; returns (accrued latency, done, late)."""
        arrivals, work, done_at = q.arrivals, q.work, q.done_at
        first_new = q.arrived
        last = bisect_left(arrivals, end, lo=first_new)
        q.arrived = last
        width = end - start
        # Integral of the number in system: those present at ``start`` for the whole
        # window, arrivals from their arrival on, minus completions from theirs on.
        accrued = (first_new - q.head) * width + (last - first_new) * end
        accrued -= q.cum[last] - q.cum[first_new]
        q.allocated += share * width
        if q.resident:
            q.resident_gb_s += q.spec.model_mb / 1000.0 * width
        t = start
        if q.load_left > 0:
            spent = min(q.load_left, width)
            q.load_left = 0.0 if spent >= q.load_left else q.load_left - spent
            t += spent
        if share <= 0 or q.load_left > 0:
            return accrued, 0, 0
        sla = self.config.sla_s
        h, rem, busy, completed, late = q.head, q.rem, 0.0, 0, 0
        while h < last:
            arrival = arrivals[h]
            t = max(t, arrival)
            finish = t + rem / share
            if finish > end:
                used = (end - t) * share
                rem -= used
                busy += used
                break
            busy += rem
            t = finish
            done_at[h] = finish
            accrued -= end - finish
            completed += 1
            late += finish - arrival > sla
            h += 1
            rem = work[h] if h < len(work) else 0.0
        q.head, q.rem = h, rem
        q.busy += busy
        return accrued, completed, late

    def result(self, allocator: str) -> ServerlessResult:
        """Metrics of the run so far (normally called once :attr:`finished`)."""
        per_agent = [self._summary(q.spec.name, [q]) for q in self._queues]
        busy = math.fsum(a.busy_gpu_s for a in per_agent)
        return ServerlessResult(
            allocator=allocator,
            load=self.load,
            seed=self.seed,
            duration_s=self.duration_s,
            simulated_s=self.now,
            windows=self.window,
            max_allocated=self.max_allocated,
            utilization_capacity=busy / self.now if self.now > 0 else 0.0,
            overall=self._summary("overall", self._queues),
            agents=tuple(per_agent),
        )

    def _summary(self, name: str, queues: Sequence[_Queue]) -> AgentResult:
        arrivals = np.array([t for q in queues for t in q.arrivals], dtype=float)
        done = np.array([t for q in queues for t in q.done_at], dtype=float)
        finished = ~np.isnan(done)
        latency = done[finished] - arrivals[finished]
        unfinished_late = int(np.count_nonzero(self.now - arrivals[~finished] > self.config.sla_s))
        violations = int(np.count_nonzero(latency > self.config.sla_s)) + unfinished_late
        p95, p99 = np.percentile(latency, [95, 99]).tolist() if latency.size else (None, None)
        allocated = math.fsum(q.allocated for q in queues)
        busy = math.fsum(q.busy for q in queues)
        return AgentResult(
            name=name,
            arrived=int(arrivals.size),
            completed=int(latency.size),
            unfinished=int(arrivals.size - latency.size),
            mean_s=float(latency.mean()) if latency.size else None,
            p95_s=p95,
            p99_s=p99,
            throughput_rps=int(np.count_nonzero(done <= self.duration_s)) / self.duration_s,
            cost_gpu_s=allocated,
            busy_gpu_s=busy,
            utilization=busy / allocated if allocated > 0 else 0.0,
            sla_violations=violations,
            sla_violation_fraction=violations / arrivals.size if arrivals.size else 0.0,
            cold_starts=sum(q.cold_starts for q in queues),
            resident_gb_s=math.fsum(q.resident_gb_s for q in queues),
        )


def resolve_allocator(allocator: str | Allocator) -> Allocator:
    """An allocator instance from a name in ``ALLOCATORS`` (default settings), or as is."""
    if not isinstance(allocator, str):
        return allocator
    try:
        return ALLOCATORS[allocator]()
    except KeyError:
        known = ", ".join(sorted(ALLOCATORS))
        raise AllocationError(f"unknown allocator {allocator!r} (known: {known})") from None


def run_serverless(
    allocator: str | Allocator,
    *,
    load: float = 0.8,
    seed: int = 0,
    duration_s: float = 60.0,
    config: ServerlessConfig | None = None,
) -> ServerlessResult:
    """Simulate the scenario under ``allocator``; the same arguments give the same result."""
    alloc = resolve_allocator(allocator)
    sim = ServerlessSim(config, load=load, seed=seed, duration_s=duration_s)
    while not sim.finished:
        sim.step(alloc.allocate(sim.demands(), 1.0, sim.window))
    return sim.result(alloc.name)
