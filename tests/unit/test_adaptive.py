"""The adaptive manager's pieces: monitors, controls, and the scheduler's adaptation verbs."""

from __future__ import annotations

import random

import pytest

from paragents.adaptive import (
    AdaptiveConfig,
    AdaptiveManager,
    Aimd,
    DurationEstimator,
    Ewma,
    HedgeConfig,
    HedgeTrigger,
    OutlierDetector,
    P2Quantile,
    ReplanTrigger,
)
from paragents.core.agent_state import AgentSpec
from paragents.core.events import Cancel, Dispatch, TaskState
from paragents.core.graph import Task, TaskGraph
from paragents.core.report import build_report
from paragents.core.scheduler import Scheduler


# ------------------------------------------------------------------ monitors
def test_ewma_tracks_a_level_shift() -> None:
    e = Ewma(0.2)
    for _ in range(50):
        e.add(1.0)
    for _ in range(50):
        e.add(3.0)
    assert e.value == pytest.approx(3.0, abs=1e-3)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p2_quantile_is_close_to_the_exact_one(q: float, seed: int) -> None:
    rng = random.Random(seed)
    data = [rng.lognormvariate(0.0, 0.5) for _ in range(20_000)]
    est = P2Quantile(q)
    for x in data:
        est.add(x)
    exact = sorted(data)[int(q * len(data)) - 1]
    assert est.value == pytest.approx(exact, rel=0.05)


def test_p2_quantile_is_exact_before_five_samples() -> None:
    est = P2Quantile(0.5)
    for x in (3.0, 1.0, 2.0):
        est.add(x)
    assert est.value == 2.0


# ------------------------------------------------------------------ controls
def test_aimd_increases_then_cuts_on_429_and_never_exceeds_its_ceiling() -> None:
    a = Aimd(4, 10, decrease=0.5, cooldown_s=1.0)
    now = 0.0
    for _ in range(200):
        now += 0.1
        a.success(1.0, now)
        assert a.limit <= 10
    assert a.limit == 10
    assert a.overload(now + 1.0)
    assert a.limit == 5
    assert not a.overload(now + 1.5)  # within the cooldown: one overload, one cut
    assert a.limit == 5
    before = a.value
    a.success(1.0, now + 2.0)  # congestion avoidance now: +1/limit, not +1
    assert a.value == pytest.approx(before + 1.0 / before)


def test_aimd_cuts_when_latency_passes_its_target() -> None:
    a = Aimd(8, 16, latency_target_s=1.0, decrease=0.5, cooldown_s=0.0)
    a.success(5.0, 1.0)
    assert a.limit == 4


def test_duration_estimator_converges_to_the_true_factor() -> None:
    est = DurationEstimator(alpha=0.3, tolerance=0.2, min_samples=3)
    rng = random.Random(0)
    for _ in range(40):
        est.add("analysis", 3.0 * rng.uniform(0.9, 1.1))
        est.add("draft", rng.uniform(0.9, 1.1))
    assert est.factor("analysis") == pytest.approx(3.0, rel=0.1)
    assert set(est.changed()) == {"analysis"}  # draft stays within its tolerance of 1.0
    assert est.changed() == {}  # published once


def test_hedge_budget_caps_the_extra_calls() -> None:
    h = HedgeTrigger(budget=0.1, min_samples=1)
    assert not h.allowed(9)
    assert h.allowed(10)
    h.hedges = 1
    assert not h.allowed(19) and h.allowed(20)


def test_outlier_detector_flags_a_slow_agent_and_lets_it_back_after_probation() -> None:
    flags = OutlierDetector(slow_factor=2.0, min_samples=3, probation_s=10.0)
    for _ in range(5):
        for name, norm in (("a", 1.0), ("b", 1.1), ("slow", 4.0)):
            flags.add(name, True, norm)
    got = flags.verdicts(0.0)
    assert list(got) == ["slow"] and got["slow"][0] is True
    assert flags.verdicts(5.0) == {}
    assert flags.verdicts(10.0) == {"slow": (False, "probation of 10 s over")}


def test_replan_trigger_asks_once_after_n_failures() -> None:
    r = ReplanTrigger(after_failures=2)
    assert r.failed("t") is None
    assert r.failed("t") == 2
    assert r.failed("t") is None


# ------------------------------------------------------------------ scheduler: hedging
def _two_agents() -> Scheduler:
    s = Scheduler(TaskGraph([Task("a", duration=1.0), Task("b", depends_on=("a",))]), [AgentSpec("A"), AgentSpec("B")])
    assert s.start(0.0) == [Dispatch("a", "A", 1)]
    return s


def test_hedge_starts_a_backup_on_another_free_agent() -> None:
    s = _two_agents()
    assert s.hedge("a", 2.0, "slow") == [Dispatch("a", "B", 2)]
    assert s.hedged("a") and s.agents["A"].free == 0 and s.agents["B"].free == 0
    assert s.hedge("a", 2.5, "again") == []  # one backup at most
    kinds = [e.kind for e in s.events[-2:]]
    assert kinds == ["adapted", "dispatched"] and s.events[-2].data["control"] == "hedge"


def test_first_finish_wins_and_the_other_attempt_is_cancelled() -> None:
    s = _two_agents()
    s.hedge("a", 2.0, "slow")
    out = s.task_finished("a", 3.0, attempt=1)  # the original attempt wins
    assert Cancel("a", "B", "hedged attempt 1 finished first", 2) in out
    assert Dispatch("b", "A", 1) in out or Dispatch("b", "B", 1) in out
    assert s.state("a") is TaskState.DONE and s.attempt("a") == 1 and s.agent_of("a") == "A"
    assert s.task_finished("a", 3.5, attempt=2) == []  # the loser's late report is ignored
    assert sum(a.free for a in s.agents.values()) == 1  # one slot held by b, none leaked


def test_a_failed_attempt_does_not_fail_a_hedged_task() -> None:
    s = _two_agents()
    s.hedge("a", 2.0, "slow")
    s.task_failed("a", 2.5, error="boom", attempt=2, retryable=False)
    assert s.state("a") is TaskState.RUNNING and not s.hedged("a") and s.attempt("a") == 1
    assert s.events[-1].kind == "abandoned"
    s.task_finished("a", 3.0, attempt=1)
    assert s.state("a") is TaskState.DONE


def test_cancelling_a_hedged_task_cancels_both_attempts() -> None:
    s = _two_agents()
    s.hedge("a", 2.0, "slow")
    out = s.cancel("a", now=2.5, reason="user")
    assert {(c.agent, c.attempt) for c in out if isinstance(c, Cancel)} == {("A", 1), ("B", 2)}
    assert all(a.free == 1 for a in s.agents.values())


def test_hedge_needs_a_free_capable_agent() -> None:
    s = Scheduler(TaskGraph([Task("a"), Task("b")]), [AgentSpec("A"), AgentSpec("B")])
    s.start(0.0)
    assert s.hedge("a", 1.0, "slow") == []


def test_report_counts_a_hedged_task_once_with_its_winning_attempt() -> None:
    s = _two_agents()
    s.hedge("a", 2.0, "slow")
    s.task_finished("a", 3.0, attempt=2)  # the backup wins
    s.task_finished("b", 4.0)
    r = build_report(s.events, s.graph)
    assert r.tasks["done"] == 2 and r.hedges == 1
    assert r.timings["a"].agent == "B" and r.timings["a"].start == pytest.approx(2.0)
    assert r.agents["A"]["tasks"] + r.agents["B"]["tasks"] == 2
    assert r.adaptations == {"hedge": 1}
    assert r.to_dict()["adaptations"] == {"hedge": 1} and r.to_dict()["hedges"] == 1


# ------------------------------------------------------------------ scheduler: estimates, avoid
def test_update_estimates_reorders_ready_work_by_the_new_critical_path() -> None:
    tasks = [Task("x", duration=5.0), Task("y", duration=1.0), Task("hold", duration=1.0)]
    s = Scheduler(TaskGraph(tasks), [AgentSpec("A")])
    s.start(0.0)  # x runs first: the longest
    assert s.priority_of("y") < s.priority_of("hold") or s.priority_of("y") == s.priority_of("hold")
    s.update_estimates({"y": 9.0, "x": 1.0}, 0.5, "learned")  # x already runs: unchanged
    assert s.graph["y"].duration == 9.0 and s.graph["x"].duration == 5.0
    assert s.priority_of("y") > s.priority_of("hold")
    assert s.task_finished("x", 5.0) == [Dispatch("y", "A", 1)]
    assert s.events[2].kind == "adapted" and s.events[2].data["control"] == "estimates"


