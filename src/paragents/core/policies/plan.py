"""Planning policy: compute a whole schedule up front, then dispatch by it.

Theory of operation
-------------------
The online policies decide one dispatch at a time.  ``plan`` instead looks at all the
work that has not started yet and builds a static schedule for it, the way HEFT does,
then makes the scheduler follow that schedule.  It is one class that plays both roles
(priority and assignment); it plans again whenever the scheduler calls
:meth:`Plan.prepare` — at the start and whenever the graph or the agent pool changes.

**The model.**  Every slot of every agent is a *machine* of the agent's speed.  A task
may go to the machines of agents able to run it (skills, pin).  Running tasks are fixed:
they hold their slot until their expected end, and their successors cannot start before
it.  Finished tasks release their successors at ``now``.  A task's run time on a machine
is ``duration / speed``.

**Building a plan** (:func:`build_plan`, pure).  A *decoder* turns a priority key per
task (and optionally a machine per task) into a schedule: among the tasks whose planned
inputs are placed, take the highest key, and put it in the earliest gap of its machine
that starts after its inputs end (insertion); without a given machine it takes the one
where it finishes first (earliest finish time).  Starting points are HEFT itself (keys =
upward rank at the mean speed of the capable machines), ranks at the fastest speed, and
``restarts`` copies of HEFT's ranks scaled by seeded noise.  Each is improved by a
deterministic local search around the schedule's *critical chain* (the tasks whose start
was forced by an input or by the machine's previous task, back from the last to finish):
force one chain task onto another capable machine (the others still choose greedily),
or swap the keys of a chain task and the machine predecessor that delayed it; a change
is kept only if the makespan shrinks, or stays and the sum of end times shrinks.  At
most ``effort`` schedules are decoded per plan in all (fewer on big graphs, see
``_evaluations``); the best schedule wins, ties to plain HEFT.

**Following a plan.**  ``priorities`` are minus the planned start times, so the ready
queue is in plan order.  ``choose`` sends a task to its planned agent when that agent
has a free slot and every task planned earlier on that agent has started (for an agent
with ``k`` slots: fewer than ``free`` earlier ones are still waiting); otherwise it
answers ``None``, which for this policy means *not this task yet* (``skips``): the
scheduler keeps looking down the queue instead of giving up on the whole queue.  With
estimates exact, every task then starts no later than planned, so the makespan is at
most the plan's (provided the scheduler's look-ahead, ``LOOKAHEAD`` deferred tasks per
dispatch round, reaches each due task; in plan order it is near the front).  When actual durations differ, the per-agent order and placement are
kept and only start times move.

**Never stuck.**  A task falls back to earliest-finish assignment when it has no plan
(its agent left, it was not known when the plan was made), when it is being retried, or
when its planned agent is not among the candidates (failover) or has no slots.  And a
task is never held back while nothing at all is running: then nothing would ever wake
the scheduler again, so the first task offered goes to its planned agent (or, if busy,
the earliest-finish choice).  The wait relation of a plan follows increasing planned
start times, so it has no cycles; with the valve, a run always ends.

Nothing here reads a clock or does I/O; a plan is a pure function of the graph, the
pool, the task states and ``now``.
"""

from __future__ import annotations

import heapq
import random
from bisect import insort
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from ..agent_state import AgentState
from ..events import TaskState
from ..graph import Task, TaskGraph
from .assign import EarliestFinish

__all__ = ["Plan", "PlanProblem", "PlanResult", "PlanView", "build_plan", "problem_from_view"]

_WAITING = (TaskState.PENDING, TaskState.READY)
_EPS = 1e-9


class PlanView(Protocol):
    """What planning reads from the scheduler (which satisfies this protocol)."""

    @property
    def graph(self) -> TaskGraph: ...

    @property
    def agents(self) -> Mapping[str, AgentState]: ...

    def state(self, task_id: str) -> TaskState: ...

    def attempt(self, task_id: str) -> int: ...


@dataclass(slots=True)
class PlanProblem:
    """A planning instance over indices.  Tasks are in a topological order."""

    ids: list[str]
    dur: list[float]  # seconds at speed 1
    preds: list[list[int]]
    succs: list[list[int]]
    release: list[float]  # earliest start from inputs outside the plan (and ``now``)
    capable: list[list[int]]  # machine indices per task; empty: cannot be planned
    speed: list[float]  # per machine
    free_at: list[float]  # per machine: when its running task is expected to end
    owner: list[str]  # per machine: the agent's name


