"""Assignment policies: which agent takes the task the scheduler picked.

Theory of operation
-------------------
The scheduler hands a policy one task and the agents able to run it (skills and pinning
already checked), in pool order, and the current time.  The policy returns one of those
agents, or ``None`` to say "this task should wait" (only earliest-finish-time does that,
when a busy fast agent will finish it sooner than any free one).  A returned agent must
have a free slot.  Policies keep their own small state (a round-robin cursor, smooth
weights, a seeded RNG) and are deterministic under the scheduler's seed.

``round_robin``           the next capable free agent after the last one chosen.
``weighted_round_robin``  smooth weighted round robin (weights = speed x slots).
``random``                uniform among capable free agents, seeded.
``least_loaded``          smallest share of slots in use; ties: faster, then pool order.
``capability``            the tightest skill match (fewest skills beyond the task's) so
                          generalists stay free for work only they can do; ties: least loaded.
``earliest_finish``       HEFT-style: the agent on which the task would finish first,
                          ``available_at + duration / speed``; busy agents count from their
                          expected next free slot, so a task may wait for a fast agent (never
                          for one that has no slots at all).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from ..agent_state import WILDCARD, AgentState
from ..graph import Task

__all__ = [
    "AssignPolicy",
    "RoundRobin",
    "WeightedRoundRobin",
    "RandomAssign",
    "LeastLoaded",
    "CapabilityMatch",
    "EarliestFinish",
    "ASSIGN_POLICIES",
]


class AssignPolicy(Protocol):
    name: ClassVar[str]

    def reset(self, seed: int) -> None:
        """Start over deterministically (called by the scheduler with its seed)."""
        ...

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None: ...


@dataclass(slots=True)
class RoundRobin:
    name: ClassVar[str] = "round_robin"
    _last: int = -1

    def reset(self, seed: int) -> None:
        self._last = -1

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        first = None
        for a in agents:
            if a.free > 0:
                if a.index > self._last:
                    self._last = a.index
                    return a
                if first is None:
                    first = a
        if first is not None:
            self._last = first.index
        return first


@dataclass(slots=True)
class WeightedRoundRobin:
    name: ClassVar[str] = "weighted_round_robin"
    _current: dict[str, float] = field(default_factory=dict)

    def reset(self, seed: int) -> None:
        self._current.clear()

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        best = None
        total = 0.0
        cur = self._current
        for a in agents:
            if a.free <= 0:
                continue
            w = a.speed * max(a.slots, 1)
            total += w
            cur[a.name] = c = cur.get(a.name, 0.0) + w
            if best is None or c > cur[best.name]:
                best = a
        if best is not None:
            cur[best.name] -= total
        return best


@dataclass(slots=True)
class RandomAssign:
    name: ClassVar[str] = "random"
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def reset(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        free = [a for a in agents if a.free > 0]
        return self._rng.choice(free) if free else None


@dataclass(slots=True)
class LeastLoaded:
    name: ClassVar[str] = "least_loaded"

    def reset(self, seed: int) -> None:
        pass

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        best = None
        best_key: tuple[float, float] | None = None
        for a in agents:
            if a.free > 0:
                key = (a.load, -a.speed)
                if best_key is None or key < best_key:
                    best, best_key = a, key
        return best


@dataclass(slots=True)
class CapabilityMatch:
    name: ClassVar[str] = "capability"

    def reset(self, seed: int) -> None:
        pass

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        best = None
        best_key: tuple[float, float, float] | None = None
        for a in agents:
            if a.free > 0:
                surplus = float("inf") if WILDCARD in a.skills else len(a.skills - task.skills)
                key = (surplus, a.load, -a.speed)
                if best_key is None or key < best_key:
                    best, best_key = a, key
        return best


@dataclass(slots=True)
class EarliestFinish:
    name: ClassVar[str] = "earliest_finish"

    def reset(self, seed: int) -> None:
        pass

    def choose(self, task: Task, agents: Sequence[AgentState], now: float) -> AgentState | None:
        best = None
        d = task.duration
        best_finish = 0.0
        for a in agents:  # free agents first: cheap, and usually the answer
            if a.free > 0:
                finish = now + a.hold_s + d / a.speed
                if best is None or finish < best_finish:
                    best, best_finish = a, finish
        for a in agents:  # a busy agent wins only by finishing strictly sooner
            if a.free <= 0 and a.slots > 0 and (best is None or now + d / a.speed < best_finish):
                finish = a.available_at(now) + d / a.speed
                if best is None or finish < best_finish:
                    best, best_finish = a, finish
        return best


ASSIGN_POLICIES: dict[str, type[AssignPolicy]] = {
    p.name: p  # type: ignore[misc]
    for p in (RoundRobin, WeightedRoundRobin, RandomAssign, LeastLoaded, CapabilityMatch, EarliestFinish)
}