def test_update_estimates_raises_the_ancestors_ranks() -> None:
    g = TaskGraph([Task("p", duration=1.0), Task("c", duration=1.0, depends_on=("p",))])
    s = Scheduler(g, [AgentSpec("A")])
    s.start(0.0)
    before = s.priority_of("p")
    s.task_finished("p", 1.0)
    s2 = Scheduler(TaskGraph([Task("p", duration=1.0), Task("c", duration=1.0, depends_on=("p",)), Task("o")]),
                   [AgentSpec("A", slots=0)])
    s2.start(0.0)
    s2.update_estimates({"c": 5.0}, 0.0, "learned")
    assert s2.priority_of("p") == pytest.approx(6.0) and before == pytest.approx(2.0)


def test_avoided_agent_gets_no_new_work_while_another_can_take_it() -> None:
    s = Scheduler(TaskGraph([Task(f"t{i}") for i in range(4)]), [AgentSpec("A"), AgentSpec("B", slots=2)])
    s.set_avoided("A", True, now=0.0, reason="slow")
    out = s.start(0.0)
    assert [d.agent for d in out] == ["B", "B"]  # A idles: B has slots (it may be busy)
    assert s.avoided == {"A"}
    assert [d.agent for d in s.set_avoided("A", False, now=0.5, reason="probation over")] == ["A"]
    assert s.events[0].kind == "adapted" and s.events[0].data == {"control": "avoid", "reason": "slow", "avoided": True}


# ------------------------------------------------------------------ manager
def test_manager_hedges_a_straggler_and_logs_it() -> None:
    tasks = [Task(f"t{i}", duration=1.0) for i in range(10)]
    s = Scheduler(TaskGraph(tasks), [AgentSpec("A"), AgentSpec("B")])
    m = AdaptiveManager(AdaptiveConfig(hedging=HedgeConfig(enabled=True, min_samples=5, budget=0.5)))
    seen = 0

    def feed() -> None:
        nonlocal seen
        while seen < len(s.events):
            m.observe(s.events[seen], s)
            seen += 1

    s.start(0.0)
    feed()
    straggler = next(iter(s.agents["B"].running))  # B never finishes: a straggler
    for now in range(1, 10):  # nine normal one-second tasks on A; then A is free
        s.task_finished(next(iter(s.agents["A"].running)), float(now))
        feed()
    actions = m.tick(9.0, s)  # B's task ran 9x its estimate, past 1.5 x p90 (1.0)
    feed()
    assert Dispatch(straggler, "A", 2) in actions
    assert s.hedged(straggler)
    adapted = [e for e in s.events if e.kind == "adapted"]
    assert adapted[-1].data["control"] == "hedge" and adapted[-1].task == straggler


# ------------------------------------------------------------------ workflow file
def test_workflow_adaptive_section_is_loaded_and_strictly_checked() -> None:
    from paragents.core.errors import WorkflowError
    from paragents.workflow import load_workflow

    text = "name: x\nadaptive:\n  period_s: 0.25\n  hedging: {enabled: true, budget: 0.05}\ntasks:\n  - id: a\n"
    cfg = load_workflow(text).run_options()["adaptive"]
    assert cfg.period_s == 0.25 and cfg.hedging.enabled and cfg.hedging.budget == 0.05
    assert not cfg.concurrency.enabled
    with pytest.raises(WorkflowError, match="adaptive.hedging: unknown key 'bogus'"):
        load_workflow("name: x\nadaptive:\n  hedging: {bogus: 1}\ntasks:\n  - id: a\n")
    with pytest.raises(WorkflowError, match="floor <= initial <= ceiling"):
        load_workflow("name: x\nadaptive:\n  concurrency: {initial: 9, ceiling: 4}\ntasks:\n  - id: a\n")
    assert "adaptive" not in load_workflow("name: x\ntasks:\n  - id: a\n").run_options()
