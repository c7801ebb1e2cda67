"""The run report, computed from the event log alone, on hand-computed examples."""

from __future__ import annotations

import json

import pytest

from paragents.core.agent_state import AgentSpec
from paragents.core.events import Dispatch
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import Backoff, Fifo
from paragents.core.report import RunReport, build_report, usage_dict
from paragents.core.scheduler import Scheduler
from paragents.sim.virtual import run_virtual

CONTRACT_KEYS = {
    "run_id",
    "makespan_s",
    "critical_path_s",
    "lower_bound_s",
    "serial_time_s",
    "speedup",
    "utilization",
    "agents",
    "tasks",
    "latency",
    "tokens",
    "cost",
}


def diamond_run(t0: float = 0.0) -> tuple[Scheduler, RunReport]:
    """a -> (b, c) -> d on agents A and B (one slot each), driven by hand:

    ====  =====  =====  ======  =========  ==========  ================
    task  agent  ready  start   end        compute     transfer
    ====  =====  =====  ======  =========  ==========  ================
    a     A      0      0       2          1.5         0.25
    b     A      2      2       5          2.5         0.5
    c     B      2      2       3          (not given: 1.0 measured)
    d     A      5      5       6          0.5         0
    ====  =====  =====  ======  =========  ==========  ================
    """
    g = TaskGraph(
        [
            Task("a", duration=2.0),
            Task("b", duration=3.0, depends_on=("a",)),
            Task("c", duration=1.0, depends_on=("a",)),
            Task("d", duration=1.0, depends_on=("b", "c")),
        ]
    )
    s = Scheduler(g, [AgentSpec("A"), AgentSpec("B")])
    assert s.start(t0) == [Dispatch("a", "A", 1)]
    usage_a = usage_dict(compute_s=1.5, transfer_s=0.25, prompt_tokens=10, completion_tokens=5, cost=0.25)
    assert s.task_finished("a", t0 + 2.0, usage=usage_a) == [Dispatch("b", "A", 1), Dispatch("c", "B", 1)]
    assert s.task_finished("c", t0 + 3.0) == []
    usage_b = usage_dict(compute_s=2.5, transfer_s=0.5, prompt_tokens=20, completion_tokens=7, cost=0.5)
    assert s.task_finished("b", t0 + 5.0, usage=usage_b) == [Dispatch("d", "A", 1)]
    s.task_finished("d", t0 + 6.0, usage=usage_dict(compute_s=0.5, prompt_tokens=1, completion_tokens=1))
    assert s.done
    return s, build_report(s.events, s.graph, run_id="r1", answer="42")


def test_report_of_a_hand_driven_diamond() -> None:
    _, r = diamond_run()
    assert r.run_id == "r1" and r.answer == "42"
    assert r.makespan_s == 6.0
    assert r.critical_path_s == 6.0  # a (2) + b (3) + d (1), measured
    assert r.serial_time_s == 7.0  # 2 + 3 + 1 + 1
    assert r.speedup == 7.0 / 6.0
    assert r.lower_bound_s == 6.0  # max(6, 7 busy / 2 slots)
    assert r.utilization == 7.0 / 12.0
    assert r.efficiency == 1.0
    assert r.agents == {
        "A": {"utilization": 1.0, "tasks": 3, "busy_s": 6.0, "slots": 1},
        "B": {"utilization": 1.0 / 6.0, "tasks": 1, "busy_s": 1.0, "slots": 1},
    }
    assert r.tasks == {"total": 4, "done": 4, "failed": 0, "cancelled": 0, "retried": 0}
    assert r.tokens == {"prompt": 31, "completion": 13}
    assert r.cost == 0.75


def test_latency_split_adds_up_to_ready_to_finish_for_each_task() -> None:
    _, r = diamond_run()
    split = {t.id: (t.ready_at, t.start, t.end, t.compute_s, t.transfer_s, t.processing_s) for t in r.timings.values()}
    assert split == {
        "a": (0.0, 0.0, 2.0, 1.5, 0.25, 0.25),
        "b": (2.0, 2.0, 5.0, 2.5, 0.5, 0.0),
        "c": (2.0, 2.0, 3.0, 1.0, 0.0, 0.0),  # no usage reported: the run time is compute
        "d": (5.0, 5.0, 6.0, 0.5, 0.0, 0.5),
    }
    for t in r.timings.values():
        assert t.compute_s + t.transfer_s + t.processing_s == t.end - t.ready_at
    assert r.latency == {"compute_s": 5.5, "transfer_s": 0.75, "processing_s": 0.75}


