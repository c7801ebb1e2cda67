"""Aggregation at a join: how the results of several tasks become one.

Theory of operation
-------------------
A join task with ``aggregate`` set combines its inputs' results instead of (or before)
doing work of its own.  Four rules, chosen per join:

``vote``           majority vote over the inputs' answers.  Text answers are compared
                   after normalising case, surrounding white space and a trailing full
                   stop; ties go to the answer seen first (inputs in dependency order).
``mean``           arithmetic mean of numeric answers (numbers, or text that parses as one).
``weighted_mean``  mean weighted by the reliability of the agent that produced each input
                   (``Agent.reliability``, default 1.0).
``merge``          an LLM task on the join's agent: the merge prompt (``prompts/merge.md``)
                   plus the inputs, producing a synthesis.  This is the one rule that
                   calls a model, so it is a prompt, not a callable.

The first three are plain callables taking a :class:`~paragents.runtime.driver.TaskContext`
(``ctx.inputs`` in dependency order, ``ctx.producers`` naming each input's agent), so
they run as ordinary tasks under the scheduler.  Inputs that are not answers (``None``,
or text that is not a number for the numeric rules) are skipped; a join with nothing
left to aggregate fails with a message saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any

from .core.errors import ParagentsError, WorkflowError

if TYPE_CHECKING:  # pragma: no cover
    from .runtime.driver import TaskContext

__all__ = ["AGGREGATORS", "AggregationError", "majority_vote", "mean", "merge_prompt", "weighted_mean"]


class AggregationError(ParagentsError):
    """A join had nothing it could aggregate."""

    retryable = False


def _key(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().rstrip(".").strip().casefold()
    return value


def majority_vote(values: Sequence[Any]) -> Any:
    """The most common value (normalised for text); the first seen wins a tie."""
    counts: dict[Any, int] = {}
    first: dict[Any, Any] = {}
    for v in values:
        if v is None:
            continue
        k = _key(v)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, v)
    if not counts:
        raise AggregationError("vote: no answers to vote on")
    best = max(counts.values())
    return next(first[k] for k in counts if counts[k] == best)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            x = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def weighted_mean(values: Sequence[Any], weights: Sequence[float]) -> float:
    """Mean of the numeric values, each weighted; non-numbers and zero weights are skipped."""
    total = 0.0
    weight = 0.0
    for v, w in zip(values, weights, strict=True):
        x = _number(v)
        if x is not None and w > 0:
            total += x * w
            weight += w
    if weight == 0:
        raise AggregationError("mean: no numeric answers to average")
    return total / weight


def mean(values: Sequence[Any]) -> float:
    return weighted_mean(values, [1.0] * len(values))


def _vote(ctx: TaskContext) -> Any:
    return majority_vote(list(ctx.inputs.values()))


def _mean(ctx: TaskContext) -> float:
    return mean(list(ctx.inputs.values()))


def _weighted_mean(ctx: TaskContext) -> float:
    reliability = {name: agent.reliability for name, agent in ctx.agents.items()}
    weights = [reliability.get(ctx.producers.get(tid, ""), 1.0) for tid in ctx.inputs]
    return weighted_mean(list(ctx.inputs.values()), weights)


#: ``aggregate:`` value -> the callable a join runs (``merge`` is a prompt, see :func:`merge_prompt`).
AGGREGATORS: Mapping[str, Callable[[TaskContext], Any]] = {
    "vote": _vote,
    "mean": _mean,
    "weighted_mean": _weighted_mean,
}


def merge_prompt(instruction: str = "") -> str:
    """The prompt of an LLM merge join (the runtime appends the inputs' results)."""
    text = resources.files("paragents").joinpath("prompts/merge.md").read_text(encoding="utf-8")
    return Template(text).safe_substitute(instruction=instruction).strip()


def aggregator(kind: str) -> Callable[[TaskContext], Any] | None:
    """The callable of an aggregation rule; None for ``merge`` (an LLM task)."""
    if kind == "merge":
        return None
    try:
        return AGGREGATORS[kind]
    except KeyError:
        raise WorkflowError(f"unknown aggregate {kind!r}; valid: {', '.join([*AGGREGATORS, 'merge'])}") from None
