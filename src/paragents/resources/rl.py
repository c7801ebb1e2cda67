"""A capacity allocator learned by tabular Q-learning in the serverless GPU simulator.

Theory of operation
-------------------
Every allocator here gives each agent its minimum first; what differs is how the
surplus is split.  :class:`RLAllocator` learns *which rule* to use for the surplus in
which situation.  Everything it looks at is a function of the ``demands`` alone, so it
works for any number of agents, and :meth:`RLAllocator.allocate` stays pure: no
randomness, no I/O, no numpy (the policy file is read once, when it is built).

State (60 values, :func:`encode`)
    With ``work_i = backlog_i / service_rate_i`` (seconds of the whole capacity its queue
    needs) and ``W = sum work_i``: the queue level, ``W`` in windows of ``window_s``
    (0, or up to 1, 4, 16, or more: 5 levels); the offered load ``sum rate_i /
    service_rate_i`` (below 0.5, below 1, or more: 3 levels); whether one agent holds more
    than 60 % of ``W`` (2); whether that agent (the one with the most work) has the
    highest priority present (2).

Actions (:data:`RULES`): the surplus goes in proportion to
    ``min_share`` (the guarantees), ``adaptive`` (:meth:`Adaptive.weights`), ``queue``
    (:meth:`QueueProportional.weights`), or entirely to the agent with the least
    (``shortest``) or the most (``longest``) positive work; equally when the rule gives
    every agent zero.  So every action keeps the allocators' invariants.

Reward, per window
    ``-(accrued latency / window_s) - sla_weight * violations``: minus the mean number
    of requests in the system during the window (by Little's law its sum over a run is
    the total latency) minus a penalty for each request that finished later than the SLA.

Learning (:func:`train`)
    Q-learning with action repeat: a rule chosen (epsilon-greedy, from a seeded numpy
    generator) is held for ``hold`` windows (10, i.e. 100 ms: one window's choice barely
    moves the queues, so its effect would drown in the noise), ``R`` is the discounted sum
    of those windows' rewards, and ``Q[s, a] += lr * (R + gamma**hold * max Q[s', .] -
    Q[s, a])`` with ``lr = max(alpha, 1 / visits(s, a))``.  ``Q`` starts at 0 and
    rewards are negative, so untried actions look best and get tried.  Episodes cycle
    through the training loads, each a fresh simulator run whose seed is ``10_000 +
    1_000 * seed + episode`` (away from the small seeds benchmarks use).  The greedy
    policy of a zero table picks action 0 (``min_share``): that is the untrained start.

Policy files (:meth:`QPolicy.save`, :meth:`QPolicy.load`)
    JSON holding the rules, the state encoding's thresholds, the table and how it was
    trained; loading refuses a file whose rules or thresholds differ from this code's.
    The shipped policy is ``data/rl_serverless.json``; rebuild it with
    ``python -m paragents.resources.rl train --out PATH [--episodes N] [--seed S]``.

numpy and the simulator are imported only by the training and evaluation functions.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .allocators import (
    Adaptive,
    AgentDemand,
    AllocationError,
    QueueProportional,
    _checked,
    _with_surplus,
    minimum_shares,
)

if TYPE_CHECKING:
    from ..sim.serverless import ServerlessConfig, ServerlessSim

__all__ = [
    "RULES",
    "QPolicy",
    "RLAllocator",
    "default_policy",
    "encode",
    "evaluate",
    "train",
]

FORMAT = "paragents.rl.qpolicy/1"
RULES: tuple[str, ...] = ("min_share", "adaptive", "queue", "shortest", "longest")
QUEUE_LEVELS: tuple[float, ...] = (1.0, 4.0, 16.0)  # work in windows; 0 is its own level
LOAD_LEVELS: tuple[float, ...] = (0.5, 1.0)
CONCENTRATED = 0.6
N_STATES = (len(QUEUE_LEVELS) + 2) * (len(LOAD_LEVELS) + 1) * 2 * 2
TRAIN_LOADS: tuple[float, ...] = (0.5, 0.7, 0.9)
DEFAULT_POLICY = "resources/data/rl_serverless.json"


def _level(x: float, thresholds: Sequence[float]) -> int:
    return sum(x > t for t in thresholds)


def encode(demands: Sequence[AgentDemand], window_s: float) -> int:
    """The state index (0 .. ``N_STATES - 1``) of a demand set; see "State"."""
    work = [d.backlog / d.service_rate for d in demands]
    total = sum(work)
    queue = 0 if total <= 0 else 1 + _level(total / window_s, QUEUE_LEVELS)
    pressure = _level(sum(d.rate / d.service_rate for d in demands), LOAD_LEVELS)
    concentrated = top = 0
    if total > 0:
        most = max(range(len(demands)), key=work.__getitem__)
        concentrated = int(work[most] > CONCENTRATED * total)
        top = int(demands[most].priority_level == min(d.priority_level for d in demands))
    return ((queue * (len(LOAD_LEVELS) + 1) + pressure) * 2 + concentrated) * 2 + top


def _one_hot(work: Sequence[float], pick: Callable[..., int]) -> list[float]:
    busy = [i for i, w in enumerate(work) if w > 0]
    if not busy:
        return [0.0] * len(work)
    chosen = pick(busy, key=work.__getitem__)
    return [1.0 if i == chosen else 0.0 for i in range(len(work))]


def rule_weights(rule: int, demands: Sequence[AgentDemand], window_s: float) -> list[float]:
    """The surplus weights of action ``rule`` (an index into :data:`RULES`)."""
    name = RULES[rule]
    if name == "min_share":
        return [d.min_share for d in demands]
    if name == "adaptive":
        return Adaptive().weights(demands)
    if name == "queue":
        return QueueProportional(lookahead_s=window_s).weights(demands)
    work = [d.backlog / d.service_rate for d in demands]
    return _one_hot(work, min if name == "shortest" else max)


@dataclass(frozen=True, slots=True)
class QPolicy:
    """A Q-table over (state, rule) and the greedy choice it implies."""

    q: tuple[tuple[float, ...], ...]
    window_s: float = 0.01
    training: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.q) != N_STATES or any(len(row) != len(RULES) for row in self.q):
            raise AllocationError(f"a Q-table needs {N_STATES} rows of {len(RULES)} values")
        if not self.window_s > 0:
            raise AllocationError("window_s must be > 0")

    @classmethod
    def untrained(cls, window_s: float = 0.01) -> QPolicy:
        """All zeros: the greedy choice is rule 0 (``min_share``) everywhere."""
        return cls(tuple((0.0,) * len(RULES) for _ in range(N_STATES)), window_s)

    def action(self, demands: Sequence[AgentDemand]) -> int:
        """The greedy rule for these demands (ties go to the earlier rule)."""
        row = self.q[encode(demands, self.window_s)]
        return max(range(len(row)), key=row.__getitem__)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rules": list(RULES),
            "queue_levels": list(QUEUE_LEVELS),
            "load_levels": list(LOAD_LEVELS),
            "concentrated": CONCENTRATED,
            "window_s": self.window_s,
            "training": self.training,
            "q": [list(row) for row in self.q],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> QPolicy:
        expected = {
            "format": FORMAT,
            "rules": list(RULES),
            "queue_levels": list(QUEUE_LEVELS),
            "load_levels": list(LOAD_LEVELS),
            "concentrated": CONCENTRATED,
        }
        for key, value in expected.items():
            if doc.get(key) != value:
                raise AllocationError(f"policy file: {key} is {doc.get(key)!r}, expected {value!r}")
        q = tuple(tuple(float(v) for v in row) for row in doc["q"])
        return cls(q, float(doc["window_s"]), dict(doc.get("training", {})))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> QPolicy:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@functools.cache
def default_policy() -> QPolicy:
    """The policy shipped with paragents (trained on the default serverless scenario)."""
    text = resources.files("paragents").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    return QPolicy.from_json(json.loads(text))


@dataclass(frozen=True, slots=True)
class RLAllocator:
    """Minimums, then the surplus by the rule the learned policy picks for this state."""

    policy: QPolicy = field(default_factory=default_policy)
    name: ClassVar[str] = "rl"

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        weights = rule_weights(self.policy.action(demands), demands, self.policy.window_s)
        return _with_surplus(demands, minimum_shares(demands, capacity), capacity, weights)


# --------------------------------------------------------------------------- training


def _shares(rule: int, demands: Sequence[AgentDemand], window_s: float) -> dict[str, float]:
    weights = rule_weights(rule, demands, window_s)
    return _with_surplus(demands, minimum_shares(demands, 1.0), 1.0, weights)


def _episode_sim(
    config: ServerlessConfig | None, load: float, seed: int, episode: int, episode_s: float
) -> ServerlessSim:
    from ..sim.serverless import ServerlessSim

    return ServerlessSim(
        config, load=load, seed=10_000 + 1_000 * seed + episode, duration_s=episode_s
    )


def train(
    config: ServerlessConfig | None = None,
    episodes: int = 60,
    seed: int = 0,
    *,
    loads: Sequence[float] = TRAIN_LOADS,
    episode_s: float = 20.0,
    alpha: float = 0.05,
    gamma: float = 0.95,
    epsilon: float = 0.2,
    sla_weight: float = 5.0,
    hold: int = 10,
) -> QPolicy:
    """Learn a :class:`QPolicy` by Q-learning over ``episodes`` simulator runs."""
    import numpy as np

    from ..sim.serverless import ServerlessConfig

    if episodes < 0 or hold < 1 or not loads or not 0 <= epsilon <= 1:
        raise ValueError("episodes >= 0, hold >= 1, loads non-empty, epsilon in [0, 1]")
    cfg = config or ServerlessConfig()
    window_s = cfg.window_s
    q = np.zeros((N_STATES, len(RULES)))
    visits = np.zeros((N_STATES, len(RULES)))
    rng = np.random.default_rng(seed)
    decisions = 0
    for episode in range(episodes):
        sim = _episode_sim(cfg, loads[episode % len(loads)], seed, episode, episode_s)
        demands = sim.demands()
        state = encode(demands, window_s)
        while not sim.finished:
            if rng.random() < epsilon:
                action = int(rng.integers(len(RULES)))
            else:
                action = int(np.argmax(q[state]))
            reward, discount = 0.0, 1.0
            for _ in range(hold):
                out = sim.step(_shares(action, demands, window_s))
                reward += discount * (
                    -out.accrued_latency_s / window_s - sla_weight * out.sla_violations
                )
                discount *= gamma
                demands = sim.demands()
                if sim.finished:
                    break
            following = encode(demands, window_s)
            target = reward if sim.finished else reward + discount * q[following].max()
            visits[state, action] += 1
            rate = max(alpha, 1.0 / visits[state, action])
            q[state, action] += rate * (target - q[state, action])
            state = following
            decisions += 1
    training = {
        "episodes": episodes,
        "seed": seed,
        "loads": list(loads),
        "episode_s": episode_s,
        "alpha": alpha,
        "gamma": gamma,
        "epsilon": epsilon,
        "sla_weight": sla_weight,
        "hold": hold,
        "decisions": decisions,
    }
    return QPolicy(tuple(tuple(float(v) for v in row) for row in q), window_s, training)


def evaluate(
    policy: QPolicy,
    config: ServerlessConfig | None = None,
    *,
    loads: Sequence[float] = TRAIN_LOADS,
    seeds: Sequence[int] = (0,),
    episode_s: float = 20.0,
    sla_weight: float = 5.0,
) -> float:
    """Mean reward per window of the greedy ``policy`` (higher is better; it is <= 0)."""
    from ..sim.serverless import ServerlessSim

    total, windows = 0.0, 0
    for load in loads:
        for seed in seeds:
            sim = ServerlessSim(config, load=load, seed=seed, duration_s=episode_s)
            window_s = sim.config.window_s
            while not sim.finished:
                demands = sim.demands()
                out = sim.step(_shares(policy.action(demands), demands, window_s))
                total += -out.accrued_latency_s / window_s - sla_weight * out.sla_violations
                windows += 1
    return total / windows if windows else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m paragents.resources.rl train --out PATH [--episodes N] [--seed S]``."""
    ap = argparse.ArgumentParser(
        prog="python -m paragents.resources.rl", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("train", help="train a policy on the default serverless scenario")
    cmd.add_argument("--out", required=True, type=Path, help="where to write the policy JSON")
    cmd.add_argument("--episodes", type=int, default=60)
    cmd.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    trained = train(episodes=args.episodes, seed=args.seed)
    before, after = evaluate(QPolicy.untrained()), evaluate(trained)
    scores = {"eval_reward_untrained": before, "eval_reward_trained": after}
    policy = QPolicy(trained.q, trained.window_s, {**trained.training, **scores})
    policy.save(args.out)
    print(f"wrote {args.out}: mean reward per window {before:.3f} untrained -> {after:.3f} trained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
