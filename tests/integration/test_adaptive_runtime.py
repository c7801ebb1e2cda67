"""Hedging on the real asyncio runtime: a straggler gets a backup, the first result is kept."""

from __future__ import annotations

import asyncio

from paragents.adaptive import AdaptiveConfig, HedgeConfig
from paragents.agents import Agent
from paragents.backends.simulated import SimulatedBackend
from paragents.core.graph import Task, TaskGraph
from paragents.runtime.driver import TaskContext, arun


async def _straggle_once(ctx: TaskContext) -> str:
    """Its first attempt hangs until cancelled (a straggler); any later one answers at once."""
    if ctx.attempt == 1:
        await asyncio.Event().wait()
    return f"attempt {ctx.attempt} on {ctx.agent.name}"


def test_a_straggler_is_hedged_and_the_first_result_kept() -> None:
    backend = SimulatedBackend(endpoint="sim://hedge", ttft_s=0.02, tokens_per_s=1000.0, jitter=0.0)
    agents = [Agent(f"a{i}", backend=backend) for i in range(3)]
    warm = [Task(f"w{i}", prompt=f"warm up {i}", duration=0.05, tokens=30) for i in range(12)]
    slow = Task("slow", duration=0.05, action=_straggle_once, depends_on=("w0",))
    graph = TaskGraph([*warm, slow, Task("after", prompt="sum up", duration=0.05, tokens=30, depends_on=("slow",))])
    config = AdaptiveConfig(period_s=0.05, hedging=HedgeConfig(enabled=True, min_samples=5, budget=0.5))
    result = asyncio.run(asyncio.wait_for(arun(graph, agents, adaptive=config), timeout=10.0))
    assert result.results["slow"].startswith("attempt 2 on ")  # the backup's: the first never answers
    kinds = [(e.kind, e.attempt) for e in result.events if e.task == "slow"]
    assert ("abandoned", 1) in kinds and ("finished", 2) in kinds
    assert result.report.hedges == 1 and result.report.adaptations["hedge"] == 1
    assert result.report.tasks["done"] == len(graph)
