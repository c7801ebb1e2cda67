"""The discrete-event simulator: latency models checked against hand-computed times."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from paragents.core.agent_state import AgentSpec
from paragents.core.errors import ParagentsError, SchedulingError
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies.priority import CriticalPath
from paragents.core.scheduler import Scheduler
from paragents.sim.engine import Arrival, simulate
from paragents.sim.latency import (
    Faults,
    LatencyModel,
    ModelServer,
    Network,
    ThroughputCurve,
)
from paragents.sim.workloads.requests import SHAPES, poisson_stream, travel_graph

#: 10 tokens/s alone, 16 tokens/s in all (8 each) with two calls decoding.
CURVE = ThroughputCurve(((1, 10.0), (2, 16.0)))


def on_server(tasks: list[Task], *, agents: int = 2, max_batch: int = 8, ttft: float = 0.0, speed: float = 1.0):
    pool = [AgentSpec(f"a{i}", slots=4, speed=speed) for i in range(agents)]
    model = LatencyModel.shared_server([a.name for a in pool], ModelServer("gpu", CURVE, max_batch, ttft))
    return simulate(TaskGraph(tasks), pool, latency=model)


def end(run, task: str) -> float:
    return next(e.time for e in run.events if e.kind == "finished" and e.task == task)


def test_one_call_decodes_at_the_single_stream_rate() -> None:
    run = on_server([Task("t", tokens=80)])
    assert end(run, "t") == pytest.approx(8.0)


def test_two_calls_share_the_batch_and_the_survivor_speeds_up() -> None:
    run = on_server([Task("short", tokens=40), Task("long", tokens=80)])
    # both at 8 tok/s until "short" ends at 5 s; "long" has 40 left at 10 tok/s: 4 s more
    assert end(run, "short") == pytest.approx(5.0)
    assert end(run, "long") == pytest.approx(9.0)
    assert run.servers["gpu"].mean_batch == pytest.approx((2 * 5 + 1 * 4) / 9)


def test_a_full_batch_queues_the_next_call() -> None:
    run = on_server([Task("first", tokens=80), Task("second", tokens=80)], max_batch=1)
    assert sorted([end(run, "first"), end(run, "second")]) == pytest.approx([8.0, 16.0])


def test_time_to_first_token_precedes_decoding_and_speed_scales_it() -> None:
    assert end(on_server([Task("t", tokens=80)], ttft=0.5), "t") == pytest.approx(8.5)
    assert end(on_server([Task("t", tokens=80)], speed=2.0), "t") == pytest.approx(4.0)


def test_tokens_default_to_the_duration_estimate_minus_tool_time() -> None:
    run = on_server([Task("t", duration=3.0, meta={"tool_s": 1.0})])
    # 2 s of model work at 40 tokens/s = 80 tokens at 10 tok/s, after 1 s of tool time
    assert end(run, "t") == pytest.approx(1.0 + 8.0)


def test_transfer_is_paid_only_for_inputs_made_on_another_agent() -> None:
    pool = [AgentSpec("a"), AgentSpec("b")]
    net = Network(bandwidth_Bps=1000.0, rtt_s=0.5)
    graph = [
        Task("p", duration=1.0, agent="a"),
        Task("same", duration=1.0, depends_on=("p",), agent="a", meta={"input_bytes": {"p": 2000}}),
        Task("other", duration=1.0, depends_on=("p",), agent="b", meta={"input_bytes": {"p": 2000}}),
    ]
    run = simulate(TaskGraph(graph), pool, latency=LatencyModel(network=net))
    assert end(run, "same") == pytest.approx(2.0)
    assert end(run, "other") == pytest.approx(1.0 + 0.5 + 2.0 + 1.0)
    assert run.report.latency["transfer_s"] == pytest.approx(2.5)


def test_stragglers_multiply_the_work() -> None:
    graph = TaskGraph([Task("t", duration=2.0)])
    slow = LatencyModel(faults=Faults(straggler_p=1.0, straggler_factor=3.0))
    assert simulate(graph, [AgentSpec("a")], latency=slow).makespan == pytest.approx(6.0)


def test_failures_are_retried_and_exhausted_ones_cancel_downstream_keeping_finished_work() -> None:
    flaky = LatencyModel(faults=Faults(failure_p=0.5))
    tasks = [Task(f"t{i}", duration=1.0, retries=8) for i in range(20)]
    run = simulate(TaskGraph(tasks), [AgentSpec("a", slots=4)], latency=flaky, seed=3)
    assert run.report.tasks["done"] == 20 and run.report.tasks["retried"] > 0
    chain = [Task("a", duration=1.0), Task("b", depends_on=("a",)), Task("c", depends_on=("b",))]
    model = LatencyModel(faults=Faults(failure_p=0.999))
    run = simulate(TaskGraph(chain), [AgentSpec("x")], latency=model)
    assert run.report.tasks["failed"] == 1 and run.report.tasks["cancelled"] == 2


def test_a_seed_reproduces_a_noisy_run_exactly_and_seeds_differ() -> None:
    pool = [AgentSpec(f"a{i}", slots=2) for i in range(3)]
    model = LatencyModel.replicas(
        [a.name for a in pool],
        ModelServer("gpu", ThroughputCurve.saturating(40, 400), 8, 0.1),
        jitter_cv=0.3,
        faults=Faults(0.05, 0.05),
    )
    arrivals = poisson_stream(1.0, 30, seed=1)

    def log(seed: int) -> list[tuple]:
        run = simulate(None, pool, arrivals=arrivals, latency=model, seed=seed)
        return [(e.time, e.kind, e.task, e.agent, e.attempt) for e in run.events]

    assert log(7) == log(7)
    assert log(7) != log(8)


def test_requests_arrive_at_their_times_and_their_latency_is_measured() -> None:
    arrivals = poisson_stream(0.5, 40, seed=2)
    gaps = [b.time - a.time for a, b in itertools.pairwise(arrivals)]
    assert all(g > 0 for g in gaps)
    assert 0.25 < len(gaps) / sum(gaps) < 1.0  # the rate, within a wide margin
    pool = [AgentSpec(f"a{i}", slots=2) for i in range(4)]
    run = simulate(None, pool, arrivals=arrivals)
    first = {}
    for e in run.events:
        if e.kind == "dispatched":
            first.setdefault(e.task.split("/")[0], e.time)
    for arr, out in zip(arrivals, run.requests, strict=True):
        assert out.finished is not None and out.tasks == len(SHAPES[arr.kind])
        assert first[arr.name] >= arr.time
        cp = max(t.duration for t in arr.tasks)
        assert out.latency >= cp
    summary = run.to_dict()["requests"]
    assert summary["completed"] == 40 and set(summary["by_kind"]) == set(SHAPES)


def test_travel_shapes_have_4_8_and_16_subtasks_and_one_exit() -> None:
    for shape, n in (("simple", 4), ("medium", 8), ("complex", 16)):
        g = travel_graph(shape, seed=1)
        assert len(g) == n and len(g.sinks()) == 1 and "r0/parse" in g.sources()
    assert travel_graph("medium", seed=1)["r0/flights"].tokens != travel_graph("medium", seed=2)["r0/flights"].tokens
    with pytest.raises(ParagentsError, match="unknown request shape 'huge'"):
        travel_graph("huge")


def test_placing_an_unknown_agent_or_server_is_refused() -> None:
    with pytest.raises(SchedulingError, match="unknown agents: ghost"):
        model = LatencyModel.shared_server(["ghost"], ModelServer("gpu", CURVE))
        simulate(TaskGraph([Task("t")]), [AgentSpec("a")], latency=model)
    with pytest.raises(ParagentsError, match="unknown servers: nowhere"):
        LatencyModel(placement={"a": "nowhere"})


def test_saturating_curve_starts_at_single_and_approaches_peak() -> None:
    c = ThroughputCurve.saturating(40.0, 400.0, max_batch=256)
    assert c.aggregate(1) == pytest.approx(40.0)
    assert c.per_request(8) < c.per_request(1)
    assert 0.9 * 400 < c.aggregate(256) < 400
    assert c.aggregate(1000) == c.aggregate(256)


def test_incremental_priorities_match_a_full_recompute() -> None:
    """After arrivals and edges into waiting tasks, every unfinished task's rank is what
    ranking the whole graph again gives."""
    rng = random.Random(4)
    sched = Scheduler(TaskGraph(), [AgentSpec("a", slots=1)], priority=CriticalPath())
    sched.start(0.0)
    now = 0.0
    for batch in range(30):
        live = [t.id for t in sched.graph if sched.state(t.id).value in ("pending", "ready")]
        new = []
        for i in range(rng.randint(1, 5)):
            pool = [t.id for t in new] + rng.sample(live, min(len(live), 2))
            deps = tuple(rng.sample(pool, min(len(pool), rng.randint(0, 2))))
            new.append(Task(f"b{batch}_{i}", duration=rng.uniform(0.5, 3), depends_on=deps))
        edges = [(new[0].id, v) for v in rng.sample(live, min(len(live), 1)) if v not in new[0].depends_on]
        try:
            sched.tasks_added(new, edges, now=now)
        except ParagentsError:
            continue  # an edge that would close a cycle: refused, nothing changed
        running = [t.id for t in sched.graph if sched.state(t.id).value == "running"]
        for tid in running[:1]:
            now += 1.0
            sched.task_finished(tid, now)
        speeds = {t.id: [1.0] for t in sched.graph}
        full = CriticalPath().priorities(sched.graph, speeds)
        for t in sched.graph:
            if not sched.state(t.id).terminal:
                assert math.isclose(sched.priority_of(t.id), full[t.id]), t.id


def test_arrival_order_breaks_ties_deterministically() -> None:
    a = Arrival(1.0, "x", (Task("x/t", duration=1.0),))
    b = Arrival(1.0, "y", (Task("y/t", duration=1.0),))
    run = simulate(None, [AgentSpec("solo")], arrivals=[a, b])
    order = [e.task for e in run.events if e.kind == "dispatched"]
    assert order == ["x/t", "y/t"]
