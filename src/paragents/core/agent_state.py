"""What the core knows about an agent: skills, slots, speed, and what it is running now.

Theory of operation
-------------------
The scheduler accepts anything shaped like :class:`AgentLike` (the public
``paragents.Agent`` is one; :class:`AgentSpec` is the minimal one).  For each it keeps an
:class:`AgentState`, the only mutable record of an agent's occupancy: ``free`` slots,
the tasks ``running`` on it with their expected end times (for earliest-finish-time
assignment), and ``hold_s``, time already promised to tasks that chose to wait for this
agent during the current dispatch round.  Assignment policies read these fields; only
the scheduler writes them.

Skill matching: an agent can run a task when the task's skills are a subset of the
agent's, or the agent has the wildcard skill ``"*"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AgentLike", "AgentSpec", "AgentState", "WILDCARD"]

WILDCARD = "*"


class AgentLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def skills(self) -> frozenset[str]: ...

    @property
    def slots(self) -> int: ...

    @property
    def speed(self) -> float: ...


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """The least an agent needs to be scheduled: a name, skills, slots and a speed."""

    name: str
    skills: frozenset[str] = frozenset({WILDCARD})
    slots: int = 1
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.skills, frozenset):
            object.__setattr__(self, "skills", frozenset(self.skills))


class AgentState:
    """Occupancy of one agent, owned by the scheduler; read by assignment policies."""

    __slots__ = ("name", "skills", "slots", "speed", "index", "free", "running", "hold_s", "groups")

    def __init__(self, agent: AgentLike, index: int) -> None:
        if agent.slots < 0:
            raise ValueError(f"agent {agent.name!r}: slots must be >= 0")
        if agent.speed <= 0:
            raise ValueError(f"agent {agent.name!r}: speed must be > 0")
        self.name: str = agent.name
        self.skills: frozenset[str] = frozenset(agent.skills)
        self.slots: int = int(agent.slots)
        self.speed: float = float(agent.speed)
        self.index = index  # position in the pool: the deterministic tie-breaker
        self.free: int = self.slots
        self.running: dict[str, float] = {}  # task id -> expected end time
        self.hold_s: float = 0.0
        self.groups: list[object] = []  # ready-queue groups this agent can serve

    def can_run(self, skills: Iterable[str]) -> bool:
        return WILDCARD in self.skills or self.skills.issuperset(skills)

    def available_at(self, now: float) -> float:
        """When a slot is expected to be free, counting waits already promised to it."""
        if self.free > 0:
            return now + self.hold_s
        soonest = min(self.running.values(), default=now)
        return max(now, soonest) + self.hold_s

    @property
    def load(self) -> float:
        """Share of slots in use (1.0 when an agent has no slots)."""
        return 1.0 - self.free / self.slots if self.slots else 1.0

    def __repr__(self) -> str:
        return f"AgentState({self.name!r}, free={self.free}/{self.slots}, speed={self.speed})"
