"""The asyncio driver on real coroutines, threads and simulated LLM endpoints."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from paragents.agents import Agent
from paragents.backends.base import Completion, Request
from paragents.backends.simulated import SimulatedBackend
from paragents.core.errors import RateLimited
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import Backoff
from paragents.runtime.driver import Runtime, TaskContext, arun
from paragents.runtime.limits import Limits


def sleeper(seconds: float) -> Callable[[], object]:
    async def work() -> float:
        await asyncio.sleep(seconds)
        return seconds

    return work


def sleeps_until_cancelled(cleaned: list[str]) -> Callable[[TaskContext], Awaitable[None]]:
    """A long task that records its id when it is torn down."""

    async def long(ctx: TaskContext) -> None:
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            cleaned.append(ctx.task.id)

    return long


def first_index(events: list, kind: str, task: str) -> int:
    return next(i for i, e in enumerate(events) if e.kind == kind and e.task == task)


async def test_fast_branch_successor_starts_before_slow_sibling_finishes() -> None:
    graph = TaskGraph(
        [
            Task("fast", action=sleeper(0.01)),
            Task("fast_next", depends_on=("fast",), action=sleeper(0.01)),
            Task("slow", action=sleeper(0.2)),
            Task("join", depends_on=("fast_next", "slow"), action=sleeper(0.0)),
        ]
    )
    result = await arun(graph, [Agent("a", slots=4)])
    ev = result.events
    assert first_index(ev, "dispatched", "fast_next") < first_index(ev, "finished", "slow")
    assert first_index(ev, "finished", "fast_next") < first_index(ev, "finished", "slow")
    assert result.report.tasks["done"] == 4


class CountingBackend(SimulatedBackend):
    """The simulated backend, also counting calls in flight at its endpoint."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: Request) -> Completion:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().complete(request)
        finally:
            self.in_flight -= 1


async def test_endpoint_concurrency_limit_is_shared_by_all_agents() -> None:
    backend = CountingBackend(endpoint="sim://shared", ttft_s=0.01, tokens_per_s=2000, jitter=0.5)
    agents = [Agent(f"agent{i}", backend=backend, slots=4) for i in range(6)]
    graph = TaskGraph([Task(f"t{i}", prompt=f"question {i}", tokens=20) for i in range(40)])
    result = await arun(graph, agents, limits={"sim://shared": Limits(max_concurrency=3)})
    assert result.report.tasks["done"] == 40
    assert backend.peak == 3  # 24 slots wanted to run; the endpoint allowed 3
    assert result.report.latency["processing_s"] > 0  # the wait shows up as processing time


class ScriptedBackend:
    """A real backend object whose first call answers 429 with Retry-After."""

    name = "scripted"
    model = "scripted"

    def __init__(self, endpoint: str, retry_after: float) -> None:
        self.endpoint = endpoint
        self.retry_after = retry_after
        self.starts: list[tuple[float, str]] = []
        self.rejected_at: float | None = None

    async def complete(self, request: Request) -> Completion:
        now = time.monotonic()
        self.starts.append((now, request.prompt))
        if self.rejected_at is None:
            self.rejected_at = now
            raise RateLimited("429 Too Many Requests", retry_after=self.retry_after, endpoint=self.endpoint)
        await asyncio.sleep(0.01)
        return Completion("ok", 1, 1, 0.01, 0.01, 0.01, 0.0)

    async def aclose(self) -> None:
        pass


async def test_retry_after_delays_the_endpoints_next_request_for_every_agent() -> None:
    backend = ScriptedBackend("http://127.0.0.1:9/v1", retry_after=0.3)
    agents = [Agent("a", backend=backend), Agent("b", backend=backend)]
    graph = TaskGraph(
        [
            Task("first", prompt="first", retries=2),
            Task("second", prompt="second"),
        ]
    )
    # Both are dispatched at once, to different agents; with one request in flight at a
    # time, "second" waits behind "first", whose 429 must hold it back for Retry-After.
    result = await arun(
        graph, agents, limits={backend.endpoint: Limits(max_concurrency=1)}, priority="fifo", assign="round_robin"
    )
    assert result.report.tasks["done"] == 2
    assert backend.rejected_at is not None
    later = [t for t, _ in backend.starts if t > backend.rejected_at]
    assert later, "no request after the 429"
    assert min(later) - backend.rejected_at >= 0.3 - 0.005
    assert result.report.tasks["retried"] == 1


async def test_expansion_adds_three_subtasks_and_a_join_at_run_time() -> None:
    def plan(ctx: TaskContext) -> str:
        ctx.expand(
            [Task(f"part{i}", action=sleeper(0.01)) for i in range(3)]
            + [Task("merge", depends_on=("part0", "part1", "part2"), action=lambda c: sorted(c.inputs))]
        )
        return "planned"

    def final(ctx: TaskContext) -> object:
        return ctx.inputs

    graph = TaskGraph([Task("plan", action=plan, expandable=True), Task("final", depends_on=("plan",), action=final)])
    result = await arun(graph, [Agent("a", slots=3)])
    assert result.report.tasks == {"total": 6, "done": 6, "failed": 0, "cancelled": 0, "retried": 0}
    assert result.results["merge"] == ["part0", "part1", "part2"]
    assert set(result.graph.predecessors("final")) == {"plan", "merge"}
    ev = result.events
    assert first_index(ev, "finished", "merge") < first_index(ev, "dispatched", "final")
    # The parts ran in parallel: all three dispatched before any finished.
    dispatched = [first_index(ev, "dispatched", f"part{i}") for i in range(3)]
    assert max(dispatched) < min(first_index(ev, "finished", f"part{i}") for i in range(3))


