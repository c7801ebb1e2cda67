"""``paragents orchestrate train|eval``: the command line of learned orchestration.

Theory of operation
-------------------
Both commands turn their options into one
:class:`~paragents.orchestration.runner.OrchestrateOptions` and hand it to
:func:`~paragents.orchestration.runner.atrain` or
:func:`~paragents.orchestration.runner.aevaluate`.  The same options name the same
controller file, so ``eval`` with the options ``train`` was given finds what it
trained, and ``train`` run again resumes from its checkpoint (``--steps`` higher than
before trains on).  Training shows a rich progress bar on stderr with the running
reward, accuracy and critical path; ``--json`` prints one JSON document on stdout and
nothing else.  torch, the embedder and the model load only when a command runs, so
``paragents --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["orchestrate_group"]

#: The benchmarks (``runner.BENCHMARKS``, repeated here so that --help imports no torch).
BENCHMARKS = ("simulated", "gsm", "humaneval")


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--benchmark", type=click.Choice(BENCHMARKS), default="simulated", show_default=True),
        click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
                     help="Model for gsm/humaneval: the bundled model, or an OpenAI-compatible server."),
        click.option("--base-url", help="OpenAI-compatible server URL (with --backend openai)."),
        click.option("--model", help="Model name at --base-url."),
        click.option("--arm", type=click.Choice(["latency_aware", "latency_agnostic"]), default="latency_aware",
                     show_default=True, help="latency_agnostic: lambda 0 and sequential layers (the baseline)."),
        click.option("--lambda", "lam", type=float, default=None, help="Weight of the critical path (per 1k tokens)."),
        click.option("--mu", type=float, default=None, help="Weight of the cost (per 1k tokens)."),
        click.option("--steps", type=int, default=None, help="Policy-gradient steps."),
        click.option("--batch", type=int, default=None, help="Episodes per step."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--limit", type=int, default=None, help="At most this many problems (split in half: train, test)."),
        click.option("--max-tokens", type=int, default=256, show_default=True, help="Reply length of each model call."),
        click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where controllers and checkpoints live (default: the data directory)."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else."),
    ]):
        f = option(f)
    return f


def _build(benchmark: str, backend: str, base_url: str | None, model: str | None, arm: str, lam: float | None,
           mu: float | None, steps: int | None, batch: int | None, seed: int, limit: int | None, max_tokens: int,
           directory: Path | None) -> Any:
    from dataclasses import replace

    from .credit import Weights
    from .runner import OrchestrateOptions, default_directory

    if base_url is not None:
        os.environ["PARAGENTS_OPENAI_BASE_URL"] = base_url
    if model is not None:
        os.environ["PARAGENTS_OPENAI_MODEL"] = model
    base = OrchestrateOptions()
    real = benchmark != "simulated"
    batch = batch if batch is not None else (4 if real else base.train.batch)
    train = replace(
        base.train,
        seed=seed,
        steps=steps if steps is not None else (20 if real else base.train.steps),
        batch=batch,
        group=base.train.group if batch % base.train.group == 0 else 1,  # architectures per query
        weights=Weights(mu if mu is not None else base.train.weights.mu, lam if lam is not None else base.train.weights.lam),
        concurrency=2 if real else base.train.concurrency,
    )
    return OrchestrateOptions(benchmark=benchmark, backend=backend, arm=arm, train=train, limit=limit,  # type: ignore[arg-type]
                              max_tokens=max_tokens, directory=directory or default_directory())


def _embed() -> Callable[[list[str]], Any]:
    from ..context.embedder import Embedder

    return Embedder().embed


@click.group("orchestrate")
def orchestrate_group() -> None:
    """Learned latency-aware orchestration: train a controller, evaluate it."""


@orchestrate_group.command("train")
@_options
def train_command(as_json: bool, **kw: Any) -> int:
    """Train (or resume) a controller with policy gradient on a benchmark."""
    from .runner import atrain

    options = _build(**kw)
    if as_json:
        summary = asyncio.run(atrain(options, _embed()))
    else:
        columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as progress:
            bar = progress.add_task("train", total=options.train.steps, stats="")

            def on_step(log: Any) -> None:
                progress.update(bar, completed=log.step, stats=f"reward {log.reward:+.3f}  score {log.score:.2f}  "
                                                              f"CP {log.cp_k * 1000:.0f} tok")

            summary = asyncio.run(atrain(options, _embed(), on_step))
    click.echo(json.dumps(summary, indent=2))
    return 0


@orchestrate_group.command("eval")
@_options
@click.option("--arch", default=None, help="Evaluate this fixed architecture instead, e.g. 'cot+programmer -> sc_ensemble'.")
def eval_command(as_json: bool, arch: str | None, **kw: Any) -> int:
    """Evaluate the trained controller (greedy choices) or a fixed architecture on the test half."""
    from .runner import aevaluate, parse_architecture

    options = _build(**kw)
    fixed = parse_architecture(arch) if arch else None
    with Progress(TextColumn("[bold]evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=as_json) as progress:
        bar = progress.add_task("eval", total=None)
        summary = asyncio.run(aevaluate(options, _embed(), fixed,
                                        on_query=lambda i, n: progress.update(bar, completed=i, total=n)))
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return 0
    console = Console()
    console.print(f"[bold]{summary['benchmark']}[/bold] ({summary['arm']}), {summary['queries']} test problems")
    console.print(f"  accuracy        {summary['accuracy']:.3f}")
    console.print(f"  mean CP         {summary['cp']:.0f} {summary['cp_units']}")
    if "cp_seconds" in summary:
        console.print(f"  mean CP (wall)  {summary['cp_seconds']:.2f} s")
    console.print(f"  mean cost       {summary['cost']:.0f} tokens")
    for name, count in summary["architectures"].items():
        console.print(f"  {count:4d} x {name}")
    return 0
