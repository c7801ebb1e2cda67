"""Agents: who can do what, on which backend, how many at once, how fast.

An :class:`Agent` is a role with skills, a system prompt, a backend (an LLM endpoint, or
none for agents that only run Python callables), a number of concurrent ``slots``, a
relative ``speed`` (used by the scheduler's estimates: a task of duration ``d`` is
expected to take ``d / speed`` on it), a price per 1,000 tokens, and a ``reliability``
that weighs its answers where a join takes a weighted mean.  The scheduling core
sees only ``name``, ``skills``, ``slots`` and ``speed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .backends.base import Backend, Completion
from .core.agent_state import WILDCARD
from .core.errors import WorkflowError
from .core.report import usage_dict

__all__ = ["Agent", "AgentPool"]


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    role: str = ""
    skills: frozenset[str] = frozenset({WILDCARD})
    backend: Backend | None = field(default=None, compare=False)
    slots: int = 1
    speed: float = 1.0
    system_prompt: str = ""
    cost_per_1k_tokens: float = 0.0
    max_tokens: int = 256
    reliability: float = 1.0  # weight of its answers in a weighted_mean join

    def __post_init__(self) -> None:
        if not self.name:
            raise WorkflowError("agent name must be non-empty")
        if not isinstance(self.skills, frozenset):
            object.__setattr__(self, "skills", frozenset(self.skills))
        if self.slots < 1:
            raise WorkflowError(f"agent {self.name!r}: slots must be >= 1, got {self.slots}")
        if self.speed <= 0:
            raise WorkflowError(f"agent {self.name!r}: speed must be > 0, got {self.speed}")
        if not 0 <= self.reliability <= 1:
            raise WorkflowError(f"agent {self.name!r}: reliability must be in [0, 1], got {self.reliability}")

    def cost_of(self, tokens: int) -> float:
        """The price of ``tokens`` tokens (prompt and completion) on this agent."""
        return tokens / 1000.0 * self.cost_per_1k_tokens

    def usage_of(self, completion: Completion) -> Mapping[str, float]:
        """The usage record (:func:`~paragents.core.report.usage_dict`) of one model call."""
        return usage_dict(
            compute_s=completion.compute_s,
            transfer_s=completion.transfer_s,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost=self.cost_of(completion.prompt_tokens + completion.completion_tokens),
        )


class AgentPool:
    """Agents by name; refuses duplicates with a message that names them."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[str, Agent] = {}
        for a in agents:
            self.add(a)

    def add(self, agent: Agent) -> None:
        if agent.name in self._agents:
            raise WorkflowError(f"duplicate agent name {agent.name!r}")
        self._agents[agent.name] = agent

    def __getitem__(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except KeyError:
            raise WorkflowError(f"unknown agent {name!r}") from None

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents
