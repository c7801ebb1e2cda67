"""Workloads: the bundled Pegasus traces, WfCommons recipes, and layered random DAGs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from paragents.core.errors import GraphError
from paragents.core.graph import TaskGraph
from paragents.sim.workloads import (
    LogNormal,
    RecipeSizeError,
    Uniform,
    layered_dag,
    load_trace,
    parse_wfcommons,
    pegasus_traces,
    recipe_graph,
    recipe_min_tasks,
)

TRACE_SIZES = {
    "1000genome": 52,
    "cycles": 67,
    "epigenomics": 41,
    "montage": 58,
    "seismology": 101,
    "soykb": 96,
    "srasearch": 22,
}


def depth_of(graph: TaskGraph) -> int:
    """Tasks on the longest chain, counted by a pass over a topological order."""
    level: dict[str, int] = {}
    for t in graph.topological_order():
        level[t] = 1 + max((level[p] for p in graph.predecessors(t)), default=0)
    return max(level.values(), default=0)


# ============================================================================ traces


def test_the_seven_pegasus_traces_are_listed_by_short_name() -> None:
    assert pegasus_traces() == sorted(TRACE_SIZES)


@pytest.mark.parametrize("name", sorted(TRACE_SIZES))
def test_every_pegasus_trace_loads_as_a_dag_with_measured_durations(name: str) -> None:
    graph = load_trace(name)
    assert len(graph) == TRACE_SIZES[name]
    assert len(graph.topological_order()) == len(graph)  # every task reachable by Kahn: acyclic
    assert graph.edges
    for task in graph:
        assert task.duration > 0
        assert task.meta["category"]
        assert set(task.meta["edge_bytes"]) == set(task.depends_on)
        assert all(b >= 0 for b in task.meta["edge_bytes"].values())
        assert task.meta["input_bytes"] >= 0


def test_a_trace_loads_by_path_and_by_name_alike() -> None:
    import paragents.sim

    path = Path(paragents.sim.__file__).parent / "data" / "pegasus" / "montage-chameleon-2mass-005d-001.json"
    by_path, by_name = load_trace(path), load_trace("montage")
    assert by_path.edges == by_name.edges
    assert [t.duration for t in by_path] == [t.duration for t in by_name]


def test_an_unknown_trace_name_lists_the_bundled_ones() -> None:
    with pytest.raises(FileNotFoundError, match="srasearch"):
        load_trace("no-such-trace")


def test_edge_bytes_are_the_parents_outputs_that_the_child_reads() -> None:
    doc = {
        "schemaVersion": "1.4",
        "workflow": {
            "tasks": [
                {"name": "a", "id": "1", "parents": [], "runtimeInSeconds": 2.0, "category": "split",
                 "files": [{"link": "input", "name": "raw", "sizeInBytes": 50},
                           {"link": "output", "name": "x", "sizeInBytes": 10},
                           {"link": "output", "name": "y", "sizeInBytes": 20}]},
                {"name": "b", "id": "2", "parents": ["1"], "runtimeInSeconds": 3.0, "category": "map",
                 "files": [{"link": "input", "name": "y", "sizeInBytes": 20},
                           {"link": "input", "name": "ref", "sizeInBytes": 7}]},
            ]
        },
    }
    graph = parse_wfcommons(doc)
    assert graph.edges == [("a", "b")]  # a parent named by id is resolved to its name
    assert graph["b"].meta == {"category": "map", "edge_bytes": {"a": 20}, "input_bytes": 7}
    assert graph["a"].meta["input_bytes"] == 50
    assert graph["b"].duration == 3.0


def test_a_document_without_tasks_is_refused_with_its_source() -> None:
    with pytest.raises(GraphError, match="mine.json"):
        parse_wfcommons(json.loads('{"workflow": {}}'), source="mine.json")


# ============================================================================ recipes


def test_a_recipe_graph_is_reproducible_under_a_seed_and_has_edges() -> None:
    first = recipe_graph("epigenomics", 60, seed=3)
    again = recipe_graph("epigenomics", 60, seed=3)
    other = recipe_graph("epigenomics", 60, seed=4)
    assert 0 < len(first) <= 60
    assert first.edges and first.edges == again.edges
    assert [t.duration for t in first] == [t.duration for t in again]
    assert [t.duration for t in first] != [t.duration for t in other]
    assert all(t.duration >= 0 for t in first)
    assert sum(b for t in first for b in t.meta["edge_bytes"].values()) > 0


def test_the_rnaseq_recipe_makes_independent_tasks() -> None:
    graph = recipe_graph("rnaseq", recipe_min_tasks("rnaseq"), seed=0)
    assert len(graph) > 0 and graph.edges == []


def test_too_small_a_seismology_request_names_the_recipe_and_its_minimum() -> None:
    least = recipe_min_tasks("seismology")
    assert least > 100
    with pytest.raises(RecipeSizeError, match=rf"'seismology'.*>= {least}.*got 50"):
        recipe_graph("seismology", 50)
    assert len(recipe_graph("seismology", least, seed=0)) > 0


def test_an_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="montage"):
        recipe_graph("nope", 100)


# ============================================================================ layered


def test_layered_dag_respects_width_depth_and_fan_in() -> None:
    graph = layered_dag(7, 5, fan_in=3, span=2, seed=1)
    layers = Counter(t.meta["layer"] for t in graph)
    assert layers == dict.fromkeys(range(5), 7)
    assert depth_of(graph) == 5
    assert set(graph.sources()) == {t.id for t in graph if t.meta["layer"] == 0}
    for task in graph:
        level = task.meta["layer"]
        assert len(task.depends_on) <= 3
        assert len(set(task.depends_on)) == len(task.depends_on)
        if level:
            parent_levels = [graph[p].meta["layer"] for p in task.depends_on]
            assert level - 1 in parent_levels  # one parent from the layer just above
            assert all(level - 2 <= pl < level for pl in parent_levels)  # span 2
    assert max(len(t.depends_on) for t in graph) == 3


def test_layered_dag_takes_one_width_per_layer() -> None:
    graph = layered_dag([1, 4, 2], fan_in=1, seed=0)
    assert Counter(t.meta["layer"] for t in graph) == {0: 1, 1: 4, 2: 2}
    assert all(len(t.depends_on) == (1 if t.meta["layer"] else 0) for t in graph)


def test_layered_dag_is_reproducible_under_a_seed() -> None:
    def build(seed: int) -> TaskGraph:
        return layered_dag(6, 4, fan_in=2, duration=LogNormal(5.0, 1.0), skills=("code", "web"), seed=seed)

    a, b, c = build(9), build(9), build(10)
    assert a.edges == b.edges
    assert [(t.duration, t.skills) for t in a] == [(t.duration, t.skills) for t in b]
    assert a.edges != c.edges or [t.duration for t in a] != [t.duration for t in c]
    assert all(len(t.skills) == 1 and t.skills <= {"code", "web"} for t in a)


def test_layered_dag_durations_follow_the_chosen_distribution() -> None:
    uniform = layered_dag(50, 4, duration=Uniform(2.0, 3.0), seed=0)
    assert all(2.0 <= t.duration <= 3.0 for t in uniform)
    constant = layered_dag(5, 3, duration=LogNormal(4.0, 0.0), seed=0)
    assert all(t.duration == pytest.approx(4.0) for t in constant)
    spread = [t.duration for t in layered_dag(100, 20, duration=LogNormal(10.0, 1.0), seed=0)]
    mean = sum(spread) / len(spread)
    assert 8.5 < mean < 11.5


def test_layered_dag_refuses_impossible_knobs() -> None:
    with pytest.raises(ValueError, match="depth"):
        layered_dag(3)
    with pytest.raises(ValueError, match="fan_in"):
        layered_dag(3, 2, fan_in=0)
    with pytest.raises(ValueError, match="at least one task"):
        layered_dag([2, 0, 1])