@dataclass(slots=True)
class PlanResult:
    """The chosen schedule: machine, start and end of every planned task."""

    machine: list[int]
    start: list[float]
    end: list[float]
    makespan: float
    evaluations: int


@dataclass(slots=True)
class _Decoded:
    machine: list[int]
    start: list[float]
    end: list[float]
    blocker: list[int]  # the task whose end forced this start, or -1
    makespan: float
    last: int  # a task that ends at the makespan, or -1
    flow: float  # the sum of end times: the tie-breaker between equal makespans

    def better_than(self, other: _Decoded) -> bool:
        """Shorter makespan, or as short and less total completion time."""
        if self.makespan < other.makespan - _EPS:
            return True
        return self.makespan <= other.makespan + _EPS and self.flow < other.flow - _EPS


# ---------------------------------------------------------------------- the problem
def problem_from_view(view: PlanView, now: float) -> PlanProblem:
    """The tasks that have not started, on the pool as it is at ``now``."""
    graph = view.graph
    running_end: dict[str, float] = {}
    owner: list[str] = []
    speed: list[float] = []
    free_at: list[float] = []
    machines_of: dict[str, list[int]] = {}
    for agent in view.agents.values():
        ends = sorted(agent.running.values())
        machines_of[agent.name] = []
        for k in range(agent.slots):
            machines_of[agent.name].append(len(owner))
            owner.append(agent.name)
            speed.append(agent.speed)
            free_at.append(max(now, ends[k]) if k < len(ends) else now)
        running_end.update(agent.running)
    ids = [t for t in graph.topological_order() if view.state(t) in _WAITING]
    index = {t: i for i, t in enumerate(ids)}
    agents = list(view.agents.values())
    preds: list[list[int]] = []
    release: list[float] = []
    capable: list[list[int]] = []
    for t in ids:
        own: list[int] = []
        rel = now
        for p in graph.predecessors(t):
            if p in index:
                own.append(index[p])
            elif p in running_end:
                rel = max(rel, running_end[p])
        preds.append(own)
        release.append(rel)
        capable.append(_capable(graph[t], agents, machines_of))
    succs: list[list[int]] = [[] for _ in ids]
    for i, ps in enumerate(preds):
        for p in ps:
            succs[p].append(i)
    dur = [graph[t].duration for t in ids]
    return PlanProblem(ids, dur, preds, succs, release, capable, speed, free_at, owner)


def _capable(task: Task, agents: Sequence[AgentState], machines_of: Mapping[str, list[int]]) -> list[int]:
    return [
        m
        for a in agents
        if (task.agent is None or task.agent == a.name) and a.can_run(task.skills)
        for m in machines_of[a.name]
    ]


# ---------------------------------------------------------------------- decoding
def _gap(busy: list[tuple[float, float, int]], free_at: float, est: float, d: float) -> tuple[float, int]:
    """Earliest start >= ``est`` of a ``d``-long run on a machine, and the task whose end
    pushed it there (-1 if none)."""
    t = max(est, free_at)
    why = -1
    for s, e, j in busy:
        if e <= t:
            continue
        if t + d <= s:
            return t, why
        t, why = e, j
    return t, why


def _decode(p: PlanProblem, keys: Sequence[float], forced: Mapping[int, int]) -> _Decoded:
    """List scheduling with insertion: highest key first among tasks whose inputs are
    placed; a task in ``forced`` goes to that machine, any other to its earliest finish."""
    n = len(p.ids)
    machine = [-1] * n
    start = [0.0] * n
    end = [0.0] * n
    blocker = [-1] * n
    busy: list[list[tuple[float, float, int]]] = [[] for _ in p.speed]
    missing = [len(ps) for ps in p.preds]
    heap = [(-keys[i], i) for i in range(n) if not missing[i]]
    heapq.heapify(heap)
    makespan, last = 0.0, -1
    while heap:
        _, i = heapq.heappop(heap)
        est, why = p.release[i], -1
        for q in p.preds[i]:
            if end[q] > est:
                est, why = end[q], q
        m_forced = forced.get(i)
        best = (float("inf"), 0.0, -1, -1)
        for m in p.capable[i] if m_forced is None else (m_forced,):
            d = p.dur[i] / p.speed[m]
            s, mwhy = _gap(busy[m], p.free_at[m], est, d)
            if s + d < best[0] - _EPS:
                best = (s + d, s, m, mwhy)
        finish, s, m, mwhy = best
        machine[i], start[i], end[i] = m, s, finish
        blocker[i] = mwhy if s > est + _EPS else why
        insort(busy[m], (s, finish, i))
        if last < 0 or finish > makespan + _EPS:
            makespan, last = max(makespan, finish), i
        for c in p.succs[i]:
            missing[c] -= 1
            if not missing[c]:
                heapq.heappush(heap, (-keys[c], c))
    return _Decoded(machine, start, end, blocker, makespan, last, sum(end))


