"""Static analysis (CPM, critical path, HEFT ranks, lower bounds) against networkx.

Durations sit on a quarter-second grid (see ``strategies.QUARTERS``), so sums are exact
and most properties are asserted with ``==``.
"""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paragents.core.agent_state import AgentSpec
from paragents.core.analysis import (
    cpm,
    critical_path,
    critical_path_length,
    downward_rank,
    lower_bound,
    total_work,
    upward_rank,
)
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import ASSIGN_POLICIES, PRIORITY_POLICIES
from paragents.sim.virtual import run_virtual
from strategies import POSITIVE_QUARTERS, diamond, nx_longest_path_length, slot_speeds, split_networkx, task_graphs

SPEED_LISTS = st.lists(st.sampled_from([0.5, 1.0, 2.0, 4.0]), min_size=1, max_size=4)


# ----------------------------------------------------------------------------- by hand


def test_cpm_of_a_diamond_by_hand() -> None:
    r = cpm(diamond())
    assert r.length == 6.0
    assert r.earliest_start == {"a": 0.0, "b": 2.0, "c": 2.0, "d": 5.0}
    assert r.latest_start == {"a": 0.0, "b": 2.0, "c": 4.0, "d": 5.0}
    assert r.slack == {"a": 0.0, "b": 0.0, "c": 2.0, "d": 0.0}
    assert r.critical() == ["a", "b", "d"]


def test_critical_path_of_a_diamond_takes_the_long_branch() -> None:
    assert critical_path(diamond()) == ["a", "b", "d"]
    assert critical_path_length(diamond()) == 6.0


def test_measured_durations_override_estimates() -> None:
    g = diamond()
    assert critical_path(g, {"c": 10.0}) == ["a", "c", "d"]
    assert critical_path_length(g, {"c": 10.0}) == 13.0
    assert total_work(g, {"a": 0.0}) == 5.0


def test_empty_graph_has_zero_length_and_no_path() -> None:
    g = TaskGraph()
    assert critical_path(g) == []
    assert critical_path_length(g) == 0.0
    assert cpm(g).length == 0.0


def test_upward_rank_is_remaining_mean_time_with_communication_cost() -> None:
    g = diamond()
    assert upward_rank(g) == {"a": 6.0, "b": 4.0, "c": 2.0, "d": 1.0}
    # Speeds 1 and 4: mean inverse speed (1 + 0.25) / 2 = 0.625.
    assert upward_rank(g, [1.0, 4.0]) == {"a": 3.75, "b": 2.5, "c": 1.25, "d": 0.625}
    with_comm = upward_rank(g, edge_cost=lambda u, v: 0.5)
    assert with_comm == {"a": 7.0, "b": 4.5, "c": 2.5, "d": 1.0}


def test_upward_rank_with_per_task_speeds_uses_the_capable_agents_only() -> None:
    g = TaskGraph([Task("x", duration=4.0), Task("y", duration=4.0, depends_on=("x",))])
    rank = upward_rank(g, {"x": [2.0], "y": [1.0, 4.0]})
    assert rank == {"y": 2.5, "x": 4.5}


def test_downward_rank_is_longest_time_before_a_task_starts() -> None:
    assert downward_rank(diamond()) == {"a": 0.0, "b": 2.0, "c": 2.0, "d": 5.0}


def test_lower_bound_takes_the_larger_of_path_and_work_per_capacity() -> None:
    g = diamond()  # critical path 6, total work 7
    assert lower_bound(g, 1) == 7.0
    assert lower_bound(g, 2) == 6.0
    assert lower_bound(g, [2.0, 2.0]) == 3.0  # path at speed 2
    assert lower_bound(g, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) == 6.0
    wide = TaskGraph([Task(f"w{i}", duration=2.0) for i in range(8)])
    assert lower_bound(wide, [1.0, 3.0]) == 4.0  # 16 work / capacity 4


# ----------------------------------------------------------------------------- properties


@settings(max_examples=150)
@given(task_graphs())
def test_critical_path_length_equals_networkx_longest_path(g: TaskGraph) -> None:
    assert critical_path_length(g) == nx_longest_path_length(g)
    assert cpm(g).length == nx_longest_path_length(g)


@settings(max_examples=150)
@given(task_graphs(), st.data())
def test_critical_path_length_with_given_durations_equals_networkx(g: TaskGraph, data: st.DataObject) -> None:
    measured = {t: data.draw(st.floats(0, 100, allow_nan=False)) for t in g.ids}
    expected = nx_longest_path_length(g, measured)
    assert critical_path_length(g, measured) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=150)
@given(task_graphs())
def test_critical_path_is_a_source_to_sink_path_of_critical_length(g: TaskGraph) -> None:
    path = critical_path(g)
    if not len(g):
        assert path == []
        return
    assert path[0] in g.sources()
    assert path[-1] in g.sinks()
    for u, v in zip(path, path[1:], strict=False):
        assert u in g.predecessors(v), f"{u} -> {v} is not an edge"
    assert sum(g[t].duration for t in path) == nx_longest_path_length(g)


