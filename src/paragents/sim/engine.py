"""The discrete-event simulator: the real scheduler, latency models, a virtual clock.

Theory of operation
-------------------
The engine is a driver of :class:`~paragents.core.scheduler.Scheduler` like the asyncio
runtime, with the world replaced by a heap of future happenings ``(time, seq, kind,
payload)``.  It pops the earliest, sets ``now`` to its time, and either tells the
scheduler (a request arrived, an attempt ended or failed, a retry is due) or moves an
attempt to its next stage; the scheduler's decisions become new happenings.  Ties at
one instant are processed in the order they were scheduled, and the only randomness is
one :class:`random.Random` seeded with ``seed`` and drawn in event order, so a run is a
pure function of its inputs: the same seed reproduces every event exactly.

An attempt's stages (transfer, tool, model call on a shared server, or fixed compute)
and the random draws are described in :mod:`paragents.sim.latency`.  Model servers are
processor-sharing queues: each keeps its calls' remaining tokens, advances all of them
to ``now`` at the current per-call rate before any change (a call joins or leaves), and
keeps exactly one pending "next completion" happening, invalidated by a version number
when the batch changes.  A :class:`Cancel` decision removes the attempt wherever it is
(queue, prefill, batch), so a cancelled call frees its batch slot at once.

Work may arrive over time: each :class:`Arrival` (a user request: tasks and edges) is
fed to the scheduler with :meth:`~paragents.core.scheduler.Scheduler.tasks_added` at its
time, which is how the Poisson request streams of :mod:`paragents.sim.workloads` run.
The result carries the scheduler (with its event log), the run report, each request's
latency (arrival to its last task's end) and each server's busy time and mean batch.

Rate-limited endpoints (:class:`~paragents.sim.latency.Endpoint`, routed per agent): each
has a :class:`_Gate` holding the client side (a concurrency limit, ``None`` for none; a
FIFO of attempts waiting for it; the Retry-After block of the last 429) and the
endpoint's bucket.  An attempt sent when the bucket is empty ends ``error_s`` later as a
retryable failure with the endpoint's Retry-After (the scheduler retries it), and counts
as a 429 in :attr:`SimResult.endpoints`.

Adaptation: with ``adaptive`` (an :class:`~paragents.adaptive.AdaptiveConfig`), an
:class:`~paragents.adaptive.AdaptiveManager` observes every log event as it is appended
and ticks every ``period_s`` of virtual time while the run lasts; its actions are carried
out like the scheduler's decisions (a :class:`~paragents.adaptive.SetConcurrency` sets a
gate's limit).  A hedged task has two live attempts, so live attempts are keyed by
``(task, attempt)``; a :class:`Cancel` naming an attempt stops that one only.

``duration``, ``fails`` and ``expand`` are hooks of ``(task, agent, attempt)`` for tests
and replays: a fixed duration instead of the agent's ``task.duration / speed``, a failure
decided at the attempt's end, an :class:`Expansion` applied when it finishes.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..adaptive.manager import AdaptiveConfig, AdaptiveManager, Replan, SetConcurrency
from ..core.agent_state import AgentLike, AgentState
from ..core.budget import Budget
from ..core.errors import SchedulingError
from ..core.events import Cancel, Decision, Dispatch, Event, Expansion, Retry
from ..core.graph import Task, TaskGraph
from ..core.policies.assign import AssignPolicy
from ..core.policies.priority import PriorityPolicy
from ..core.policies.resolve import resolve_assign, resolve_priority
from ..core.policies.retry import Backoff
from ..core.report import RunReport, build_report, usage_dict
from ..core.scheduler import Scheduler
from .latency import Draw, Endpoint, LatencyModel, ModelServer

__all__ = ["Arrival", "EndpointStats", "RequestOutcome", "ServerStats", "SimResult", "simulate"]

DurationFn = Callable[[Task, AgentState, int], float]
FailFn = Callable[[Task, AgentState, int], bool]
ExpandFn = Callable[[Task, AgentState, int], Expansion | None]

_FIXED = LatencyModel()


@dataclass(frozen=True, slots=True)
class Arrival:
    """A request that arrives at ``time``: its tasks (ids unique in the run) and edges."""

    time: float
    name: str
    tasks: tuple[Task, ...]
    edges: tuple[tuple[str, str], ...] = ()
    kind: str = ""  # its shape, e.g. "simple", for grouping in reports


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    name: str
    kind: str
    arrival: float
    finished: float | None  # when its last task ended; None if some task did not finish
    tasks: int

    @property
    def latency(self) -> float | None:
        return None if self.finished is None else self.finished - self.arrival


@dataclass(slots=True)
class ServerStats:
    name: str
    busy_s: float = 0.0  # time with at least one call admitted
    batch_s: float = 0.0  # integral of the decoding batch size over time
    tokens: float = 0.0  # completion tokens decoded
    calls: int = 0

    @property
    def mean_batch(self) -> float:
        return self.batch_s / self.busy_s if self.busy_s > 0 else 0.0

    def to_dict(self, horizon: float) -> dict[str, float]:
        return {
            "busy_s": self.busy_s,
            "utilization": self.busy_s / horizon if horizon > 0 else 0.0,
            "mean_batch": self.mean_batch,
            "tokens": self.tokens,
            "calls": self.calls,
        }


@dataclass(slots=True)
class EndpointStats:
    name: str
    sent: int = 0  # requests that reached the endpoint
    accepted: int = 0
    limited: int = 0  # answered 429
    peak_in_flight: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "accepted": self.accepted, "limited": self.limited, "peak_in_flight": self.peak_in_flight}


@dataclass(slots=True)
class SimResult:
    scheduler: Scheduler
    report: RunReport
    requests: list[RequestOutcome] = field(default_factory=list)
    servers: dict[str, ServerStats] = field(default_factory=dict)
    seed: int = 0
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)

    @property
    def events(self) -> list[Event]:
        return self.scheduler.events

    @property
    def makespan(self) -> float:
        return self.report.makespan_s

    def to_dict(self) -> dict[str, Any]:
        out = self.report.to_dict()
        out["seed"] = self.seed
        if self.servers:
            out["servers"] = {n: s.to_dict(self.report.makespan_s) for n, s in self.servers.items()}
        if self.requests:
            out["requests"] = request_summary(self.requests, self.report.makespan_s)
        if self.endpoints:
            out["endpoints"] = {n: e.to_dict() for n, e in self.endpoints.items()}
        return out


def request_summary(requests: Sequence[RequestOutcome], horizon: float) -> dict[str, Any]:
    """Count, completed, throughput and latency percentiles, overall and per kind."""

    def stats(rs: Sequence[RequestOutcome]) -> dict[str, float]:
        lat = sorted(r.latency for r in rs if r.latency is not None)
        return {
            "count": len(rs),
            "completed": len(lat),
            "mean_latency_s": sum(lat) / len(lat) if lat else math.nan,
            "p50_latency_s": percentile(lat, 50),
            "p95_latency_s": percentile(lat, 95),
            "p99_latency_s": percentile(lat, 99),
        }

    out: dict[str, Any] = stats(requests)
    out["throughput_rps"] = out["completed"] / horizon if horizon > 0 else 0.0
    kinds = sorted({r.kind for r in requests if r.kind})
    if len(kinds) > 1:
        out["by_kind"] = {k: stats([r for r in requests if r.kind == k]) for k in kinds}
    return out


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# ------------------------------------------------------------------ attempts and servers
class _Attempt:
    __slots__ = (
        "admitted",
        "agent",
        "attempt",
        "draw",
        "fails",
        "gate",
        "remaining",
        "task",
        "tokens",
        "tool_s",
        "transfer_s",
    )

    def __init__(self, task: Task, agent: AgentState, attempt: int, draw: Draw) -> None:
        self.task = task
        self.agent = agent
        self.attempt = attempt
        self.draw = draw
        self.transfer_s = 0.0
        self.tool_s = 0.0
        self.admitted = 0.0  # when the model (server or fixed compute) started on it
        self.tokens = 0.0
        self.remaining = 0.0
        self.fails = False
        self.gate: _Gate | None = None  # the endpoint gate it holds a slot of, if any

    @property
    def key(self) -> tuple[str, int]:
        return (self.task.id, self.attempt)


class _Gate:
    """A rate-limited endpoint and the client's admission to it (see the module docstring)."""

    __slots__ = ("blocked_until", "in_flight", "level", "limit", "queue", "spec", "stamp", "stats", "waking")

    def __init__(self, spec: Endpoint) -> None:
        self.spec = spec
        self.limit: int | None = None
        self.in_flight = 0
        self.queue: deque[_Attempt] = deque()
        self.blocked_until = -math.inf
        self.level = spec.capacity
        self.stamp = 0.0
        self.waking = False  # a "gate" happening is pending at blocked_until
        self.stats = EndpointStats(spec.name)

    def take(self, now: float) -> float:
        """0.0 when the endpoint accepts a request now (a token from its bucket), else
        the Retry-After of its 429."""
        rate = self.spec.requests_per_minute / 60.0
        self.level = min(self.spec.capacity, self.level + (now - self.stamp) * rate)
        self.stamp = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        given = self.spec.retry_after_s
        return given if given is not None else (1.0 - self.level) / rate


