"""Priority, assignment and retry policies, alone and under every combination.

The last section runs every priority policy (with and without aging) against every
assignment policy on random graphs and heterogeneous agents, and checks from the event
log the invariants every schedule must keep (see ``strategies.check_schedule``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paragents.core.agent_state import AgentSpec, AgentState
from paragents.core.analysis import upward_rank
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import (
    ASSIGN_POLICIES,
    PRIORITY_POLICIES,
    Backoff,
    CapabilityMatch,
    CriticalPath,
    EarliestFinish,
    Fifo,
    LeastLoaded,
    LeastSlack,
    PriorityPolicy,
    RandomAssign,
    RoundRobin,
    UserPriority,
    WeightedRoundRobin,
)
from paragents.sim.virtual import run_virtual
from strategies import Scenario, check_schedule, check_static_bound, diamond, scenarios

TASK = Task("t", duration=4.0)


def pool(*specs: AgentSpec) -> list[AgentState]:
    return [AgentState(a, i) for i, a in enumerate(specs)]


def busy(agent: AgentState, until: float, task: str = "x") -> AgentState:
    agent.running[task] = until
    agent.free -= 1
    return agent


# ============================================================================ registries


def test_policy_registries_map_public_names_to_policies() -> None:
    assert sorted(PRIORITY_POLICIES) == ["critical_path", "fifo", "least_slack", "plan", "user"]
    assert sorted(ASSIGN_POLICIES) == [
        "capability",
        "earliest_finish",
        "least_loaded",
        "plan",
        "random",
        "round_robin",
        "weighted_round_robin",
    ]
    for name, cls in {**PRIORITY_POLICIES, **ASSIGN_POLICIES}.items():
        assert cls.name == name


# ============================================================================ priority


def test_fifo_ranks_every_task_equal() -> None:
    assert Fifo().priorities(diamond(), {}) == {}


def test_critical_path_priority_is_the_upward_rank_at_capable_speeds() -> None:
    speeds = {"a": [1.0, 2.0], "b": [1.0], "c": [2.0], "d": [1.0, 2.0]}
    assert CriticalPath().priorities(diamond(), speeds) == upward_rank(diamond(), speeds)
    assert CriticalPath().priorities(diamond(), {}) == {"a": 6.0, "b": 4.0, "c": 2.0, "d": 1.0}


def test_least_slack_puts_critical_tasks_first_longest_remaining_first() -> None:
    prio = LeastSlack().priorities(diamond(), {})
    assert sorted(prio, key=prio.__getitem__, reverse=True) == ["a", "b", "d", "c"]


def test_user_priority_is_the_tasks_own_field() -> None:
    g = TaskGraph([Task("x", priority=3.0), Task("y", priority=-1.0)])
    assert UserPriority().priorities(g, {}) == {"x": 3.0, "y": -1.0}


# ============================================================================ assignment


def test_round_robin_cycles_through_free_agents() -> None:
    agents = pool(AgentSpec("A"), AgentSpec("B"), AgentSpec("C"))
    rr = RoundRobin()
    assert [rr.choose(TASK, agents, 0.0).name for _ in range(4)] == ["A", "B", "C", "A"]  # type: ignore[union-attr]
    busy(agents[1], 5.0)
    assert [rr.choose(TASK, agents, 0.0).name for _ in range(3)] == ["C", "A", "C"]  # type: ignore[union-attr]
    rr.reset(0)
    assert rr.choose(TASK, agents, 0.0).name == "A"  # type: ignore[union-attr]


def test_round_robin_returns_none_when_no_agent_is_free() -> None:
    agents = pool(AgentSpec("A"))
    busy(agents[0], 1.0)
    assert RoundRobin().choose(TASK, agents, 0.0) is None


def test_weighted_round_robin_shares_by_speed_times_slots() -> None:
    agents = pool(AgentSpec("A", speed=2.0), AgentSpec("B"))
    wrr = WeightedRoundRobin()
    assert [wrr.choose(TASK, agents, 0.0).name for _ in range(6)] == ["A", "B", "A"] * 2  # type: ignore[union-attr]


def test_random_assignment_is_seeded_and_only_picks_free_agents() -> None:
    agents = pool(AgentSpec("A"), AgentSpec("B"), AgentSpec("C"))
    busy(agents[1], 1.0)

    def picks(seed: int) -> list[str]:
        p = RandomAssign()
        p.reset(seed)
        return [p.choose(TASK, agents, 0.0).name for _ in range(30)]  # type: ignore[union-attr]

    assert picks(3) == picks(3)
    assert set(picks(3)) == {"A", "C"}


def test_least_loaded_prefers_low_load_then_speed_then_pool_order() -> None:
    a, b, c = pool(AgentSpec("A", slots=2), AgentSpec("B", slots=2), AgentSpec("C", slots=2, speed=2.0))
    busy(a, 1.0)
    assert LeastLoaded().choose(TASK, [a, b, c], 0.0) is c  # C and B idle: C faster
    busy(c, 1.0)
    assert LeastLoaded().choose(TASK, [a, b, c], 0.0) is b
    busy(b, 1.0)
    assert LeastLoaded().choose(TASK, [a, b, c], 0.0) is c  # all half loaded: fastest


def test_capability_match_keeps_the_generalist_for_work_only_it_can_do() -> None:
    task = Task("t", skills=frozenset({"code"}))
    generalist, broad, narrow = pool(
        AgentSpec("g", frozenset({"*"}), speed=5.0),
        AgentSpec("broad", frozenset({"code", "web", "math"})),
        AgentSpec("narrow", frozenset({"code"})),
    )
    assert CapabilityMatch().choose(task, [generalist, broad, narrow], 0.0) is narrow
    busy(narrow, 1.0)
    assert CapabilityMatch().choose(task, [generalist, broad, narrow], 0.0) is broad
    busy(broad, 1.0)
    assert CapabilityMatch().choose(task, [generalist, broad, narrow], 0.0) is generalist


def test_earliest_finish_picks_the_free_agent_that_finishes_first() -> None:
    slow, fast = pool(AgentSpec("slow"), AgentSpec("fast", speed=2.0))
    assert EarliestFinish().choose(TASK, [slow, fast], 0.0) is fast


def test_earliest_finish_waits_for_a_busy_agent_only_when_strictly_sooner() -> None:
    slow, fast = pool(AgentSpec("slow"), AgentSpec("fast", speed=4.0))
    busy(fast, 1.0)  # free at 1, then 4 / 4 = 1 s: done at 2 < 4 on the slow one
    assert EarliestFinish().choose(TASK, [slow, fast], 0.0) is fast
    fast.running["x"] = 3.0  # free at 3, done at 4: a tie, so take the free agent
    assert EarliestFinish().choose(TASK, [slow, fast], 0.0) is slow


def test_earliest_finish_counts_time_already_promised_to_an_agent() -> None:
    slow, fast = pool(AgentSpec("slow"), AgentSpec("fast", speed=4.0))
    busy(fast, 1.0)
    fast.hold_s = 3.0  # another task already chose to wait for it
    assert EarliestFinish().choose(TASK, [slow, fast], 0.0) is slow


def test_earliest_finish_never_waits_for_an_agent_without_slots() -> None:
    slow, fast = pool(AgentSpec("slow"), AgentSpec("fast", slots=0, speed=100.0))
    assert EarliestFinish().choose(TASK, [slow, fast], 0.0) is slow


# ============================================================================ retry


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    b = Backoff(base_s=0.5, factor=2.0, max_s=3.0, jitter=0.0)
    rng = random.Random(0)
    assert [b.delay(n, rng) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_jitter_stays_in_range_and_retry_after_is_a_floor() -> None:
    b = Backoff(base_s=1.0, jitter=0.25)
    rng = random.Random(1)
    delays = [b.delay(1, rng) for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays) and len(set(delays)) > 1
    assert b.delay(1, rng, retry_after=30.0) == 30.0
    assert Backoff(jitter=0.0).delay(1, rng, retry_after=0.1) == 0.5


# ============================================================================ every combination

PRIORITIES: dict[str, Callable[[], PriorityPolicy]] = {
    "fifo": Fifo,
    "critical_path": CriticalPath,
    "least_slack": LeastSlack,
    "user": UserPriority,
    "critical_path+aging": lambda: CriticalPath(aging=0.5),
    "user+aging": lambda: UserPriority(aging=2.0),
}


@pytest.mark.parametrize("assign", sorted(ASSIGN_POLICIES))
@pytest.mark.parametrize("prio", list(PRIORITIES))
@settings(max_examples=12)
@given(scenario=scenarios(), seed=st.integers(0, 2**16))
def test_every_policy_pair_keeps_the_schedule_invariants(prio: str, assign: str, scenario: Scenario, seed: int) -> None:
    def go():  # type: ignore[no-untyped-def]
        return run_virtual(
            scenario.graph,
            scenario.agents,
            priority=PRIORITIES[prio](),
            assign=ASSIGN_POLICIES[assign](),
            fails=scenario.fails if scenario.failing else None,
            seed=seed,
        )

    run = go()
    check_schedule(run, scenario.agents)
    if not scenario.failing:
        assert run.report.tasks["done"] == len(scenario.graph)
        check_static_bound(run, scenario.agents)
    assert go().events == run.events  # deterministic under a seed
