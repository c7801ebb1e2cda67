"""The scheduling state machine, driven directly: events in, decisions out.

No clock, no event loop: every call carries ``now``, and each test asserts the exact
decisions and states that follow.
"""

from __future__ import annotations

import pytest

from paragents.core.agent_state import AgentSpec, AgentState
from paragents.core.errors import GraphError, SchedulingError
from paragents.core.events import TRANSITIONS, Cancel, Dispatch, Expansion, Retry, TaskState, transition
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import (
    ASSIGN_POLICIES,
    Backoff,
    CapabilityMatch,
    EarliestFinish,
    Fifo,
    LeastLoaded,
    RandomAssign,
    RoundRobin,
    UserPriority,
    WeightedRoundRobin,
)
from paragents.core.report import build_report
from paragents.core.scheduler import Scheduler

P, R, X, B = TaskState.PENDING, TaskState.READY, TaskState.RUNNING, TaskState.BACKOFF
DONE, FAILED, CANCELLED = TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED
NO_JITTER = Backoff(base_s=2.0, factor=3.0, jitter=0.0)


def spec(name: str, skills: str = "*", slots: int = 1, speed: float = 1.0) -> AgentSpec:
    return AgentSpec(name, frozenset(skills.split(",")) if skills else frozenset(), slots, speed)


def graph(*tasks: Task) -> TaskGraph:
    return TaskGraph(tasks)


def kinds(sched: Scheduler, task: str) -> list[str]:
    return [e.kind for e in sched.events if e.task == task]


# ============================================================================ lifecycle

TRIGGERS = sorted({trigger for _, trigger in TRANSITIONS})


@pytest.mark.parametrize("state", list(TaskState))
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_transition_table_allows_listed_moves_and_refuses_the_rest(state: TaskState, trigger: str) -> None:
    if (state, trigger) in TRANSITIONS:
        assert transition("t", state, trigger) is TRANSITIONS[state, trigger]
    else:
        message = f"task 't': illegal transition '{trigger}' from state '{state.value}'"
        with pytest.raises(SchedulingError, match=message):
            transition("t", state, trigger)


def test_terminal_states_have_no_way_out() -> None:
    for (state, _), _new in TRANSITIONS.items():
        assert not state.terminal


def test_finishing_a_task_that_is_not_running_raises_a_clear_error() -> None:
    s = Scheduler(graph(Task("a"), Task("b", depends_on=("a",))), [spec("A")])
    s.start(0.0)
    logged = len(s.events)
    with pytest.raises(SchedulingError, match="task 'b' is pending, not running"):
        s.task_finished("b", 1.0)
    assert s.state("b") is P and len(s.events) == logged


