"""The simulated orchestration benchmark: known accuracies, exact trade-offs.

Theory of operation
-------------------
A query has a hidden **difficulty** (easy, medium, hard) that shows only in its wording
(:func:`sim_queries` writes word problems whose length and number of steps grow with
it), so a query-conditioned controller can learn it from the text's embedding.

Each operator (:data:`SIM_OPERATORS`) has, per difficulty, the probability that the
candidate it proposes is right, given the state the previous layer left: ``none``
(first layer), ``right`` or ``wrong``.  Solvers (Generate, CoT, Programmer) ignore the
state; refiners (Self-Consistency, Self-Refine, Test) mostly keep a right answer and
sometimes fix a wrong one, and act like a solver in the first layer.  Multi-sample CoT
proposes ``samples`` independent CoT candidates.  A wrong candidate carries one of
:data:`WRONG_ANSWERS` wrong values, uniformly, so wrong answers can collide.

Tokens.  A call's completion tokens are lognormal (mean per operator, scaled by
difficulty, coefficient of variation :data:`TOKEN_CV`).  Refiners have a second call
profile for the first layer, as the real operators do when there is nothing to refine
(:mod:`paragents.orchestration.operators`): Self-Consistency with no candidates *is* a
Generate call; Self-Refine first generates, then critiques and revises (three calls in
sequence); Test first generates, then checks (two calls in sequence).  Their first-layer
accuracy is, likewise, Generate's followed by their own right/wrong behaviour.  An operator's **span** (its
own critical path) is the longest of its parallel calls (Multi-sample CoT) or the sum
of its sequential calls (Self-Refine: critique, then revise); its **cost** is all its
tokens.

Merging.  A layer's candidates are merged by **majority vote** over their answers;
ties are broken uniformly at random.  The merged answer is the state the next layer
sees, and the last layer's merged answer is scored (1 if right).

Because the state is only "right or wrong", everything is exact: :func:`layer_accuracy`
is the probability that a layer of operators ``S`` ends right, given the state before
it, computed by dynamic programming over vote counts; an architecture's expected
accuracy is a two-state Markov chain through its layers, and its expected critical
path the sum over layers of ``E[max span]`` (estimated once per operator set and
difficulty from :data:`SPAN_DRAWS` fixed-seed draws).  :func:`pareto_front` enumerates
every architecture up to ``layers`` layers (every non-empty operator set per layer)
with Pareto pruning layer by layer, which is exact because a layer's accuracy map
``a -> a * P(right|right) + (1 - a) * P(right|wrong)`` is increasing in ``a``
(refiners keep right answers at least as often as they fix wrong ones; checked).
:func:`best_cp_at` then combines the per-difficulty fronts into the least mean
critical path that reaches a given mean accuracy with query-conditioned choices.

:class:`SimExecutor` samples an actual episode (for training); :class:`SimModel` gives
the expectations (for evaluation and enumeration).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..sim.latency import lognormal
from .architecture import Architecture
from .state import Query

__all__ = [
    "DIFFICULTIES",
    "SIM_OPERATORS",
    "Episode",
    "FrontPoint",
    "SimExecutor",
    "SimModel",
    "SimOperator",
    "best_cp_at",
    "sim_queries",
]

DIFFICULTIES = ("easy", "medium", "hard")
WRONG_ANSWERS = 3
TOKEN_CV = 0.3
SPAN_DRAWS = 4000
_TOKEN_SCALE = {"easy": 0.8, "medium": 1.0, "hard": 1.4}


@dataclass(frozen=True, slots=True)
class SimOperator:
    """One operator's behaviour: accuracy by (state, difficulty), and its calls' tokens.

    ``acc[state]`` holds (easy, medium, hard) accuracies for state ``none``, ``right``
    and ``wrong``; ``calls`` are the mean completion tokens of its calls, run in
    parallel when ``parallel`` (span = max) else in sequence (span = sum), and
    ``first_calls`` those it makes in the first layer (state ``none``; the same as
    ``calls`` when None); ``samples`` is how many candidates it proposes.
    """

    name: str
    acc: dict[str, tuple[float, float, float]]
    calls: tuple[float, ...]
    parallel: bool = False
    samples: int = 1
    first_calls: tuple[float, ...] | None = None

    def calls_for(self, first: bool) -> tuple[float, ...]:
        """Mean tokens of the calls it makes in the first layer, or in a later one."""
        return self.first_calls if first and self.first_calls is not None else self.calls


def _solver(name: str, acc: tuple[float, float, float], calls: tuple[float, ...], **kw: object) -> SimOperator:
    return SimOperator(name, {"none": acc, "right": acc, "wrong": acc}, calls, **kw)  # type: ignore[arg-type]


# Accuracies (easy, medium, hard) and mean completion tokens of each call.  Generate
# answers in a few words; CoT and Programmer write a derivation or a short program
# (about five times as long) and are right more often, Programmer most on hard
# arithmetic.  Refiners keep a right answer most of the time and fix a wrong one
# sometimes; Test (an independent re-solve that checks) keeps best, Self-Consistency
# (picks among candidates; one short call) fixes least.
_GENERATE = (0.80, 0.45, 0.15)
_GENERATE_TOKENS = 40.0
_COT = (0.90, 0.62, 0.32)


def _refiner(name: str, right: tuple[float, float, float], wrong: tuple[float, float, float],
             calls: tuple[float, ...]) -> SimOperator:
    """A refiner that, with nothing to refine (first layer), generates first: its first
    layer is a Generate call followed by its own calls, right as often as refining
    Generate's answer is."""
    none = tuple(g * r + (1 - g) * w for g, r, w in zip(_GENERATE, right, wrong, strict=True))
    return SimOperator(name, {"none": none, "right": right, "wrong": wrong}, calls,  # type: ignore[arg-type]
                       first_calls=(_GENERATE_TOKENS, *calls))

