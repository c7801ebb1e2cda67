"""Hypothesis strategies for random task graphs and agent pools, and the checks every
schedule must pass.

Durations are drawn on a quarter-second grid by default: sums of such numbers are exact
in binary floating point, so properties can be asserted with ``==`` instead of a
tolerance.  Graphs are built with their tasks in a shuffled order, so dependencies often
point forward within the batch (which :meth:`TaskGraph.add` must accept).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
from hypothesis import strategies as st

from paragents.core.agent_state import WILDCARD, AgentSpec
from paragents.core.analysis import lower_bound
from paragents.core.graph import Task, TaskGraph
from paragents.sim.engine import SimResult

SKILLS = ("code", "web", "math")

#: Durations on a quarter-second grid: 0, 0.25, ..., 10.
QUARTERS = st.integers(0, 40).map(lambda k: k / 4)
#: Strictly positive durations on the same grid.
POSITIVE_QUARTERS = st.integers(1, 40).map(lambda k: k / 4)


@st.composite
def dag_shapes(draw: st.DrawFn, min_tasks: int = 0, max_tasks: int = 14, max_preds: int = 3) -> list[list[int]]:
    """For task ``i``, the indices ``< i`` it depends on (so the shape is acyclic)."""
    n = draw(st.integers(min_tasks, max_tasks))
    shape: list[list[int]] = []
    for i in range(n):
        preds = draw(st.sets(st.integers(0, i - 1), max_size=min(i, max_preds))) if i else set()
        shape.append(sorted(preds))
    return shape


@st.composite
def task_graphs(
    draw: st.DrawFn,
    min_tasks: int = 0,
    max_tasks: int = 14,
    durations: st.SearchStrategy[float] = QUARTERS,
    max_preds: int = 3,
) -> TaskGraph:
    """A random DAG of tasks ``t0, t1, ...`` added in one batch, in shuffled order."""
    shape = draw(dag_shapes(min_tasks, max_tasks, max_preds))
    tasks = [
        Task(f"t{i}", duration=draw(durations), depends_on=tuple(f"t{p}" for p in preds))
        for i, preds in enumerate(shape)
    ]
    order = draw(st.permutations(range(len(tasks))))
    return TaskGraph([tasks[i] for i in order])


@st.composite
def agent_pools(draw: st.DrawFn, max_specialists: int = 3) -> list[AgentSpec]:
    """One ``'*'`` generalist plus a few specialists, with mixed speeds and slots."""
    speeds = st.sampled_from([0.5, 1.0, 2.0, 3.0])
    agents = [AgentSpec("generalist", frozenset({WILDCARD}), draw(st.integers(1, 2)), draw(speeds))]
    for k in range(draw(st.integers(0, max_specialists))):
        skills = draw(st.sets(st.sampled_from(SKILLS), min_size=1, max_size=2))
        agents.append(AgentSpec(f"spec{k}", frozenset(skills), draw(st.integers(1, 3)), draw(speeds)))
    order = draw(st.permutations(range(len(agents))))
    return [agents[i] for i in order]


@dataclass(frozen=True)
class Scenario:
    """A graph, a pool able to run it, and which attempts fail: ``(task id, attempt)``."""

    graph: TaskGraph
    agents: list[AgentSpec]
    failing: frozenset[tuple[str, int]]

    def fails(self, task: Task, agent: object, attempt: int) -> bool:
        return (task.id, attempt) in self.failing


@st.composite
def scenarios(draw: st.DrawFn, max_tasks: int = 14, with_failures: bool = True) -> Scenario:
    """Heterogeneous work for heterogeneous agents: skills, pins, user priorities, retries,
    and (optionally) injected failures of some attempts."""
    agents = draw(agent_pools())
    shape = draw(dag_shapes(1, max_tasks))
    tasks = []
    failing: set[tuple[str, int]] = set()
    for i, preds in enumerate(shape):
        skills = frozenset(draw(st.sets(st.sampled_from(SKILLS), max_size=2)))
        capable = [a.name for a in agents if WILDCARD in a.skills or skills <= a.skills]
        pin = draw(st.sampled_from(capable)) if draw(st.integers(0, 4)) == 0 else None
        retries = draw(st.integers(0, 2)) if with_failures else 0
        tasks.append(
            Task(
                f"t{i}",
                skills=skills,
                depends_on=tuple(f"t{p}" for p in preds),
                duration=draw(QUARTERS),
                priority=float(draw(st.integers(-3, 3))),
                retries=retries,
                agent=pin,
            )
        )
        if with_failures:
            for attempt in range(1, retries + 2):
                if draw(st.integers(0, 5)) == 0:
                    failing.add((f"t{i}", attempt))
    order = draw(st.permutations(range(len(tasks))))
    return Scenario(TaskGraph([tasks[i] for i in order]), agents, frozenset(failing))


# ---------------------------------------------------------------------------- networkx


def diamond() -> TaskGraph:
    """A small hand-checkable graph: critical path a-b-d of 6, total work 7."""
    #   a(2) -> b(3) -> d(1)
    #   a(2) -> c(1) -> d(1)
    return TaskGraph(
        [
            Task("a", duration=2.0),
            Task("b", duration=3.0, depends_on=("a",)),
            Task("c", duration=1.0, depends_on=("a",)),
            Task("d", duration=1.0, depends_on=("b", "c")),
        ]
    )


def split_networkx(graph: TaskGraph, durations: dict[str, float] | None = None) -> nx.DiGraph:
    """The graph with each task ``t`` split into ``(t, 'in') -> (t, 'out')`` weighted by its
    duration, and each dependency an edge of weight 0: node-weighted longest paths of the
    task graph are edge-weighted longest paths here."""
    d = durations if durations is not None else {t.id: t.duration for t in graph}
    g = nx.DiGraph()
    for t in graph:
        g.add_edge((t.id, "in"), (t.id, "out"), weight=d[t.id])
    for u, v in graph.edges:
        g.add_edge((u, "out"), (v, "in"), weight=0.0)
    return g


def nx_longest_path_length(graph: TaskGraph, durations: dict[str, float] | None = None) -> float:
    if len(graph) == 0:
        return 0.0
    return float(nx.dag_longest_path_length(split_networkx(graph, durations), weight="weight", default_weight=0))


# ---------------------------------------------------------------------------- schedule checks

_TERMINAL_KINDS = frozenset({"finished", "failed", "cancelled"})
_ATTEMPT_ENDS = frozenset({"finished", "failed", "retry", "cancelled", "requeued"})


def slot_speeds(agents: Sequence[AgentSpec]) -> list[float]:
    """One speed per slot: the capacity argument of :func:`analysis.lower_bound`."""
    return [a.speed for a in agents for _ in range(a.slots)]


def check_schedule(run: SimResult, agents: Sequence[AgentSpec]) -> None:
    """Assert the invariants every schedule must keep, reading only the event log.

    * no task is dispatched before every task it depends on has finished;
    * a dispatched task goes to an agent that has its skills (and is its pinned agent);
    * no agent ever runs more attempts at once than it has slots;
    * attempts of a task are numbered 1, 2, ... in dispatch order;
    * every task ends exactly once (one terminal event), and is never dispatched after;
    * the makespan is at least the report's lower bound;
    * the report counts every task once, its latency split adds up for every done task
      (compute + transfer + processing == end - ready), and no agent is over 100% busy.
    """
    graph = run.scheduler.graph
    by_name = {a.name: a for a in agents}
    slots = {a.name: a.slots for a in agents}
    finished_at: dict[str, float] = {}
    running: dict[str, set[tuple[str, int]]] = defaultdict(set)
    attempts: dict[str, int] = defaultdict(int)
    terminal: dict[str, list[str]] = defaultdict(list)
    last_time = float("-inf")
    for e in run.events:
        assert e.time >= last_time, f"event log goes back in time at {e}"
        last_time = e.time
        if e.kind == "capacity":
            slots[e.agent] = e.data["slots"]
        if e.task is None:
            continue
        if e.kind == "dispatched":
            assert not terminal[e.task], f"{e.task} dispatched after it ended: {e}"
            for p in graph.predecessors(e.task):
                assert p in finished_at, f"{e.task} dispatched at {e.time} before input {p} finished"
                assert finished_at[p] <= e.time
            task = graph[e.task]
            agent = by_name[e.agent]
            assert WILDCARD in agent.skills or task.skills <= agent.skills, f"{e.task} on incapable {e.agent}"
            assert task.agent is None or task.agent == e.agent, f"{e.task} pinned to {task.agent}, ran on {e.agent}"
            attempts[e.task] += 1
            assert e.attempt == attempts[e.task]
            running[e.agent].add((e.task, e.attempt))
            assert len(running[e.agent]) <= slots[e.agent], f"{e.agent} over capacity at {e.time}"
        if e.kind in _ATTEMPT_ENDS and e.agent is not None:
            running[e.agent].discard((e.task, e.attempt))
        if e.kind == "finished":
            finished_at[e.task] = e.time
        if e.kind in _TERMINAL_KINDS:
            terminal[e.task].append(e.kind)
    for t in graph.ids:
        assert len(terminal[t]) == 1, f"task {t} ended {len(terminal[t])} times: {terminal[t]}"
    assert not any(running.values()), f"attempts never ended: {dict(running)}"
    assert run.scheduler.done
    report = run.report
    counts = report.tasks
    assert counts["done"] + counts["failed"] + counts["cancelled"] == counts["total"] == len(graph)
    for t in report.timings.values():
        if t.state == "done":
            assert t.ready_at is not None and t.end is not None
            split = t.compute_s + t.transfer_s + t.processing_s
            assert abs(split - (t.end - t.ready_at)) <= 1e-9, f"{t.id}: latency split {split} != {t.end - t.ready_at}"
    for name, a in report.agents.items():
        assert 0.0 <= a["utilization"] <= 1.0 + 1e-9, f"{name} utilisation {a['utilization']}"
    assert run.makespan >= run.report.lower_bound_s - 1e-9


def check_static_bound(run: SimResult, agents: Sequence[AgentSpec]) -> None:
    """For a run where every task ran once at ``duration / speed``: the makespan is at least
    the static lower bound for these slot speeds."""
    assert run.makespan >= lower_bound(run.scheduler.graph, slot_speeds(agents)) - 1e-9
