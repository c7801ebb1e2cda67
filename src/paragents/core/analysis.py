"""Static analysis of a task graph: CPM/PERT, critical path, HEFT ranks, lower bounds.

Theory of operation
-------------------
All functions here are pure: a graph and durations in, numbers out, one pass over a
topological order (O(V + E)).  ``durations`` maps task id -> seconds; when omitted each
task's ``duration`` estimate is used.

* **CPM** (:func:`cpm`): earliest start/finish by a forward pass, latest start/finish by a
  backward pass against the project length, and slack = latest start - earliest start.
  Tasks with zero slack (within ``eps``) are critical.
* **Critical path** (:func:`critical_path`): the longest path by total duration; ties are
  broken by topological position so the answer is deterministic.
* **Upward rank** (:func:`upward_rank`, HEFT): ``rank(t) = w(t) + max over successors s of
  (c(t, s) + rank(s))`` with ``w(t)`` the task's mean execution time over the agents that
  can run it (``duration / speed`` averaged) and ``c`` an optional communication cost.
  Sorting by decreasing upward rank is a topological order that favours the critical path.
* **Downward rank** (:func:`downward_rank`): the longest path from any source up to the
  task's start; ``upward + downward`` is constant along a critical path (used by CPOP).
* **Lower bound** (:func:`lower_bound`): no schedule can beat
  ``max(critical path at the fastest speed, total work / total capacity)``, where total
  capacity is the sum over agents of ``slots * speed``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .graph import TaskGraph

__all__ = [
    "CPMResult",
    "cpm",
    "critical_path",
    "critical_path_length",
    "downward_rank",
    "lower_bound",
    "total_work",
    "upward_rank",
]

Durations = Mapping[str, float]
EdgeCost = Callable[[str, str], float]


def _dur(graph: TaskGraph, durations: Durations | None) -> dict[str, float]:
    if durations is None:
        return {t.id: t.duration for t in graph}
    return {t.id: float(durations.get(t.id, t.duration)) for t in graph}


@dataclass(frozen=True, slots=True)
class CPMResult:
    """Earliest/latest start and finish and slack of every task, and the project length."""

    earliest_start: dict[str, float]
    earliest_finish: dict[str, float]
    latest_start: dict[str, float]
    latest_finish: dict[str, float]
    slack: dict[str, float]
    length: float

    def critical(self, eps: float = 1e-9) -> list[str]:
        """Ids with zero slack, in topological order of the analysed graph."""
        return [t for t, s in self.slack.items() if s <= eps]


def cpm(graph: TaskGraph, durations: Durations | None = None) -> CPMResult:
    """Critical path method: forward and backward passes over a topological order."""
    d = _dur(graph, durations)
    order = graph.topological_order()
    es: dict[str, float] = {}
    ef: dict[str, float] = {}
    for t in order:
        start = max((ef[p] for p in graph.predecessors(t)), default=0.0)
        es[t] = start
        ef[t] = start + d[t]
    length = max(ef.values(), default=0.0)
    ls: dict[str, float] = {}
    lf: dict[str, float] = {}
    for t in reversed(order):
        finish = min((ls[s] for s in graph.successors(t)), default=length)
        lf[t] = finish
        ls[t] = finish - d[t]
    slack = {t: ls[t] - es[t] for t in order}
    return CPMResult(es, ef, ls, lf, slack, length)


def critical_path(graph: TaskGraph, durations: Durations | None = None) -> list[str]:
    """The ids of one longest path (by total duration), from a source to a sink."""
    d = _dur(graph, durations)
    order = graph.topological_order()
    if not order:
        return []
    best: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for t in order:
        prev = None
        start = 0.0
        for p in graph.predecessors(t):
            if prev is None or best[p] > start:
                prev, start = p, best[p]
        best[t] = start + d[t]
        via[t] = prev
    # The first maximum among the sinks, in topological order: with durations >= 0 some
    # longest path ends in a sink, and stopping before zero-length tail tasks would not.
    end = max((t for t in order if not graph.successors(t)), key=lambda t: best[t])
    path = [end]
    while (p := via[path[-1]]) is not None:
        path.append(p)
    path.reverse()
    return path


def critical_path_length(graph: TaskGraph, durations: Durations | None = None) -> float:
    """Length of the longest path (the makespan with unlimited agents)."""
    d = _dur(graph, durations)
    finish: dict[str, float] = {}
    for t in graph.topological_order():
        finish[t] = max((finish[p] for p in graph.predecessors(t)), default=0.0) + d[t]
    return max(finish.values(), default=0.0)


def total_work(graph: TaskGraph, durations: Durations | None = None) -> float:
    return sum(_dur(graph, durations).values())


def _mean_inverse_speed(speeds: Sequence[float] | Mapping[str, Sequence[float]] | None, task_id: str) -> float:
    if speeds is None:
        return 1.0
    if isinstance(speeds, Mapping):
        own = speeds.get(task_id)
        if not own:
            return 1.0
        return sum(1.0 / s for s in own) / len(own)
    return sum(1.0 / s for s in speeds) / len(speeds) if speeds else 1.0


def upward_rank(
    graph: TaskGraph,
    speeds: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    *,
    durations: Durations | None = None,
    edge_cost: EdgeCost | None = None,
    only: Collection[str] | None = None,
    known: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """HEFT's upward rank of every task (or of the tasks in ``only``).

    ``speeds`` is either one list of agent speeds (every agent can run every task) or a
    mapping task id -> the speeds of the agents able to run that task.  With ``only``,
    just those tasks are ranked; a successor outside ``only`` counts with its rank in
    ``known`` (0 if absent) — how a scheduler updates ranks after the graph grew
    without walking the whole graph.
    """
    if only is not None:
        graph_part: Iterable[str] = _reverse_order_within(graph, only)
        d = {t: float(durations.get(t, graph[t].duration)) if durations else graph[t].duration for t in only}
    else:
        graph_part = reversed(graph.topological_order())
        d = _dur(graph, durations)
    if speeds is None or not isinstance(speeds, Mapping):
        inv = _mean_inverse_speed(speeds, "")
        w = {t: x * inv for t, x in d.items()}
    else:
        # Tasks of one capability class share one speeds list: average each list once.
        cache: dict[int, float] = {}
        w = {}
        for t, x in d.items():
            own = speeds.get(t)
            key = id(own)
            if key not in cache:
                cache[key] = _mean_inverse_speed(speeds, t)
            w[t] = x * cache[key]
    rank: dict[str, float] = {}
    outside = known if known is not None else {}
    for t in graph_part:
        tail = 0.0
        for s in graph.successors(t):
            c = edge_cost(t, s) if edge_cost is not None else 0.0
            r = rank[s] if s in rank else outside.get(s, 0.0)
            if c + r > tail:
                tail = c + r
        rank[t] = w[t] + tail
    return rank


def _reverse_order_within(graph: TaskGraph, only: Collection[str]) -> list[str]:
    """The tasks of ``only``, each after all its successors in ``only`` (Kahn, reversed)."""
    inside = set(only)
    outdeg = {t: sum(1 for s in graph.successors(t) if s in inside) for t in inside}
    order = [t for t in only if outdeg[t] == 0]
    i = 0
    while i < len(order):
        for p in graph.predecessors(order[i]):
            if p in inside:
                outdeg[p] -= 1
                if outdeg[p] == 0:
                    order.append(p)
        i += 1
    return order


def downward_rank(
    graph: TaskGraph,
    speeds: Sequence[float] | None = None,
    *,
    durations: Durations | None = None,
    edge_cost: EdgeCost | None = None,
) -> dict[str, float]:
    """Longest (mean-time) path from a source to the start of each task."""
    d = _dur(graph, durations)
    inv = _mean_inverse_speed(speeds, "")
    rank: dict[str, float] = {}
    for t in graph.topological_order():
        best = 0.0
        for p in graph.predecessors(t):
            c = edge_cost(p, t) if edge_cost is not None else 0.0
            v = rank[p] + d[p] * inv + c
            if v > best:
                best = v
        rank[t] = best
    return rank


def lower_bound(
    graph: TaskGraph,
    capacity: Sequence[float] | float = 1.0,
    durations: Durations | None = None,
) -> float:
    """``max(critical path / fastest speed, total work / total capacity)``.

    ``capacity`` is either a number of identical unit-speed slots or one speed per slot
    (an agent with 2 slots at speed 1.5 contributes ``[1.5, 1.5]``).
    """
    if isinstance(capacity, (int, float)):
        speeds: list[float] = [1.0] * max(int(capacity), 1) if capacity >= 1 else [float(capacity)]
    else:
        speeds = [float(s) for s in capacity] or [1.0]
    cp = critical_path_length(graph, durations) / max(speeds)
    return max(cp, total_work(graph, durations) / sum(speeds))
