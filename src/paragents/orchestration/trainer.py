"""Policy-gradient training of the controller: seeded, checkpointed, resumable.

Theory of operation
-------------------
One **step** draws ``batch / group`` queries (with replacement, from the trainer's own
seeded :class:`random.Random`), each repeated ``group`` times, lets the controller
sample an architecture for each
(:meth:`~paragents.orchestration.controller.Controller.decide`), runs every episode on
the executor (episodes of a batch run concurrently, up to ``concurrency`` at once), and
takes one Adam step on

    loss = - mean over episodes of  sum over decisions  advantage(decision) * log p(decision)
           - entropy_bonus * entropy

where the decisions are the operators drawn, the Early-Stop gates and each layer's size
(where its draws stopped, under the randomised threshold; see
:mod:`~paragents.orchestration.architecture`), and the advantages come from
:mod:`~paragents.orchestration.credit`: the centred task reward ``score - mu * cost``
for every decision, and the latency penalty ``lambda * span`` for each layer's
bottleneck only, both divided by the EMA of the standard deviation of the centred
reward.  The task reward is centred on the leave-one-out mean of the other episodes of
its query's group when ``group > 1``, else on its EMA; the scale then follows the whole
reward minus its own leave-one-out mean (what the choices changed, not how hard the
queries were, which no choice changes), else the whole reward.  The two EMAs are
updated with the batch's statistics after the step.  The learning rate decays linearly
to ``lr * lr_end`` over the run, and the entropy bonus likewise to
``entropy_bonus * entropy_end``: explore early, settle late.

The **latency-agnostic baseline** is the same trainer with ``sequential=True``: lambda
is forced to 0 and the critical path it reports is the sequential one (every operator
run after the other), as in a supernet that does not know about parallel layers.

Executors.  Anything with ``async run(query, arch) -> Episode`` trains a controller:
:class:`~paragents.orchestration.simulated.SimExecutor` (sampled outcomes, for the
simulated benchmark) or :class:`~paragents.orchestration.supernet.SupernetExecutor`
(the architecture compiled to a task graph and run on the runtime with real models).

Checkpoints.  Every ``checkpoint_every`` steps, and at the end, the whole training state
is written atomically to the checkpoint file: parameters, optimiser, EMAs, the step,
the history and every random state (the trainer's, torch's, and the executor's when
it has ``getstate``/``setstate``).  Calling :func:`train` again with the same file
resumes from it, and a seeded run that is interrupted and resumed ends with the same
parameters as one that was not.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .architecture import Architecture, critical_path, sequential_path
from .controller import Controller, ControllerConfig
from .credit import Ema, Weights, advantages, reward, shared_advantage
from .simulated import Episode
from .state import Query

__all__ = ["Executor", "StepLog", "TrainConfig", "new_controller", "train"]


class Executor(Protocol):
    async def run(self, query: Query, arch: Architecture) -> Episode: ...


@dataclass(frozen=True, slots=True)
class TrainConfig:
    steps: int = 300
    batch: int = 32
    lr: float = 0.02
    weights: Weights = field(default_factory=Weights)
    sequential: bool = False
    entropy_bonus: float = 0.005
    ema_decay: float = 0.9
    seed: int = 0
    checkpoint_every: int = 50
    concurrency: int = 32
    group: int = 1
    lr_end: float = 1.0
    entropy_end: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or self.concurrency < 1 or self.checkpoint_every < 1:
            raise ValueError("steps must be >= 0; batch, concurrency and checkpoint_every >= 1")
        if self.group < 1 or self.batch % self.group:
            raise ValueError(f"group must be >= 1 and divide batch ({self.batch}), got {self.group}")
        if self.lr_end < 0 or self.entropy_end < 0:
            raise ValueError("lr_end and entropy_end must be >= 0")

    def progress(self, step: int) -> float:
        """How far through the run ``step`` is, 0 at the first step, 1 at the last."""
        return step / max(self.steps - 1, 1)

    @property
    def effective(self) -> Weights:
        """The weights used: lambda is 0 for the latency-agnostic baseline."""
        return Weights(self.weights.mu, 0.0) if self.sequential else self.weights


@dataclass(frozen=True, slots=True)
class StepLog:
    """A step's batch means: reward, score, cost and critical path (thousands of tokens)."""

    step: int
    reward: float
    score: float
    cost_k: float
    cp_k: float


def new_controller(config: ControllerConfig, operator_embeddings: np.ndarray, seed: int) -> Controller:
    """A freshly initialised controller; the same seed gives the same parameters."""
    torch.manual_seed(seed)
    return Controller(config, operator_embeddings)


def episode_cp(episode: Episode, sequential: bool) -> float:
    """The episode's critical path in tokens: parallel layers, or everything in sequence."""
    return sequential_path(episode.spans) if sequential else critical_path(episode.spans)


@dataclass(slots=True)
class _State:
    step: int = 0
    task: Ema = field(default_factory=Ema)
    scale: Ema = field(default_factory=Ema)
    history: list[StepLog] = field(default_factory=list)


