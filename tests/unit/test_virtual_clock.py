"""The real scheduler on a virtual clock: exact times, no sleeps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paragents.core.agent_state import AgentSpec
from paragents.core.errors import SchedulingError
from paragents.core.events import Event, Expansion
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import ASSIGN_POLICIES, Backoff, CriticalPath, Fifo, LeastSlack, PriorityPolicy
from paragents.sim.engine import SimResult
from paragents.sim.virtual import run_virtual
from strategies import POSITIVE_QUARTERS, Scenario, check_schedule, check_static_bound, scenarios


def first(run: SimResult, kind: str, task: str) -> Event:
    return next(e for e in run.events if e.kind == kind and e.task == task)


def workers(n: int, **kw: object) -> list[AgentSpec]:
    return [AgentSpec(f"w{i}", **kw) for i in range(n)]  # type: ignore[arg-type]


# ============================================================================ dataflow


@pytest.mark.parametrize("agents", [2, 3])
def test_fast_branch_does_not_wait_for_slow_sibling(agents: int) -> None:
    g = TaskGraph(
        [
            Task("root", duration=1.0),
            Task("fast", duration=1.0, depends_on=("root",)),
            Task("after_fast", duration=1.0, depends_on=("fast",)),
            Task("slow", duration=5.0, depends_on=("root",)),
            Task("join", duration=1.0, depends_on=("after_fast", "slow")),
        ]
    )
    run = run_virtual(g, workers(agents))
    assert first(run, "dispatched", "fast").time == 1.0
    assert first(run, "dispatched", "after_fast").time == 2.0  # in a superstep engine: 6.0
    assert first(run, "finished", "slow").time == 6.0
    assert first(run, "dispatched", "join").time == 6.0
    assert run.makespan == 7.0


def _short_tasks_then_a_long_chain() -> TaskGraph:
    shorts = [Task(f"s{i}", duration=1.0) for i in range(4)]
    chain = [
        Task("c1", duration=2.0),
        Task("c2", duration=2.0, depends_on=("c1",)),
        Task("c3", duration=2.0, depends_on=("c2",)),
    ]
    return TaskGraph([*shorts, *chain])  # the chain is queued last


@pytest.mark.parametrize("assign", sorted(set(ASSIGN_POLICIES) - {"plan"}))  # plan sets its own order
def test_critical_path_priority_beats_fifo_when_the_long_chain_is_queued_last(assign: str) -> None:
    # Two agents.  FIFO runs the four short tasks first and starts the 6 s chain at 2 s;
    # critical-path priority starts the chain at once and fits the short tasks beside it.
    def run(priority: PriorityPolicy) -> SimResult:
        graph = _short_tasks_then_a_long_chain()
        return run_virtual(graph, workers(2), priority=priority, assign=ASSIGN_POLICIES[assign]())

    fifo, cp, slack = run(Fifo()), run(CriticalPath()), run(LeastSlack())
    assert fifo.makespan == 8.0
    assert first(fifo, "dispatched", "c1").time == 2.0
    assert cp.makespan == 6.0 == slack.makespan
    assert first(cp, "dispatched", "c1").time == 0.0
    assert cp.makespan == cp.report.lower_bound_s  # optimal


def test_task_runs_for_duration_over_speed() -> None:
    run = run_virtual(TaskGraph([Task("a", duration=4.0)]), [AgentSpec("fast", speed=2.0)])
    assert first(run, "finished", "a").time == 2.0 and run.makespan == 2.0


def test_duration_function_overrides_the_estimate() -> None:
    g = TaskGraph([Task("a", duration=1.0), Task("b", duration=1.0, depends_on=("a",))])
    run = run_virtual(g, workers(1), duration=lambda task, agent, attempt: 3.0 if task.id == "a" else 0.5)
    assert run.makespan == 3.5


def test_run_with_no_capacity_reports_a_stall() -> None:
    with pytest.raises(SchedulingError, match="run stalled"):
        run_virtual(TaskGraph([Task("a")]), [AgentSpec("idle", slots=0)])


# ============================================================================ failures


def test_failed_attempts_are_retried_after_backoff_on_the_virtual_clock() -> None:
    g = TaskGraph([Task("a", retries=2), Task("b", depends_on=("a",))])
    run = run_virtual(
        g,
        workers(1),
        backoff=Backoff(base_s=1.0, factor=2.0, jitter=0.0),
        fails=lambda task, agent, attempt: task.id == "a" and attempt < 3,
    )
    a = [(e.time, e.kind, e.attempt) for e in run.events if e.task == "a"]
    assert a == [
        (0.0, "dispatched", 1),
        (1.0, "retry", 1),
        (2.0, "dispatched", 2),
        (3.0, "retry", 2),
        (5.0, "dispatched", 3),
        (6.0, "finished", 3),
    ]
    assert run.makespan == 7.0
    assert run.report.tasks["retried"] == 1


def test_exhausted_retries_end_the_run_with_the_failure_and_its_downstream_cancelled() -> None:
    g = TaskGraph([Task("a", retries=1), Task("b", depends_on=("a",)), Task("c", duration=3.0)])
    run = run_virtual(g, workers(2), backoff=Backoff(base_s=1.0, jitter=0.0), fails=lambda t, a, n: t.id == "a")
    assert {t: run.scheduler.state(t).value for t in "abc"} == {"a": "failed", "b": "cancelled", "c": "done"}
    assert run.report.tasks == {"total": 3, "done": 1, "failed": 1, "cancelled": 1, "retried": 1}
    assert run.makespan == 3.0


def test_failing_agent_is_avoided_after_repeated_failures() -> None:
    g = TaskGraph([Task("t", duration=2.0, retries=3)])
    run = run_virtual(
        g,
        [AgentSpec("flaky", speed=2.0), AgentSpec("steady")],
        backoff=Backoff(base_s=1.0, factor=1.0, jitter=0.0),
        fails=lambda task, agent, attempt: agent.name == "flaky",
    )
    dispatched = [(e.time, e.agent) for e in run.events if e.kind == "dispatched"]
    assert dispatched == [(0.0, "flaky"), (2.0, "flaky"), (4.0, "steady")]
    assert run.scheduler.state("t").value == "done" and run.makespan == 6.0


# ============================================================================ expansion


def test_expansion_runs_subtasks_in_parallel_and_the_successor_after_the_join() -> None:
    g = TaskGraph([Task("a", duration=1.0, expandable=True), Task("b", duration=1.0, depends_on=("a",))])

    def expand(task: Task, agent: object, attempt: int) -> Expansion | None:
        if task.id != "a":
            return None
        subs = tuple(Task(f"s{i}", duration=float(i)) for i in (1, 2, 3))
        return Expansion((*subs, Task("join", duration=1.0, depends_on=("s1", "s2", "s3"))))

    run = run_virtual(g, workers(3), expand=expand)
    starts = {e.task: e.time for e in run.events if e.kind == "dispatched"}
    assert starts == {"a": 0.0, "s1": 1.0, "s2": 1.0, "s3": 1.0, "join": 4.0, "b": 5.0}
    assert run.makespan == 6.0
    assert run.report.tasks["total"] == 6 and run.report.tasks["done"] == 6
    assert run.report.critical_path_s == 6.0  # a, s3, join, b


@settings(max_examples=40)
@given(scenario=scenarios(with_failures=False), picks=st.sets(st.integers(0, 13), max_size=4), data=st.data())
def test_random_expansions_keep_the_schedule_invariants(
    scenario: Scenario, picks: set[int], data: st.DataObject
) -> None:
    graph = scenario.graph
    before = {t: list(graph.successors(t)) for t in graph.ids}
    parents = {f"t{i}" for i in picks if f"t{i}" in graph}
    shapes = {
        p: (data.draw(st.integers(1, 3)), data.draw(st.booleans()), data.draw(POSITIVE_QUARTERS))
        for p in sorted(parents)
    }

    def expand(task: Task, agent: object, attempt: int) -> Expansion | None:
        if task.id not in shapes:
            return None
        k, join, d = shapes[task.id]
        subs = [Task(f"{task.id}/s{j}", duration=d) for j in range(k)]
        if join:
            subs.append(Task(f"{task.id}/join", duration=d, depends_on=tuple(s.id for s in subs)))
        return Expansion(tuple(subs))

    run = run_virtual(graph, scenario.agents, expand=expand, seed=1)
    check_schedule(run, scenario.agents)
    check_static_bound(run, scenario.agents)
    final = run.scheduler.graph
    assert len(final) == len(before) + sum(k + join for k, join, _ in shapes.values())
    assert run.report.tasks["done"] == len(final)
    for p, (k, join, _) in shapes.items():
        sinks = [f"{p}/join"] if join else [f"{p}/s{j}" for j in range(k)]
        for s in before[p]:
            assert set(sinks) <= set(final.predecessors(s))


# ============================================================================ determinism


def test_runs_are_deterministic_under_a_seed_and_seeds_matter() -> None:
    g = TaskGraph([Task(f"t{i}", duration=1.0 + i % 3) for i in range(12)])
    agents = [AgentSpec("a", speed=1.0), AgentSpec("b", speed=2.0, slots=2), AgentSpec("c", slots=2)]

    def events(seed: int) -> list[Event]:
        return run_virtual(g, agents, assign=ASSIGN_POLICIES["random"](), seed=seed).events

    assert events(5) == events(5)
    assert len({tuple((e.task, e.agent) for e in events(s)) for s in range(6)}) > 1
