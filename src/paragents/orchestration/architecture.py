"""Architectures of the supernet: which operators run in which layer, and their critical path.

Theory of operation
-------------------
An :data:`Architecture` is a tuple of layers, each a tuple of operator names that run
**in parallel**: every operator of layer ``l`` sees only the state layer ``l - 1``
left, never a sibling's output, so a layer takes as long as its slowest operator.  The
network may have fewer layers than the supernet offers: Early-Stop ended it.

Sampling a layer (:func:`sample_layer`).  The controller gives one probability per
operator.  Operators are drawn one at a time **without replacement**, in proportion to
their probabilities, until the probability mass of the operators drawn reaches
``threshold``; so a confident controller runs one operator and an undecided one runs
several side by side.  The first draw always happens, so a layer holds at least one
operator.  :func:`greedy_layer` is the deterministic version used for evaluation: the
most probable operators, in order, until the mass reaches the threshold.

A random threshold for training.  With a fixed threshold, how many operators a layer
holds is a step function of the probabilities: raising the top operator's probability
from 0.79 to 0.81 turns a two-operator layer into a one-operator layer, and policy
gradient, which only sees the probability of the draws made, never learns of that
jump.  So while training, each layer's threshold is drawn uniformly from ``threshold
+- spread`` (:func:`threshold_range`); the chance that the draws stopped where they did
is then ``P(mass before the last draw < t <= mass after it)`` (:func:`stop_chance`), a
smooth function of the probabilities, and its log joins the draws' log probability.
Evaluation uses the fixed threshold.

Early stop.  Early-Stop is not drawn with the other operators: before every layer
after the first the controller decides, yes or no, whether to end the network there
(:mod:`paragents.orchestration.controller`), so the layer that would have followed does
not run, and every network runs at least one operator.

Critical path.  Given the span of every operator that ran (its own critical path, in
completion tokens by default or seconds), :func:`critical_path` is the sum over layers
of the slowest span in the layer; :func:`sequential_path` is the sum of all spans, the
critical path of the same operators run one after another, as a latency-agnostic
supernet runs them; :func:`bottlenecks` names each layer's slowest operator, the only
one a latency penalty is charged to (see :mod:`paragents.orchestration.credit`).

This module is pure: no model calls, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = [
    "EARLY_STOP",
    "Architecture",
    "bottlenecks",
    "critical_path",
    "format_architecture",
    "greedy_layer",
    "sample_layer",
    "sequential_path",
    "stop_chance",
    "threshold_range",
]

#: The operator that ends the network.
EARLY_STOP = "early_stop"

#: Layers of operator names; each layer runs its operators in parallel.
Architecture = tuple[tuple[str, ...], ...]


def _check_probs(probs: Sequence[float], threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not probs or any(p < 0 for p in probs) or sum(probs) <= 0:
        raise ValueError("probabilities must be non-negative with a positive sum")


def threshold_range(threshold: float, spread: float) -> tuple[float, float]:
    """The interval a layer's threshold is drawn from: ``threshold +- spread`` within (0, 1]."""
    if spread < 0:
        raise ValueError(f"threshold spread must be >= 0, got {spread}")
    return max(threshold - spread, 1e-6), min(threshold + spread, 1.0)


def sample_layer(probs: Sequence[float], threshold: float, rng: random.Random, spread: float = 0.0) -> list[int]:
    """Operator indices drawn without replacement, in draw order, until their total
    probability reaches the threshold (at least one; zero-probability ones never).

    With ``spread`` the threshold is first drawn uniformly from
    :func:`threshold_range`; see :func:`stop_chance` for why."""
    _check_probs(probs, threshold)
    if spread:
        threshold = rng.uniform(*threshold_range(threshold, spread))
    total = float(sum(probs))
    left = {i: p / total for i, p in enumerate(probs) if p > 0}
    chosen: list[int] = []
    mass = 0.0
    while left and (not chosen or mass < threshold - 1e-12):
        x = rng.random() * sum(left.values())
        pick = next(reversed(left))  # float rounding lands on the last one
        for i, p in left.items():
            x -= p
            if x < 0:
                pick = i
                break
        chosen.append(pick)
        mass += left.pop(pick)
    return chosen


def stop_chance(before: float, after: float, threshold: float, spread: float) -> float:
    """P(a draw whose mass went from ``before`` to ``after`` was the layer's last), with
    the threshold uniform on :func:`threshold_range`: ``P(before < t <= after)``."""
    low, high = threshold_range(threshold, spread)
    return max(min(after, high) - max(before, low), 0.0) / (high - low)


def greedy_layer(probs: Sequence[float], threshold: float) -> list[int]:
    """The most probable operators, most probable first, until their mass reaches
    ``threshold`` (ties: the lower index first)."""
    _check_probs(probs, threshold)
    total = float(sum(probs))
    order = sorted((i for i, p in enumerate(probs) if p > 0), key=lambda i: (-probs[i], i))
    chosen: list[int] = []
    mass = 0.0
    for i in order:
        chosen.append(i)
        mass += probs[i] / total
        if mass >= threshold - 1e-12:
            break
    return chosen


def critical_path(spans: Sequence[Sequence[float]]) -> float:
    """Sum over layers of the slowest operator's span (layers without spans count 0)."""
    return float(sum(max(layer) for layer in spans if len(layer)))


def sequential_path(spans: Sequence[Sequence[float]]) -> float:
    """Sum of every span: the same operators run one after another."""
    return float(sum(sum(layer) for layer in spans))


def bottlenecks(spans: Sequence[Sequence[float]]) -> list[int | None]:
    """Index of each layer's slowest operator (the first on ties; None for an empty layer)."""
    return [max(range(len(layer)), key=lambda i: (layer[i], -i)) if len(layer) else None for layer in spans]


def format_architecture(arch: Architecture) -> str:
    """``cot+programmer -> sc_ensemble``: layers joined by arrows, parallel ops by '+'."""
    return " -> ".join("+".join(layer) for layer in arch) if arch else "(empty)"