def _save(path: Path, controller: Controller, optim: torch.optim.Optimizer, state: _State,
          rng: random.Random, executor: Any) -> None:
    payload = {
        "config": asdict(controller.config),
        "model": controller.state_dict(),
        "optim": optim.state_dict(),
        "step": state.step,
        "task": asdict(state.task),
        "scale": asdict(state.scale),
        "history": [asdict(h) for h in state.history],
        "rng": rng.getstate(),
        "torch_rng": torch.get_rng_state(),
        "executor": executor.getstate() if hasattr(executor, "getstate") else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load(path: Path, controller: Controller, optim: torch.optim.Optimizer, rng: random.Random, executor: Any) -> _State:
    saved = torch.load(path, weights_only=False)
    if saved["config"] != asdict(controller.config):
        raise ValueError(f"checkpoint {path} belongs to another controller configuration")
    controller.load_state_dict(saved["model"])
    optim.load_state_dict(saved["optim"])
    rng.setstate(saved["rng"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["executor"] is not None and hasattr(executor, "setstate"):
        executor.setstate(saved["executor"])
    return _State(saved["step"], Ema(**saved["task"]), Ema(**saved["scale"]), [StepLog(**h) for h in saved["history"]])


async def _episodes(executor: Executor, jobs: Sequence[tuple[Query, Architecture]], concurrency: int) -> list[Episode]:
    gate = asyncio.Semaphore(concurrency)

    async def one(query: Query, arch: Architecture) -> Episode:
        async with gate:
            return await executor.run(query, arch)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(q, a)) for q, a in jobs]
    return [t.result() for t in tasks]


def _others_mean(values: Sequence[float], b: int, group: int) -> float:
    """Mean of the other values of ``b``'s group (groups are ``group`` consecutive values)."""
    start = b - b % group
    return (sum(values[start:start + group]) - values[b]) / (group - 1)


async def train(
    controller: Controller,
    executor: Executor,
    queries: Sequence[Query],
    embeddings: Mapping[str, np.ndarray],
    config: TrainConfig,
    checkpoint: Path | None = None,
    on_step: Callable[[StepLog], None] | None = None,
) -> list[StepLog]:
    """Train ``controller`` in place for ``config.steps`` steps (resuming from
    ``checkpoint`` when it exists); returns the history of every step."""
    if not queries:
        raise ValueError("training needs at least one query")
    missing = [q.id for q in queries if q.id not in embeddings]
    if missing:
        raise ValueError(f"no embedding for queries {missing[:5]}")
    rng = random.Random(config.seed)
    optim = torch.optim.Adam(controller.parameters(), lr=config.lr)
    state = _State(task=Ema(config.ema_decay), scale=Ema(config.ema_decay))
    if checkpoint is not None and checkpoint.is_file():
        state = _load(checkpoint, controller, optim, rng, executor)
    weights = config.effective
    while state.step < config.steps:
        batch = [q for q in (rng.choice(queries) for _ in range(config.batch // config.group))
                 for _ in range(config.group)]
        decisions = controller.decide(np.stack([embeddings[q.id] for q in batch]), rng)
        jobs = [(q, d.arch) for q, d in zip(batch, decisions.items, strict=True)]
        episodes = await _episodes(executor, jobs, config.concurrency)
        task_rewards, rewards, cps, costs = [], [], [], []
        adv = np.zeros(tuple(decisions.log_probs.shape), dtype=np.float32)
        size_adv = np.zeros(tuple(decisions.size_log_probs.shape), dtype=np.float32)
        for episode in episodes:
            cost_k, cp_k = episode.cost / 1000, episode_cp(episode, config.sequential) / 1000
            task_rewards.append(episode.score - weights.mu * cost_k)
            rewards.append(reward(episode.score, cost_k, cp_k, weights))
            cps.append(cp_k)
            costs.append(cost_k)
        g = config.group
        centred = []
        for b, (decision, episode) in enumerate(zip(decisions.items, episodes, strict=True)):
            baseline = None
            if g > 1:
                baseline = _others_mean(task_rewards, b, g)
                centred.append(rewards[b] - _others_mean(rewards, b, g))
            spans_k = [[s / 1000 for s in layer] for layer in episode.spans]
            shared = shared_advantage(task_rewards[b], state.task, state.scale, baseline)
            per_layer = advantages(shared, spans_k, decision.drawn, decision.ran, weights, state.scale)
            for layer, (drawn, values) in enumerate(zip(decision.drawn, per_layer, strict=True)):
                adv[b, layer, drawn] = values
            size_adv[b] = shared
        done = config.progress(state.step)
        bonus = config.entropy_bonus * (1 + (config.entropy_end - 1) * done)
        for param_group in optim.param_groups:
            param_group["lr"] = config.lr * (1 + (config.lr_end - 1) * done)
        loss = (-(torch.from_numpy(adv) * decisions.log_probs).sum()
                - (torch.from_numpy(size_adv) * decisions.size_log_probs).sum()
                - bonus * decisions.entropy.sum())
        optim.zero_grad()
        (loss / len(batch)).backward()
        optim.step()
        state.task.update(statistics.fmean(task_rewards), statistics.pvariance(task_rewards))
        scaled = centred if g > 1 else rewards
        state.scale.update(statistics.fmean(scaled), statistics.pvariance(scaled))
        state.step += 1
        log = StepLog(state.step, statistics.fmean(rewards), statistics.fmean(e.score for e in episodes),
                      statistics.fmean(costs), statistics.fmean(cps))
        state.history.append(log)
        if on_step is not None:
            on_step(log)
        if checkpoint is not None and (state.step % config.checkpoint_every == 0 or state.step == config.steps):
            _save(checkpoint, controller, optim, state, rng, executor)
    return state.history
