"""The scheduling state machine: events in, dispatch decisions out.

Theory of operation
-------------------
**Selection policy, in plain words.**  A task becomes *ready* the moment every task it
depends on is done — not when its "step" or "layer" is done: there are no supersteps, so
a fast branch's successor starts while a slow sibling branch is still running.  Whenever
an agent has a free slot and some ready task can run on it, the scheduler picks the ready
task with the highest priority (the priority policy's number, aged by waiting time,
first-ready first on ties) and asks the assignment policy which capable agent takes it.
That repeats until no free slot can take any ready task.

Nothing here does I/O, sleeps, or reads a clock: every call carries ``now``, and the
answer is a list of decisions (:class:`Dispatch`, :class:`Retry`, :class:`Cancel`) for
the driver to carry out.  Everything that happens is appended to ``events``.  The same
inputs always give the same decisions (policies are seeded).

**State** (everything that affects decisions lives in this file):

``graph``          the :class:`TaskGraph`; grows through :meth:`tasks_added` and expansions.
``_recs``          task id -> :class:`_Rec`: lifecycle state (see ``TRANSITIONS`` in
                   ``events.py``), ``waiting`` (inputs not yet done), attempt counters,
                   ready time, current agent, agents to avoid after repeated failure.
``_groups``        ready queues, one per *capability class* (required skills + pinned
                   agent).  Each holds a heap of ``(key, seq, rec)`` and the agents able to
                   serve it, and ``free``: the free slots among those agents.  Heap entries
                   are invalidated lazily (``rec.qseq`` must equal ``seq``).
``_agents``        name -> :class:`AgentState` (free slots, running tasks, expected ends).
``_backoff``       heap of ``(not_before, seq, rec)`` of tasks waiting to be retried.
``_prio``          task id -> priority, recomputed once per change of the graph or pool.
``_counts``        how many tasks are in each state (kept exact by :meth:`_move`).

**Invariants**: a task is dispatched only when ``waiting == 0``; an agent never has more
running tasks than slots; ``free_total`` equals the sum of positive ``free`` over agents;
each task reaches exactly one terminal state (done, failed, cancelled), after which it
is never dispatched again.

Failures: a retryable failure with retries left goes to BACKOFF and comes back when a
:meth:`tick` passes ``not_before`` (exponential backoff with seeded jitter, floored by the
server's Retry-After).  A rate-limited failure (one reported with ``retry_after``) is
retried after it *without* spending the task's retries, up to ``rate_limit_retries``
times per task: the endpoint said "later", not "no", so a 429 does not become a user's
failure while the endpoint keeps answering.  After ``failover_after`` failures on one agent, the task avoids
that agent when another capable one with slots exists.  A task that fails for good
cancels every task downstream of it (they can never get their inputs), and so does a
failed or cancelled task that new work is made to depend on.

**Budgets** (``budget=``, see ``budget.py``): ``_meter`` counts what the run used
(tokens and cost from each ``task_finished`` usage, one task per dispatched attempt).
Before each dispatch :meth:`_fill` asks it whether a limit is reached; the deadline is
checked on every call that carries ``now``, even when no slot is free.  When a limit is
reached the run *stops*, once: one ``stopped`` event, ``stop_reason`` set, every task not
started (pending, ready, waiting for a retry, or added later) cancelled with that reason,
and nothing dispatched again.  Attempts running at that moment may finish (their results
and usage are kept; a failure is no longer retried), except at a deadline, which cancels
them too.  A budget reached when nothing is left to dispatch stops nothing.

**Adaptation** (the verbs an adaptive manager uses, see ``paragents.adaptive``; each logs
an ``adapted`` event ``{"control", "reason", ...}``; drivers may annotate that kind too):

* :meth:`update_estimates` — new duration estimates for tasks not yet started.  They are
  stored in the graph itself (``graph.replace_task``: ``Task.duration`` *is* the estimate),
  so priorities, the expected ends of EFT assignment and every policy see them.  The
  priorities of the changed tasks and of their unfinished ancestors are recomputed
  (the same incremental path as a growing graph, ``_refresh_priorities(now, changed)``).
* :meth:`hedge` — a backup attempt of a RUNNING task on another capable agent with a free
  slot.  The task then has two live attempts: ``rec.attempt``/``rec.agent`` (the newest)
  and ``rec.backup = (attempt, agent)``; each holds a slot on its own agent (``running``
  is keyed by task id, and the two agents differ).  The first ``task_finished`` of either
  wins; the other attempt is *abandoned* (an ``abandoned`` event and a :class:`Cancel`
  naming its attempt).  A failure of one while the other runs abandons only the failed
  one (and counts against its agent for failover); the task goes on.  Cancelling the
  task cancels both.  A later report of an abandoned attempt is stale and ignored.
* :meth:`set_avoided` — an agent seen to be slow or failing gets no new work while
  another capable agent with slots exists (queued work is not bound to agents, so it
  simply goes elsewhere); running work is left alone.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .agent_state import AgentLike, AgentState
from .budget import Budget, BudgetMeter, Stop
from .errors import GraphError, SchedulingError
from .events import (
    TRANSITIONS,
    Cancel,
    Decision,
    Dispatch,
    Event,
    Expansion,
    Retry,
    TaskState,
)
from .graph import Task, TaskGraph
from .policies.assign import AssignPolicy, EarliestFinish
from .policies.priority import CriticalPath, PriorityPolicy
from .policies.retry import Backoff

__all__ = ["Scheduler"]

PENDING = TaskState.PENDING
READY = TaskState.READY
RUNNING = TaskState.RUNNING
BACKOFF = TaskState.BACKOFF
DONE = TaskState.DONE

#: The event kinds only the scheduler writes; drivers annotate the log with other kinds
#: (``adapted`` is shared: the scheduler logs its own adaptations, drivers theirs).
_OWN_KINDS = frozenset(
    {"started", "added", "dispatched", "finished", "retry", "failed", "cancelled", "requeued", "restored", "replaced",
     "agent_added", "agent_removed", "capacity", "stopped", "abandoned"}
)

#: How many ready tasks of one queue may be passed over in one dispatch round because
#: the assignment policy prefers to wait for a busy agent.
LOOKAHEAD = 16


class _Rec:
    __slots__ = (
        "agent",
        "attempt",
        "avoid",
        "backup",
        "failed_on",
        "group",
        "qseq",
        "ready_at",
        "retries_used",
        "throttled",
        "state",
        "task",
        "waiting",
    )

    def __init__(self, task: Task) -> None:
        self.task = task
        self.state = PENDING
        self.waiting = 0
        self.attempt = 0
        self.retries_used = 0
        self.throttled = 0  # rate-limited attempts retried without spending retries
        self.ready_at = 0.0
        self.agent: str | None = None
        self.qseq = -1
        self.failed_on: dict[str, int] | None = None
        self.avoid: frozenset[str] = frozenset()
        self.group: _Group | None = None
        self.backup: tuple[int, str] | None = None  # the other live attempt of a hedged task


class _Group:
    __slots__ = ("agents", "free", "heap", "pin", "skills")

    def __init__(self, skills: frozenset[str], pin: str | None) -> None:
        self.skills = skills
        self.pin = pin
        self.agents: list[AgentState] = []
        self.free = 0
        self.heap: list[tuple[float, int, _Rec]] = []

    def accepts(self, agent: AgentState) -> bool:
        return (self.pin is None or agent.name == self.pin) and agent.can_run(self.skills)


class Scheduler:
    """Sans-I/O scheduler of one run.  See the module docstring for the rules."""

    def __init__(
        self,
        graph: TaskGraph,
        agents: Iterable[AgentLike],
        *,
        priority: PriorityPolicy | None = None,
        assign: AssignPolicy | None = None,
        backoff: Backoff | None = None,
        failover_after: int = 2,
        rate_limit_retries: int = 20,
        seed: int = 0,
        budget: Budget | None = None,
    ) -> None:
        self.graph = graph
        self.budget = budget
        self._meter = BudgetMeter(budget) if budget is not None else None
        self._stop: Stop | None = None
        self.priority = priority if priority is not None else CriticalPath()
        self.assign = assign if assign is not None else EarliestFinish()
        self.assign.reset(seed)
        self.backoff = backoff if backoff is not None else Backoff()
        self.failover_after = failover_after
        self.rate_limit_retries = rate_limit_retries
        self.seed = seed
        self._rng = random.Random(seed)
        self._agents: dict[str, AgentState] = {}
        self._next_index = 0
        self._free_total = 0
        self._recs: dict[str, _Rec] = {}
        self._groups: dict[tuple[frozenset[str], str | None], _Group] = {}
        self._backoff: list[tuple[float, int, _Rec]] = []
        self._prio: dict[str, float] = {}
        self._aging = float(getattr(self.priority, "aging", 0.0))
        # An assignment policy with ``skips`` answers None for "not this task yet" (see
        # policies/plan.py): the scheduler then looks further down the queue.
        self._skips = bool(getattr(self.assign, "skips", False))
        self._seq = 0
        self._counts: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self._started = False
        self._avoided: set[str] = set()  # agents given no new work while others can take it
        self.events: list[Event] = []
        for agent in agents:
            self._add_agent(agent)

    # ================================================================ reading
    @property
    def done(self) -> bool:
        """Every task has ended (done, failed or cancelled)."""
        c = self._counts
        return self._started and c[PENDING] + c[READY] + c[RUNNING] + c[BACKOFF] == 0

    @property
    def stalled(self) -> bool:
        """Tasks remain but nothing runs, nothing waits for a retry, and nothing can start."""
        c = self._counts
        return self._started and not self.done and c[RUNNING] == 0 and self.next_wakeup is None

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped early (``budget: max_tokens 1000 reached (1042 used)``), or None."""
        return self._stop.reason if self._stop is not None else None

    @property
    def deadline(self) -> float | None:
        """The ``now`` at which the budget's deadline stops the run (known once started), or None.
        A driver calls :meth:`tick` then, so that a run with nothing to report stops on time."""
        return self._meter.deadline if self._meter is not None else None

    @property
    def counts(self) -> dict[str, int]:
        return {s.value: n for s, n in self._counts.items()}

    @property
    def next_wakeup(self) -> float | None:
        """The earliest time a :meth:`tick` would release a retry, if any."""
        while self._backoff and self._backoff[0][2].state is not BACKOFF:
            heapq.heappop(self._backoff)
        return self._backoff[0][0] if self._backoff else None

    def state(self, task_id: str) -> TaskState:
        return self._rec(task_id).state

    def attempt(self, task_id: str) -> int:
        return self._rec(task_id).attempt

    def agent_of(self, task_id: str) -> str | None:
        return self._rec(task_id).agent

    @property
    def agents(self) -> Mapping[str, AgentState]:
        return self._agents

    def priority_of(self, task_id: str) -> float:
        return self._prio.get(task_id, 0.0)

    # ================================================================ inputs
    def start(self, now: float = 0.0, *, restored: Iterable[str] = ()) -> list[Decision]:
        """Begin the run: every task without inputs becomes ready; dispatch what fits.
        ``restored`` tasks finished in an earlier life of this run (a resume): they are
        done from the start and never dispatched."""
        if self._started:
            raise SchedulingError("scheduler already started")
        self._started = True
        if self._meter is not None:
            self._meter.start(now)
        tasks = list(self.graph)
        done = list(dict.fromkeys(restored))
        unknown = [t for t in done if t not in self.graph]
        if unknown:
            raise SchedulingError(f"cannot restore unknown tasks: {', '.join(map(repr, unknown[:5]))}")
        self._check_capable([t for t in tasks if t.id not in set(done)])
        slots = {a.name: a.slots for a in self._agents.values()}
        self.events.append(Event(now, "started", data={"tasks": len(tasks), "agents": slots}))
        self._admit(tasks, now)
        for tid in done:
            self._move(self._recs[tid], "restore")
            self.events.append(Event(now, "restored", tid))
            for s in self.graph.successors(tid):
                self._recs[s].waiting -= 1
        self._refresh_priorities(now)
        for task in tasks:
            rec = self._recs[task.id]
            if rec.waiting == 0 and rec.state is PENDING:
                self._make_ready(rec, now)
        out: list[Decision] = []
        self._fill(now, out)
        return out

    def task_finished(
        self,
        task_id: str,
        now: float,
        *,
        usage: Mapping[str, Any] | None = None,
        expansion: Expansion | None = None,
        attempt: int | None = None,
    ) -> list[Decision]:
        """``task_id`` ended well.  ``usage`` (compute/transfer seconds, tokens, cost) goes
        to the log; ``expansion`` adds tasks first (see :class:`Expansion`).  A report for
        an attempt other than the current one, or for a cancelled task, is ignored."""
        recs = self._recs
        rec = recs.get(task_id)
        if rec is None:
            raise SchedulingError(f"unknown task {task_id!r}")
        if (rec.state is not RUNNING or (attempt is not None and attempt != rec.attempt)) and self._stale(rec, attempt):
            return []
        out: list[Decision] = []
        if rec.backup is not None:
            self._settle_hedge(rec, attempt, now, out)
        if expansion is not None:
            self._expand(rec, expansion, now)
        if self._meter is not None and usage:
            self._meter.add_usage(usage)
        counts = self._counts
        counts[RUNNING] -= 1  # RUNNING --finish--> DONE, inlined from _move: the hot path
        counts[DONE] += 1
        rec.state = DONE
        self._release(rec)
        self.events.append(Event(now, "finished", task_id, rec.agent, rec.attempt, usage))
        for s in self.graph.successors(task_id):
            srec = recs[s]
            srec.waiting -= 1
            if srec.waiting == 0 and srec.state is PENDING:
                counts[PENDING] -= 1  # PENDING --inputs_ready--> READY
                counts[READY] += 1
                srec.state = READY
                self._enqueue(srec, now)
        if self._free_total > 0 or self._meter is not None:
            self._fill(now, out)
        return out

    def replace(self, task_id: str, expansion: Expansion, *, now: float, reason: str) -> list[Decision]:
        """Put ``expansion``'s tasks in the place of ``task_id``, which has not run well (a
        replan after repeated failure): its successors wait for the new tasks instead
        (rewired), and it ends as done with no result of its own.  Only a task that is not
        running may be replaced (pending, ready, or waiting for a retry)."""
        rec = self._rec(task_id)
        if rec.state not in (PENDING, READY, BACKOFF):
            raise SchedulingError(f"cannot replace task {task_id!r}: it is {rec.state.value}")
        out: list[Decision] = []
        self._expand(rec, expansion, now)
        self._move(rec, "replace")
        new = [t.id for t in expansion.tasks]
        self.events.append(Event(now, "replaced", task_id, data={"reason": reason, "by": new}))
        recs = self._recs
        for s in self.graph.successors(task_id):
            srec = recs[s]
            srec.waiting -= 1
            if srec.waiting == 0 and srec.state is PENDING:
                self._make_ready(srec, now)
        self._fill(now, out)
        return out

    def task_failed(
        self,
        task_id: str,
        now: float,
        *,
        error: str = "",
        retryable: bool = True,
        retry_after: float | None = None,
        attempt: int | None = None,
    ) -> list[Decision]:
        """An attempt of ``task_id`` failed.  Retry it (after backoff) while retries are
        left and the error is retryable; otherwise fail it and cancel what depends on it."""
        rec = self._rec(task_id)
        if self._stale(rec, attempt):
            return []
        out: list[Decision] = []
        if rec.backup is not None:  # one of two hedged attempts failed: the other goes on
            if attempt is not None and attempt == rec.backup[0]:
                gone, agent = rec.backup
            else:
                gone, agent = rec.attempt, rec.agent
                rec.attempt, rec.agent = rec.backup
            rec.backup = None
            self._release_on(agent, task_id)
            self._count_failure(rec, agent)
            data = {"reason": "its hedged twin still runs", "error": error}
            self.events.append(Event(now, "abandoned", task_id, agent, gone, data))
            self._fill(now, out)
            return out
        agent = rec.agent
        self._release(rec)
        if agent is not None:
            self._count_failure(rec, agent)
        throttled = retry_after is not None and rec.throttled < self.rate_limit_retries
        if retryable and (throttled or rec.retries_used < rec.task.retries) and self._stop is None:
            if throttled:  # the endpoint said "later", not "no": the task's retries are kept
                rec.throttled += 1
            else:
                rec.retries_used += 1
            delay = self.backoff.delay(max(rec.retries_used, 1), self._rng, retry_after)
            self._move(rec, "retry")
            not_before = now + delay
            data: dict[str, Any] = {"error": error, "not_before": not_before}
            if retry_after is not None:
                data["retry_after"] = retry_after
            self.events.append(Event(now, "retry", task_id, agent, rec.attempt, data))
            if delay <= 0.0:
                self._move(rec, "due")
                self._enqueue(rec, now)
            else:
                self._seq += 1
                heapq.heappush(self._backoff, (not_before, self._seq, rec))
                out.append(Retry(task_id, not_before, rec.attempt + 1, error))
        else:
            self._move(rec, "fail")
            failed: dict[str, Any] = {"error": error}
            if retry_after is not None:
                failed["retry_after"] = retry_after
            self.events.append(Event(now, "failed", task_id, agent, rec.attempt, failed))
            self._cancel_downstream(task_id, now, f"upstream task {task_id!r} failed", out)
        self._fill(now, out)
        return out

    def tick(self, now: float) -> list[Decision]:
        """Time has passed: release retries that are due and dispatch what fits."""
        out: list[Decision] = []
        heap = self._backoff
        while heap and heap[0][0] <= now:
            _, _, rec = heapq.heappop(heap)
            if rec.state is BACKOFF:
                self._move(rec, "due")
                self._enqueue(rec, now)
        self._fill(now, out)
        return out

    def tasks_added(
        self, tasks: Iterable[Task], edges: Iterable[tuple[str, str]] = (), *, now: float, by: str | None = None
    ) -> list[Decision]:
        """Grow the graph while it runs.  New edges may only end in tasks that have not started;
        a task given an input that already failed or was cancelled is cancelled at once."""
        out: list[Decision] = []
        self._add_tasks(list(tasks), list(edges), now, by)
        self._fill(now, out)
        return out

    def cancel(self, task_id: str | None = None, *, now: float, reason: str = "cancelled") -> list[Decision]:
        """Cancel one task and everything downstream of it, or (``task_id=None``) the run."""
        out: list[Decision] = []
        if task_id is None:
            for rec in list(self._recs.values()):
                if not rec.state.terminal:
                    self._cancel_one(rec, now, reason, out)
        else:
            rec = self._rec(task_id)
            if not rec.state.terminal:
                self._cancel_one(rec, now, reason, out)
            self._cancel_downstream(task_id, now, f"upstream task {task_id!r} cancelled", out)
        self._fill(now, out)
        return out

    def agent_added(self, agent: AgentLike, *, now: float) -> list[Decision]:
        state = self._add_agent(agent)
        self.events.append(Event(now, "agent_added", agent=state.name, data={"slots": state.slots}))
        if self._started:
            self._refresh_priorities(now)
        out: list[Decision] = []
        self._fill(now, out)
        return out

    def agent_removed(self, name: str, *, now: float, reason: str = "agent removed") -> list[Decision]:
        """The agent left: its running tasks go back to the queue (a Cancel each tells the
        driver to abandon them); tasks that no remaining agent can run fail."""
        state = self._agents.pop(name, None)
        if state is None:
            raise SchedulingError(f"unknown agent {name!r}")
        out: list[Decision] = []
        self._free_total -= max(state.free, 0)
        for g in self._groups.values():
            if state in g.agents:
                g.agents.remove(state)
                g.free -= max(state.free, 0)
        self.events.append(Event(now, "agent_removed", agent=name, data={"reason": reason}))
        for tid in list(state.running):
            rec = self._recs[tid]
            if rec.backup is not None:  # a hedged task keeps its attempt on another agent
                gone = rec.attempt
                if rec.backup[1] == name:
                    gone = rec.backup[0]
                else:
                    rec.attempt, rec.agent = rec.backup
                rec.backup = None
                out.append(Cancel(tid, name, reason, gone))
                self.events.append(Event(now, "abandoned", tid, name, gone, {"reason": reason}))
                continue
            out.append(Cancel(tid, name, reason))
            self._move(rec, "requeue")
            rec.agent = None
            self.events.append(Event(now, "requeued", tid, name, rec.attempt, {"reason": reason}))
            self._enqueue(rec, now)
        state.running.clear()
        for g in self._groups.values():
            if not g.agents:
                self._fail_orphans(g, now, out)
        if self._started:
            self._refresh_priorities(now)
        self._fill(now, out)
        return out

    def set_slots(self, name: str, slots: int, *, now: float) -> list[Decision]:
        """Change an agent's capacity (resource allocators call this each window)."""
        state = self._agents.get(name)
        if state is None:
            raise SchedulingError(f"unknown agent {name!r}")
        if slots < 0:
            raise SchedulingError(f"agent {name!r}: slots must be >= 0, got {slots}")
        self._adjust_free(state, slots - state.slots)
        state.slots = slots
        self.events.append(Event(now, "capacity", agent=name, data={"slots": slots}))
        out: list[Decision] = []
        self._fill(now, out)
        return out

    def update_estimates(self, durations: Mapping[str, float], now: float, reason: str) -> list[Decision]:
        """New duration estimates (seconds at speed 1) for tasks that have not started;
        others are skipped.  Their priorities and their unfinished ancestors' are
        recomputed; one ``adapted`` event (control ``estimates``) lists what changed."""
        changed: dict[str, float] = {}
        for tid, d in durations.items():
            rec = self._recs.get(tid)
            if rec is None or rec.state not in (PENDING, READY, BACKOFF) or not d >= 0:
                continue
            if d != rec.task.duration:
                rec.task = rec.task.evolve(duration=float(d))
                self.graph.replace_task(rec.task)
                changed[tid] = float(d)
        out: list[Decision] = []
        if not changed:
            return out
        self.events.append(
            Event(now, "adapted", data={"control": "estimates", "reason": reason, "tasks": len(changed)})
        )
        if self._started:
            self._refresh_priorities(now, self._live_ancestors(set(changed)))
        self._fill(now, out)
        return out

    def hedge(self, task_id: str, now: float, reason: str) -> list[Decision]:
        """Start a backup attempt of a RUNNING task on another capable agent with a free
        slot (chosen by the assignment policy among those).  No decision when the task is
        not running, is already hedged, the run stopped, or no such agent is free."""
        rec = self._rec(task_id)
        if rec.state is not RUNNING or rec.backup is not None or self._stop is not None or rec.group is None:
            return []
        free = [
            a for a in rec.group.agents
            if a.free > 0 and a.name != rec.agent and a.name not in rec.avoid and a.name not in self._avoided
        ]
        agent = self.assign.choose(rec.task, free, now) if free else None
        if agent is None or agent.free <= 0 or agent.name == rec.agent:
            return []
        meter = self._meter
        if meter is not None:
            if meter.reached(now) is not None:
                return []
            meter.add_dispatch()
        assert rec.agent is not None
        first = rec.attempt
        rec.backup = (first, rec.agent)
        rec.attempt += 1
        rec.agent = agent.name
        agent.running[task_id] = now + rec.task.duration / agent.speed
        self._adjust_free(agent, -1)
        data = {"control": "hedge", "reason": reason, "of_attempt": first}
        self.events.append(Event(now, "adapted", task_id, agent.name, rec.attempt, data))
        self.events.append(
            Event(now, "dispatched", task_id, agent.name, rec.attempt, {"ready_at": rec.ready_at, "hedge": True})
        )
        return [Dispatch(task_id, agent.name, rec.attempt)]

    def set_avoided(self, name: str, avoided: bool, *, now: float, reason: str) -> list[Decision]:
        """Give agent ``name`` no new work while another capable agent with slots exists
        (``avoided=True``), or take it back into service; logged as an ``adapted`` event
        (control ``avoid``).  Nothing happens when the flag does not change."""
        if name not in self._agents:
            raise SchedulingError(f"unknown agent {name!r}")
        out: list[Decision] = []
        if avoided == (name in self._avoided):
            return out
        if avoided:
            self._avoided.add(name)
        else:
            self._avoided.discard(name)
        data = {"control": "avoid", "reason": reason, "avoided": avoided}
        self.events.append(Event(now, "adapted", agent=name, data=data))
        self._fill(now, out)
        return out

    @property
    def avoided(self) -> frozenset[str]:
        """Agents currently given no new work (see :meth:`set_avoided`)."""
        return frozenset(self._avoided)

    def hedged(self, task_id: str) -> bool:
        """Whether ``task_id`` has two live attempts now."""
        return self._rec(task_id).backup is not None

    def annotate(
        self, kind: str, now: float, task: str | None = None, agent: str | None = None, data: Any = None
    ) -> None:
        """Append a driver's observation to the log (what context a prompt got, say).
        It changes no state; kinds the scheduler itself writes are refused."""
        if kind in _OWN_KINDS:
            raise SchedulingError(f"event kind {kind!r} is the scheduler's own")
        attempt = self._rec(task).attempt if task is not None else 0
        self.events.append(Event(now, kind, task, agent, attempt, data))

    # ================================================================ internals
    def _rec(self, task_id: str) -> _Rec:
        try:
            return self._recs[task_id]
        except KeyError:
            raise SchedulingError(f"unknown task {task_id!r}") from None

    def _stale(self, rec: _Rec, attempt: int | None) -> bool:
        """True for a late report the driver could not avoid (the attempt was cancelled,
        requeued or superseded); an error for a report that cannot be right."""
        if rec.state is RUNNING:
            return (
                attempt is not None
                and attempt != rec.attempt
                and (rec.backup is None or attempt != rec.backup[0])
            )
        if rec.state.terminal or attempt is not None:
            return True
        raise SchedulingError(f"task {rec.task.id!r} is {rec.state.value}, not running")

    def _move(self, rec: _Rec, trigger: str) -> None:
        old = rec.state
        new = TRANSITIONS.get((old, trigger))
        if new is None:
            raise SchedulingError(f"task {rec.task.id!r}: illegal transition {trigger!r} from state {old.value!r}")
        c = self._counts
        c[old] -= 1
        c[new] += 1
        rec.state = new

    def _add_agent(self, agent: AgentLike) -> AgentState:
        if agent.name in self._agents:
            raise SchedulingError(f"duplicate agent name {agent.name!r}")
        state = AgentState(agent, self._next_index)
        self._next_index += 1
        self._agents[state.name] = state
        self._free_total += state.free
        for g in self._groups.values():
            if g.accepts(state):
                g.agents.append(state)
                g.free += state.free
                state.groups.append(g)
        return state

    def _group(self, task: Task) -> _Group:
        key = (task.skills, task.agent)
        g = self._groups.get(key)
        if g is None:
            g = _Group(task.skills, task.agent)
            for a in self._agents.values():
                if g.accepts(a):
                    g.agents.append(a)
                    g.free += max(a.free, 0)
                    a.groups.append(g)
            self._groups[key] = g
        return g

    def _check_capable(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            if task.agent is not None and task.agent not in self._agents:
                raise SchedulingError(f"task {task.id!r} is pinned to unknown agent {task.agent!r}")
            if not self._group(task).agents:
                need = ", ".join(sorted(task.skills)) or "none"
                raise SchedulingError(f"no agent can run task {task.id!r} (skills needed: {need})")

    def _admit(self, tasks: Sequence[Task], now: float) -> None:
        """Create records for tasks just added to the graph; count their pending inputs."""
        recs = self._recs
        graph = self.graph
        for task in tasks:
            rec = _Rec(task)
            recs[task.id] = rec
            self._counts[PENDING] += 1
        doomed: list[str] = []
        for task in tasks:
            rec = recs[task.id]
            waiting = 0
            ended = None
            for p in graph.predecessors(task.id):
                pstate = recs[p].state
                if pstate is not DONE:
                    waiting += 1
                    if pstate.terminal:
                        ended = p
            rec.waiting = waiting
            if ended is not None:
                self._move(rec, "cancel")
                self.events.append(Event(now, "cancelled", task.id, data={"reason": f"upstream task {ended!r} ended"}))
                doomed.append(task.id)
        # New tasks listed before a doomed one they depend on (and existing tasks fed by
        # it through new edges) can never get their inputs either; none of them has
        # started, so no Cancel decision is needed.
        for tid in doomed:
            self._cancel_downstream(tid, now, f"upstream task {tid!r} ended", [])

    def _add_tasks(self, tasks: list[Task], edges: list[tuple[str, str]], now: float, by: str | None) -> None:
        recs = self._recs
        for u, v in edges:
            rec = recs.get(v)
            if rec is not None and rec.state not in (PENDING, READY):
                raise GraphError(f"cannot add edge {u!r} -> {v!r}: task {v!r} is already {rec.state.value}")
        self._check_capable(tasks)
        ids = set(self.graph.add(tasks, edges))
        if not self._started:
            return
        self._admit(tasks, now)
        doomed: list[tuple[str, str]] = []
        for u, v in edges:
            if v in ids:
                continue
            rec = recs[v]
            ustate = recs[u].state
            if ustate is not DONE:
                rec.waiting += 1
                if rec.state is READY:
                    self._move(rec, "new_input")
                    rec.qseq = -1
                if ustate.terminal:
                    doomed.append((u, v))
        self.events.append(
            Event(now, "added", data={"tasks": [t.id for t in tasks], "edges": [list(e) for e in edges], "by": by})
        )
        for u, v in doomed:  # a new input that failed or was cancelled: v can never run
            rec = recs[v]
            if not rec.state.terminal:
                self._cancel_one(rec, now, f"upstream task {u!r} ended", [])
                self._cancel_downstream(v, now, f"upstream task {v!r} cancelled", [])
        self._refresh_priorities(now, self._grown(ids, tasks, edges))
        for task in tasks:
            rec = recs[task.id]
            if rec.waiting == 0 and rec.state is PENDING:
                self._make_ready(rec, now)

    def _expand(self, parent: _Rec, expansion: Expansion, now: float) -> None:
        pid = parent.task.id
        tasks = [t if t.depends_on else t.evolve(depends_on=(pid,)) for t in expansion.tasks]
        edges = list(expansion.edges)
        if expansion.rewire and tasks:
            new_ids = {t.id for t in tasks}
            feeds = {d for t in tasks for d in t.depends_on} | {u for u, _ in edges}
            sinks = [t.id for t in tasks if t.id not in feeds]
            # Successors that already ended (cancelled, or failed for want of an agent)
            # wait for nothing any more: only the live ones are rewired.
            live = [s for s in self.graph.successors(pid) if s not in new_ids and not self._recs[s].state.terminal]
            edges += [(k, s) for s in live for k in sinks]
        self._add_tasks(tasks, edges, now, pid)

    def _grown(self, ids: set[str], tasks: list[Task], edges: list[tuple[str, str]]) -> set[str]:
        """Tasks whose descendants changed when ``tasks`` and ``edges`` were added: the new
        ones and every unfinished ancestor of an old task that gained a successor (an
        unfinished task's ancestors past a finished one are finished too)."""
        changed = set(ids)
        stack = [u for t in tasks for u in t.depends_on if u not in ids]
        stack += [u for u, _ in edges if u not in ids]
        recs, preds = self._recs, self.graph.predecessors
        while stack:
            u = stack.pop()
            if u in changed or recs[u].state.terminal:
                continue
            changed.add(u)
            stack.extend(preds(u))
        return changed

    def _refresh_priorities(self, now: float, changed: set[str] | None = None) -> None:
        """Recompute priorities (graph or pool changed) and re-key the ready queues: only
        those of ``changed`` when the policy is local (see ``policies/priority.py``).
        Policies with a ``prepare(scheduler, now)`` hook (``plan``) see the change first."""
        for policy in {id(p): p for p in (self.assign, self.priority)}.values():
            prepare = getattr(policy, "prepare", None)
            if prepare is not None:
                prepare(self, now)
        update = getattr(self.priority, "update", None)
        recs = self._recs.values() if changed is None or update is None else [self._recs[t] for t in changed]
        speeds: dict[str, list[float]] = {}
        group_speeds: dict[int, list[float]] = {}
        for rec in recs:
            g = rec.group
            if g is None:
                g = rec.group = self._group(rec.task)
            sp = group_speeds.get(id(g))
            if sp is None:
                sp = group_speeds[id(g)] = [a.speed for a in g.agents for _ in range(max(a.slots, 1))]
            speeds[rec.task.id] = sp
        if changed is None or update is None:
            self._prio = dict(self.priority.priorities(self.graph, speeds))
            stale: Iterable[_Group] = self._groups.values()
        else:
            self._prio.update(update(self.graph, speeds, changed, self._prio))
            stale = {id(r.group): r.group for r in recs if r.state is READY and r.group is not None}.values()
        for g in stale:
            live = [e[2] for e in g.heap if e[2].state is READY and e[2].qseq == e[1]]
            g.heap = []
            for rec in sorted(live, key=lambda r: r.qseq):
                self._push(g, rec)

    def _make_ready(self, rec: _Rec, now: float) -> None:
        self._move(rec, "inputs_ready")
        self._enqueue(rec, now)

    def _enqueue(self, rec: _Rec, now: float) -> None:
        rec.ready_at = now
        g = rec.group
        if g is None:
            g = rec.group = self._group(rec.task)
        self._push(g, rec)

    def _push(self, g: _Group, rec: _Rec) -> None:
        self._seq += 1
        rec.qseq = self._seq
        key = self._aging * rec.ready_at - self._prio.get(rec.task.id, 0.0)
        heapq.heappush(g.heap, (key, self._seq, rec))

    def _fill(self, now: float, out: list[Decision]) -> None:
        """Dispatch the best ready tasks onto free slots until nothing more fits (or a
        budget is reached: see the module docstring)."""
        meter = self._meter
        if meter is not None and self._budget_stops(now, meter, out, deadline_only=True):
            return
        if self._free_total <= 0:
            return
        groups = self._groups.values()
        assign = self.assign
        deferred: list[tuple[_Group, tuple[float, int, _Rec]]] | None = None
        held: list[AgentState] = []
        blocked: set[int] = set()
        while self._free_total > 0:
            best_g = None
            best_e = None
            for g in groups:
                heap = g.heap
                if not heap or g.free <= 0 or (blocked and id(g) in blocked):
                    continue
                while heap and (heap[0][2].state is not READY or heap[0][2].qseq != heap[0][1]):
                    heapq.heappop(heap)
                if heap and (best_e is None or heap[0] < best_e):
                    best_g, best_e = g, heap[0]
            if best_g is None or best_e is None:
                break
            rec = best_e[2]
            cands = best_g.agents
            if rec.avoid or self._avoided:  # failover: avoid agents it failed on (or slow,
                # failing ones, see set_avoided) while another one has slots
                bad = self._avoided.union(rec.avoid) if rec.avoid else self._avoided
                cands = [a for a in cands if a.name not in bad and a.slots > 0] or cands
            agent = assign.choose(rec.task, cands, now)
            heapq.heappop(best_g.heap)
            if agent is not None and agent.free > 0:
                if meter is not None:
                    if self._budget_stops(now, meter, out, deadline_only=False):
                        break
                    meter.add_dispatch()
                self._dispatch(rec, agent, now, out)
                continue
            # The policy prefers to wait (for a busy, faster agent), or this task avoids
            # the agents that are free: promise the chosen agent the time and look further
            # down this queue, a bounded number of times.
            if deferred is None:
                deferred = []
            deferred.append((best_g, best_e))
            if agent is not None:
                agent.hold_s += rec.task.duration / agent.speed
                held.append(agent)
            if len(deferred) >= LOOKAHEAD or (agent is None and cands is best_g.agents and not self._skips):
                blocked.add(id(best_g))
        if deferred:
            for g, e in deferred:
                heapq.heappush(g.heap, e)
            for a in held:
                a.hold_s = 0.0

    def _budget_stops(self, now: float, meter: BudgetMeter, out: list[Decision], *, deadline_only: bool) -> bool:
        """Whether the budget forbids dispatching now; stops the run the first time.

        Once stopped, tasks that arrived since (expansions, additions) are cancelled."""
        if self._stop is None:
            stop = meter.past_deadline(now) if deadline_only else meter.reached(now)
            if stop is None:
                return False
            c = self._counts
            if c[PENDING] + c[READY] + c[BACKOFF] + (c[RUNNING] if stop.hard else 0) == 0:
                return False  # nothing left that the stop would prevent
            self._stop = stop
            self.events.append(Event(now, "stopped", data=stop.to_dict()))
        c = self._counts
        if c[PENDING] + c[READY] + c[BACKOFF] or (self._stop.hard and c[RUNNING]):
            reason = self._stop.reason
            hard = self._stop.hard
            for rec in list(self._recs.values()):
                if not rec.state.terminal and (hard or rec.state is not RUNNING):
                    self._cancel_one(rec, now, reason, out)
        return True

    def _dispatch(self, rec: _Rec, agent: AgentState, now: float, out: list[Decision]) -> None:
        counts = self._counts
        counts[READY] -= 1  # READY --dispatch--> RUNNING, inlined from _move: the hot path
        counts[RUNNING] += 1
        rec.state = RUNNING
        rec.attempt += 1
        tid = rec.task.id
        name = agent.name
        rec.agent = name
        agent.running[tid] = now + rec.task.duration / agent.speed
        agent.free -= 1
        self._free_total -= 1
        for g in agent.groups:
            g.free -= 1  # type: ignore[attr-defined]
        self.events.append(Event(now, "dispatched", tid, name, rec.attempt, {"ready_at": rec.ready_at}))
        out.append(Dispatch(tid, name, rec.attempt))

    def _count_failure(self, rec: _Rec, agent: str) -> None:
        failed_on = rec.failed_on if rec.failed_on is not None else {}
        rec.failed_on = failed_on
        failed_on[agent] = failed_on.get(agent, 0) + 1
        if failed_on[agent] >= self.failover_after:
            rec.avoid = rec.avoid | {agent}

    def _settle_hedge(self, rec: _Rec, attempt: int | None, now: float, out: list[Decision]) -> None:
        """The first of two hedged attempts finished: it wins, the other is abandoned."""
        assert rec.backup is not None
        lost, agent = rec.backup
        if attempt is not None and attempt == lost:  # the first attempt won: swap the roles
            lost, agent, rec.attempt, rec.agent = rec.attempt, rec.agent, lost, agent
        rec.backup = None
        self._release_on(agent, rec.task.id)
        reason = f"hedged attempt {rec.attempt} finished first"
        self.events.append(Event(now, "abandoned", rec.task.id, agent, lost, {"reason": reason}))
        out.append(Cancel(rec.task.id, agent, reason, lost))

    def _live_ancestors(self, ids: set[str]) -> set[str]:
        """``ids`` and every unfinished ancestor of them: the tasks whose upward rank a
        change of ``ids``' durations changes."""
        changed = set(ids)
        stack = [u for t in ids for u in self.graph.predecessors(t)]
        recs = self._recs
        while stack:
            u = stack.pop()
            if u in changed or recs[u].state.terminal:
                continue
            changed.add(u)
            stack.extend(self.graph.predecessors(u))
        return changed

    def _release_on(self, name: str | None, task_id: str) -> None:
        agent = self._agents.get(name) if name is not None else None
        if agent is not None and agent.running.pop(task_id, None) is not None:
            self._adjust_free(agent, 1)

    def _release(self, rec: _Rec) -> None:
        """Give back the slot an attempt held (if its agent is still in the pool)."""
        agent = self._agents.get(rec.agent) if rec.agent is not None else None
        if agent is not None and agent.running.pop(rec.task.id, None) is not None:
            if agent.free >= 0:  # the common case: one more free slot
                agent.free += 1
                self._free_total += 1
                for g in agent.groups:
                    g.free += 1  # type: ignore[attr-defined]
            else:
                self._adjust_free(agent, 1)

    def _adjust_free(self, agent: AgentState, delta: int) -> None:
        before = max(agent.free, 0)
        agent.free += delta
        after = max(agent.free, 0)
        change = after - before
        if change:
            self._free_total += change
            for g in agent.groups:
                g.free += change  # type: ignore[attr-defined]

    def _cancel_one(self, rec: _Rec, now: float, reason: str, out: list[Decision]) -> None:
        agent = rec.agent if rec.state is RUNNING else None
        hedged = rec.backup is not None
        if rec.backup is not None:  # both hedged attempts stop, each named by its attempt
            twin, twin_agent = rec.backup
            rec.backup = None
            self._release_on(twin_agent, rec.task.id)
            out.append(Cancel(rec.task.id, twin_agent, reason, twin))
        if agent is not None:
            self._release(rec)
            out.append(Cancel(rec.task.id, agent, reason, rec.attempt if hedged else 0))
        self._move(rec, "cancel")
        self.events.append(Event(now, "cancelled", rec.task.id, agent, rec.attempt, {"reason": reason}))

    def _cancel_downstream(self, task_id: str, now: float, reason: str, out: list[Decision]) -> None:
        stack = list(self.graph.successors(task_id))
        recs = self._recs
        while stack:
            rec = recs[stack.pop()]
            if rec.state.terminal:
                continue
            self._cancel_one(rec, now, reason, out)
            stack.extend(self.graph.successors(rec.task.id))

    def _fail_orphans(self, g: _Group, now: float, out: list[Decision]) -> None:
        """No agent is left that can run this group's tasks: fail them and what follows."""
        key = (g.skills, g.pin)
        for rec in list(self._recs.values()):
            if rec.state.terminal or rec.state is RUNNING or (rec.task.skills, rec.task.agent) != key:
                continue
            self._move(rec, "fail")
            error = "no agent able to run it is left"
            self.events.append(Event(now, "failed", rec.task.id, None, rec.attempt, {"error": error}))
            self._cancel_downstream(rec.task.id, now, f"upstream task {rec.task.id!r} failed", out)