# ---------------------------------------------------------------------- search
def _upward(p: PlanProblem, inverse_speed: Sequence[float]) -> list[float]:
    rank = [0.0] * len(p.ids)
    for i in reversed(range(len(p.ids))):
        rank[i] = p.dur[i] * inverse_speed[i] + max((rank[c] for c in p.succs[i]), default=0.0)
    return rank


def _starting_keys(p: PlanProblem, restarts: int) -> list[list[float]]:
    """HEFT's ranks (mean speed of the capable machines), ranks at the fastest speed, then
    ``restarts`` copies of HEFT's ranks each scaled by seeded noise (+-25%, lognormal)."""
    mean_inv = [sum(1.0 / p.speed[m] for m in ms) / len(ms) for ms in p.capable]
    fastest_inv = [1.0 / max(p.speed[m] for m in ms) for ms in p.capable]
    heft = _upward(p, mean_inv)
    starts = [heft, _upward(p, fastest_inv)]
    for k in range(restarts):
        rng = random.Random(k)
        starts.append([r * rng.lognormvariate(0.0, 0.25) for r in heft])
    return starts


def _chain(dec: _Decoded) -> list[int]:
    """The critical chain, from the last task to finish back to the first."""
    out: list[int] = []
    i = dec.last
    while i >= 0 and len(out) <= len(dec.machine):
        out.append(i)
        i = dec.blocker[i]
    return out


def _neighbours(p: PlanProblem, dec: _Decoded) -> Iterator[tuple[int, int]]:
    """Moves around the critical chain: ``(i, m)`` forces task ``i`` onto machine ``m``;
    ``(i, -1 - j)`` swaps the keys of ``i`` and ``j``, the task before it on its machine."""
    for i in _chain(dec):
        for m in p.capable[i]:
            if m != dec.machine[i]:
                yield i, m
        j = dec.blocker[i]
        if j >= 0 and dec.machine[j] == dec.machine[i] and i not in p.succs[j]:
            yield i, -1 - j


def _improve(p: PlanProblem, keys: list[float], budget: int) -> tuple[_Decoded, int]:
    """Greedy decode, then first-improvement local search around the critical chain.
    Returns the best schedule and the number of decodes spent."""
    forced: dict[int, int] = {}
    dec = _decode(p, keys, forced)
    used = 1
    while used < budget:
        for i, move in _neighbours(p, dec):
            if used >= budget:
                break
            if move >= 0:
                trial_forced = {**forced, i: move}
                got = _decode(p, keys, trial_forced)
            else:
                j = -1 - move
                keys[i], keys[j] = keys[j], keys[i]
                trial_forced = forced
                got = _decode(p, keys, forced)
            used += 1
            if got.better_than(dec):
                dec, forced = got, trial_forced
                break
            if move < 0:
                keys[i], keys[j] = keys[j], keys[i]
        else:
            break
    return dec, used


