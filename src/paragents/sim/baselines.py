"""How other frameworks would execute a task graph, as graphs paragents can run.

Theory of operation
-------------------
To compare execution models on one simulator, each is expressed as extra dependencies
on the same tasks, then run by the same scheduler with the same latency model — so the
comparison measures the execution model and nothing else.

``serial``     one task at a time in a topological order (CrewAI's sequential process, a
               hand-written loop): every task depends on the one before it.
``superstep``  lock-step supersteps (LangGraph's Pregel loop, AutoGen GraphFlow, Agent
               Framework): a task runs in step ``k`` = the length of the longest chain of
               inputs before it, and nothing of step ``k + 1`` starts before *every*
               task of step ``k`` has finished.  Expressed as barrier edges: each task of
               step ``k + 1`` depends on all of step ``k``.
``dataflow``   the graph as it is: a task starts the moment its own inputs are done.

All three keep the original dependencies, so every baseline is a valid schedule of the
same work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.graph import Task, TaskGraph

__all__ = ["EXECUTION_MODES", "dataflow", "levels", "serial", "superstep"]


def levels(tasks: Sequence[Task]) -> dict[str, int]:
    """Each task's superstep: 0 for tasks without inputs, else 1 + its latest input's."""
    order = TaskGraph(tasks).topological_order()
    by_id = {t.id: t for t in tasks}
    level: dict[str, int] = {}
    for tid in order:
        level[tid] = max((level[d] + 1 for d in by_id[tid].depends_on), default=0)
    return level


def dataflow(tasks: Sequence[Task]) -> list[Task]:
    return list(tasks)


def serial(tasks: Sequence[Task]) -> list[Task]:
    """A chain in topological order (insertion order among independent tasks)."""
    order = TaskGraph(tasks).topological_order()
    by_id = {t.id: t for t in tasks}
    out = []
    for prev, tid in zip([None, *order], order, strict=False):
        t = by_id[tid]
        out.append(t if prev is None or prev in t.depends_on else t.evolve(depends_on=(*t.depends_on, prev)))
    return out


def superstep(tasks: Sequence[Task]) -> list[Task]:
    """Barrier edges between consecutive supersteps (see the module docstring)."""
    level = levels(tasks)
    steps: dict[int, list[str]] = {}
    for tid, k in level.items():
        steps.setdefault(k, []).append(tid)
    out = []
    for t in tasks:
        k = level[t.id]
        barrier = [p for p in steps.get(k - 1, ()) if p not in t.depends_on]
        out.append(t.evolve(depends_on=(*t.depends_on, *barrier)) if barrier else t)
    return out


EXECUTION_MODES: dict[str, Callable[[Sequence[Task]], list[Task]]] = {
    "serial": serial,
    "superstep": superstep,
    "dataflow": dataflow,
}

