"""Layered random DAGs: the classic synthetic workload of scheduling papers.

Theory of operation
-------------------
Tasks are laid out in ``depth`` layers of ``width`` tasks each (or one width per layer).
Layer 0 holds the sources.  Every task of layer ``l > 0`` draws its number of parents
uniformly from ``1 .. fan_in``; one parent always comes from layer ``l - 1`` (so the
task really sits at depth ``l`` and the longest chain has exactly ``depth`` tasks), the
others from layers ``l - span .. l - 1`` without repetition.  ``fan_in`` is thus the
maximum in-degree and ``span`` how far back an edge may reach.

Durations (seconds at speed 1) come from a :class:`LogNormal` (mean and coefficient of
variation: the spread of LLM call latencies) or a :class:`Uniform` distribution.  When
``skills`` are given, each task needs ``skills_per_task`` of them, drawn uniformly.

Everything is drawn from one ``random.Random(seed)`` in a fixed order, so a graph is a
pure function of its arguments.  Generation is linear in tasks plus edges (no networkx).
Ids are ``L<layer>_<index>``; ``meta["layer"]`` keeps the layer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ...core.graph import Task, TaskGraph
from ..latency import lognormal

__all__ = ["DurationDist", "LogNormal", "Uniform", "layered_dag"]


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal durations with the given ``mean`` and coefficient of variation ``cv``."""

    mean: float = 1.0
    cv: float = 0.5

    def __post_init__(self) -> None:
        if self.mean <= 0 or self.cv < 0:
            raise ValueError(f"LogNormal needs mean > 0 and cv >= 0, got mean={self.mean}, cv={self.cv}")

    def draw(self, rng: random.Random) -> float:
        return lognormal(rng, self.mean, self.cv)


@dataclass(frozen=True, slots=True)
class Uniform:
    """Durations uniform on ``[low, high]``."""

    low: float = 0.5
    high: float = 1.5

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"Uniform needs 0 <= low <= high, got low={self.low}, high={self.high}")

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


DurationDist = LogNormal | Uniform


def _widths(width: int | Sequence[int], depth: int | None) -> list[int]:
    if isinstance(width, int):
        if depth is None:
            raise ValueError("layered_dag: give depth with an integer width")
        widths = [width] * depth
    else:
        widths = [int(w) for w in width]
        if depth is not None and depth != len(widths):
            raise ValueError(f"layered_dag: depth={depth} but {len(widths)} layer widths given")
    if not widths or min(widths) < 1:
        raise ValueError(f"layered_dag: every layer needs at least one task, got widths {widths}")
    return widths


def _parents(rng: random.Random, prev: list[str], earlier: list[str], fan_in: int) -> list[str]:
    """One parent from the previous layer, then up to ``fan_in - 1`` more, distinct, from
    the previous and earlier layers; O(fan_in) (indices are drawn, lists never copied)."""
    first = rng.randrange(len(prev))
    others = len(prev) - 1 + len(earlier)
    picks = rng.sample(range(others), min(rng.randint(1, fan_in) - 1, others))
    out = [prev[first]]
    for i in picks:
        i += i >= first  # skip the index already taken
        out.append(prev[i] if i < len(prev) else earlier[i - len(prev)])
    return out


def layered_dag(
    width: int | Sequence[int],
    depth: int | None = None,
    *,
    fan_in: int = 2,
    span: int = 1,
    duration: DurationDist = LogNormal(),
    skills: Sequence[str] = (),
    skills_per_task: int = 1,
    seed: int = 0,
) -> TaskGraph:
    """A random layered DAG; see the module docstring for the knobs."""
    widths = _widths(width, depth)
    if fan_in < 1 or span < 1:
        raise ValueError(f"layered_dag: fan_in and span must be >= 1, got fan_in={fan_in}, span={span}")
    if skills and not 1 <= skills_per_task <= len(skills):
        raise ValueError(f"layered_dag: skills_per_task must be in 1..{len(skills)}, got {skills_per_task}")
    rng = random.Random(seed)
    pool = sorted(set(skills))
    layers: list[list[str]] = []
    tasks: list[Task] = []
    for level, w in enumerate(widths):
        ids = [f"L{level}_{i}" for i in range(w)]
        earlier = [t for layer in layers[max(0, level - span):level - 1] for t in layer]
        for tid in ids:
            parents: list[str] = []
            if level:
                parents = _parents(rng, layers[level - 1], earlier, fan_in)
            need = frozenset(rng.sample(pool, skills_per_task)) if pool else frozenset()
            tasks.append(
                Task(tid, skills=need, depends_on=tuple(parents), duration=duration.draw(rng), meta={"layer": level})
            )
        layers.append(ids)
    return TaskGraph(tasks)