def test_failing_a_task_that_is_only_ready_raises_a_clear_error() -> None:
    s = Scheduler(graph(Task("a"), Task("b")), [spec("A")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("a", "A", 1)]
    with pytest.raises(SchedulingError, match="task 'b' is ready, not running"):
        s.task_failed("b", 1.0)
    assert s.state("b") is R


def test_reports_about_unknown_tasks_raise_naming_them() -> None:
    s = Scheduler(graph(Task("a")), [spec("A")])
    s.start(0.0)
    with pytest.raises(SchedulingError, match="unknown task 'zz'"):
        s.task_finished("zz", 1.0)
    with pytest.raises(SchedulingError, match="unknown task 'zz'"):
        s.task_failed("zz", 1.0)


def test_starting_twice_is_refused() -> None:
    s = Scheduler(graph(Task("a")), [spec("A")])
    s.start(0.0)
    with pytest.raises(SchedulingError, match="already started"):
        s.start(1.0)


def test_report_for_a_superseded_attempt_is_ignored() -> None:
    s = Scheduler(graph(Task("a", retries=1)), [spec("A")], backoff=NO_JITTER)
    s.start(0.0)
    assert s.task_failed("a", 1.0, error="boom") == [Retry("a", 3.0, 2, "boom")]
    assert s.tick(3.0) == [Dispatch("a", "A", 2)]
    logged = len(s.events)
    assert s.task_finished("a", 3.5, attempt=1) == []
    assert s.task_failed("a", 3.5, attempt=1) == []
    assert s.state("a") is X and s.attempt("a") == 2 and len(s.events) == logged
    s.task_finished("a", 4.0, attempt=2)
    assert s.state("a") is DONE and s.done


def test_late_reports_for_a_cancelled_task_are_ignored() -> None:
    s = Scheduler(graph(Task("a"), Task("b", depends_on=("a",))), [spec("A")])
    s.start(0.0)
    assert s.cancel("a", now=1.0, reason="user") == [Cancel("a", "A", "user")]
    assert s.state("a") is CANCELLED and s.state("b") is CANCELLED
    logged = len(s.events)
    assert s.task_finished("a", 2.0) == []
    assert s.task_finished("a", 2.0, attempt=1) == []
    assert s.task_failed("a", 2.0, attempt=1) == []
    assert s.state("a") is CANCELLED and len(s.events) == logged
    assert s.done


def test_cancelling_the_run_cancels_every_unfinished_task_and_stops_running_ones() -> None:
    s = Scheduler(graph(Task("a"), Task("b"), Task("c", depends_on=("a",))), [spec("A"), spec("B")])
    s.start(0.0)
    s.task_finished("b", 1.0)
    out = s.cancel(now=2.0, reason="stop")
    assert out == [Cancel("a", "A", "stop")]
    assert [s.state(t) for t in "abc"] == [CANCELLED, DONE, CANCELLED]
    assert s.done and s.agents["A"].free == 1


# ============================================================================ dataflow


def test_task_becomes_ready_only_when_every_input_is_done() -> None:
    s = Scheduler(graph(Task("a"), Task("b"), Task("c", depends_on=("a", "b"))), [spec("A", slots=3)])
    assert s.start(0.0) == [Dispatch("a", "A", 1), Dispatch("b", "A", 1)]
    assert s.task_finished("a", 1.0) == []
    assert s.state("c") is P
    assert s.task_finished("b", 2.0) == [Dispatch("c", "A", 1)]


def test_free_slot_takes_the_highest_priority_ready_task() -> None:
    g = graph(Task("low", priority=1), Task("high", priority=5), Task("mid", priority=3))
    s = Scheduler(g, [spec("A")], priority=UserPriority())
    assert s.start(0.0) == [Dispatch("high", "A", 1)]
    assert s.task_finished("high", 1.0) == [Dispatch("mid", "A", 1)]
    assert s.task_finished("mid", 2.0) == [Dispatch("low", "A", 1)]


def test_equal_priorities_go_first_ready_first() -> None:
    s = Scheduler(graph(Task("x"), Task("y"), Task("z")), [spec("A")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("x", "A", 1)]
    assert s.task_finished("x", 1.0) == [Dispatch("y", "A", 1)]


def test_dispatch_event_records_when_the_task_became_ready() -> None:
    s = Scheduler(graph(Task("a"), Task("b")), [spec("A")], priority=Fifo())
    s.start(0.0)
    s.task_finished("a", 2.5)
    (ev,) = [e for e in s.events if e.kind == "dispatched" and e.task == "b"]
    assert (ev.time, ev.data["ready_at"]) == (2.5, 0.0)


# ============================================================================ retries


def test_failed_attempt_is_retried_after_exponential_backoff() -> None:
    s = Scheduler(graph(Task("a", retries=2)), [spec("A")], backoff=NO_JITTER)
    s.start(0.0)
    assert s.task_failed("a", 1.0, error="boom") == [Retry("a", 3.0, 2, "boom")]
    assert s.state("a") is B and s.next_wakeup == 3.0
    assert s.agents["A"].free == 1  # the slot is given back while it waits
    assert s.tick(2.99) == [] and s.state("a") is B
    assert s.tick(3.0) == [Dispatch("a", "A", 2)]
    assert s.task_failed("a", 4.0, error="boom") == [Retry("a", 10.0, 3, "boom")]  # 2 * 3
    assert s.tick(10.0) == [Dispatch("a", "A", 3)]
    s.task_finished("a", 11.0)
    assert s.done and kinds(s, "a") == ["dispatched", "retry", "dispatched", "retry", "dispatched", "finished"]


def test_exhausted_retries_fail_the_task_and_cancel_everything_downstream() -> None:
    g = graph(
        Task("a", retries=1),
        Task("b", depends_on=("a",)),
        Task("c", depends_on=("b",)),
        Task("d", depends_on=("a", "e")),
        Task("e"),
    )
    s = Scheduler(g, [spec("A"), spec("B")], backoff=NO_JITTER)
    s.start(0.0)
    s.task_failed("a", 1.0, error="e1")
    s.tick(3.0)
    out = s.task_failed("a", 4.0, error="e2")
    assert out == []  # nothing was running downstream, nothing new can start
    assert [s.state(t) for t in "abcd"] == [FAILED, CANCELLED, CANCELLED, CANCELLED]
    failed = [e for e in s.events if e.kind == "failed"]
    assert [(e.task, e.data["error"]) for e in failed] == [("a", "e2")]
    reasons = {e.task: e.data["reason"] for e in s.events if e.kind == "cancelled"}
    assert reasons == {t: "upstream task 'a' failed" for t in "bcd"}
    assert s.state("e") is X
    s.task_finished("e", 5.0)
    assert s.done and s.counts == {**s.counts, "done": 1, "failed": 1, "cancelled": 3}


def test_non_retryable_error_fails_at_once_despite_retries_left() -> None:
    s = Scheduler(graph(Task("a", retries=5), Task("b", depends_on=("a",))), [spec("A")])
    s.start(0.0)
    assert s.task_failed("a", 1.0, error="bad request", retryable=False) == []
    assert s.state("a") is FAILED and s.state("b") is CANCELLED and s.done


def test_retry_after_is_a_floor_on_the_backoff() -> None:
    slow = Scheduler(graph(Task("a", retries=1)), [spec("A")], backoff=Backoff(base_s=0.5, jitter=0.0))
    slow.start(0.0)
    assert slow.task_failed("a", 2.0, error="429", retry_after=10.0) == [Retry("a", 12.0, 2, "429")]
    fast = Scheduler(graph(Task("a", retries=1)), [spec("A")], backoff=Backoff(base_s=0.5, jitter=0.0))
    fast.start(0.0)
    assert fast.task_failed("a", 2.0, error="429", retry_after=0.1) == [Retry("a", 2.5, 2, "429")]


def test_backoff_jitter_is_seeded() -> None:
    def not_before(seed: int) -> float:
        s = Scheduler(graph(Task("a", retries=1)), [spec("A")], backoff=Backoff(base_s=1.0, jitter=0.5), seed=seed)
        s.start(0.0)
        (retry,) = s.task_failed("a", 0.0)
        assert isinstance(retry, Retry)
        return retry.not_before

    assert not_before(7) == not_before(7)
    assert 0.5 <= not_before(7) <= 1.5
    assert len({not_before(seed) for seed in range(5)}) > 1


def test_zero_backoff_redispatches_in_the_same_call() -> None:
    s = Scheduler(graph(Task("a", retries=1)), [spec("A")], backoff=Backoff(base_s=0.0, jitter=0.0))
    s.start(0.0)
    assert s.task_failed("a", 1.0) == [Dispatch("a", "A", 2)]
    assert kinds(s, "a") == ["dispatched", "retry", "dispatched"]


def test_failover_moves_the_task_to_another_agent_after_repeated_failures() -> None:
    s = Scheduler(
        graph(Task("a", retries=3)),
        [spec("A"), spec("B")],
        backoff=Backoff(base_s=0.0, jitter=0.0),
        failover_after=2,
    )
    assert s.start(0.0) == [Dispatch("a", "A", 1)]
    assert s.task_failed("a", 1.0) == [Dispatch("a", "A", 2)]  # one failure: A still preferred
    assert s.task_failed("a", 2.0) == [Dispatch("a", "B", 3)]  # two on A: go elsewhere
    assert s.task_failed("a", 3.0) == [Dispatch("a", "B", 4)]


def test_failover_falls_back_to_the_only_capable_agent() -> None:
    s = Scheduler(
        graph(Task("a", skills=frozenset({"code"}), retries=2)),
        [spec("coder", "code"), spec("writer", "write")],
        backoff=Backoff(base_s=0.0, jitter=0.0),
        failover_after=1,
    )
    s.start(0.0)
    assert s.task_failed("a", 1.0) == [Dispatch("a", "coder", 2)]


def test_failover_falls_back_to_the_failing_agent_when_the_others_have_no_slots() -> None:
    s = Scheduler(
        graph(Task("a", retries=2)),
        [spec("A"), spec("B")],
        backoff=Backoff(base_s=0.0, jitter=0.0),
        failover_after=1,
    )
    s.set_slots("B", 0, now=0.0)
    assert s.start(0.0) == [Dispatch("a", "A", 1)]
    assert s.task_failed("a", 1.0) == [Dispatch("a", "A", 2)]  # waiting for B would never end
    assert s.set_slots("B", 1, now=1.5) == []
    assert s.task_failed("a", 2.0) == [Dispatch("a", "B", 3)]  # B has a slot again: fail over


@pytest.mark.parametrize(
    "policy", [RoundRobin, WeightedRoundRobin, RandomAssign, LeastLoaded, CapabilityMatch, EarliestFinish]
)
def test_task_avoiding_a_free_agent_does_not_keep_other_work_off_it(policy: type) -> None:
    # "t" failed on A and avoids it; B is busy with "long".  When A frees up, "u" (lower
    # priority, able to run anywhere) must take A rather than idle behind "t".
    g = graph(
        Task("t", retries=3, priority=10),
        Task("long", duration=10, priority=5),
        Task("p", priority=1),
        Task("u", priority=0, depends_on=("p",)),
    )
    s = Scheduler(g, [spec("A"), spec("B")], priority=UserPriority(), assign=policy(), failover_after=1,
                  backoff=Backoff(base_s=0.5, jitter=0.0), seed=0)
    first = s.start(0.0)
    t_agent = next(d.agent for d in first if d.task == "t")
    other = "B" if t_agent == "A" else "A"
    assert s.task_failed("t", 0.5) == [Retry("t", 1.0, 2, ""), Dispatch("p", t_agent, 1)]
    assert s.tick(1.0) == []  # t is ready but avoids its agent, which runs p; the other runs long
    assert s.task_finished("p", 1.5) == [Dispatch("u", t_agent, 1)]
    assert s.agent_of("long") == other and s.state("t") is R
    assert s.task_finished("long", 10.0) == [Dispatch("t", other, 2)]


# ============================================================================ aging


def _stream(aging: float, rounds: int) -> tuple[Scheduler, float | None]:
    """One agent; 'low' (priority 0) waits while a high-priority task (10) arrives every
    second just before the running one ends.  Returns when 'low' was dispatched."""
    s = Scheduler(graph(Task("low", priority=0.0), Task("h0", priority=10.0)), [spec("A")],
                  priority=UserPriority(aging=aging))
    assert s.start(0.0) == [Dispatch("h0", "A", 1)]
    running = "h0"
    for i in range(1, rounds + 1):
        now = float(i)
        s.tasks_added([Task(f"h{i}", priority=10.0)], now=now)
        (d,) = s.task_finished(running, now)
        assert isinstance(d, Dispatch)
        if d.task == "low":
            return s, now
        running = d.task
    return s, None


def test_without_aging_a_stream_of_urgent_tasks_starves_a_low_priority_one() -> None:
    s, when = _stream(aging=0.0, rounds=100)
    assert when is None and s.state("low") is R


def test_aging_lets_a_low_priority_task_overtake_newer_urgent_ones() -> None:
    # Effective priority 0 + 0.5 * 20 = 10 ties a newcomer's 10 at t = 20; ties go to
    # the task that became ready first.
    s, when = _stream(aging=0.5, rounds=100)
    assert when == 20.0
    assert s.state("low") is X


# ============================================================================ expansion


def _subtasks() -> Expansion:
    return Expansion(
        (
            Task("s1"),
            Task("s2"),
            Task("s3"),
            Task("join", depends_on=("s1", "s2", "s3")),
        )
    )


def test_expansion_grows_the_graph_and_the_parents_successor_waits_for_the_join() -> None:
    s = Scheduler(graph(Task("a", expandable=True), Task("b", depends_on=("a",))), [spec("A", slots=3)],
                  priority=Fifo())
    assert s.start(0.0) == [Dispatch("a", "A", 1)]
    out = s.task_finished("a", 1.0, expansion=_subtasks())
    assert out == [Dispatch("s1", "A", 1), Dispatch("s2", "A", 1), Dispatch("s3", "A", 1)]
    g = s.graph
    assert len(g) == 6
    assert all(list(g.predecessors(t)) == ["a"] for t in ("s1", "s2", "s3"))
    assert set(g.predecessors("b")) == {"a", "join"}
    assert s.state("b") is P
    s.task_finished("s1", 2.0)
    s.task_finished("s2", 2.0)
    assert s.task_finished("s3", 2.5) == [Dispatch("join", "A", 1)]
    assert s.state("b") is P
    assert s.task_finished("join", 3.0) == [Dispatch("b", "A", 1)]
    s.task_finished("b", 4.0)
    assert s.done
    added = [e for e in s.events if e.kind == "added"]
    assert [(e.data["by"], e.data["tasks"]) for e in added] == [("a", ["s1", "s2", "s3", "join"])]
    report = build_report(s.events, s.graph)
    assert report.tasks["total"] == 6 and report.tasks["done"] == 6


def test_expansion_without_rewire_leaves_the_successor_free_to_start() -> None:
    s = Scheduler(graph(Task("a"), Task("b", depends_on=("a",))), [spec("A", slots=4)], priority=Fifo())
    s.start(0.0)
    exp = Expansion((Task("s1"), Task("s2")), rewire=False)
    out = s.task_finished("a", 1.0, expansion=exp)
    assert sorted(d.task for d in out) == ["b", "s1", "s2"]


def test_expansion_is_not_rewired_into_a_successor_that_was_cancelled() -> None:
    s = Scheduler(graph(Task("a"), Task("b", depends_on=("a",)), Task("c", depends_on=("a",))), [spec("A", slots=2)])
    s.start(0.0)
    s.cancel("b", now=0.5)
    out = s.task_finished("a", 1.0, expansion=Expansion((Task("x"),)))
    assert out == [Dispatch("x", "A", 1)]
    assert s.state("a") is DONE and s.state("b") is CANCELLED
    assert set(s.graph.predecessors("c")) == {"a", "x"} and list(s.graph.predecessors("b")) == ["a"]
    s.task_finished("x", 2.0)
    s.task_finished("c", 3.0)
    assert s.done


def test_edges_into_started_tasks_are_refused_and_the_graph_is_unchanged() -> None:
    s = Scheduler(graph(Task("a"), Task("r"), Task("q", depends_on=("a",))), [spec("A", slots=2)], priority=Fifo())
    s.start(0.0)  # a and r run
    s.task_finished("a", 1.0)  # q runs
    before = (s.graph.ids, sorted(s.graph.edges))
    with pytest.raises(GraphError, match="cannot add edge 'n' -> 'r': task 'r' is already running"):
        s.tasks_added([Task("n")], [("n", "r")], now=1.5)
    with pytest.raises(GraphError, match="task 'a' is already done"):
        s.tasks_added([Task("n")], [("n", "a")], now=1.5)
    assert (s.graph.ids, sorted(s.graph.edges)) == before


def test_expansion_with_an_edge_into_a_running_task_is_refused() -> None:
    s = Scheduler(graph(Task("a"), Task("sib")), [spec("A", slots=2)])
    s.start(0.0)
    bad = Expansion((Task("x"),), edges=(("x", "sib"),))
    with pytest.raises(GraphError, match="task 'sib' is already running"):
        s.task_finished("a", 1.0, expansion=bad)
    assert "x" not in s.graph and s.state("a") is X


def test_new_edge_into_a_ready_task_makes_it_wait_again() -> None:
    s = Scheduler(graph(Task("a"), Task("b")), [spec("A")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("a", "A", 1)]
    assert s.state("b") is R
    assert s.tasks_added([], [("a", "b")], now=0.5) == []
    assert s.state("b") is P
    assert s.task_finished("a", 1.0) == [Dispatch("b", "A", 1)]


def test_new_edge_from_a_failed_task_cancels_its_target() -> None:
    s = Scheduler(graph(Task("f"), Task("p"), Task("q", depends_on=("p",))), [spec("A")], priority=Fifo())
    s.start(0.0)
    s.task_failed("f", 1.0, retryable=False)  # p runs
    s.tasks_added([], [("f", "q")], now=1.5)
    assert s.state("q") is CANCELLED
    s.task_finished("p", 2.0)
    assert s.done and not s.stalled


def test_task_added_after_a_doomed_task_it_depends_on_is_cancelled_too() -> None:
    s = Scheduler(graph(Task("f"), Task("p")), [spec("A")], priority=Fifo())
    s.start(0.0)
    s.task_failed("f", 1.0, retryable=False)
    # "x" is listed before "y", which depends on the failed "f".
    s.tasks_added([Task("x", depends_on=("y",)), Task("y", depends_on=("f",))], now=1.5)
    assert s.state("y") is CANCELLED and s.state("x") is CANCELLED
    s.task_finished("p", 2.0)
    assert s.done


def test_added_task_with_a_finished_input_is_ready_at_once() -> None:
    s = Scheduler(graph(Task("a")), [spec("A")])
    s.start(0.0)
    s.task_finished("a", 1.0)
    assert s.done
    assert s.tasks_added([Task("b", depends_on=("a",))], now=2.0) == [Dispatch("b", "A", 1)]
    assert not s.done


# ============================================================================ agents


def _finish_all(s: Scheduler, decisions: list, now: float) -> float:
    """A minimal driver: finish running attempts one at a time, oldest first."""
    running = [(d.task, d.attempt) for d in decisions if isinstance(d, Dispatch)]
    while running:
        now += 1.0
        task, attempt = running.pop(0)
        out = s.task_finished(task, now, attempt=attempt)
        running += [(d.task, d.attempt) for d in out if isinstance(d, Dispatch)]
    return now


def test_removed_agent_has_its_running_tasks_requeued_and_the_run_completes_on_the_others() -> None:
    g = graph(*(Task(f"t{i}") for i in range(4)), Task("end", depends_on=("t0", "t1", "t2", "t3")))
    s = Scheduler(g, [spec("A"), spec("B")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("t0", "A", 1), Dispatch("t1", "B", 1)]
    out = s.agent_removed("A", now=0.5, reason="crashed")
    assert out == [Cancel("t0", "A", "crashed")]
    assert s.state("t0") is R and "A" not in s.agents
    assert [e.kind for e in s.events if e.task == "t0"] == ["dispatched", "requeued"]
    assert s.task_finished("t0", 0.7, attempt=1) == []  # the abandoned attempt's late report
    _finish_all(s, [Dispatch("t1", "B", 1)], 0.5)
    assert s.done and s.counts["done"] == 5
    after = [e for e in s.events if e.kind == "dispatched" and e.time > 0.5]
    assert {e.agent for e in after} == {"B"}
    assert s.attempt("t0") == 2


def test_removing_the_last_capable_agent_fails_its_tasks_and_cancels_what_follows() -> None:
    g = graph(
        Task("c", skills=frozenset({"code"})),
        Task("w", skills=frozenset({"write"}), depends_on=("c",)),
        Task("x", skills=frozenset({"code"})),
        Task("y", skills=frozenset({"write"})),
    )
    s = Scheduler(g, [spec("coder", "code"), spec("writer", "write")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("c", "coder", 1), Dispatch("y", "writer", 1)]
    out = s.agent_removed("coder", now=1.0)
    assert out == [Cancel("c", "coder", "agent removed")]
    assert [s.state(t) for t in "cwxy"] == [FAILED, CANCELLED, FAILED, X]
    s.task_finished("y", 2.0)
    assert s.done


def test_removing_or_resizing_an_unknown_agent_raises() -> None:
    s = Scheduler(graph(Task("a")), [spec("A")])
    with pytest.raises(SchedulingError, match="unknown agent 'Z'"):
        s.agent_removed("Z", now=0.0)
    with pytest.raises(SchedulingError, match="unknown agent 'Z'"):
        s.set_slots("Z", 2, now=0.0)
    with pytest.raises(SchedulingError, match="slots must be >= 0"):
        s.set_slots("A", -1, now=0.0)


def test_set_slots_changes_how_many_tasks_an_agent_runs_at_once() -> None:
    s = Scheduler(graph(*(Task(f"t{i}") for i in range(6))), [spec("A")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("t0", "A", 1)]
    assert s.set_slots("A", 3, now=0.1) == [Dispatch("t1", "A", 1), Dispatch("t2", "A", 1)]
    assert s.set_slots("A", 1, now=0.2) == []
    assert s.task_finished("t0", 1.0) == []  # 2 still running, 1 slot
    assert s.task_finished("t1", 1.0) == []  # 1 running, 1 slot
    assert s.task_finished("t2", 1.0) == [Dispatch("t3", "A", 1)]
    assert s.agents["A"].free == 0
    assert [e.data["slots"] for e in s.events if e.kind == "capacity"] == [3, 1]


def test_earliest_finish_does_not_wait_for_an_agent_with_no_slots() -> None:
    s = Scheduler(graph(Task("a", duration=2.0), Task("b", duration=2.0)), [spec("fast", speed=4.0), spec("slow")],
                  assign=EarliestFinish())
    s.set_slots("fast", 0, now=0.0)
    out = s.start(0.0)
    assert [d.agent for d in out] == ["slow"]
    assert not s.stalled


def test_no_slots_anywhere_means_stalled_until_capacity_returns() -> None:
    s = Scheduler(graph(Task("a"), Task("b")), [spec("A")])
    s.set_slots("A", 0, now=0.0)
    assert s.start(0.0) == []
    assert s.stalled and not s.done
    assert s.set_slots("A", 1, now=1.0) == [Dispatch("a", "A", 1)]
    assert not s.stalled


def test_stalled_ignores_a_retry_that_was_cancelled() -> None:
    s = Scheduler(graph(Task("r", retries=1), Task("q")), [spec("A")], priority=Fifo(), backoff=NO_JITTER)
    assert s.start(0.0) == [Dispatch("r", "A", 1)]
    s.set_slots("A", 0, now=0.5)
    assert s.task_failed("r", 1.0) == [Retry("r", 3.0, 2, "")]
    assert not s.stalled  # a retry is due at 3.0
    s.cancel("r", now=1.5)
    assert s.state("q") is R
    assert s.stalled and s.next_wakeup is None


def test_agent_added_mid_run_takes_waiting_work_at_once() -> None:
    s = Scheduler(graph(Task("a"), Task("b")), [spec("A")], priority=Fifo())
    s.start(0.0)
    assert s.agent_added(spec("B", speed=2.0), now=0.5) == [Dispatch("b", "B", 1)]
    assert [e.kind for e in s.events if e.agent == "B"][0] == "agent_added"


def test_duplicate_agent_names_are_refused() -> None:
    with pytest.raises(SchedulingError, match="duplicate agent name 'A'"):
        Scheduler(graph(Task("a")), [spec("A"), spec("A")])


def test_agent_state_refuses_a_non_positive_speed() -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        AgentState(AgentSpec("A", speed=0.0), 0)


def test_task_needing_an_unknown_skill_is_refused_naming_it() -> None:
    s = Scheduler(graph(Task("ok"), Task("needs", skills=frozenset({"sql", "go"}))), [spec("A", "python")])
    with pytest.raises(SchedulingError, match=r"no agent can run task 'needs' \(skills needed: go, sql\)"):
        s.start(0.0)


def test_added_task_needing_an_unknown_skill_is_refused_and_the_graph_unchanged() -> None:
    s = Scheduler(graph(Task("a")), [spec("A", "python")])
    s.start(0.0)
    with pytest.raises(SchedulingError, match="no agent can run task 'needs'"):
        s.tasks_added([Task("fine"), Task("needs", skills=frozenset({"sql"}))], now=1.0)
    assert s.graph.ids == ["a"]


def test_task_pinned_to_an_unknown_agent_is_refused_naming_task_and_agent() -> None:
    s = Scheduler(graph(Task("p", agent="ghost")), [spec("A")])
    with pytest.raises(SchedulingError, match="task 'p' is pinned to unknown agent 'ghost'"):
        s.start(0.0)


def test_pinned_task_waits_for_its_agent() -> None:
    s = Scheduler(graph(Task("x"), Task("p", agent="A")), [spec("A"), spec("B")], priority=Fifo())
    assert s.start(0.0) == [Dispatch("x", "A", 1)]
    assert s.state("p") is R and s.agents["B"].free == 1
    assert s.task_finished("x", 1.0) == [Dispatch("p", "A", 1)]


@pytest.mark.parametrize("name", sorted(ASSIGN_POLICIES))
def test_every_assignment_policy_respects_skills(name: str) -> None:
    g = graph(*(Task(f"c{i}", skills=frozenset({"code"})) for i in range(4)), *(Task(f"w{i}") for i in range(4)))
    s = Scheduler(g, [spec("coder", "code", slots=2), spec("any", "*"), spec("web", "web")],
                  assign=ASSIGN_POLICIES[name]())
    now = _finish_all(s, s.start(0.0), 0.0)
    assert s.done and now > 0
    for e in s.events:
        if e.kind == "dispatched" and e.task.startswith("c"):
            assert e.agent in ("coder", "any")


def test_restored_tasks_are_done_from_the_start_and_never_dispatched() -> None:
    graph = TaskGraph([Task("a"), Task("b", depends_on=("a",)), Task("c", depends_on=("b",)), Task("d")])
    sched = Scheduler(graph, [AgentSpec("x", slots=2)])
    first = sched.start(0.0, restored=["a"])
    assert sorted(d.task for d in first) == ["b", "d"]
    assert sched.state("a") is TaskState.DONE
    assert [e.task for e in sched.events if e.kind == "restored"] == ["a"]
    sched.task_finished("b", 1.0)
    sched.task_finished("d", 1.0)
    sched.task_finished("c", 2.0)
    assert sched.done
    assert not any(e.kind == "dispatched" and e.task == "a" for e in sched.events)
    report = build_report(sched.events, graph)
    assert report.tasks["done"] == 4


def test_restoring_an_unknown_task_is_refused() -> None:
    sched = Scheduler(TaskGraph([Task("a")]), [AgentSpec("x")])
    with pytest.raises(SchedulingError, match="cannot restore unknown tasks: 'zz'"):
        sched.start(0.0, restored=["zz"])


def test_rate_limited_failures_are_retried_without_spending_the_tasks_retries() -> None:
    sched = Scheduler(TaskGraph([Task("t", retries=0)]), [AgentSpec("x")], rate_limit_retries=3)
    sched.start(0.0)
    now = 0.0
    for _ in range(3):  # three 429s: each retried after its Retry-After, retries untouched
        out = sched.task_failed("t", now, error="429", retry_after=0.5, attempt=sched.attempt("t"))
        assert [type(d) for d in out] == [Retry] and out[0].not_before >= now + 0.5
        now = out[0].not_before
        sched.tick(now)
        assert sched.state("t") is TaskState.RUNNING
    sched.task_failed("t", now, error="429", retry_after=0.5, attempt=sched.attempt("t"))
    assert sched.state("t") is TaskState.FAILED  # the fourth exceeds rate_limit_retries
    plain = Scheduler(TaskGraph([Task("u", retries=0)]), [AgentSpec("x")])
    plain.start(0.0)
    plain.task_failed("u", 0.0, error="500")
    assert plain.state("u") is TaskState.FAILED  # an ordinary failure spends retries as before


def test_replace_puts_new_tasks_in_a_failing_tasks_place() -> None:
    graph = TaskGraph([Task("a"), Task("b", depends_on=("a",), retries=2), Task("c", depends_on=("b",))])
    sched = Scheduler(graph, [AgentSpec("x", slots=2)])
    sched.start(0.0)
    sched.task_finished("a", 1.0)
    assert sched.state("b") is TaskState.RUNNING
    with pytest.raises(SchedulingError, match="cannot replace task 'b': it is running"):
        sched.replace("b", Expansion((Task("b1"),)), now=1.0, reason="x")
    sched.task_failed("b", 2.0, error="boom")  # retried after a backoff
    assert sched.state("b") is TaskState.BACKOFF
    out = sched.replace("b", Expansion((Task("b1"), Task("b2", depends_on=("b1",)))), now=2.5, reason="failed twice")
    assert [d.task for d in out if isinstance(d, Dispatch)] == ["b1"]
    assert sched.state("b") is TaskState.DONE and sched.state("c") is TaskState.PENDING
    sched.task_finished("b1", 3.0)
    sched.tick(10.0)  # the old retry timer finds nothing to release
    assert not any(e.kind == "dispatched" and e.task == "b" and e.time > 2.0 for e in sched.events)
    sched.task_finished("b2", 4.0)
    assert sched.state("c") is TaskState.RUNNING  # c waited for the replacements
    sched.task_finished("c", 5.0)
    assert sched.done
    report = build_report(sched.events, sched.graph)
    assert report.tasks["done"] == 5
    assert [e.data["by"] for e in sched.events if e.kind == "replaced"] == [["b1", "b2"]]
