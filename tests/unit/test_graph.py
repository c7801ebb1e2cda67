"""TaskGraph: validated growth of a DAG.  Pure, no I/O."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paragents.core.errors import CycleError, GraphError
from paragents.core.graph import Task, TaskGraph
from strategies import task_graphs


def chain(*ids: str, duration: float = 1.0) -> list[Task]:
    return [Task(t, duration=duration, depends_on=(ids[i - 1],) if i else ()) for i, t in enumerate(ids)]


def snapshot(g: TaskGraph) -> tuple:
    return (
        g.ids,
        sorted(g.edges),
        g.version,
        list(g.topological_order()),
        {t: list(g.predecessors(t)) for t in g.ids},
        {t: list(g.successors(t)) for t in g.ids},
    )


def assert_is_cycle_of(cycle: tuple[str, ...], edges: set[tuple[str, str]]) -> None:
    """``cycle`` lists distinct ids, each with an edge to the next and the last to the first."""
    assert cycle, "a cycle must name at least one id"
    assert len(set(cycle)) == len(cycle)
    for i, u in enumerate(cycle):
        assert (u, cycle[(i + 1) % len(cycle)]) in edges, f"{u} -> {cycle[(i + 1) % len(cycle)]} is not an edge"


# ----------------------------------------------------------------------------- tasks


def test_task_normalises_skills_and_dependencies_to_immutable_types() -> None:
    t = Task("a", skills=["code", "web"], depends_on=["x", "y"])  # type: ignore[arg-type]
    assert t.skills == frozenset({"code", "web"})
    assert t.depends_on == ("x", "y")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"id": ""}, "non-empty"),
        ({"id": "a", "duration": -1.0}, "duration must be >= 0"),
        ({"id": "a", "retries": -1}, "retries must be >= 0"),
        ({"id": "a", "timeout": 0.0}, "timeout must be > 0"),
    ],
)
def test_invalid_task_fields_are_refused_with_the_field_named(kwargs: dict, needle: str) -> None:
    with pytest.raises(GraphError, match=needle):
        Task(**kwargs)


def test_evolve_returns_a_changed_copy_and_leaves_the_original() -> None:
    t = Task("a", duration=1.0)
    u = t.evolve(duration=3.0)
    assert (t.duration, u.duration, u.id) == (1.0, 3.0, "a")


# ----------------------------------------------------------------------------- refusals


def test_duplicate_id_within_a_batch_is_refused_naming_it() -> None:
    with pytest.raises(GraphError, match="duplicate task id 'a'"):
        TaskGraph([Task("a"), Task("b"), Task("a")])


def test_duplicate_of_an_existing_id_is_refused_and_graph_unchanged() -> None:
    g = TaskGraph(chain("a", "b"))
    before = snapshot(g)
    with pytest.raises(GraphError, match="duplicate task id 'b'"):
        g.add([Task("c"), Task("b")])
    assert snapshot(g) == before
    assert "c" not in g


def test_unknown_dependency_is_refused_naming_both_tasks() -> None:
    g = TaskGraph([Task("a")])
    before = snapshot(g)
    with pytest.raises(GraphError, match="task 'b' depends on unknown task 'ghost'"):
        g.add([Task("b", depends_on=("a", "ghost"))])
    assert snapshot(g) == before


def test_extra_edge_naming_an_unknown_task_is_refused() -> None:
    g = TaskGraph([Task("a")])
    with pytest.raises(GraphError, match="edge 'a' -> 'nope' names unknown task 'nope'"):
        g.add(edges=[("a", "nope")])
    assert g.edges == []


def test_self_loop_through_depends_on_is_a_cycle_of_one() -> None:
    with pytest.raises(CycleError) as info:
        TaskGraph([Task("a"), Task("loop", depends_on=("a", "loop"))])
    assert info.value.cycle == ("loop",)
    assert "loop -> loop" in str(info.value)


def test_self_loop_through_an_extra_edge_is_refused() -> None:
    g = TaskGraph([Task("a")])
    with pytest.raises(CycleError) as info:
        g.add(edges=[("a", "a")])
    assert info.value.cycle == ("a",)
    assert g.edges == []


def test_cycle_within_one_batch_is_refused_naming_the_ids_on_it_in_order() -> None:
    tasks = [
        Task("start"),
        Task("a", depends_on=("c", "start")),
        Task("b", depends_on=("a",)),
        Task("c", depends_on=("b",)),
        Task("off", depends_on=("start",)),
    ]
    with pytest.raises(CycleError) as info:
        TaskGraph(tasks)
    err = info.value
    assert set(err.cycle) == {"a", "b", "c"}
    assert_is_cycle_of(err.cycle, {(d, t.id) for t in tasks for d in t.depends_on})
    assert str(err) == "cycle in task graph: " + " -> ".join([*err.cycle, err.cycle[0]])


def test_extra_edge_closing_a_cycle_through_existing_tasks_is_refused_and_graph_unchanged() -> None:
    g = TaskGraph([*chain("a", "b", "c"), Task("side", depends_on=("a",))])
    before = snapshot(g)
    with pytest.raises(CycleError) as info:
        g.add([Task("new")], edges=[("new", "side"), ("c", "a")])
    assert set(info.value.cycle) == {"a", "b", "c"}
    assert_is_cycle_of(info.value.cycle, {*g.edges, ("c", "a")})
    assert snapshot(g) == before
    assert "new" not in g


def test_cycle_closed_through_a_new_task_is_refused() -> None:
    g = TaskGraph(chain("a", "b"))
    before = snapshot(g)
    with pytest.raises(CycleError) as info:
        g.add([Task("x", depends_on=("b",))], edges=[("x", "a")])
    assert set(info.value.cycle) == {"a", "b", "x"}
    assert_is_cycle_of(info.value.cycle, {("a", "b"), ("b", "x"), ("x", "a")})
    assert snapshot(g) == before


def test_a_refused_batch_applies_none_of_its_valid_tasks() -> None:
    g = TaskGraph([Task("a")])
    before = snapshot(g)
    with pytest.raises(GraphError):
        g.add([Task("ok1", depends_on=("a",)), Task("ok2"), Task("bad", depends_on=("missing",))])
    assert snapshot(g) == before
    assert len(g) == 1


def test_unknown_task_lookup_names_the_id() -> None:
    with pytest.raises(GraphError, match="unknown task 'zz'"):
        TaskGraph()["zz"]


# ----------------------------------------------------------------------------- growth


def test_forward_references_within_a_batch_are_accepted() -> None:
    g = TaskGraph([Task("c", depends_on=("b",)), Task("b", depends_on=("a",)), Task("a")])
    assert g.ids == ["c", "b", "a"]  # insertion order is kept
    assert g.topological_order() == ["a", "b", "c"]
    assert list(g.predecessors("c")) == ["b"]
    assert g.sources() == ["a"] and g.sinks() == ["c"]


def test_graph_grows_by_batches_that_reference_earlier_and_later_tasks() -> None:
    g = TaskGraph([Task("a")])
    v0 = g.version
    added = g.add([Task("c", depends_on=("b", "a")), Task("b", depends_on=("a",))])
    assert added == ["c", "b"]
    g.add([Task("d", depends_on=("c",)), Task("e")])
    assert g.version == v0 + 2
    assert len(g) == 5
    assert sorted(g.edges) == [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    order = g.topological_order()
    assert all(order.index(u) < order.index(v) for u, v in g.edges)
    assert set(g.sinks()) == {"d", "e"}


def test_extra_edges_into_existing_tasks_add_inputs_without_duplicates() -> None:
    g = TaskGraph([Task("a"), Task("b"), Task("c", depends_on=("a",))])
    g.add(edges=[("b", "c"), ("a", "c"), ("b", "c")])
    assert list(g.predecessors("c")) == ["a", "b"]
    assert list(g.successors("b")) == ["c"]
    assert g.topological_order().index("b") < g.topological_order().index("c")


def test_extra_edges_from_new_tasks_into_existing_tasks() -> None:
    g = TaskGraph(chain("a", "b"))
    g.add([Task("x", depends_on=("a",))], edges=[("x", "b")])
    assert set(g.predecessors("b")) == {"a", "x"}
    assert g.topological_order() == ["a", "x", "b"]


def test_duplicate_dependency_is_one_edge() -> None:
    g = TaskGraph([Task("a"), Task("b", depends_on=("a", "a"))])
    assert g.edges == [("a", "b")]


def test_topological_order_is_stable_in_insertion_order() -> None:
    g = TaskGraph([Task("z"), Task("m"), Task("a"), Task("k", depends_on=("z",))])
    assert g.topological_order() == ["z", "m", "a", "k"]


def test_replace_task_updates_estimates_but_not_dependencies() -> None:
    g = TaskGraph(chain("a", "b"))
    v = g.version
    g.replace_task(g["b"].evolve(duration=9.0))
    assert g["b"].duration == 9.0 and g.version == v + 1
    with pytest.raises(GraphError, match="cannot change dependencies"):
        g.replace_task(g["b"].evolve(depends_on=()))


def test_to_networkx_carries_tasks_and_durations() -> None:
    g = TaskGraph([Task("a", duration=2.0), Task("b", duration=0.5, depends_on=("a",))])
    nxg = g.to_networkx()
    assert set(nxg.nodes) == {"a", "b"}
    assert set(nxg.edges) == {("a", "b")}
    assert nxg.nodes["a"]["duration"] == 2.0
    assert nxg.nodes["b"]["task"] is g["b"]


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60)
@given(task_graphs())
def test_to_networkx_matches_the_graph(g: TaskGraph) -> None:
    nxg = g.to_networkx()
    assert set(nxg.nodes) == set(g.ids)
    assert set(nxg.edges) == set(g.edges)
    assert len(g.edges) == len(set(g.edges))
    assert nx.is_directed_acyclic_graph(nxg)
    for t in g.ids:
        assert set(nxg.predecessors(t)) == set(g.predecessors(t))
        assert set(nxg.successors(t)) == set(g.successors(t))
        assert nxg.nodes[t]["duration"] == g[t].duration
    assert set(g.sources()) == {n for n in nxg if nxg.in_degree(n) == 0}
    assert set(g.sinks()) == {n for n in nxg if nxg.out_degree(n) == 0}


@settings(max_examples=60)
@given(task_graphs(min_tasks=2, max_tasks=10), st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=12))
def test_adding_edges_is_refused_exactly_when_networkx_finds_a_cycle(
    g: TaskGraph, picks: list[tuple[int, int]]
) -> None:
    ids = sorted(g.ids)
    for i, j in picks:
        u, v = ids[i % len(ids)], ids[j % len(ids)]
        reference = g.to_networkx()
        reference.add_edge(u, v)
        before = snapshot(g)
        if nx.is_directed_acyclic_graph(reference):
            g.add(edges=[(u, v)])
            assert v in g.successors(u)
        else:
            with pytest.raises(CycleError) as info:
                g.add(edges=[(u, v)])
            assert_is_cycle_of(info.value.cycle, set(reference.edges))
            assert snapshot(g) == before
