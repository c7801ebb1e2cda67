"""The run report, computed from a run's event log alone.

Theory of operation
-------------------
Every driver (asyncio, virtual clock, Ray) produces the same event log, so the report is
a pure function of ``(events, graph)``: no driver measures anything here.

* **makespan** — from the ``started`` event to the last event of the run.
* **busy time** of an agent — the sum over the attempts it ran of dispatch -> end of that
  attempt (finished, failed, retry, cancelled or requeued).
* **utilisation** — busy time / (slots x makespan), per agent with its largest slot count
  during the run, and overall.
* **executed critical path** — the longest path through the graph as it grew, weighted by
  the *measured* duration of each task's successful attempt (0 for tasks that did not run).
* **lower bound** — ``max(executed critical path, total busy / total slots)``.
* **serial time** — the sum of the successful attempts' durations; **speedup** = serial /
  makespan.
* **stopped** — ``None``, or the data of the run's ``stopped`` event (``{"budget",
  "limit", "used"}``) when a run budget stopped it early.
* **hedges** — backup attempts started for stragglers (``dispatched`` with ``hedge``).  A
  hedged task counts once: its timing is its winning attempt's (start, agent), both
  attempts' slot time counts as busy, and the losing attempt ends ``abandoned``.
* **adaptations** — how many ``adapted`` events each control logged (``{"hedge": 3,
  "concurrency": 7, ...}``).
* **latency split** per task, from first becoming ready to finishing: ``T = Tc + Tt + Tp``.
  Compute ``Tc`` and transfer ``Tt`` are what the driver reported with ``finished`` (a
  plain callable reports its run time as compute); processing ``Tp`` is the rest —
  queueing in the scheduler, admission waits, dispatch, retries.

The JSON keys of :meth:`RunReport.to_dict` listed in DESIGN.md are a public contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .analysis import critical_path_length
from .events import Event
from .graph import TaskGraph

__all__ = ["RunReport", "TaskTiming", "build_report", "usage_dict"]

_ATTEMPT_ENDS = frozenset({"finished", "failed", "retry", "cancelled", "requeued", "abandoned"})


@dataclass(slots=True)
class TaskTiming:
    """What happened to one task: when it was ready, ran, ended, where, and its latency split."""

    id: str
    state: str = "pending"
    agent: str | None = None
    ready_at: float | None = None
    start: float | None = None
    end: float | None = None
    attempts: int = 0
    compute_s: float = 0.0
    transfer_s: float = 0.0
    processing_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    error: str | None = None

    @property
    def duration(self) -> float:
        """Run time of the last attempt (dispatch -> end)."""
        return (self.end - self.start) if self.start is not None and self.end is not None else 0.0


@dataclass(slots=True, repr=False)
class RunReport:
    run_id: str
    makespan_s: float
    critical_path_s: float
    lower_bound_s: float
    serial_time_s: float
    speedup: float
    utilization: float
    agents: dict[str, dict[str, float]]
    tasks: dict[str, int]
    latency: dict[str, float]
    tokens: dict[str, int]
    cost: float
    answer: Any = None
    timings: dict[str, TaskTiming] = field(default_factory=dict)
    stopped: dict[str, Any] | None = None
    hedges: int = 0
    adaptations: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"RunReport({self.run_id!r}, makespan_s={self.makespan_s:.6g}, tasks={self.tasks})"

    @property
    def efficiency(self) -> float:
        """lower bound / makespan: 1.0 means no schedule could have been shorter."""
        return self.lower_bound_s / self.makespan_s if self.makespan_s > 0 else 1.0

    def to_dict(self, *, per_task: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "makespan_s": self.makespan_s,
            "critical_path_s": self.critical_path_s,
            "lower_bound_s": self.lower_bound_s,
            "serial_time_s": self.serial_time_s,
            "speedup": self.speedup,
            "utilization": self.utilization,
            "efficiency": self.efficiency,
            "agents": self.agents,
            "tasks": self.tasks,
            "latency": self.latency,
            "tokens": self.tokens,
            "cost": self.cost,
            "stopped": self.stopped,
            "hedges": self.hedges,
            "adaptations": self.adaptations,
        }
        if self.answer is not None:
            out["answer"] = self.answer
        if per_task:
            out["per_task"] = [
                {k: getattr(t, k) for k in TaskTiming.__slots__} for t in self.timings.values()  # type: ignore[attr-defined]
            ]
        return out


def build_report(
    events: Iterable[Event], graph: TaskGraph, *, run_id: str = "", answer: Any = None
) -> RunReport:
    """Compute the report of a run from its events and its (final) graph."""
    timings: dict[str, TaskTiming] = {t.id: TaskTiming(t.id) for t in graph}
    slots: dict[str, int] = {}
    busy: dict[str, float] = {}
    ran: dict[str, int] = {}
    open_attempts: dict[tuple[str, int], tuple[str, float]] = {}
    first_ready: dict[str, float] = {}
    retried: set[str] = set()
    stopped: dict[str, Any] | None = None
    hedges = 0
    adaptations: dict[str, int] = {}
    t0: float | None = None
    t_end = 0.0

    for e in events:
        if t0 is None:
            t0 = e.time
        t_end = max(t_end, e.time)
        kind = e.kind
        if kind == "started":
            for name, n in (e.data or {}).get("agents", {}).items():
                slots[name] = max(slots.get(name, 0), int(n))
            continue
        if kind in ("agent_added", "capacity"):
            assert e.agent is not None
            slots[e.agent] = max(slots.get(e.agent, 0), int((e.data or {}).get("slots", 0)))
            continue
        if kind == "stopped":
            stopped = dict(e.data or {})
            continue
        if kind == "adapted":
            control = str((e.data or {}).get("control", ""))
            adaptations[control] = adaptations.get(control, 0) + 1
            continue
        if e.task is None:
            continue
        tt = timings.setdefault(e.task, TaskTiming(e.task))
        if kind in ("restored", "replaced"):  # done before a resume, or done by its replacements
            tt.state = "done"
            continue
        if kind == "dispatched":
            assert e.agent is not None
            ready_at = float((e.data or {}).get("ready_at", e.time))
            first_ready.setdefault(e.task, ready_at)
            open_attempts[e.task, e.attempt] = (e.agent, e.time)
            if (e.data or {}).get("hedge"):  # a backup attempt: the task's own timing goes on
                hedges += 1
                tt.attempts = e.attempt
                continue
            tt.start, tt.agent, tt.attempts, tt.state = e.time, e.agent, e.attempt, "running"
            continue
        if kind in _ATTEMPT_ENDS:
            began = open_attempts.pop((e.task, e.attempt), None)
            if began is not None:
                agent, start = began
                busy[agent] = busy.get(agent, 0.0) + (e.time - start)
                if kind == "finished":
                    ran[agent] = ran.get(agent, 0) + 1
            if kind == "abandoned":  # one of two hedged attempts: the task goes on
                continue
            data = e.data or {}
            if kind == "finished":
                if began is not None:  # the winning attempt's timing (a hedge may have won)
                    tt.agent, tt.start = began
                tt.state, tt.end = "done", e.time
                ran_for = e.time - tt.start if tt.start is not None else 0.0
                tt.compute_s += float(data.get("compute_s", ran_for))
                tt.transfer_s += float(data.get("transfer_s", 0.0))
                tt.prompt_tokens += int(data.get("prompt_tokens", 0))
                tt.completion_tokens += int(data.get("completion_tokens", 0))
                tt.cost += float(data.get("cost", 0.0))
            elif kind == "retry":
                retried.add(e.task)
                tt.state = "backoff"
            elif kind in ("failed", "cancelled"):
                tt.state, tt.end = kind, e.time
                tt.error = str(data.get("error") or data.get("reason") or "") or None
            elif kind == "requeued":
                tt.state = "ready"

    start = t0 if t0 is not None else 0.0
    makespan = max(t_end - start, 0.0)
    done = [t for t in timings.values() if t.state == "done"]
    for t in done:
        ready = first_ready.get(t.id, t.start or 0.0)
        total = (t.end or 0.0) - ready
        t.ready_at = ready - start
        t.processing_s = max(total - t.compute_s - t.transfer_s, 0.0)
    for t in timings.values():  # report times relative to the run's start
        if t.start is not None:
            t.start -= start
        if t.end is not None:
            t.end -= start

    measured = {t.id: t.duration for t in done}
    cp = critical_path_length(graph, {tid: measured.get(tid, 0.0) for tid in timings}) if len(graph) else 0.0
    total_busy = sum(busy.values())
    total_slots = sum(slots.values()) or 1
    serial = sum(measured.values())
    agents = {
        name: {
            "utilization": (busy.get(name, 0.0) / (n * makespan)) if n and makespan > 0 else 0.0,
            "tasks": ran.get(name, 0),
            "busy_s": busy.get(name, 0.0),
            "slots": n,
        }
        for name, n in slots.items()
    }
    states = [t.state for t in timings.values()]
    return RunReport(
        run_id=run_id,
        makespan_s=makespan,
        critical_path_s=cp,
        lower_bound_s=max(cp, total_busy / total_slots),
        serial_time_s=serial,
        speedup=serial / makespan if makespan > 0 else 0.0,
        utilization=total_busy / (total_slots * makespan) if makespan > 0 else 0.0,
        agents=agents,
        tasks={
            "total": len(timings),
            "done": states.count("done"),
            "failed": states.count("failed"),
            "cancelled": states.count("cancelled"),
            "retried": len(retried),
        },
        latency={
            "compute_s": sum(t.compute_s for t in done),
            "transfer_s": sum(t.transfer_s for t in done),
            "processing_s": sum(t.processing_s for t in done),
        },
        tokens={
            "prompt": sum(t.prompt_tokens for t in timings.values()),
            "completion": sum(t.completion_tokens for t in timings.values()),
        },
        cost=sum(t.cost for t in timings.values()),
        answer=answer,
        timings=timings,
        stopped=stopped,
        hedges=hedges,
        adaptations=adaptations,
    )


def usage_dict(
    compute_s: float = 0.0,
    transfer_s: float = 0.0,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: float = 0.0,
) -> Mapping[str, float]:
    """The ``usage`` mapping drivers pass to ``Scheduler.task_finished``."""
    return {
        "compute_s": compute_s,
        "transfer_s": transfer_s,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
    }
