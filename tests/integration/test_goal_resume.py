"""A goal run cut off mid-way resumes from the store: the plan is not asked for again, the
planned tasks that finished keep their results, and the answer equals an uninterrupted run's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_goal import SlowStreamingPlanner, scripted_team

from paragents.backends.base import Completion, Request
from paragents.backends.simulated import SimulatedBackend
from paragents.durable import RunSpec, aresume
from paragents.goal import ANSWER_TASK, PLAN_TASK, arun_goal
from paragents.store import check_run, open_store
from paragents.store.recorder import Recorder

GOAL = "Compare two laptops"


class HangsOnCompare(SimulatedBackend):
    """The workers' model, except that the "compare" task never gets an answer."""

    async def complete(self, request: Request) -> Completion:
        if "compare the options" in request.prompt:
            await asyncio.Event().wait()
        return await super().complete(request)


def workers() -> SimulatedBackend:
    return SimulatedBackend(ttft_s=0.01, tokens_per_s=2000)


async def test_an_interrupted_goal_run_resumes_to_the_uninterrupted_answer(tmp_path: Path) -> None:
    whole = await arun_goal(GOAL, scripted_team(SlowStreamingPlanner(), workers()))
    store = open_store(tmp_path / "runs.db")
    store.create_run("g1", "goal", RunSpec("goal", GOAL).to_json())
    team = scripted_team(SlowStreamingPlanner(), HangsOnCompare(ttft_s=0.01, tokens_per_s=2000))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(arun_goal(GOAL, team, run_id="g1", recorder=Recorder(store, "g1")), timeout=3.0)
    before = store.load_run("g1")
    assert set(before.results) == {PLAN_TASK, "facts", "prices"}  # compare hung; the answer waits for it

    counting = scripted_team(SlowStreamingPlanner(), workers())
    result = await aresume(store, "g1", agents=counting)
    after = store.load_run("g1")
    resumed_at = max(i for i, e in enumerate(after.events) if e.kind == "started")
    ran_again = {e.task for e in after.events[resumed_at:] if e.kind == "dispatched"}
    assert ran_again == {"compare", ANSWER_TASK}  # the plan and the finished searches are not redone
    assert result.report.tasks["done"] == 5
    assert result.results == whole.result.results
    assert after.status == "done" and check_run(after) == []
    store.close()
