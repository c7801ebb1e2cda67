"""The supernet on the runtime: compiled graphs, the merge rule, parallel layers, accounting.

The schedule tests run on :class:`SimulatedBackend` (each call sleeps about 0.3 s and
reports exactly ``max_tokens`` completion tokens, so spans are known in advance): its
text is no real answer, which does not matter when the point is the schedule.  The
end-to-end tests run two-layer architectures on the real bundled SmolLM2 through
:class:`SupernetExecutor`, with short replies, one GSM problem and one HumanEval task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from paragents.agents import Agent
from paragents.backends.local import LocalBackend
from paragents.backends.simulated import SimulatedBackend
from paragents.orchestration.architecture import critical_path, sequential_path
from paragents.orchestration.datasets import load_gsm, load_humaneval
from paragents.orchestration.operators import default_operators
from paragents.orchestration.state import Candidate, LayerState, OperatorResult, Query
from paragents.orchestration.supernet import (
    ArchitectureRun,
    SupernetExecutor,
    compile_architecture,
    merge,
    run_architecture,
)

MATH = Query(id="m1", text="A box holds 6 eggs. How many eggs are in 7 boxes?", kind="math", reference="42")
CODE = Query(id="c1", text="def add(a, b):\n", kind="code", entry_point="add")
OPERATORS = default_operators(max_tokens=48, samples=2)
#: Two operators side by side, then one that calls the model twice in sequence.
TWO_LAYERS = (("cot", "generate"), ("self_refine",))


def result(name: str, *candidates: Candidate) -> OperatorResult:
    return OperatorResult(name=name, candidates=candidates)


def simulated(*, failure_rate: float = 0.0, rate_limit_rate: float = 0.0) -> Agent:
    """An agent on a simulated model: every call takes 0.05 + 48 / 160 = 0.35 s."""
    backend = SimulatedBackend(
        ttft_s=0.05, tokens_per_s=160.0, jitter=0.0, failure_rate=failure_rate, rate_limit_rate=rate_limit_rate
    )
    return Agent("orchestrator", backend=backend)


# ----------------------------------------------------------------- compiled graph
def test_compiled_graph_runs_each_layer_after_the_previous_merge_with_no_edges_inside_a_layer() -> None:
    arch = (("cot", "programmer"), ("sc_ensemble", "self_refine", "test"), ("generate",))
    graph = compile_architecture(MATH, arch, OPERATORS, agent="solver")
    layers = [[f"L{number}.{name}" for name in layer] for number, layer in enumerate(arch, start=1)]
    assert graph.ids == [tid for number, ids in enumerate(layers, start=1) for tid in (*ids, f"L{number}.merge")]
    for number, ids in enumerate(layers, start=1):
        previous = (f"L{number - 1}.merge",) if number > 1 else ()
        for tid in ids:
            assert tuple(graph.predecessors(tid)) == previous  # layer 1's have none
            assert graph[tid].meta == {"layer": number, "operator": tid.split(".")[1]}
        assert set(graph.predecessors(f"L{number}.merge")) == {*ids, *previous}
    inside = {(u, v) for ids in layers for u in ids for v in ids}
    assert not inside & set(graph.edges)
    assert graph.sinks() == ["L3.merge"]
    assert {task.agent for task in graph} == {"solver"} and all(callable(task.action) for task in graph)


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ((), "at least one layer"),
        ((("cot",), ()), "layer 2 of cot -> .* has no operators"),
        ((("cot", "early_stop"),), "'early_stop' stops the network"),
        ((("cot",), ("guess",)), "layer 2: unknown operator 'guess'"),
        ((("cot", "cot"),), "names an operator twice"),
    ],
)
def test_compile_refuses_architectures_that_cannot_run(arch: tuple[tuple[str, ...], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_architecture(MATH, arch, OPERATORS)


# ----------------------------------------------------------------- merge rule
def test_merge_keeps_every_candidate_in_layer_order() -> None:
    a, b, c = Candidate("1", "", "cot"), Candidate("2", "", "multi_cot"), Candidate("3", "", "multi_cot")
    state = merge(MATH, [result("cot", a), result("multi_cot", b, c)])
    assert state.query == MATH and state.candidates == (a, b, c)


def test_merge_prefers_the_best_tested_candidate_over_a_majority() -> None:
    majority = [Candidate("42", "", "cot"), Candidate("42.0", "", "multi_cot"), Candidate("42", "", "multi_cot")]
    failed = Candidate("42", "", "test", passed=0, total=1)
    passed = Candidate("7", "", "test", passed=2, total=2)
    state = merge(MATH, [result("cot", majority[0]), result("multi_cot", *majority[1:]), result("test", failed, passed)])
    assert state.answer is passed


def test_merge_takes_the_most_frequent_answer_numbers_compared_as_numbers() -> None:
    first, other, same = Candidate("42", "", "cot"), Candidate("7", "", "generate"), Candidate("42.0", "", "test")
    assert merge(MATH, [result("generate", other), result("cot", first), result("test", same)]).answer is first


def test_merge_breaks_ties_by_layer_order_and_empty_answers_never_win() -> None:
    seven, forty_two = Candidate("7", "", "cot"), Candidate("42", "", "generate")
    assert merge(MATH, [result("cot", seven), result("generate", forty_two)]).answer is seven
    empty = [Candidate("", "no number", "cot"), Candidate("", "none here", "multi_cot")]
    assert merge(MATH, [result("cot", empty[0]), result("multi_cot", empty[1]), result("generate", seven)]).answer is seven
    assert merge(MATH, [result("cot", *empty)]).answer is empty[0]  # nothing to vote on: the first


def test_merge_compares_code_by_syntax_tree() -> None:
    lone = Candidate("def add(a, b):\n    return a - b\n", "", "cot")
    spaced = Candidate("def add(a, b):\n    return a + b\n", "", "generate")
    tight = Candidate("def add(a,b):\n    # sum\n    return (a+b)\n", "", "programmer")
    assert merge(CODE, [result("cot", lone), result("generate", spaced), result("programmer", tight)]).answer is spaced


def test_a_layer_without_candidates_leaves_the_previous_state() -> None:
    previous = LayerState(MATH, (Candidate("42", "", "cot"),), Candidate("42", "", "cot"))
    assert merge(MATH, [result("programmer"), result("early_stop")], previous) is previous
    assert merge(MATH, [result("programmer")]) == LayerState(MATH)


# ----------------------------------------------------------------- schedule and accounting
@pytest.fixture(scope="module")
def two_layer_run() -> ArchitectureRun:
    return asyncio.run(run_architecture(MATH, TWO_LAYERS, OPERATORS, simulated()))


def test_operators_of_one_layer_run_at_the_same_time(two_layer_run: ArchitectureRun) -> None:
    events = two_layer_run.run.events
    start = {e.task: e.time for e in events if e.kind == "dispatched"}
    end = {e.task: e.time for e in events if e.kind == "finished"}
    assert start["L1.cot"] < end["L1.generate"] and start["L1.generate"] < end["L1.cot"]
    assert start["L2.self_refine"] >= end["L1.merge"] >= max(end["L1.cot"], end["L1.generate"])
    assert two_layer_run.run.report.agents["orchestrator"]["slots"] == 2  # widened to the widest layer


def test_critical_path_counts_the_slowest_operator_of_each_layer(two_layer_run: ArchitectureRun) -> None:
    run = two_layer_run
    assert [[op.name for op in layer] for layer in run.layers] == [["cot", "generate"], ["self_refine"]]
    assert run.spans == ((48, 48), (96,))  # one call each, then critique and revision in sequence
    assert run.cp_tokens == critical_path(run.spans) == 48 + 96 < sequential_path(run.spans)
    tokens = run.run.report.tokens
    assert run.cost_tokens == tokens["prompt"] + tokens["completion"] and tokens["completion"] == 4 * 48
    slowest = sum(max(op.elapsed_s for op in layer) for layer in run.layers)
    one_after_another = sum(op.elapsed_s for layer in run.layers for op in layer)
    assert slowest <= run.cp_seconds < one_after_another
    assert run.state is run.run.answer  # the last merge is the run's answer


async def test_a_model_error_empties_the_operator_not_the_layer() -> None:
    executor = SupernetExecutor(OPERATORS, simulated(failure_rate=1.0))
    episode, run = await executor.run_detailed(MATH, TWO_LAYERS)
    assert episode.score == 0.0 and episode.spans == ((0.0, 0.0), (0.0,)) and episode.cost == 0.0
    assert all(not op.candidates and "injected failure" in op.notes[0] for layer in run.layers for op in layer)
    assert run.state == LayerState(MATH)  # nothing found: the empty start state carried through
    assert run.run.report.tasks["done"] == 5 and not run.run.errors


async def test_a_rate_limited_operator_runs_again_after_the_retry_after() -> None:
    run = await run_architecture(MATH, TWO_LAYERS, OPERATORS, simulated(rate_limit_rate=0.5))
    assert run.run.report.tasks["retried"] >= 1 and run.run.report.tasks["done"] == 5
    assert all(op.candidates and not op.notes for op in run.layers[0])  # each answered on a later attempt
    assert run.spans[0] == (48, 48)


# ----------------------------------------------------------------- the real model
@pytest.fixture(scope="module")
def local() -> Iterator[LocalBackend]:
    backend = LocalBackend(instances=2)  # two copies: a layer's two operators really overlap
    yield backend
    asyncio.run(backend.aclose())


@pytest.mark.parametrize("load", [load_gsm, load_humaneval], ids=["gsm", "humaneval"])
async def test_executor_runs_an_architecture_on_the_bundled_model(
    local: LocalBackend, load: Callable[..., list[Query]]
) -> None:
    (query,) = load(limit=1)
    executor = SupernetExecutor(OPERATORS, Agent("orchestrator", backend=local))
    arch = (("cot", "programmer"), ("sc_ensemble",))
    episode, run = await executor.run_detailed(query, arch)
    assert episode.score in (0.0, 1.0)
    assert [len(layer) for layer in episode.spans] == [2, 1]
    assert episode.spans == tuple(tuple(float(s) for s in layer) for layer in run.spans)
    assert episode.cost == run.cost_tokens > 0
    report = run.run.report
    assert report.tasks["done"] == len(run.run.graph) == 5 and not run.run.errors
    assert episode.cost == report.tokens["prompt"] + report.tokens["completion"]
    assert run.state.answer is not None and run.state.answer in run.state.candidates
    assert run.cp_seconds == report.makespan_s > 0
