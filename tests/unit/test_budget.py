"""Run budgets in the core: tokens, cost, dispatched attempts and a deadline, on a virtual clock.

Two drivers run the real scheduler here, neither with an event loop: the discrete-event
simulator (``simulate(..., budget=)``) and :func:`drive`, a minimal virtual-clock driver
that reports each attempt's usage as the test says and ticks at the budget's deadline.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from paragents.core.agent_state import AgentSpec
from paragents.core.budget import Budget, BudgetError
from paragents.core.errors import ParagentsError, SchedulingError, WorkflowError
from paragents.core.events import Dispatch, Expansion, Retry, TaskState
from paragents.core.graph import Task, TaskGraph
from paragents.core.report import build_report, usage_dict
from paragents.core.scheduler import Scheduler
from paragents.sim.engine import simulate
from paragents.workflow import load_workflow

UsageFn = Callable[[str], Mapping[str, Any]]


def drive(
    graph: TaskGraph,
    agents: list[AgentSpec],
    budget: Budget | None,
    *,
    usage: UsageFn = lambda tid: usage_dict(prompt_tokens=100),
    duration: Callable[[str], float] = lambda tid: 1.0,
    fails: Callable[[str, int], bool] = lambda tid, attempt: False,
    expand: Callable[[str], Expansion | None] = lambda tid: None,
) -> Scheduler:
    """Run ``graph`` on a virtual clock: attempts end after ``duration``; ticks at retries and the deadline."""
    sched = Scheduler(graph, agents, budget=budget)
    heap: list[tuple[float, int, str, Any]] = []
    seq = itertools.count()

    def carry(decisions: list[Any], now: float) -> None:
        for d in decisions:
            if isinstance(d, Dispatch):
                heapq.heappush(heap, (now + duration(d.task), next(seq), "end", d))
            elif isinstance(d, Retry):
                heapq.heappush(heap, (d.not_before, next(seq), "tick", None))
            # A Cancel needs nothing: the attempt's late report is ignored by the scheduler.

    carry(sched.start(0.0), 0.0)
    if sched.deadline is not None:
        heapq.heappush(heap, (sched.deadline, next(seq), "tick", None))
    while heap:
        now, _, kind, d = heapq.heappop(heap)
        if kind == "tick":
            carry(sched.tick(now), now)
        elif fails(d.task, d.attempt):
            carry(sched.task_failed(d.task, now, error="boom", attempt=d.attempt), now)
        else:
            carry(
                sched.task_finished(d.task, now, usage=usage(d.task), expansion=expand(d.task), attempt=d.attempt),
                now,
            )
    assert sched.done
    return sched


def independent(n: int, **fields: Any) -> TaskGraph:
    return TaskGraph([Task(f"t{i}", **fields) for i in range(n)])


def kinds(sched: Scheduler, kind: str) -> list[Any]:
    return [e for e in sched.events if e.kind == kind]


def states(sched: Scheduler) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in sched.graph:
        out.setdefault(sched.state(t.id).value, []).append(t.id)
    return out


# ------------------------------------------------------------------ the Budget value
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be a positive integer, got 0"),
        ({"max_tokens": 1.5}, "max_tokens must be a positive integer, got 1.5"),
        ({"max_tasks": True}, "max_tasks must be a positive integer, got True"),
        ({"max_cost": -1.0}, "max_cost must be a positive finite number, got -1.0"),
        ({"max_cost": math.nan}, "max_cost must be a positive finite number, got nan"),
        ({"deadline_s": math.inf}, "deadline_s must be a positive finite number, got inf"),
        ({"deadline_s": "5"}, "deadline_s must be a positive finite number, got '5'"),
    ],
)
def test_invalid_budget_is_refused_naming_the_limit(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(BudgetError, match=message) as info:
        Budget(**fields)
    assert isinstance(info.value, ParagentsError)


def test_budget_lists_only_the_limits_set() -> None:
    assert Budget(max_tokens=10, deadline_s=2).limits == {"deadline_s": 2, "max_tokens": 10}


# ------------------------------------------------------------------ tokens
@pytest.mark.parametrize("slots", [1, 3])
def test_token_budget_stops_within_the_tasks_in_flight(slots: int) -> None:
    per_task = 100
    graph = TaskGraph([Task(f"t{i}", meta={"prompt_tokens": per_task}) for i in range(20)])
    run = simulate(graph, [AgentSpec("a", slots=slots)], budget=Budget(max_tokens=350))
    sched = run.scheduler

    [stop] = kinds(sched, "stopped")
    used = run.report.tokens["prompt"] + run.report.tokens["completion"]
    assert stop.data == {"budget": "max_tokens", "limit": 350, "used": stop.data["used"]}
    assert 350 <= stop.data["used"] < 350 + per_task  # seen at the first dispatch after it was reached
    assert used < 350 + slots * per_task  # overshoot: at most the attempts in flight
    if slots == 1:
        assert used == 400  # within one task
    assert sched.stop_reason == f"budget: max_tokens 350 reached ({stop.data['used']} used)"
    assert run.report.stopped == stop.data
    assert run.report.to_dict()["stopped"] == stop.data
    assert not [e for e in kinds(sched, "dispatched") if e.time > stop.time]
    cancelled = kinds(sched, "cancelled")
    assert cancelled and all(e.data["reason"] == sched.stop_reason for e in cancelled)
    assert run.report.tasks["done"] + run.report.tasks["cancelled"] == 20


def test_tasks_running_at_a_token_stop_finish_and_keep_their_result() -> None:
    graph = independent(6)
    # t0 and t1 start at 0; t0 ends at 1 and reaches the limit, t1 is still running until 5.
    sched = drive(
        graph,
        [AgentSpec("a", slots=2)],
        Budget(max_tokens=100),
        duration=lambda tid: 5.0 if tid == "t1" else 1.0,
    )
    [stop] = kinds(sched, "stopped")
    assert stop.time == 1.0
    assert sched.state("t0") is TaskState.DONE
    assert sched.state("t1") is TaskState.DONE  # was running at the stop: it finished at 5
    assert [e.time for e in kinds(sched, "finished") if e.task == "t1"] == [5.0]
    assert states(sched)["cancelled"] == ["t2", "t3", "t4", "t5"]
    report = build_report(sched.events, graph)
    assert report.timings["t1"].state == "done"
    assert report.tokens["prompt"] == 200


def test_downstream_of_a_budget_stop_is_cancelled() -> None:
    graph = TaskGraph([Task("a"), Task("b", depends_on=("a",)), Task("c", depends_on=("b",)), Task("d")])
    sched = drive(graph, [AgentSpec("x", slots=1)], Budget(max_tokens=100))
    assert states(sched) == {"done": ["a"], "cancelled": ["b", "c", "d"]}
    reasons = {e.task: e.data["reason"] for e in kinds(sched, "cancelled")}
    assert reasons == dict.fromkeys(["b", "c", "d"], "budget: max_tokens 100 reached (100 used)")


def test_a_budget_reached_with_nothing_left_to_start_stops_nothing() -> None:
    sched = drive(independent(2), [AgentSpec("x", slots=2)], Budget(max_tokens=1))
    assert sched.stop_reason is None
    assert not kinds(sched, "stopped")
    assert states(sched) == {"done": ["t0", "t1"]}
    assert build_report(sched.events, sched.graph).stopped is None


def test_a_failure_after_the_stop_is_not_retried() -> None:
    graph = TaskGraph([Task("ok"), Task("bad", retries=3), Task("later")])
    sched = drive(
        graph,
        [AgentSpec("x", slots=2)],
        Budget(max_tokens=50),
        duration=lambda tid: 2.0 if tid == "bad" else 1.0,
        fails=lambda tid, attempt: tid == "bad",
    )
    assert sched.state("bad") is TaskState.FAILED
    assert not kinds(sched, "retry")
    assert sched.state("later") is TaskState.CANCELLED


def test_tasks_an_expansion_adds_after_the_stop_are_cancelled() -> None:
    graph = TaskGraph([Task("plan", expandable=True), Task("cheap")])

    def expand(tid: str) -> Expansion | None:
        return Expansion((Task("sub1"), Task("sub2"))) if tid == "plan" else None

    sched = drive(
        graph,
        [AgentSpec("x", slots=2)],
        Budget(max_tokens=100),
        duration=lambda tid: 3.0 if tid == "plan" else 1.0,
        expand=expand,
    )
    assert sched.state("plan") is TaskState.DONE
    assert sched.state("sub1") is TaskState.CANCELLED and sched.state("sub2") is TaskState.CANCELLED
    assert len(kinds(sched, "stopped")) == 1


# ------------------------------------------------------------------ cost and tasks
def test_cost_budget_stops_within_one_task_and_names_cost() -> None:
    sched = drive(independent(10), [AgentSpec("x")], Budget(max_cost=0.25), usage=lambda tid: usage_dict(cost=0.1))
    [stop] = kinds(sched, "stopped")
    assert stop.data["budget"] == "max_cost" and stop.data["limit"] == 0.25
    assert stop.data["used"] == pytest.approx(0.3)
    report = build_report(sched.events, sched.graph)
    assert report.cost == pytest.approx(0.3)
    assert report.tasks["done"] == 3 and report.tasks["cancelled"] == 7
    assert sched.stop_reason == "budget: max_cost 0.25 reached (0.3 used)"


def test_max_tasks_counts_dispatched_attempts_exactly() -> None:
    run = simulate(independent(10), [AgentSpec("a", slots=3)], budget=Budget(max_tasks=5))
    sched = run.scheduler
    assert len(kinds(sched, "dispatched")) == 5
    assert run.report.tasks["done"] == 5 and run.report.tasks["cancelled"] == 5
    assert run.report.stopped == {"budget": "max_tasks", "limit": 5, "used": 5}


def test_retries_count_as_tasks() -> None:
    sched = drive(
        TaskGraph([Task("flaky", retries=5)]),
        [AgentSpec("x")],
        Budget(max_tasks=3),
        fails=lambda tid, attempt: True,
    )
    assert [e.attempt for e in kinds(sched, "dispatched")] == [1, 2, 3]
    assert sched.state("flaky") is TaskState.CANCELLED  # its fourth attempt was not allowed
    assert sched.stop_reason == "budget: max_tasks 3 reached (3 used)"


# ------------------------------------------------------------------ deadline
def test_deadline_on_the_virtual_clock_stops_at_the_deadline() -> None:
    sched = drive(independent(10), [AgentSpec("x", slots=2)], Budget(deadline_s=2.5))
    [stop] = kinds(sched, "stopped")
    assert stop.time == 2.5
    assert stop.data == {"budget": "deadline_s", "limit": 2.5, "used": 2.5}
    assert states(sched) == {"done": ["t0", "t1", "t2", "t3"], "cancelled": [f"t{i}" for i in range(4, 10)]}
    # t4 and t5 were running at the deadline: cancelled then, their slots freed at once.
    running = {e.task: e.agent for e in kinds(sched, "cancelled") if e.agent is not None}
    assert running == {"t4": "x", "t5": "x"}
    assert max(e.time for e in sched.events) == 2.5
    assert build_report(sched.events, sched.graph).makespan_s == 2.5


def test_deadline_stops_a_run_waiting_for_a_retry() -> None:
    sched = drive(
        TaskGraph([Task("a", retries=5)]),
        [AgentSpec("x")],
        Budget(deadline_s=1.5),
        fails=lambda tid, attempt: True,
    )
    [stop] = kinds(sched, "stopped")
    assert stop.time == 1.5
    assert sched.state("a") is TaskState.CANCELLED


def test_simulator_sees_the_deadline_at_its_first_happening_after_it() -> None:
    run = simulate(independent(10), [AgentSpec("a", slots=2)], budget=Budget(deadline_s=2.5))
    sched = run.scheduler
    [stop] = kinds(sched, "stopped")
    assert 2.5 <= stop.time <= 2.5 + 1.0  # within one task
    assert not [e for e in kinds(sched, "dispatched") if e.time >= 2.5]
    assert run.report.stopped is not None and run.report.stopped["budget"] == "deadline_s"
    assert run.report.tasks["done"] + run.report.tasks["cancelled"] == 10


# ------------------------------------------------------------------ no budget
def test_no_budget_and_an_unreached_budget_change_nothing() -> None:
    graph = TaskGraph(
        [Task("a", duration=2), Task("b", depends_on=("a",)), Task("c", duration=3), Task("d", depends_on=("b", "c"))]
    )
    plain = simulate(graph, [AgentSpec("x", slots=2)], seed=4)
    roomy = Budget(max_tokens=10**9, max_cost=1e9, max_tasks=10**6, deadline_s=1e6)
    budgeted = simulate(graph, [AgentSpec("x", slots=2)], seed=4, budget=roomy)
    assert budgeted.events == plain.events
    assert plain.scheduler.stop_reason is None
    assert plain.report.to_dict()["stopped"] is None
    json.dumps(budgeted.report.to_dict())


def test_stopped_is_the_schedulers_own_event_kind() -> None:
    sched = Scheduler(independent(1), [AgentSpec("x")])
    with pytest.raises(SchedulingError, match="'stopped' is the scheduler's own"):
        sched.annotate("stopped", 0.0)


# ------------------------------------------------------------------ workflow YAML
WORKFLOW = "tasks:\n  - id: a\n    prompt: hi\n"


def test_workflow_budget_section_becomes_a_run_option() -> None:
    wf = load_workflow(WORKFLOW + "budget:\n  max_tokens: 5000\n  max_cost: 0.5\n  max_tasks: 20\n  deadline_s: 60\n")
    assert wf.budget == Budget(max_tokens=5000, max_cost=0.5, max_tasks=20, deadline_s=60.0)
    assert wf.run_options()["budget"] is wf.budget


def test_workflow_without_budget_has_none() -> None:
    assert load_workflow(WORKFLOW).budget is None
    assert "budget" not in load_workflow(WORKFLOW).run_options()
    assert load_workflow(WORKFLOW + "budget:\n  max_tokens: null\n").budget is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("budget:\n  max_token: 5\n", "budget: unknown key 'max_token'; allowed: max_tokens, max_cost"),
        ("budget:\n  max_tokens: '5'\n", "budget: max_tokens must be an integer, got string '5'"),
        ("budget:\n  max_tasks: 0\n", "budget: max_tasks must be >= 1, got 0"),
        ("budget:\n  deadline_s: -1\n", "budget: deadline_s must be > 0, got -1"),
        ("budget:\n  deadline_s: .inf\n", "budget: budget deadline_s must be a positive finite number, got inf"),
        ("budget: [1, 2]\n", "top level: budget must be a mapping, got list"),
    ],
)
def test_workflow_budget_errors_name_the_place(section: str, message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        load_workflow(WORKFLOW + section)
    assert message in str(info.value)