#: The simulated operators, in the supernet's order (Early-Stop is handled by the sampler).
SIM_OPERATORS: tuple[SimOperator, ...] = (
    _solver("generate", _GENERATE, (_GENERATE_TOKENS,)),
    _solver("cot", _COT, (200.0,)),
    _solver("multi_cot", _COT, (200.0, 200.0, 200.0), parallel=True, samples=3),
    # with no candidates Self-Consistency generates: exactly a Generate call
    SimOperator("sc_ensemble", {"none": _GENERATE, "right": (0.97, 0.95, 0.92), "wrong": (0.15, 0.10, 0.06)}, (30.0,),
                first_calls=(_GENERATE_TOKENS,)),
    _refiner("self_refine", (0.95, 0.92, 0.88), (0.40, 0.28, 0.15), (120.0, 180.0)),
    _solver("programmer", (0.85, 0.70, 0.50), (160.0,)),
    _refiner("test", (0.98, 0.97, 0.95), (0.30, 0.22, 0.12), (100.0,)),
)


# ----------------------------------------------------------------- queries
_NAMES = ("Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun")
_ITEMS = ("apples", "pencils", "stamps", "marbles", "books", "coins", "shells", "cards")


def _query_text(difficulty: str, rng: random.Random) -> str:
    name, other = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    a, b, c, d = (rng.randint(2, 60) for _ in range(4))
    if difficulty == "easy":
        return rng.choice((f"What is {a} plus {b}?", f"{name} has {a} {item} and gets {b} more. How many now?"))
    if difficulty == "medium":
        return (
            f"{name} has {a} {item}. {name} gives {other} {min(a, b)} of them and then buys "
            f"{c} packs of {d}. How many {item} does {name} have now?"
        )
    return (
        f"{name} sells {item} at a market. On Monday {name} sells {a} at {b} cents each, on Tuesday "
        f"twice as many at {c} cents each minus a discount of {d} percent on the whole day. "
        f"{other} buys a third of what is left from a stock of {a * 7} for a fixed {d} dollars. "
        f"Counting the fee of {c % 9 + 1} dollars per day, how much money, in dollars, does "
        f"{name} make over the two days, rounded to the nearest cent?"
    )


def sim_queries(count: int, seed: int, weights: Sequence[float] = (1, 1, 1)) -> list[Query]:
    """``count`` word problems with hidden difficulties (the ``reference`` field holds it)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        difficulty = rng.choices(DIFFICULTIES, weights=weights)[0]
        out.append(Query(id=f"sim-{seed}-{i}", text=_query_text(difficulty, rng), reference=difficulty))
    return out


def difficulty_of(query: Query) -> int:
    """The hidden difficulty's index (simulated queries keep it as their reference)."""
    return DIFFICULTIES.index(query.reference or "")