@settings(max_examples=150)
@given(task_graphs())
def test_cpm_slack_is_non_negative_and_zero_on_the_critical_path(g: TaskGraph) -> None:
    r = cpm(g)
    for t in g.ids:
        d = g[t].duration
        assert r.slack[t] >= 0.0
        assert r.earliest_start[t] <= r.latest_start[t]
        assert r.earliest_finish[t] == r.earliest_start[t] + d
        assert r.latest_finish[t] == r.latest_start[t] + d
        assert r.latest_finish[t] <= r.length
        assert r.slack[t] == r.latest_start[t] - r.earliest_start[t]
    for u, v in g.edges:
        assert r.earliest_start[v] >= r.earliest_finish[u]
        assert r.latest_finish[u] <= r.latest_start[v]
    for t in critical_path(g):
        assert r.slack[t] == 0.0
    assert set(critical_path(g)) <= set(r.critical())
    # Slack is how much shorter than the project the longest path through the task is
    # (networkx: longest path ending at the task's end + longest path from its start).
    split = split_networkx(g)
    for t in g.ids:
        end, start = (t, "out"), (t, "in")
        to_end = nx.dag_longest_path_length(split.subgraph({end} | nx.ancestors(split, end)), weight="weight")
        from_start = nx.dag_longest_path_length(split.subgraph({start} | nx.descendants(split, start)), weight="weight")
        through = to_end + from_start - g[t].duration
        assert r.slack[t] == r.length - through
        assert (t in r.critical()) == (through == r.length)


@settings(max_examples=150)
@given(task_graphs())
def test_topological_order_is_a_networkx_valid_order_with_every_edge_forward(g: TaskGraph) -> None:
    order = g.topological_order()
    assert nx.is_directed_acyclic_graph(g.to_networkx())
    assert sorted(order) == sorted(g.ids)
    pos = {t: i for i, t in enumerate(order)}
    assert all(pos[u] < pos[v] for u, v in g.edges)
    # Kahn's order keeps insertion order among tasks free at the same time.
    free = [t for t in g.ids if not g.predecessors(t)]
    assert [t for t in order if t in free] == free


@settings(max_examples=150)
@given(task_graphs(durations=POSITIVE_QUARTERS), SPEED_LISTS)
def test_upward_rank_covers_own_time_and_exceeds_every_successor(g: TaskGraph, speeds: list[float]) -> None:
    rank = upward_rank(g, speeds)
    mean_speed = sum(speeds) / len(speeds)
    mean_inverse = sum(1.0 / s for s in speeds) / len(speeds)
    for t in g.ids:
        d = g[t].duration
        assert rank[t] >= d / mean_speed
        assert rank[t] >= d * mean_inverse
        for s in g.successors(t):
            assert rank[t] > rank[s]
            assert rank[t] >= rank[s] + d * mean_inverse


@settings(max_examples=100)
@given(task_graphs())
def test_upward_rank_at_unit_speed_is_the_longest_path_from_each_task(g: TaskGraph) -> None:
    rank = upward_rank(g)
    split = split_networkx(g)
    for t in g.ids:
        start = (t, "in")
        below = split.subgraph({start} | nx.descendants(split, start))
        assert rank[t] == nx.dag_longest_path_length(below, weight="weight")


@settings(max_examples=100)
@given(task_graphs())
def test_upward_plus_downward_rank_is_the_critical_length_along_the_critical_path(g: TaskGraph) -> None:
    up, down = upward_rank(g), downward_rank(g)
    length = critical_path_length(g)
    for t in critical_path(g):
        assert up[t] + down[t] == length
    for t in g.ids:
        assert up[t] + down[t] <= length


@settings(max_examples=60)
@given(
    task_graphs(min_tasks=1, max_tasks=12),
    st.lists(st.tuples(st.integers(1, 3), st.sampled_from([0.5, 1.0, 2.0])), min_size=1, max_size=3),
    st.sampled_from(sorted(PRIORITY_POLICIES)),
    st.sampled_from(sorted(ASSIGN_POLICIES)),
    st.integers(0, 3),
)
def test_lower_bound_never_exceeds_a_real_schedules_makespan(
    g: TaskGraph, pool: list[tuple[int, float]], prio: str, assign: str, seed: int
) -> None:
    agents = [AgentSpec(f"a{i}", slots=n, speed=s) for i, (n, s) in enumerate(pool)]
    run = run_virtual(g, agents, priority=PRIORITY_POLICIES[prio](), assign=ASSIGN_POLICIES[assign](), seed=seed)
    assert run.makespan >= lower_bound(g, slot_speeds(agents)) - 1e-9
    assert run.makespan >= critical_path_length(g) / max(s for _, s in pool) - 1e-9
