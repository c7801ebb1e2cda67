"""The main job end to end: plan a goal, run the plan in parallel, merge an answer."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from paragents.agents import Agent
from paragents.backends.base import Backend, Completion, Request, estimate_tokens
from paragents.backends.local import LocalBackend
from paragents.backends.simulated import SimulatedBackend
from paragents.cli import DEFAULT_TEAM
from paragents.core.errors import BackendError
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import Backoff
from paragents.goal import ANSWER_TASK, PLAN_TASK, arun_goal
from paragents.planner import Planner
from paragents.runtime.driver import arun
from paragents.workflow import load_agents

SCRIPT = Path(sys.executable).with_name("paragents")
PLAN = json.dumps(
    {
        "tasks": [
            {"id": "facts", "description": "collect facts", "skill": "research", "depends_on": [], "expandable": False},
            {"id": "prices", "description": "find prices", "skill": "research", "depends_on": [], "expandable": False},
            {
                "id": "compare",
                "description": "compare the options",
                "skill": "analysis",
                "depends_on": ["facts", "prices"],
                "expandable": False,
            },
        ]
    }
)


class SlowStreamingPlanner:
    """A planner model that writes its plan piece by piece, slowly, on the event loop."""

    name = "scripted-planner"
    endpoint = "scripted://planner"
    model = "scripted"

    async def complete(self, request: Request) -> Completion:
        import asyncio

        if request.on_text is not None:
            for i in range(0, len(PLAN), 20):
                request.on_text(PLAN[i : i + 20])
                await asyncio.sleep(0.01)
        return Completion(PLAN, estimate_tokens(request.prompt), estimate_tokens(PLAN), 0.0, 0.3, 0.3, 0.0)

    async def aclose(self) -> None:
        """Nothing to release."""


def scripted_team(planner: Backend, workers: Backend) -> list[Agent]:
    """A planner on a scripted model, and three workers sharing one simulated model."""
    return [
        Agent("planner", skills={"plan"}, backend=planner, max_tokens=512),
        Agent("researcher", skills={"research"}, backend=workers, slots=2),
        Agent("analyst", skills={"analysis"}, backend=workers),
        Agent("writer", skills={"writing"}, backend=workers),
    ]


def first(events: list, kind: str, task: str) -> int:
    return next(i for i, e in enumerate(events) if e.kind == kind and e.task == task)


async def test_planned_tasks_start_before_the_plan_is_finished() -> None:
    team = scripted_team(SlowStreamingPlanner(), SimulatedBackend(ttft_s=0.01, tokens_per_s=2000))
    run = await arun_goal("Compare two laptops", team)
    ev = run.result.events
    assert run.plan is not None and run.plan.ids == ["facts", "prices", "compare"]
    assert first(ev, "dispatched", "facts") < first(ev, "finished", PLAN_TASK)
    assert first(ev, "finished", "compare") < first(ev, "dispatched", ANSWER_TASK)
    assert set(run.result.graph.predecessors(ANSWER_TASK)) == {PLAN_TASK, "facts", "prices", "compare"}
    assert run.result.report.tasks["done"] == 5
    assert isinstance(run.result.results[ANSWER_TASK], str)


async def test_goal_runs_on_the_bundled_model_and_merges_an_answer() -> None:
    team = load_agents(DEFAULT_TEAM.read_text(encoding="utf-8"))
    try:
        run = await arun_goal("Plan a weekend in Porto on a budget", team.agents, limits=team.limits, max_tasks=4)
    finally:
        for backend in {id(a.backend): a.backend for a in team.agents}.values():
            await backend.aclose()  # type: ignore[union-attr]
    report = run.result.report
    assert run.plan is not None and 1 <= len(run.plan.tasks) <= 4
    assert report.tasks["done"] == report.tasks["total"] == len(run.plan.tasks) + 2
    assert run.result.results[ANSWER_TASK].strip()
    assert report.tokens["prompt"] > 0 and report.tokens["completion"] > 0
    assert report.latency["compute_s"] > 0


async def test_bundled_model_plan_validates_into_a_dag() -> None:
    backend = LocalBackend()
    try:
        planner = Planner(backend, skills={"research": "researcher", "writing": "writer"}, max_tasks=5, max_tokens=384)
        plan = await planner.plan("Write a short market brief on electric bikes")
    finally:
        await backend.aclose()
    graph = plan.to_graph()
    assert 1 <= len(graph) <= 5
    assert graph.topological_order()  # a DAG: the order covers every task
    assert all(t.skills <= {"research", "writing"} for t in graph)


async def test_two_model_copies_run_two_independent_tasks_at_once() -> None:
    backend = LocalBackend(instances=2)
    agents = [Agent("a", backend=backend, slots=2, max_tokens=24)]
    graph = TaskGraph([Task("one", prompt="Name a fruit."), Task("two", prompt="Name a colour.")])
    try:
        result = await arun(graph, agents)
    finally:
        await backend.aclose()
    t = result.report.timings
    assert result.report.tasks["done"] == 2
    # Both were dispatched at once, and each started before the other ended.
    assert t["one"].start is not None and t["two"].start is not None
    assert t["one"].start < t["two"].end and t["two"].start < t["one"].end  # type: ignore[operator]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint_ends_in_one_message_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = subprocess.run(
        [str(SCRIPT), "run", "Plan a trip", "--backend", "openai", "--base-url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: planning failed:") and url in last and "connect" in last
    doc = json.loads(proc.stdout)
    assert doc["tasks"]["failed"] == 1 and doc["tasks"]["cancelled"] == 1


REPLACEMENT = json.dumps(
    {
        "tasks": [
            {
                "id": "estimate_prices",
                "description": "estimate prices from memory",
                "skill": "research",
                "depends_on": ["facts"],
                "expandable": False,
            }
        ]
    }
)


class PlannerThatReplans(SlowStreamingPlanner):
    """Writes PLAN at once (no streaming: every task is known before any runs); asked
    again (a replan), writes REPLACEMENT."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: Request) -> Completion:
        self.calls += 1
        text = PLAN if self.calls == 1 else REPLACEMENT
        return Completion(text, estimate_tokens(request.prompt), estimate_tokens(text), 0.0, 0.1, 0.1, 0.0)


class FailsOnPrices(SimulatedBackend):
    """A simulated model whose calls about prices always fail (the endpoint is flaky for them)."""

    async def complete(self, request: Request) -> Completion:
        if "Your task: find prices" in request.prompt:
            raise BackendError("502 Bad Gateway", endpoint=self.endpoint)
        return await super().complete(request)


async def test_a_task_that_keeps_failing_is_replanned_and_the_goal_still_answered() -> None:
    team = scripted_team(PlannerThatReplans(), FailsOnPrices(ttft_s=0.01, tokens_per_s=2000))
    run = await arun_goal("Compare two laptops", team, backoff=Backoff(base_s=0.01))
    result = run.result
    retries = [e for e in result.events if e.kind == "retry" and e.task == "prices"]
    assert len(retries) == 2  # two retries, then the planner was asked
    assert "replaced it with: estimate_prices" in result.results["prices"]
    assert "estimate_prices" in result.results
    assert set(result.graph.predecessors("compare")) >= {"prices", "estimate_prices"}
    assert result.report.tasks["done"] == result.report.tasks["total"] == 6
    assert ANSWER_TASK in result.results
