"""Serial and superstep execution as graphs: the barriers they add, checked on the clock."""

from __future__ import annotations

import random

import pytest

from paragents.core.agent_state import AgentSpec
from paragents.core.graph import Task, TaskGraph
from paragents.sim.baselines import dataflow, levels, serial, superstep
from paragents.sim.engine import simulate

# two branches of unequal step lengths: a1 (1s) -> a2 (5s);  b1 (4s) -> b2 (1s); join
UNEVEN = [
    Task("a1", duration=1.0),
    Task("a2", duration=5.0, depends_on=("a1",)),
    Task("b1", duration=4.0),
    Task("b2", duration=1.0, depends_on=("b1",)),
    Task("join", duration=1.0, depends_on=("a2", "b2")),
]


def run(tasks: list[Task]) -> float:
    return simulate(TaskGraph(tasks), [AgentSpec("w", slots=4)]).makespan


def test_levels_are_the_longest_chain_of_inputs() -> None:
    assert levels(UNEVEN) == {"a1": 0, "b1": 0, "a2": 1, "b2": 1, "join": 2}


def test_dataflow_superstep_and_serial_makespans_on_uneven_branches() -> None:
    assert run(dataflow(UNEVEN)) == pytest.approx(1 + 5 + 1)  # a2 starts at 1
    assert run(superstep(UNEVEN)) == pytest.approx(4 + 5 + 1)  # a2 waits for b1 (4 s)
    assert run(serial(UNEVEN)) == pytest.approx(12.0)  # the sum of all durations


def test_baselines_keep_every_original_dependency_and_stay_acyclic() -> None:
    rng = random.Random(2)
    tasks = []
    for i in range(40):
        deps = tuple(f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3))))
        tasks.append(Task(f"t{i}", duration=rng.uniform(0.5, 2), depends_on=deps))
    for mode in (serial, superstep):
        out = {t.id: t for t in mode(tasks)}
        TaskGraph(out.values())  # acyclic, or this raises
        assert all(set(t.depends_on) <= set(out[t.id].depends_on) for t in tasks)
    order = [t.id for t in serial(tasks)]
    assert all(order[i - 1] in dict((t.id, t) for t in serial(tasks))[order[i]].depends_on for i in range(1, 40))
