"""Budgets in a real asyncio run: the simulated backend's tokens, and a deadline on the real clock."""

from __future__ import annotations

import asyncio
import time

from paragents.agents import Agent
from paragents.backends.simulated import SimulatedBackend
from paragents.core.budget import Budget
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import Backoff
from paragents.runtime.driver import Runtime, arun


async def test_token_budget_stops_a_real_run_within_one_task() -> None:
    backend = SimulatedBackend(time_scale=0.01, seed=1)
    agent = Agent("writer", backend=backend, slots=1)
    graph = TaskGraph([Task(f"t{i}", prompt=f"write part {i} of the report", tokens=40) for i in range(12)])
    runtime = Runtime(graph, [agent], budget=Budget(max_tokens=300))
    result = await runtime.run()

    report = result.report
    per_task = [t.prompt_tokens + t.completion_tokens for t in report.timings.values() if t.state == "done"]
    used = report.tokens["prompt"] + report.tokens["completion"]
    assert report.stopped is not None and report.stopped["budget"] == "max_tokens"
    assert report.stopped["limit"] == 300 and report.stopped["used"] >= 300
    assert used < 300 + max(per_task)  # one slot: stopped within one task
    assert report.to_dict()["stopped"] == report.stopped
    assert runtime.scheduler.stop_reason == f"budget: max_tokens 300 reached ({report.stopped['used']} used)"
    assert 0 < report.tasks["done"] < 12 and report.tasks["done"] + report.tasks["cancelled"] == 12
    assert set(result.results) == {tid for tid, t in report.timings.items() if t.state == "done"}
    assert all(isinstance(result.results[tid], str) and result.results[tid] for tid in result.results)


async def test_deadline_stops_a_run_of_sleeping_tasks_near_the_deadline() -> None:
    async def nap() -> str:
        await asyncio.sleep(0.2)
        return "rested"

    graph = TaskGraph([Task(f"nap{i}", action=nap) for i in range(10)])
    started = time.perf_counter()
    result = await arun(graph, [Agent("sleeper", slots=2)], budget=Budget(deadline_s=0.5))
    wall = time.perf_counter() - started

    report = result.report
    assert report.stopped is not None and report.stopped["budget"] == "deadline_s"
    assert 0.5 <= report.stopped["used"] < 0.6
    assert 0.5 <= report.makespan_s < 0.6 and wall < 1.0
    assert report.tasks["done"] == 4  # two rounds of 0.2 s on two slots; the third was cut off
    assert report.tasks["cancelled"] == 6
    assert result.results == {f"nap{i}": "rested" for i in range(4)}


async def test_deadline_stops_a_run_that_waits_idle_for_a_retry() -> None:
    async def broken() -> str:
        raise RuntimeError("always")

    graph = TaskGraph([Task("x", action=broken, retries=3)])
    started = time.perf_counter()
    result = await arun(
        graph, [Agent("a")], budget=Budget(deadline_s=0.3), backoff=Backoff(base_s=10.0, jitter=0.0)
    )
    assert time.perf_counter() - started < 1.0  # not the ten seconds of backoff
    assert result.report.stopped is not None and result.report.stopped["budget"] == "deadline_s"
    assert result.report.tasks["cancelled"] == 1
