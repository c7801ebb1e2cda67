"""Priority policies: which ready task goes first.

Theory of operation
-------------------
A priority policy maps every task to a number, **higher runs sooner**.  The scheduler
asks for these numbers once per change of the graph or of the agent pool (not per
dispatch), and orders each ready queue by them.  When the graph grows, a policy whose
numbers depend only on a task's own fields and its descendants (``fifo``,
``critical_path``, ``user``) is *local*: the scheduler then asks it only for the new
tasks and the live ancestors of the tasks that gained successors (:meth:`update`), so a
stream of independent requests costs each arrival its own size, not the run's.
``least_slack`` is global (slack is measured against the whole graph's length) and is
recomputed in full.

Aging keeps low-priority work from starving behind a stream of higher-priority arrivals:
a ready task's effective priority grows by ``aging`` units per second it has waited,
``p + aging * (now - ready_at)``.  Because every waiting task ages at the same rate, the
order this induces is the order of the *static* key ``p - aging * ready_at``: the
scheduler computes that key once when the task becomes ready and never re-sorts.  A
task that has waited ``Δ`` seconds overtakes any newcomer whose priority is less than
``aging * Δ`` above its own.  Ties go to the task that became ready first (FIFO).

Policies:

``fifo``           every task equal: ready order.
``critical_path``  HEFT's upward rank (longest remaining path, at the mean speed of the
                   agents able to run each task): the chain that decides the makespan first.
``least_slack``    CPM slack, least first (ties by upward rank).
``user``           the task's own ``priority`` field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..analysis import cpm, upward_rank
from ..graph import TaskGraph

__all__ = ["PRIORITY_POLICIES", "CriticalPath", "Fifo", "LeastSlack", "LocalPriority", "PriorityPolicy", "UserPriority"]

Speeds = Mapping[str, Sequence[float]]


class PriorityPolicy(Protocol):
    name: ClassVar[str]
    aging: float

    def priorities(self, graph: TaskGraph, speeds: Speeds) -> Mapping[str, float]:
        """Priority of each task (missing ids count as 0); ``speeds``: task id -> capable agents' speeds."""
        ...


class LocalPriority(PriorityPolicy, Protocol):
    def update(
        self, graph: TaskGraph, speeds: Speeds, changed: set[str], current: Mapping[str, float]
    ) -> Mapping[str, float]:
        """Priorities of the ``changed`` tasks, the others keeping theirs in ``current``."""
        ...


def _mean_inverse(speeds: Sequence[float] | None) -> float:
    return sum(1.0 / s for s in speeds) / len(speeds) if speeds else 1.0


@dataclass(slots=True)
class Fifo:
    name: ClassVar[str] = "fifo"
    aging: float = 0.0

    def priorities(self, graph: TaskGraph, speeds: Speeds) -> Mapping[str, float]:
        return {}

    def update(
        self, graph: TaskGraph, speeds: Speeds, changed: set[str], current: Mapping[str, float]
    ) -> Mapping[str, float]:
        return {}


@dataclass(slots=True)
class CriticalPath:
    name: ClassVar[str] = "critical_path"
    aging: float = 0.0

    def priorities(self, graph: TaskGraph, speeds: Speeds) -> Mapping[str, float]:
        return upward_rank(graph, speeds)

    def update(
        self, graph: TaskGraph, speeds: Speeds, changed: set[str], current: Mapping[str, float]
    ) -> Mapping[str, float]:
        return upward_rank(graph, speeds, only=changed, known=current)


@dataclass(slots=True)
class LeastSlack:
    name: ClassVar[str] = "least_slack"
    aging: float = 0.0

    def priorities(self, graph: TaskGraph, speeds: Speeds) -> Mapping[str, float]:
        rank = upward_rank(graph, speeds)
        mean = {t.id: t.duration * _mean_inverse(speeds.get(t.id)) for t in graph}
        slack = cpm(graph, mean).slack
        top = max(rank.values(), default=0.0) + 1.0
        # Least slack first; among equal slack, the longer remaining path first.
        return {t: -slack[t] * top + rank[t] for t in rank}


@dataclass(slots=True)
class UserPriority:
    name: ClassVar[str] = "user"
    aging: float = 0.0

    def priorities(self, graph: TaskGraph, speeds: Speeds) -> Mapping[str, float]:
        return {t.id: t.priority for t in graph}

    def update(
        self, graph: TaskGraph, speeds: Speeds, changed: set[str], current: Mapping[str, float]
    ) -> Mapping[str, float]:
        return {t: graph[t].priority for t in changed}


PRIORITY_POLICIES: dict[str, type[PriorityPolicy]] = {
    p.name: p for p in (Fifo, CriticalPath, LeastSlack, UserPriority)  # type: ignore[misc]
}