async def test_timeout_is_retried_then_reported() -> None:
    graph = TaskGraph([Task("stuck", action=sleeper(5.0), timeout=0.05, retries=1), Task("after", depends_on=("stuck",))])
    started = time.monotonic()
    result = await arun(graph, [Agent("a")])
    assert time.monotonic() - started < 2.0
    assert result.report.tasks["failed"] == 1 and result.report.tasks["cancelled"] == 1
    assert result.report.tasks["retried"] == 1
    assert "timed out after 0.05 s" in result.errors["stuck"]


async def test_failover_moves_a_task_off_an_agent_that_keeps_failing() -> None:
    def flaky(ctx: TaskContext) -> str:
        if ctx.agent.name == "broken":
            raise ConnectionError("agent broken is down")
        return ctx.agent.name

    graph = TaskGraph([Task("job", action=flaky, retries=3, meta={"inline": True})])
    agents = [Agent("broken", speed=10.0), Agent("healthy", speed=1.0)]
    result = await arun(graph, agents, failover_after=2, backoff=Backoff(base_s=0.01), assign="earliest_finish")
    assert result.results["job"] == "healthy"
    attempts = [e.agent for e in result.events if e.kind == "dispatched"]
    assert attempts == ["broken", "broken", "healthy"]


async def test_plain_functions_run_in_threads_and_overlap() -> None:
    threads: set[int] = set()

    def blocking() -> None:
        threads.add(threading.get_ident())
        time.sleep(0.2)

    graph = TaskGraph([Task("x", action=blocking), Task("y", action=blocking)])
    started = time.monotonic()
    result = await arun(graph, [Agent("a", slots=2)])
    assert time.monotonic() - started < 0.35
    assert threading.get_ident() not in threads and len(threads) == 2
    assert result.report.tasks["done"] == 2


async def test_failure_cancels_downstream_and_keeps_finished_work() -> None:
    def boom() -> None:
        raise ValueError("bad input")

    graph = TaskGraph(
        [
            Task("ok", action=lambda: 42, meta={"inline": True}),
            Task("bad", action=boom, meta={"inline": True}),
            Task("needs_bad", depends_on=("bad",)),
            Task("needs_ok", depends_on=("ok",), action=lambda c: c.inputs["ok"] + 1, meta={"inline": True}),
        ]
    )
    result = await arun(graph, [Agent("a", slots=2)])
    assert result.results == {"ok": 42, "needs_ok": 43}
    assert result.errors == {"bad": "ValueError: bad input"}
    assert result.report.tasks["cancelled"] == 1


async def test_cancelling_the_run_leaves_no_task_behind() -> None:
    cleaned: list[str] = []
    long = sleeps_until_cancelled(cleaned)

    graph = TaskGraph([Task(f"long{i}", action=long) for i in range(4)] + [Task("end", depends_on=("long0",))])
    runtime = Runtime(graph, [Agent("a", slots=4)])
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(0.05)
    runtime.cancel()
    result = await asyncio.wait_for(running, 2.0)
    assert sorted(cleaned) == ["long0", "long1", "long2", "long3"]
    assert result.report.tasks["cancelled"] == 5
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_the_caller_cancels_every_attempt() -> None:
    cleaned: list[str] = []
    long = sleeps_until_cancelled(cleaned)

    graph = TaskGraph([Task(f"long{i}", action=long) for i in range(3)])
    outer = asyncio.create_task(arun(graph, [Agent("a", slots=3)]))
    await asyncio.sleep(0.05)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert sorted(cleaned) == ["long0", "long1", "long2"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_one_task_cancels_its_dependents_only() -> None:
    graph = TaskGraph(
        [
            Task("slow", action=sleeper(5)),
            Task("after_slow", depends_on=("slow",)),
            Task("quick", action=sleeper(0.05)),
        ]
    )
    runtime = Runtime(graph, [Agent("a", slots=2)])
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(0.01)
    runtime.cancel("slow")
    result = await asyncio.wait_for(running, 2.0)
    assert result.results == {"quick": 0.05}
    assert result.report.tasks["cancelled"] == 2


async def test_llm_tasks_report_tokens_and_latency_split() -> None:
    backend = SimulatedBackend(ttft_s=0.01, tokens_per_s=1000, transfer_s=0.005, jitter=0.0)
    agents = [Agent("writer", backend=backend, slots=2, cost_per_1k_tokens=0.5)]
    graph = TaskGraph(
        [
            Task("a", prompt="Summarise the market", tokens=30),
            Task("b", prompt="List the risks", tokens=30),
            Task("c", prompt="Write the memo", tokens=10, depends_on=("a", "b")),
        ]
    )
    result = await arun(graph, agents)
    rep = result.report
    assert rep.tokens["completion"] == 70
    assert rep.tokens["prompt"] > 0
    assert rep.cost == pytest.approx((rep.tokens["prompt"] + rep.tokens["completion"]) / 1000 * 0.5)
    assert rep.latency["transfer_s"] == pytest.approx(3 * 0.005, rel=0.01)
    assert rep.latency["compute_s"] > 0
    assert isinstance(result.answer, str) and result.answer
    for t in rep.timings.values():
        assert t.compute_s + t.transfer_s + t.processing_s == pytest.approx(t.end - t.ready_at, abs=1e-6)
