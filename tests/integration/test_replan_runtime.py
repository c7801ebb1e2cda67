"""The adaptive manager's replan, carried out by the asyncio runtime's replanner."""

from __future__ import annotations

from paragents.adaptive import AdaptiveConfig
from paragents.adaptive.manager import ReplanConfig
from paragents.agents import Agent
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import Backoff
from paragents.runtime.driver import Runtime, TaskContext


async def broken() -> str:
    raise RuntimeError("this step always fails")


async def fixed(ctx: TaskContext) -> str:
    return "done another way"


async def joined(ctx: TaskContext) -> str:
    return "joined " + ", ".join(sorted(ctx.inputs))


async def test_a_task_that_keeps_failing_is_replaced_and_the_run_completes() -> None:
    graph = TaskGraph(
        [
            Task("step", action=broken, retries=10),
            Task("after", action=joined, depends_on=("step",)),
        ]
    )
    asked: list[str] = []

    async def replanner(task_id: str, runtime: Runtime) -> list[Task]:
        asked.append(task_id)
        return [Task("step_v2", action=fixed)]

    config = AdaptiveConfig(period_s=0.01, replan=ReplanConfig(enabled=True, after_failures=2))
    runtime = Runtime(
        graph,
        [Agent("a", slots=2)],
        adaptive=config,
        replanner=replanner,
        backoff=Backoff(base_s=0.05, factor=1.0, max_s=0.05, jitter=0.0),
    )
    result = await runtime.run()
    assert asked == ["step"]
    assert result.report.tasks["done"] == 3 and result.report.tasks["failed"] == 0  # step, step_v2, after
    assert result.results["step_v2"] == "done another way"
    assert "step_v2" in result.results["after"]  # it waited for the replacement
    tried = sum(1 for e in result.events if e.kind == "dispatched" and e.task == "step")
    assert 2 <= tried < 10  # replaced after repeated failure, long before its retries ran out
    assert any(e.kind == "replaced" and e.task == "step" for e in result.events)