def test_report_times_are_relative_to_the_start_of_the_run() -> None:
    _, late = diamond_run(t0=100.0)
    _, early = diamond_run()
    assert late.to_dict(per_task=True) == {**early.to_dict(per_task=True), "run_id": "r1"}


def test_report_json_keeps_the_public_keys() -> None:
    _, r = diamond_run()
    out = r.to_dict()
    assert CONTRACT_KEYS <= set(out)
    assert set(out["agents"]["A"]) >= {"utilization", "tasks", "busy_s"}
    assert set(out["tasks"]) >= {"total", "done", "failed", "retried"}
    assert set(out["latency"]) == {"compute_s", "transfer_s", "processing_s"}
    assert set(out["tokens"]) == {"prompt", "completion"}
    assert out["answer"] == "42"
    per_task = r.to_dict(per_task=True)["per_task"]
    assert [t["id"] for t in per_task] == ["a", "b", "c", "d"]
    json.dumps(out)


def test_virtual_run_counts_run_time_as_compute_from_time_zero() -> None:
    g = TaskGraph([Task("a", duration=2.0), Task("b", duration=1.0, depends_on=("a",))])
    r = run_virtual(g, [AgentSpec("x")]).report
    assert (r.timings["a"].compute_s, r.timings["a"].processing_s) == (2.0, 0.0)
    assert (r.timings["b"].compute_s, r.timings["b"].processing_s) == (1.0, 0.0)
    assert r.latency == {"compute_s": 3.0, "transfer_s": 0.0, "processing_s": 0.0}


def test_queueing_and_backoff_count_as_processing() -> None:
    # One agent: "b" waits 1 s in the queue; "a" fails once, waits 2 s of backoff, reruns.
    g = TaskGraph([Task("a", duration=1.0, retries=1), Task("b", duration=1.0)])
    run = run_virtual(
        g,
        [AgentSpec("x")],
        priority=Fifo(),
        backoff=Backoff(base_s=2.0, jitter=0.0),
        fails=lambda task, agent, attempt: task.id == "a" and attempt == 1,
    )
    r = run.report
    a, b = r.timings["a"], r.timings["b"]
    assert (b.ready_at, b.start, b.end, b.compute_s, b.processing_s) == (0.0, 1.0, 2.0, 1.0, 1.0)
    assert (a.ready_at, a.start, a.end, a.attempts, a.compute_s, a.processing_s) == (0.0, 3.0, 4.0, 2, 1.0, 3.0)
    assert r.tasks["retried"] == 1
    assert r.agents["x"]["busy_s"] == 3.0  # the failed attempt kept the agent busy too
    assert r.agents["x"]["tasks"] == 2
    assert r.serial_time_s == 2.0 and r.makespan_s == 4.0
    assert r.lower_bound_s == 3.0  # busy 3 s on one slot beats the 1 s critical path


def test_failed_and_cancelled_tasks_are_counted_and_carry_their_error() -> None:
    g = TaskGraph([Task("a"), Task("b", depends_on=("a",)), Task("c", duration=2.0)])
    r = run_virtual(g, [AgentSpec("x", slots=2)], fails=lambda t, a, n: t.id == "a").report
    assert r.tasks == {"total": 3, "done": 1, "failed": 1, "cancelled": 1, "retried": 0}
    assert r.timings["a"].error == "injected failure"
    assert r.timings["b"].error == "upstream task 'a' failed"
    assert r.critical_path_s == 2.0  # only "c" ran to the end
    assert r.latency["compute_s"] == 2.0


def test_utilisation_counts_every_slot_of_an_agent() -> None:
    g = TaskGraph([Task(f"t{i}", duration=2.0) for i in range(3)])
    r = run_virtual(g, [AgentSpec("x", slots=2)]).report
    assert r.makespan_s == 4.0
    assert r.agents["x"] == {"utilization": 6.0 / 8.0, "tasks": 3, "busy_s": 6.0, "slots": 2}
    assert r.lower_bound_s == 3.0 and r.efficiency == 0.75


def test_report_of_an_empty_log_is_all_zero() -> None:
    r = build_report([], TaskGraph())
    assert (r.makespan_s, r.critical_path_s, r.speedup, r.utilization, r.efficiency) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert r.tasks["total"] == 0


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_speedup_never_exceeds_total_slots(slots: int) -> None:
    g = TaskGraph([Task(f"t{i}", duration=1.0 + i % 2) for i in range(7)])
    r = run_virtual(g, [AgentSpec("x", slots=slots)]).report
    assert r.speedup <= slots + 1e-12
    assert r.makespan_s >= r.lower_bound_s
