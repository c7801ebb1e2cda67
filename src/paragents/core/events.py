"""What flows in and out of the scheduling core: task states, decisions and log events.

Theory of operation
-------------------
The core is an h11-style state machine.  Drivers feed it happenings (a task finished, a
task failed, time passed, an agent joined) by calling :class:`~paragents.core.scheduler.Scheduler`
methods, and get back **decisions** — :class:`Dispatch`, :class:`Retry`, :class:`Cancel`
— which they carry out.  Everything the scheduler does is also appended to its **event
log** as :class:`Event` records: the log is the run's source of truth, from which the run
report is computed and (later) from which a run is persisted, streamed and replayed.

A task's lifecycle is the table :data:`TRANSITIONS` below; :func:`transition` applies it
and refuses anything else.  Everything here is a small immutable value; decisions
and events are ``NamedTuple`` records because millions are made on the hot path and a
frozen dataclass costs three times as much to build.

Event kinds (``Event.kind``) and what ``data`` holds:

``started``      ``{"tasks": n, "agents": {name: slots}}`` when the run starts
``added``        ``{"tasks": [ids], "edges": [[u, v], ...], "by": parent or None}``
``dispatched``   task, agent, attempt; ``{"ready_at": t}``
``finished``     task, agent, attempt; usage (``compute_s``, ``transfer_s``,
                 ``prompt_tokens``, ``completion_tokens``, ``cost``) when reported
``retry``        task, agent, attempt; ``{"error": str, "not_before": t}``
``failed``       task, agent, attempt; ``{"error": str}``
``cancelled``    task, agent (if it was running); ``{"reason": str}``
``requeued``     task, agent; ``{"reason": str}`` (its agent left mid-task)
``restored``     task; ``{}``: it finished before the run was resumed, its result is kept
``endpoints``    ``{agent: endpoint}``, written by the asyncio runtime when the run starts
``replaced``     task; ``{"reason": str, "by": [ids]}``: new tasks took its place (a replan)
``agent_added`` / ``agent_removed`` / ``capacity``   agent; ``{"slots": n}``
``stopped``      ``{"budget": key, "limit": x, "used": y}``, once, when a run budget is
                 reached (see ``budget.py``); the tasks it cancels follow as ``cancelled``
``abandoned``    task, agent, attempt; ``{"reason": str}``: one of a hedged task's two
                 attempts stopped (its twin finished first, it failed while the twin runs,
                 or its agent left); the task itself goes on
``adapted``      ``{"control": name, "reason": str, ...}``: an adaptive control changed how
                 the run runs (``hedge`` with task, agent, attempt and ``of_attempt``;
                 ``estimates`` with ``tasks``; ``avoid`` with agent and ``avoided``;
                 driver-side controls such as ``concurrency`` are annotated by the driver)

``retry`` and ``failed`` also carry ``retry_after`` when the endpoint asked for one (a 429).
A hedge's backup attempt is ``dispatched`` with ``{"ready_at": t, "hedge": true}``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import SchedulingError

__all__ = [
    "TaskState",
    "TRANSITIONS",
    "transition",
    "Dispatch",
    "Retry",
    "Cancel",
    "Decision",
    "Event",
    "Expansion",
]


class TaskState(enum.StrEnum):  # str-based: hashing is C-fast on the hot path
    PENDING = "pending"  # waiting for inputs
    READY = "ready"  # inputs done, queued for an agent
    RUNNING = "running"  # dispatched to an agent
    BACKOFF = "backoff"  # failed, waiting to be retried
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED})

P, R, X, B = TaskState.PENDING, TaskState.READY, TaskState.RUNNING, TaskState.BACKOFF

#: (state, trigger) -> next state.  Anything not listed is an illegal transition.
TRANSITIONS: Mapping[tuple[TaskState, str], TaskState] = {
    (P, "inputs_ready"): R,
    (P, "restore"): TaskState.DONE,  # finished in an earlier life of a resumed run
    (P, "replace"): TaskState.DONE,  # rewritten by the planner: new tasks take its place
    (R, "replace"): TaskState.DONE,
    (B, "replace"): TaskState.DONE,
    (R, "new_input"): P,  # an edge was added into a queued task
    (R, "dispatch"): X,
    (X, "finish"): TaskState.DONE,
    (X, "fail"): TaskState.FAILED,
    (X, "retry"): B,
    (X, "requeue"): R,  # its agent left; not the task's fault
    (B, "due"): R,
    (P, "cancel"): TaskState.CANCELLED,
    (R, "cancel"): TaskState.CANCELLED,
    (X, "cancel"): TaskState.CANCELLED,
    (B, "cancel"): TaskState.CANCELLED,
    (P, "fail"): TaskState.FAILED,  # no agent can run it any more
    (R, "fail"): TaskState.FAILED,
    (B, "fail"): TaskState.FAILED,
}


def transition(task_id: str, state: TaskState, trigger: str) -> TaskState:
    """The state after ``trigger``; a clear error if the table does not allow it."""
    try:
        return TRANSITIONS[state, trigger]
    except KeyError:
        raise SchedulingError(
            f"task {task_id!r}: illegal transition {trigger!r} from state {state.value!r}"
        ) from None


class Dispatch(NamedTuple):
    """Run ``task`` on ``agent`` now.  ``attempt`` counts from 1."""

    task: str
    agent: str
    attempt: int = 1


class Retry(NamedTuple):
    """``task`` failed and will be retried; call ``tick(now)`` at or after ``not_before``."""

    task: str
    not_before: float
    attempt: int
    error: str = ""


class Cancel(NamedTuple):
    """Stop ``task`` (running on ``agent`` if not None).  ``attempt`` names the attempt to
    stop (0: every attempt of the task); a hedged task may have two live attempts, and
    the one that lost the race is cancelled alone while the task goes on."""

    task: str
    agent: str | None
    reason: str
    attempt: int = 0


Decision = Dispatch | Retry | Cancel


class Event(NamedTuple):
    """One line of the run's append-only log."""

    time: float
    kind: str
    task: str | None = None
    agent: str | None = None
    attempt: int = 0
    data: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": self.time, "kind": self.kind}
        if self.task is not None:
            out["task"] = self.task
        if self.agent is not None:
            out["agent"] = self.agent
        if self.attempt:
            out["attempt"] = self.attempt
        if self.data:
            out["data"] = dict(self.data)
        return out


@dataclass(frozen=True, slots=True)
class Expansion:
    """Tasks that a finishing task adds to the graph (dynamic decomposition).

    New tasks that depend on nothing are made to depend on the parent (they see its
    result).  With ``rewire`` (the default), the parent's successors also wait for the
    expansion's sinks, so the decomposition sits between the parent and what followed it.
    """

    tasks: tuple[Any, ...]
    edges: tuple[tuple[str, str], ...] = ()
    rewire: bool = True