class _Server:
    """A processor-sharing model server (see the module docstring)."""

    __slots__ = ("decoding", "last", "prefilling", "queue", "spec", "stats", "version")

    def __init__(self, spec: ModelServer) -> None:
        self.spec = spec
        self.prefilling: set[_Attempt] = set()
        self.decoding: dict[_Attempt, None] = {}  # ordered set: deterministic iteration
        self.queue: deque[_Attempt] = deque()
        self.last = 0.0
        self.version = 0
        self.stats = ServerStats(spec.name)

    def members(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def rate(self, a: _Attempt) -> float:
        return self.spec.curve.per_request(len(self.decoding)) * a.agent.speed

    def advance(self, now: float) -> None:
        dt = now - self.last
        if dt > 0:
            if self.members():
                self.stats.busy_s += dt
            n = len(self.decoding)
            if n:
                self.stats.batch_s += n * dt
                per = self.spec.curve.per_request(n)
                for a in self.decoding:
                    done = per * a.agent.speed * dt
                    a.remaining -= done
                    self.stats.tokens += done
        self.last = now

    def next_completion(self) -> float | None:
        if not self.decoding:
            return None
        return min(max(a.remaining, 0.0) / self.rate(a) for a in self.decoding)

    def remove(self, a: _Attempt) -> None:
        self.prefilling.discard(a)
        self.decoding.pop(a, None)
        if a in self.queue:
            self.queue.remove(a)


# ------------------------------------------------------------------ the engine
class _Engine:
    def __init__(
        self,
        sched: Scheduler,
        latency: LatencyModel,
        rng: random.Random,
        duration: DurationFn | None,
        fails: FailFn | None,
        expand: ExpandFn | None,
        adaptive: AdaptiveManager | None = None,
    ) -> None:
        self.sched = sched
        self.latency = latency
        self.rng = rng
        self.duration = duration
        self.fails = fails
        self.expand = expand
        self.heap: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.live: dict[tuple[str, int], _Attempt] = {}
        self.made_on: dict[str, str] = {}  # task id -> agent that produced its result
        self.servers = {s.name: _Server(s) for s in latency.servers}
        self.gates = {e.name: _Gate(e) for e in latency.endpoints}
        self.adaptive = adaptive
        self.seen = 0  # log events the adaptive manager has observed

    def push(self, at: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, payload))

    def carry_out(self, decisions: Sequence[Decision | SetConcurrency | Replan]) -> None:
        for d in decisions:
            if isinstance(d, Dispatch):
                self.dispatch(d)
            elif isinstance(d, Retry):
                self.push(d.not_before, "tick", None)
            elif isinstance(d, Cancel):
                keys = [(d.task, d.attempt)] if d.attempt else [k for k in self.live if k[0] == d.task]
                for key in keys:
                    a = self.live.pop(key, None)
                    if a is not None:
                        self.leave_server(a)
                        self.leave_gate(a)
            elif isinstance(d, SetConcurrency):
                gate = self.gates.get(d.endpoint)
                if gate is not None:
                    gate.limit = d.limit
                    self.pump(gate)
            # A Replan has nothing to carry out here: the simulator has no planner; the
            # manager logged it.

    def run(self, arrivals: Iterable[Arrival]) -> None:
        for arr in arrivals:
            self.push(arr.time, "arrive", arr)
        if self.adaptive is not None:
            self.carry_out(self.adaptive.initial_actions())
        self.carry_out(self.sched.start(0.0))
        if self.sched.deadline is not None:  # a budget's deadline wakes the run even when idle
            self.push(self.sched.deadline, "tick", None)
        if self.adaptive is not None:
            self.observe()
            self.push(self.adaptive.config.period_s, "adapt", None)
        heap = self.heap
        while heap:
            self.now, _, kind, payload = heapq.heappop(heap)
            getattr(self, "on_" + kind)(payload)
            if self.adaptive is not None:
                self.observe()

    def observe(self) -> None:
        assert self.adaptive is not None
        events = self.sched.events
        while self.seen < len(events):
            self.adaptive.observe(events[self.seen], self.sched)
            self.seen += 1

    def on_adapt(self, _: None) -> None:
        assert self.adaptive is not None
        if not self.sched.done:  # done may be momentary: requests may still arrive
            self.observe()
            self.carry_out(self.adaptive.tick(self.now, self.sched))
        if self.heap:  # only while something else may still happen
            self.push(self.now + self.adaptive.config.period_s, "adapt", None)

    # -------------------------------------------------------------- stages
    def dispatch(self, d: Dispatch) -> None:
        sched, lat = self.sched, self.latency
        task = sched.graph[d.task]
        agent = sched.agents[d.agent]
        a = _Attempt(task, agent, d.attempt, lat.draw(self.rng))
        self.live[a.key] = a
        route = lat.routes.get(agent.name)
        if route is None:
            self.begin(a)
            return
        gate = self.gates[route]
        gate.queue.append(a)
        self.pump(gate)

    # -------------------------------------------------------------- endpoints
    def pump(self, gate: _Gate) -> None:
        """Send queued attempts while the client's limit and Retry-After block allow."""
        now = self.now
        if gate.blocked_until > now:
            if not gate.waking and gate.queue:
                gate.waking = True
                self.push(gate.blocked_until, "gate", gate)
            return
        while gate.queue and (gate.limit is None or gate.in_flight < gate.limit):
            a = gate.queue.popleft()
            a.gate = gate
            gate.in_flight += 1
            st = gate.stats
            st.sent += 1
            st.peak_in_flight = max(st.peak_in_flight, gate.in_flight)
            wait = gate.take(now)
            if wait == 0.0:
                st.accepted += 1
                self.begin(a)
            else:
                st.limited += 1
                self.push(now + gate.spec.error_s, "limited", (a, wait))

    def on_gate(self, gate: _Gate) -> None:
        gate.waking = False
        self.pump(gate)

    def leave_gate(self, a: _Attempt) -> None:
        gate = a.gate
        if gate is not None:
            a.gate = None
            gate.in_flight -= 1
            self.pump(gate)
        else:
            for g in self.gates.values():
                if a in g.queue:
                    g.queue.remove(a)

    def on_limited(self, payload: tuple[_Attempt, float]) -> None:
        a, retry_after = payload
        if self.live.get(a.key) is not a:
            return
        del self.live[a.key]
        gate = a.gate
        assert gate is not None
        gate.blocked_until = max(gate.blocked_until, self.now + retry_after)
        self.leave_gate(a)
        error = f"429 Too Many Requests from endpoint {gate.spec.name!r} (rate limited)"
        self.carry_out(
            self.sched.task_failed(a.task.id, self.now, error=error, retry_after=retry_after, attempt=a.attempt)
        )

    def begin(self, a: _Attempt) -> None:
        """The attempt's stages after admission: transfer, tool, model or fixed compute."""
        lat, now = self.latency, self.now
        task, agent = a.task, a.agent
        if lat.network is not None:
            a.transfer_s = self.transfer(task, agent.name)
        server = lat.placement.get(agent.name)
        if server is not None and self.duration is None:
            tool = float(task.meta.get("tool_s", 0.0)) if task.meta else 0.0
            a.tool_s = tool * a.draw.scale
            tokens = task.tokens if task.tokens > 0 else max(task.duration - tool, 0.0) * lat.tokens_per_s
            a.tokens = tokens * a.draw.scale
            self.push(now + a.transfer_s + a.tool_s, "join", (server, a))
            return
        a.admitted = now + a.transfer_s
        took = self.duration(task, agent, a.attempt) if self.duration else task.duration / agent.speed
        took = max(took, 0.0) * a.draw.scale
        if a.draw.fail_at is not None:
            took *= a.draw.fail_at
            a.fails = True
        self.push(a.admitted + took, "end", a)

    def transfer(self, task: Task, agent: str) -> float:
        net = self.latency.network
        assert net is not None
        sizes = task.meta.get("input_bytes", {}) if task.meta else {}
        total = 0.0
        for dep in task.depends_on:
            if self.made_on.get(dep, agent) != agent:
                total += net.cost(float(sizes.get(dep, net.default_bytes)))
        return total

    def on_join(self, payload: tuple[str, _Attempt]) -> None:
        name, a = payload
        if self.live.get(a.key) is not a:
            return  # cancelled while in transfer
        srv = self.servers[name]
        if srv.members() < srv.spec.max_batch:
            self.admit(srv, a)
        else:
            srv.queue.append(a)

    def admit(self, srv: _Server, a: _Attempt) -> None:
        srv.advance(self.now)
        srv.prefilling.add(a)
        srv.stats.calls += 1
        a.admitted = self.now
        self.push(self.now + srv.spec.ttft_s * a.draw.scale, "prefilled", (srv, a))

    def on_prefilled(self, payload: tuple[_Server, _Attempt]) -> None:
        srv, a = payload
        if a not in srv.prefilling:
            return
        srv.advance(self.now)
        srv.prefilling.discard(a)
        a.remaining = a.tokens * (a.draw.fail_at if a.draw.fail_at is not None else 1.0)
        a.fails = a.draw.fail_at is not None
        srv.decoding[a] = None
        self.reschedule(srv)

    def reschedule(self, srv: _Server) -> None:
        srv.version += 1
        nxt = srv.next_completion()
        if nxt is not None:
            self.push(self.now + nxt, "server", (srv, srv.version))

    def on_server(self, payload: tuple[_Server, int]) -> None:
        srv, version = payload
        if version != srv.version:
            return
        srv.advance(self.now)
        ended = [a for a in srv.decoding if a.remaining <= 1e-9 * max(a.tokens, 1.0)]
        for a in ended:
            del srv.decoding[a]
        while srv.queue and srv.members() < srv.spec.max_batch:
            self.admit(srv, srv.queue.popleft())
        self.reschedule(srv)
        for a in ended:
            self.on_end(a)

    def leave_server(self, a: _Attempt) -> None:
        name = self.latency.placement.get(a.agent.name)
        srv = self.servers.get(name) if name is not None else None
        if srv is None:
            return
        if a in srv.decoding or a in srv.prefilling:
            srv.advance(self.now)
            srv.remove(a)
            while srv.queue and srv.members() < srv.spec.max_batch:
                self.admit(srv, srv.queue.popleft())
            self.reschedule(srv)
        elif a in srv.queue:
            srv.queue.remove(a)

    # -------------------------------------------------------------- outcomes
    def on_end(self, a: _Attempt) -> None:
        tid = a.task.id
        if self.live.get(a.key) is not a:
            return  # cancelled or superseded attempt
        del self.live[a.key]
        self.leave_gate(a)
        sched, now = self.sched, self.now
        if a.fails or (self.fails is not None and self.fails(a.task, a.agent, a.attempt)):
            self.carry_out(sched.task_failed(tid, now, error="injected failure", attempt=a.attempt))
            return
        self.made_on[tid] = a.agent.name
        usage = usage_dict(
            compute_s=now - a.admitted + a.tool_s,
            transfer_s=a.transfer_s,
            prompt_tokens=int(a.task.meta.get("prompt_tokens", 0)) if a.task.meta else 0,
            completion_tokens=round(a.tokens),
        )
        exp = self.expand(a.task, a.agent, a.attempt) if self.expand is not None else None
        self.carry_out(sched.task_finished(tid, now, usage=usage, expansion=exp, attempt=a.attempt))

    def on_tick(self, _: None) -> None:
        self.carry_out(self.sched.tick(self.now))

    def on_arrive(self, arr: Arrival) -> None:
        self.carry_out(self.sched.tasks_added(arr.tasks, arr.edges, now=self.now))


