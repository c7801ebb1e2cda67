"""Reward, EMA normalisation and critical-path credit assignment for policy gradient.

Theory of operation
-------------------
An episode runs one architecture on one query and earns

    reward = score - mu * cost - lambda * CP

where ``cost`` is the total tokens spent (in thousands) and ``CP`` the critical path
(sum over layers of the slowest operator's span, in thousands of completion tokens by
default).  The reward is split in two parts with different owners:

* the **task part** ``score - mu * cost`` belongs to every decision of the episode:
  every operator drawn, in every layer, every Early-Stop gate (to go on or to stop) and
  every layer's size (where its draws stopped) share it, so a layer that added tokens
  but no accuracy pushes the gate towards stop (:func:`shared_advantage`);
* the **latency part** ``lambda * CP`` is a sum of one term per layer,
  ``lambda * span(bottleneck of l)``, and each term is charged **only to that layer's
  bottleneck operator**: removing any other operator of the layer would not have
  shortened the run, so it gets no latency blame (critical-path credit assignment).

Normalisation.  Rewards drift as the policy learns, so the task part is centred on an
exponential moving average of itself, and both parts are divided by the ``scale`` EMA's
standard deviation (the one normaliser of the reward's scale; the trainer feeds it the
spread of what the choices changed, see :mod:`~paragents.orchestration.trainer`).  When
the trainer samples several architectures for the same query, the task part is instead
centred on the mean task reward of the *other* architectures drawn for that query
(leave-one-out): a query's difficulty moves every architecture's score together, and a
per-query baseline removes that variance, leaving only what the choice changed.
:class:`Ema` is the recurrence ``m_t = d * m_{t-1} + (1 - d) * x_t`` (``m_1 = x_1``),
with the variance tracked the same way around the updated mean; it is updated once per
batch, with the batch's mean and variance, *after* the batch's advantages were computed
(an episode is never its own baseline).

This module is pure arithmetic: no torch, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .architecture import bottlenecks

__all__ = ["Ema", "Weights", "advantages", "reward", "shared_advantage"]


@dataclass(frozen=True, slots=True)
class Weights:
    """``mu`` prices a thousand tokens spent; ``lam`` a thousand tokens of critical path."""

    mu: float = 0.02
    lam: float = 0.5

    def __post_init__(self) -> None:
        if self.mu < 0 or self.lam < 0:
            raise ValueError(f"mu and lambda must be >= 0, got mu={self.mu}, lambda={self.lam}")


def reward(score: float, cost_k: float, cp_k: float, weights: Weights) -> float:
    """``score - mu * cost - lambda * CP`` (cost and CP in thousands of tokens)."""
    return score - weights.mu * cost_k - weights.lam * cp_k


@dataclass(slots=True)
class Ema:
    """Exponential moving mean and variance; the first value initialises the mean."""

    decay: float = 0.9
    mean: float = 0.0
    var: float = 1.0
    count: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {self.decay}")

    def update(self, value: float, var: float = 0.0) -> None:
        """Fold one observation (a batch's mean, with its variance) into the averages."""
        if self.count == 0:
            self.mean, self.var = value, var
        else:
            d = self.decay
            self.mean = d * self.mean + (1 - d) * value
            self.var = d * self.var + (1 - d) * (var + (value - self.mean) ** 2)
        self.count += 1

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.var > 1e-12 else 1.0


def shared_advantage(task_reward: float, task_baseline: Ema, scale: Ema, baseline: float | None = None) -> float:
    """The centred, scaled task reward every decision of the episode shares: minus
    ``baseline`` when given (the group's leave-one-out mean), else minus the EMA mean
    (0 before the first update), divided by ``scale.std``."""
    if baseline is not None:
        shared = task_reward - baseline
    elif task_baseline.count:
        shared = task_reward - task_baseline.mean
    else:
        shared = 0.0  # no baseline yet: the first batch only sets the averages
    return shared / scale.std


def advantages(
    shared: float,
    spans_k: Sequence[Sequence[float]],
    drawn: Sequence[Sequence[int]],
    ran: Sequence[Sequence[int]],
    weights: Weights,
    scale: Ema,
) -> list[list[float]]:
    """The advantage of each drawn operator, layer by layer.

    ``shared`` is the episode's :func:`shared_advantage`, which every decision gets;
    ``drawn[l]`` are the positions (in the controller's operator list) decided in layer
    ``l`` (operators drawn and the Early-Stop gate); ``ran[l]`` those that ran, in the
    order of ``spans_k[l]`` (their spans in thousands of tokens).  The bottleneck of
    each layer that ran also gets ``-lambda * span / scale.std``.
    """
    out: list[list[float]] = []
    slow = bottlenecks(spans_k)
    for layer, ops in enumerate(drawn):
        adv = [shared] * len(ops)
        if layer < len(ran) and slow[layer] is not None:
            who = ran[layer][slow[layer]]
            penalty = weights.lam * spans_k[layer][slow[layer]] / scale.std
            adv[list(ops).index(who)] -= penalty
        out.append(adv)
    return out
