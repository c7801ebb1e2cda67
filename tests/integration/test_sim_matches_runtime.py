"""The simulator and the asyncio driver make the same decisions for the same inputs.

Both drive the one scheduler; given a graph, policies and durations, the simulator's
virtual clock and the event loop's real one must produce the same sequence of
dispatches and completions.  Durations are drawn so that no two happenings of the
simulated run are closer than ``GAP`` seconds: real sleeps then cannot swap them.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from paragents.agents import Agent
from paragents.core.agent_state import AgentSpec
from paragents.core.graph import Task, TaskGraph
from paragents.runtime.driver import TaskContext, arun
from paragents.sim.engine import simulate

GAP = 0.04
SPEEDS = (1.0, 2.0, 1.0)


async def sleep_for_duration(ctx: TaskContext) -> None:
    await asyncio.sleep(ctx.task.duration / ctx.agent.speed)


def random_dag(seed: int, n: int = 12) -> list[Task]:
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        deps = tuple(f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 2))))
        tasks.append(Task(f"t{i}", duration=round(rng.uniform(0.1, 0.8), 3), depends_on=deps, action=sleep_for_duration))
    return tasks


def well_separated(seed: int, priority: str, assign: str) -> list[Task] | None:
    tasks = random_dag(seed)
    run = simulate(TaskGraph(tasks), [AgentSpec(f"a{i}", speed=s) for i, s in enumerate(SPEEDS)],
                   priority=priority, assign=assign)
    times = sorted({e.time for e in run.events})
    if all(b - a >= GAP for a, b in itertools.pairwise(times)):
        return tasks
    return None


def decisions(events) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.task, e.agent) for e in events if e.kind in ("dispatched", "finished")]


@pytest.mark.parametrize(
    ("priority", "assign"),
    [("critical_path", "earliest_finish"), ("fifo", "round_robin"), ("least_slack", "least_loaded")],
)
async def test_event_orders_match(priority: str, assign: str) -> None:
    tasks = next(t for seed in range(500) if (t := well_separated(seed, priority, assign)) is not None)
    specs = [AgentSpec(f"a{i}", speed=s) for i, s in enumerate(SPEEDS)]
    sim = simulate(TaskGraph(tasks), specs, priority=priority, assign=assign)
    real = await arun(
        TaskGraph(tasks), [Agent(f"a{i}", speed=s) for i, s in enumerate(SPEEDS)], priority=priority, assign=assign
    )
    assert decisions(real.events) == decisions(sim.events)
    assert real.report.makespan_s == pytest.approx(sim.makespan, rel=0.25)
