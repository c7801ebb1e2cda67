"""Run budgets: limits on tokens, cost, dispatched attempts and wall time, and their accounting.

Theory of operation
-------------------
A :class:`Budget` is a frozen set of optional limits on one run.  The
:class:`~paragents.core.scheduler.Scheduler` owns one :class:`BudgetMeter`, feeds it
what the run used, and asks it, before each dispatch, whether a limit is reached.
Like the rest of the core this module reads no clock: time arrives as ``now``.

What each limit counts:

``max_tokens``  prompt + completion tokens of every *finished* attempt, from the
                ``usage`` mapping given to ``Scheduler.task_finished`` (keys
                ``prompt_tokens`` and ``completion_tokens``, see
                :func:`~paragents.core.report.usage_dict`).  Failed attempts report no usage.
``max_cost``    the ``cost`` of the same usage mappings, summed.
``max_tasks``   attempts **dispatched**: every ``Dispatch`` decision counts one, a retry
                counts again.  This is the only limit the scheduler can hold exactly: it
                never dispatches more attempts than ``max_tasks``.
``deadline_s``  seconds of run time: ``now`` minus the ``now`` given to ``start``.

A limit is *reached* when the amount used is at least the limit.  What the scheduler
then does (documented in ``scheduler.py``): it dispatches nothing more, cancels every
task that has not started, logs one ``stopped`` event and keeps the reason in
``Scheduler.stop_reason``.  For tokens, cost and tasks the attempts already running may
finish (their work is paid for; their results and usage are kept), so a run overshoots
such a limit by at most the attempts in flight when it was reached -- one per busy
slot.  A deadline is a limit on time, so at the deadline the running attempts are
cancelled too and the run ends then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ParagentsError

__all__ = ["BUDGET_KEYS", "Budget", "BudgetError", "BudgetMeter", "Stop"]

#: The limits of a budget, in the order they are checked.
BUDGET_KEYS = ("deadline_s", "max_tasks", "max_tokens", "max_cost")


class BudgetError(ParagentsError):
    """A budget's limits are invalid (not positive, not a number of the right kind)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits on one run; ``None`` means no limit.  See the module docstring for what each counts."""

    max_tokens: int | None = None
    max_cost: float | None = None
    max_tasks: int | None = None
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        for key in ("max_tokens", "max_tasks"):
            value = getattr(self, key)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BudgetError(f"budget {key} must be a positive integer, got {value!r}")
        for key in ("max_cost", "deadline_s"):
            value = getattr(self, key)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise BudgetError(f"budget {key} must be a positive finite number, got {value!r}")

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by key."""
        return {k: getattr(self, k) for k in BUDGET_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a run stopped: which limit, its value and the amount used when it was seen reached."""

    budget: str
    limit: float
    used: float

    @property
    def hard(self) -> bool:
        """Whether running attempts are cancelled too (only at a deadline)."""
        return self.budget == "deadline_s"

    @property
    def reason(self) -> str:
        """``budget: max_tokens 1000 reached (1042 used)``."""
        return f"budget: {self.budget} {self.limit:g} reached ({self.used:g} used)"

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "limit": self.limit, "used": self.used}


class BudgetMeter:
    """What a run has used against its :class:`Budget`.

    ``tokens`` and ``cost`` grow with :meth:`add_usage`, ``tasks`` with
    :meth:`add_dispatch`; ``deadline`` is the absolute ``now`` of the deadline once
    :meth:`start` has been called (``None`` without one).
    """

    __slots__ = ("budget", "cost", "deadline", "started_at", "tasks", "tokens")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.tokens = 0
        self.cost = 0.0
        self.tasks = 0
        self.started_at = 0.0
        self.deadline: float | None = None

    def start(self, now: float) -> None:
        self.started_at = now
        if self.budget.deadline_s is not None:
            self.deadline = now + self.budget.deadline_s

    def add_usage(self, usage: Mapping[str, Any]) -> None:
        self.tokens += int(usage.get("prompt_tokens", 0) or 0) + int(usage.get("completion_tokens", 0) or 0)
        self.cost += float(usage.get("cost", 0.0) or 0.0)

    def add_dispatch(self) -> None:
        self.tasks += 1

    def past_deadline(self, now: float) -> Stop | None:
        """A :class:`Stop` when ``now`` is at or past the deadline."""
        if self.deadline is not None and now >= self.deadline:
            return Stop("deadline_s", self.budget.deadline_s or 0.0, now - self.started_at)
        return None

    def reached(self, now: float) -> Stop | None:
        """The first limit reached at ``now`` (deadline, tasks, tokens, cost), or None."""
        b = self.budget
        stop = self.past_deadline(now)
        if stop is not None:
            return stop
        if b.max_tasks is not None and self.tasks >= b.max_tasks:
            return Stop("max_tasks", b.max_tasks, self.tasks)
        if b.max_tokens is not None and self.tokens >= b.max_tokens:
            return Stop("max_tokens", b.max_tokens, self.tokens)
        if b.max_cost is not None and self.cost >= b.max_cost:
            return Stop("max_cost", b.max_cost, self.cost)
        return None
