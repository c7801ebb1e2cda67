"""The simulated benchmark end to end: train both arms, evaluate, compare with the optimum.

Theory of operation
-------------------
:func:`run_seed` builds one seed's experiment: training and test queries
(:func:`~paragents.orchestration.simulated.sim_queries`, disjoint seeds), their
embeddings and the operators' description embeddings (the context store's embedder),
then trains two controllers on the same episodes budget:

* **latency-aware**: parallel layers, reward ``score - mu * cost - lambda * CP``;
* **latency-agnostic**: lambda = 0 and sequential layers (every operator after the
  other), the baseline the critical-path reduction is measured against.

Each trained controller is evaluated **greedily** on the test queries, and every chosen
architecture is scored by its exact expectations under the simulated model
(:meth:`~paragents.orchestration.simulated.SimModel.evaluate`), so the comparison has
no sampling noise.  The arm's critical path is the parallel one for the latency-aware
arm and the sequential one for the baseline.  Fixed architectures (one per line of
:data:`FIXED`) are evaluated the same way, and :func:`~paragents.orchestration.simulated.best_cp_at`
gives the least mean critical path any query-conditioned choice of architectures (up to
``layers`` layers) reaches at the learned arm's accuracy, from the exact Pareto fronts.

Training scores episodes by their exact probability of being right
(``SimExecutor(expected_score=True)``): the same expectation as the 0/1 score with less
variance, so an arm trains in about a minute on two cores.  Defaults
(:class:`SimSettings`): the controller learns each layer's width, a threshold of 0.3,
0.5, 0.7 or 0.9 (see :mod:`~paragents.orchestration.controller`), drawn within
``+- 0.1`` of it while training (``spread``, so that where a layer's draws stop is
learned too, see :mod:`~paragents.orchestration.architecture`); each step samples 8
architectures for each of 16 queries, centred on their query's leave-one-out mean;
1200 steps at a learning rate of 0.001 (faster rates more often settled on wider,
slower layers here), with an entropy bonus that starts at 0.1 and falls linearly to
0.01 (explore the layer sets first, then settle: with a constant 0.05 the policy
settled far from the front on some seeds, with a CP up to 28% above it); ``mu = 0.02``
per thousand tokens spent and ``lambda = 0.01`` per thousand tokens of critical path,
small enough that the latency-aware arm stays within about a point of the baseline's
accuracy.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .architecture import Architecture, format_architecture
from .controller import Controller, ControllerConfig
from .credit import Weights
from .operators import OPERATORS
from .simulated import (
    DIFFICULTIES,
    SimExecutor,
    SimModel,
    best_cp_at,
    difficulty_of,
    sim_queries,
)
from .state import Query
from .trainer import StepLog, TrainConfig, new_controller, train

__all__ = [
    "FIXED",
    "SimSettings",
    "descriptions",
    "embed_queries",
    "evaluate_arch_choice",
    "greedy_architectures",
    "run_seed",
    "sim_splits",
]

#: Fixed architectures shown next to the learned ones.
FIXED: tuple[Architecture, ...] = (
    (("generate",),),
    (("cot",),),
    (("programmer",),),
    (("multi_cot",),),
    (("cot",), ("self_refine",)),
    (("programmer",), ("test",)),
    (("cot", "programmer"), ("sc_ensemble",)),
    (("multi_cot", "programmer"), ("test",)),
    (("generate", "cot", "multi_cot", "sc_ensemble", "programmer", "test"),),
)


@dataclass(frozen=True, slots=True)
class SimSettings:
    """What one seed of the simulated benchmark trains and evaluates with."""

    train_queries: int = 300
    test_queries: int = 300
    layers: int = 4
    threshold: float = 0.8
    spread: float = 0.1
    widths: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1200, batch=128, group=8, lr=0.001, entropy_bonus=0.1, entropy_end=0.1, weights=Weights(0.02, 0.01)))


def descriptions() -> dict[str, str]:
    """Each operator's description, the text the controller embeds."""
    return {name: cls.description for name, cls in OPERATORS.items()}