def simulate(
    graph: TaskGraph | None,
    agents: Iterable[AgentLike],
    *,
    arrivals: Sequence[Arrival] = (),
    latency: LatencyModel | None = None,
    priority: str | PriorityPolicy = "critical_path",
    assign: str | AssignPolicy = "earliest_finish",
    aging: float = 0.0,
    backoff: Backoff | None = None,
    failover_after: int = 2,
    seed: int = 0,
    duration: DurationFn | None = None,
    fails: FailFn | None = None,
    expand: ExpandFn | None = None,
    run_id: str = "sim",
    budget: Budget | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> SimResult:
    """Run ``graph`` (and the ``arrivals``, at their times) on a virtual clock.

    ``budget`` limits the run as in the runtime; its deadline is seen at the first
    happening at or after it.  ``adaptive`` runs an adaptive manager inside the run
    (see the module docstring)."""
    agents = list(agents)
    model = latency if latency is not None else _FIXED
    unknown = sorted(set(model.placement) - {a.name for a in agents})
    if unknown:
        raise SchedulingError(f"latency model places unknown agents: {', '.join(unknown)}")
    sched = Scheduler(
        graph if graph is not None else TaskGraph(),
        agents,
        priority=resolve_priority(priority, aging),
        assign=resolve_assign(assign),
        backoff=backoff,
        failover_after=failover_after,
        seed=seed,
        budget=budget,
    )
    manager = AdaptiveManager(adaptive, model.routes) if adaptive is not None else None
    engine = _Engine(sched, model, random.Random(seed), duration, fails, expand, manager)
    arrivals = sorted(arrivals, key=lambda r: r.time)
    engine.run(arrivals)
    if not sched.done:
        raise SchedulingError(f"run stalled with tasks left: {sched.counts}")
    report = build_report(sched.events, sched.graph, run_id=run_id)
    return SimResult(
        sched,
        report,
        requests=_outcomes(arrivals, sched.events),
        servers={n: s.stats for n, s in engine.servers.items()},
        seed=seed,
        endpoints={n: g.stats for n, g in engine.gates.items()},
    )


def _outcomes(arrivals: Sequence[Arrival], events: Sequence[Event]) -> list[RequestOutcome]:
    """Each request's end: its last task's finish, counting tasks its tasks expanded into."""
    if not arrivals:
        return []
    owner: dict[str, int] = {}
    for i, arr in enumerate(arrivals):
        for t in arr.tasks:
            owner[t.id] = i
    size = [len(arr.tasks) for arr in arrivals]
    done = [0] * len(arrivals)
    last = [0.0] * len(arrivals)
    for e in events:
        if e.kind == "added" and e.data and e.data.get("by") in owner:
            i = owner[e.data["by"]]
            for tid in e.data["tasks"]:
                if tid not in owner:
                    owner[tid] = i
                    size[i] += 1
        elif e.kind == "finished" and e.task in owner:
            i = owner[e.task]
            done[i] += 1
            last[i] = max(last[i], e.time)
    return [
        RequestOutcome(arr.name, arr.kind, arr.time, last[i] if done[i] == size[i] else None, size[i])
        for i, arr in enumerate(arrivals)
    ]