# ----------------------------------------------------------------- exact model
def _vote_right(probs: Sequence[float]) -> float:
    """P(majority vote picks the right answer), wrong answers uniform over WRONG_ANSWERS
    values, ties uniformly at random; exact, by DP over (right votes, sorted wrong votes)."""
    dist: dict[tuple[int, tuple[int, ...]], float] = {(0, (0,) * WRONG_ANSWERS): 1.0}
    for p in probs:
        nxt: dict[tuple[int, tuple[int, ...]], float] = {}
        for (right, wrong), q in dist.items():
            key = (right + 1, wrong)
            nxt[key] = nxt.get(key, 0.0) + q * p
            for k in range(WRONG_ANSWERS):
                w = list(wrong)
                w[k] += 1
                key = (right, tuple(sorted(w, reverse=True)))
                nxt[key] = nxt.get(key, 0.0) + q * (1 - p) / WRONG_ANSWERS
        dist = nxt
    total = 0.0
    for (right, wrong), q in dist.items():
        top = wrong[0]
        if right > top:
            total += q
        elif right == top and right > 0:
            total += q / (1 + sum(1 for w in wrong if w == top))
    return total


@dataclass(frozen=True, slots=True)
class FrontPoint:
    """One Pareto-optimal architecture: expected accuracy and critical path (tokens)."""

    accuracy: float
    cp: float
    arch: Architecture


@dataclass
class SimModel:
    """Expectations of the simulated benchmark: exact accuracies, estimated mean spans."""

    operators: tuple[SimOperator, ...] = SIM_OPERATORS
    seed: int = 0
    _spans: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _costs: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _mean_span: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _mean_cost: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _accuracy: dict[tuple[tuple[str, ...], int, str], float] = field(default_factory=dict, init=False, repr=False)
    _max_span: dict[tuple[tuple[str, ...], int, bool], float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        sigma = math.sqrt(math.log1p(TOKEN_CV**2))
        for op in self.operators:
            for first in (False, True):
                spans, costs = [], []
                for d in DIFFICULTIES:
                    calls = np.stack([m * _TOKEN_SCALE[d] * rng.lognormal(-sigma * sigma / 2, sigma, SPAN_DRAWS)
                                      for m in op.calls_for(first)])
                    spans.append(calls.max(axis=0) if op.parallel else calls.sum(axis=0))
                    costs.append(calls.sum(axis=0))
                self._spans[op.name, first] = np.stack(spans)  # (difficulty, draw)
                self._costs[op.name, first] = np.stack(costs)
                self._mean_span[op.name, first] = self._spans[op.name, first].mean(axis=1)
                self._mean_cost[op.name, first] = self._costs[op.name, first].mean(axis=1)
        self._by_name = {op.name: op for op in self.operators}
        for names in self.operator_sets():
            for d in range(len(DIFFICULTIES)):
                if self.layer_accuracy(names, d, "right") < self.layer_accuracy(names, d, "wrong") - 1e-12:
                    raise ValueError(f"operators {names} fix wrong answers more often than they keep right ones")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.operators)

    def operator_sets(self) -> list[tuple[str, ...]]:
        """Every non-empty set of operators, in the supernet's order."""
        names = self.names
        return [c for r in range(1, len(names) + 1) for c in itertools.combinations(names, r)]

    def layer_accuracy(self, names: Sequence[str], difficulty: int, state: str) -> float:
        """P(the layer's vote is right) given the state before it (computed once per key)."""
        key = (tuple(names), difficulty, state)
        value = self._accuracy.get(key)
        if value is None:
            probs = [self._by_name[n].acc[state][difficulty] for n in key[0] for _ in range(self._by_name[n].samples)]
            value = self._accuracy[key] = _vote_right(probs)
        return value

    def expected_span(self, names: Sequence[str], difficulty: int, first: bool = False) -> float:
        """``E[max span]`` of operators run side by side (in the first layer when ``first``)."""
        key = (tuple(names), difficulty, first)
        value = self._max_span.get(key)
        if value is None:
            draws = np.stack([self._spans[n, first][difficulty] for n in key[0]])
            value = self._max_span[key] = float(draws.max(axis=0).mean())
        return value

    def expected_cost(self, names: Sequence[str], difficulty: int, first: bool = False) -> float:
        return float(sum(self._mean_cost[n, first][difficulty] for n in names))

    def sequential_span(self, names: Sequence[str], difficulty: int, first: bool = False) -> float:
        """``E[sum of spans]``: the operators run one after another."""
        return float(sum(self._mean_span[n, first][difficulty] for n in names))

    def evaluate(self, arch: Architecture, difficulty: int) -> dict[str, float]:
        """Expected accuracy, parallel and sequential critical path, and cost of ``arch``."""
        acc = cp = seq = cost = 0.0
        for i, layer in enumerate(arch):
            first = i == 0
            if first:
                acc = self.layer_accuracy(layer, difficulty, "none")
            else:
                acc = acc * self.layer_accuracy(layer, difficulty, "right") + (1 - acc) * self.layer_accuracy(
                    layer, difficulty, "wrong"
                )
            cp += self.expected_span(layer, difficulty, first)
            seq += self.sequential_span(layer, difficulty, first)
            cost += self.expected_cost(layer, difficulty, first)
        return {"accuracy": acc, "cp": cp, "sequential_cp": seq, "cost": cost}

    def pareto_front(self, difficulty: int, layers: int) -> list[FrontPoint]:
        """Every architecture of 1..``layers`` layers that no other beats on both
        accuracy and expected critical path, by accuracy ascending."""
        sets = self.operator_sets()
        steps = {s: (self.layer_accuracy(s, difficulty, "right"), self.layer_accuracy(s, difficulty, "wrong")) for s in sets}
        spans = {s: self.expected_span(s, difficulty) for s in sets}
        level = _prune(FrontPoint(self.layer_accuracy(s, difficulty, "none"), self.expected_span(s, difficulty, True), (s,))
                       for s in sets)
        everything = list(level)
        for _ in range(layers - 1):
            level = _prune(
                FrontPoint(p.accuracy * steps[s][0] + (1 - p.accuracy) * steps[s][1], p.cp + spans[s], (*p.arch, s))
                for p in level
                for s in sets
            )
            everything.extend(level)
        return _prune(everything)