def _evaluations(p: PlanProblem, effort: int) -> int:
    """Decodes allowed in all: ``effort``, fewer when one decode is costly (about 10
    million elementary steps in all), and never fewer than one per starting point."""
    size = len(p.ids) + sum(map(len, p.preds)) + len(p.ids) * max(1, len(p.speed))
    return min(effort, 10_000_000 // max(size, 1))


def build_plan(p: PlanProblem, effort: int = 400, restarts: int = 6) -> PlanResult:
    """The best schedule found for ``p``: HEFT and perturbed HEFT, each improved by local
    search.  Tasks with no capable machine must have been left out of ``p``."""
    if not p.ids:
        return PlanResult([], [], [], 0.0, 0)
    starts = _starting_keys(p, restarts)
    per_start = max(1, _evaluations(p, effort) // len(starts))
    best: _Decoded | None = None
    spent = 0
    for keys in starts:
        dec, used = _improve(p, keys, per_start)
        spent += used
        if best is None or dec.better_than(best):
            best = dec
    assert best is not None
    return PlanResult(best.machine, best.start, best.end, best.makespan, spent)


# ---------------------------------------------------------------------- the policy
@dataclass(slots=True)
class Plan:
    """Priority and assignment by a precomputed schedule (see the module docstring)."""

    name: ClassVar[str] = "plan"
    skips: ClassVar[bool] = True  # ``None`` from choose() means "not this task yet"
    aging: float = 0.0
    effort: int = 400
    _view: PlanView | None = None
    _agent: dict[str, str] = field(default_factory=dict)  # task id -> planned agent
    _start: dict[str, float] = field(default_factory=dict)  # task id -> planned start
    _rank: dict[str, int] = field(default_factory=dict)  # task id -> position on its agent
    _queue: dict[str, list[str]] = field(default_factory=dict)  # agent -> tasks in planned order
    _head: dict[str, int] = field(default_factory=dict)  # agent -> first task that may be waiting
    _fallback: EarliestFinish = field(default_factory=EarliestFinish)
    makespan: float = 0.0  # the last plan's makespan (from its ``now``)

    def reset(self, seed: int) -> None:
        self._view = None
        self._agent.clear()
        self._start.clear()
        self._rank.clear()
        self._queue.clear()
        self._head.clear()
        self.makespan = 0.0

    def prepare(self, view: PlanView, now: float) -> None:
        """Plan everything that has not started, from ``now``."""
        self.reset(0)
        self._view = view
        full = problem_from_view(view, now)
        keep = [i for i, ms in enumerate(full.capable) if ms]
        problem = full if len(keep) == len(full.ids) else _restrict(full, keep)
        result = build_plan(problem, self.effort)
        self.makespan = result.makespan
        order = sorted(range(len(problem.ids)), key=lambda i: (result.start[i], result.end[i], i))
        for i in order:
            tid = problem.ids[i]
            agent = problem.owner[result.machine[i]]
            queue = self._queue.setdefault(agent, [])
            self._agent[tid] = agent
            self._start[tid] = result.start[i]
            self._rank[tid] = len(queue)
            queue.append(tid)
        self._head = dict.fromkeys(self._queue, 0)

    def priorities(self, graph: TaskGraph, speeds: Mapping[str, Sequence[float]]) -> Mapping[str, float]:
        return {t: -s for t, s in self._start.items()}

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        view = self._view
        name = self._agent.get(task.id)
        planned = next((a for a in agents if a.name == name), None) if name is not None else None
        if view is None or planned is None or planned.slots <= 0 or view.attempt(task.id) > 0:
            return self._fallback.choose(task, agents, now)
        if planned.free > 0 and self._due(task.id, planned):
            return planned
        if any(a.running for a in view.agents.values()):
            return None  # something will finish and offer this task again
        return planned if planned.free > 0 else self._fallback.choose(task, agents, now)

    def _due(self, task_id: str, agent: AgentState) -> bool:
        """Fewer than ``agent.free`` tasks planned before ``task_id`` on ``agent`` wait."""
        view = self._view
        assert view is not None
        queue = self._queue[agent.name]
        head = self._head[agent.name]
        while head < len(queue) and view.state(queue[head]) not in _WAITING:
            head += 1
        self._head[agent.name] = head
        waiting = 0
        for tid in queue[head:self._rank[task_id]]:
            if view.state(tid) in _WAITING:
                waiting += 1
                if waiting >= agent.free:
                    return False
        return True


def _restrict(p: PlanProblem, keep: list[int]) -> PlanProblem:
    """``p`` without the tasks not in ``keep`` (and, transitively, nothing else: a task
    whose planned input is dropped keeps the input's release floor of ``now``)."""
    new = {old: k for k, old in enumerate(keep)}
    preds = [[new[q] for q in p.preds[i] if q in new] for i in keep]
    succs: list[list[int]] = [[] for _ in keep]
    for k, ps in enumerate(preds):
        for q in ps:
            succs[q].append(k)
    return PlanProblem(
        [p.ids[i] for i in keep], [p.dur[i] for i in keep], preds, succs, [p.release[i] for i in keep],
        [p.capable[i] for i in keep], p.speed, p.free_at, p.owner,
    )
