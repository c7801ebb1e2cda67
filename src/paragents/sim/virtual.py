"""The virtual-clock driver: the real scheduler, with time that jumps.

Theory of operation
-------------------
This driver plays trio's ``MockClock`` role for the core.  It keeps a heap of future
happenings ``(time, seq, kind, task, attempt)``; it pops the earliest, sets ``now`` to its
time, feeds it to the :class:`~paragents.core.scheduler.Scheduler`, and turns the
decisions into new happenings: a :class:`Dispatch` schedules that attempt's end at
``now + duration``, a :class:`Retry` schedules a ``tick`` at ``not_before``, a
:class:`Cancel` forgets the attempt.  Nothing sleeps, so a run of thousands of tasks
takes milliseconds and every time in its log is exact.

What happens to an attempt is decided by three optional functions of ``(task, agent,
attempt)``: ``duration`` (default ``task.duration / agent.speed``), ``fails`` (default
never) and ``expand`` (default none; returns an :class:`Expansion` applied when the task
finishes).  Ties at one instant are processed in the order they were scheduled, so a
run is a pure function of its inputs and seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..core.agent_state import AgentLike, AgentState
from ..core.errors import SchedulingError
from ..core.events import Cancel, Decision, Dispatch, Event, Expansion, Retry
from ..core.graph import Task, TaskGraph
from ..core.policies.assign import AssignPolicy
from ..core.policies.priority import PriorityPolicy
from ..core.policies.retry import Backoff
from ..core.report import RunReport, build_report
from ..core.scheduler import Scheduler

__all__ = ["VirtualRun", "run_virtual"]

DurationFn = Callable[[Task, AgentState, int], float]
FailFn = Callable[[Task, AgentState, int], bool]
ExpandFn = Callable[[Task, AgentState, int], Expansion | None]


@dataclass(slots=True)
class VirtualRun:
    scheduler: Scheduler
    report: RunReport

    @property
    def events(self) -> list[Event]:
        return self.scheduler.events

    @property
    def makespan(self) -> float:
        return self.report.makespan_s


def run_virtual(
    graph: TaskGraph,
    agents: Iterable[AgentLike],
    *,
    priority: PriorityPolicy | None = None,
    assign: AssignPolicy | None = None,
    backoff: Backoff | None = None,
    seed: int = 0,
    duration: DurationFn | None = None,
    fails: FailFn | None = None,
    expand: ExpandFn | None = None,
    run_id: str = "virtual",
) -> VirtualRun:
    """Run ``graph`` on a virtual clock and return the scheduler (with its log) and the report."""
    sched = Scheduler(graph, agents, priority=priority, assign=assign, backoff=backoff, seed=seed)
    heap: list[tuple[float, int, str, str, int]] = []
    seq = 0
    now = 0.0

    def carry_out(decisions: list[Decision]) -> None:
        nonlocal seq
        for d in decisions:
            seq += 1
            if isinstance(d, Dispatch):
                task = sched.graph[d.task]
                agent = sched.agents[d.agent]
                took = duration(task, agent, d.attempt) if duration else task.duration / agent.speed
                heapq.heappush(heap, (now + max(took, 0.0), seq, "end", d.task, d.attempt))
            elif isinstance(d, Retry):
                heapq.heappush(heap, (d.not_before, seq, "tick", d.task, d.attempt))
            elif isinstance(d, Cancel):
                pass  # the attempt's end will be reported and ignored as stale

    carry_out(sched.start(now))
    while heap:
        now, _, kind, tid, attempt = heapq.heappop(heap)
        if kind == "tick":
            carry_out(sched.tick(now))
            continue
        if sched.attempt(tid) != attempt or sched.state(tid).terminal:
            continue  # cancelled or superseded attempt
        task = sched.graph[tid]
        name = sched.agent_of(tid)
        agent = sched.agents.get(name) if name else None
        if agent is None:
            continue
        if fails is not None and fails(task, agent, attempt):
            carry_out(sched.task_failed(tid, now, error="injected failure", attempt=attempt))
        else:
            exp = expand(task, agent, attempt) if expand is not None else None
            carry_out(sched.task_finished(tid, now, expansion=exp, attempt=attempt))
    if not sched.done:
        raise SchedulingError(f"run stalled with tasks left: {sched.counts}")
    return VirtualRun(sched, build_report(sched.events, sched.graph, run_id=run_id))