def evaluate_arch_choice(model: SimModel, queries: Sequence[Query], archs: Sequence[Architecture],
                         sequential: bool) -> dict[str, float]:
    """Mean exact accuracy, critical path and cost of one architecture per query."""
    rows = [model.evaluate(a, difficulty_of(q)) for q, a in zip(queries, archs, strict=True)]
    return {
        "accuracy": statistics.fmean(r["accuracy"] for r in rows),
        "cp": statistics.fmean(r["sequential_cp" if sequential else "cp"] for r in rows),
        "cost": statistics.fmean(r["cost"] for r in rows),
    }


def sim_splits(seed: int, train: int, test: int) -> tuple[list[Query], list[Query]]:
    """The training and the held-out queries of one seed (disjoint query seeds)."""
    return sim_queries(train, seed=1000 + seed), sim_queries(test, seed=2000 + seed)


def embed_queries(embed: Callable[[list[str]], np.ndarray],
                  queries: Sequence[Query]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each query's embedding by id, and the operator descriptions' embeddings (in
    :func:`descriptions` order), from one call to ``embed``."""
    vectors = embed([q.text for q in queries] + list(descriptions().values()))
    return {q.id: v for q, v in zip(queries, vectors, strict=False)}, vectors[len(queries):]


def greedy_architectures(controller: Controller, queries: Sequence[Query],
                         embeddings: Mapping[str, np.ndarray]) -> list[Architecture]:
    """The controller's greedy architecture for each query."""
    return [d.arch for d in controller.decide(np.stack([embeddings[q.id] for q in queries]), None).items]


def run_seed(seed: int, settings: SimSettings, embed: Callable[[list[str]], np.ndarray],
             on_step: Callable[[str, StepLog], None] | None = None) -> dict[str, Any]:
    """Train and evaluate both arms for one seed; returns a JSON-ready dict."""
    model = SimModel(seed=seed)
    train_q, test_q = sim_splits(seed, settings.train_queries, settings.test_queries)
    names = tuple(descriptions())
    embeddings, operator_vectors = embed_queries(embed, [*train_q, *test_q])
    weights = [sum(1 for q in test_q if q.reference == d) for d in DIFFICULTIES]
    fronts = [model.pareto_front(d, settings.layers) for d in range(len(DIFFICULTIES))]
    out: dict[str, Any] = {"seed": seed, "arms": {}}
    for arm, sequential in (("latency_aware", False), ("latency_agnostic", True)):
        config = ControllerConfig(names, layers=settings.layers, threshold=settings.threshold, spread=settings.spread,
                                  widths=settings.widths,
                                  tags=(("benchmark", "simulated"), ("arm", arm), ("seed", str(seed))))
        controller = new_controller(config, operator_vectors, seed)
        controller.standardise(np.stack([embeddings[q.id] for q in train_q]))
        train_config = replace(settings.train, seed=seed, sequential=sequential)
        started = time.perf_counter()
        history = asyncio.run(train(controller, SimExecutor(model, seed, expected_score=True), train_q, embeddings,
                                    train_config, on_step=(lambda log, a=arm: on_step(a, log)) if on_step else None))
        seconds = time.perf_counter() - started
        archs = greedy_architectures(controller, test_q, embeddings)
        result = evaluate_arch_choice(model, test_q, archs, sequential)
        by_difficulty = {}
        for d in DIFFICULTIES:
            chosen = [format_architecture(a) for q, a in zip(test_q, archs, strict=True) if q.reference == d]
            by_difficulty[d] = max(set(chosen), key=chosen.count) if chosen else ""
        out["arms"][arm] = {**result, "train_s": seconds, "steps": len(history),
                            "final_reward": history[-1].reward if history else None,
                            "most_chosen": by_difficulty}
    aware = out["arms"]["latency_aware"]
    best = best_cp_at(fronts, weights, aware["accuracy"])
    aware["best_cp_at_accuracy"] = best
    aware["cp_over_best"] = aware["cp"] / best - 1
    out["fixed"] = {format_architecture(a): evaluate_arch_choice(model, test_q, [a] * len(test_q), False) for a in FIXED}
    total = sum(weights)
    top = sum(w * front[-1].accuracy for w, front in zip(weights, fronts, strict=True)) / total
    low = sum(w * front[0].accuracy for w, front in zip(weights, fronts, strict=True)) / total
    out["front"] = [{"accuracy": float(a), "cp": best_cp_at(fronts, weights, float(a))} for a in np.linspace(low, top, 30)]
    return out