def _prune(points: Iterable[FrontPoint]) -> list[FrontPoint]:
    """The Pareto front (higher accuracy, lower CP), by accuracy ascending."""
    out: list[FrontPoint] = []
    best_acc = -1.0
    for p in sorted(points, key=lambda p: (p.cp, -p.accuracy)):
        if p.accuracy > best_acc + 1e-12:
            out.append(p)
            best_acc = p.accuracy
    return out


def best_cp_at(fronts: Sequence[Sequence[FrontPoint]], weights: Sequence[float], accuracy: float) -> float:
    """The least mean CP of query-conditioned choices (one front point per difficulty,
    mixed by ``weights``) whose mean accuracy is at least ``accuracy``; inf if none."""
    combined: list[tuple[float, float]] = [(0.0, 0.0)]
    total = float(sum(weights))
    for front, w in zip(fronts, weights, strict=True):
        share = w / total
        merged = [(a + share * p.accuracy, c + share * p.cp) for a, c in combined for p in front]
        merged.sort(key=lambda x: (x[1], -x[0]))
        combined, best = [], -1.0
        for a, c in merged:
            if a > best + 1e-12:
                combined.append((a, c))
                best = a
    feasible = [c for a, c in combined if a >= accuracy - 1e-9]
    return min(feasible) if feasible else math.inf


# ----------------------------------------------------------------- sampled episodes
@dataclass(frozen=True, slots=True)
class Episode:
    """What running one architecture on one query did: its score, spans and cost."""

    score: float
    spans: tuple[tuple[float, ...], ...]  # per layer, per operator that ran (tokens)
    cost: float  # tokens


class SimExecutor:
    """Samples episodes of the simulated benchmark (for training)."""

    def __init__(self, model: SimModel, seed: int = 0, *, expected_score: bool = False) -> None:
        self.model = model
        self.rng = random.Random(seed)
        self.expected_score = expected_score

    def getstate(self) -> object:
        return self.rng.getstate()

    def setstate(self, state: object) -> None:
        self.rng.setstate(state)  # type: ignore[arg-type]

    async def run(self, query: Query, arch: Architecture) -> Episode:
        """One sampled episode of ``arch`` on ``query``."""
        d = difficulty_of(query)
        scale = _TOKEN_SCALE[DIFFICULTIES[d]]
        state = "none"
        spans: list[tuple[float, ...]] = []
        cost = 0.0
        for layer in arch:
            votes: dict[int, int] = {}
            layer_spans = []
            for name in layer:
                op = self.model._by_name[name]
                calls = [lognormal(self.rng, m * scale, TOKEN_CV) for m in op.calls_for(state == "none")]
                layer_spans.append(max(calls) if op.parallel else sum(calls))
                cost += sum(calls)
                p = op.acc[state][d]
                for _ in range(op.samples):
                    answer = 0 if self.rng.random() < p else self.rng.randint(1, WRONG_ANSWERS)
                    votes[answer] = votes.get(answer, 0) + 1
            top = max(votes.values())
            state = "right" if self.rng.choice(sorted(a for a, v in votes.items() if v == top)) == 0 else "wrong"
            spans.append(tuple(layer_spans))
        score = self.model.evaluate(arch, d)["accuracy"] if self.expected_score else float(state == "right")
        return Episode(score, tuple(spans), cost)
