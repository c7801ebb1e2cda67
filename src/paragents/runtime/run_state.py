"""What every driver of a real run keeps, whatever carries the work out.

Theory of operation
-------------------
The asyncio runtime (:mod:`paragents.runtime.driver`) and the Ray driver
(:mod:`paragents.distributed.driver`) differ in how an attempt is performed, not in the
run around it.  :class:`RunState` is that shared part: the agents by name (a duplicate
name is refused), the one :class:`~paragents.core.scheduler.Scheduler` with the
policies resolved from their names, the results and errors by task, and the log's
hand-off to its two readers — the ``on_event`` hook (:meth:`_emit`) and a durable
store's :class:`~paragents.store.recorder.Recorder` (:meth:`_record_events`, which also
hands over the definitions of tasks added at run time).  A resumed run starts from a
:class:`Resumption`: its finished results are already in ``results``, and its earlier
log is ``_prior``, to which this life's events are numbered after.  :meth:`_result`
builds the :class:`RunResult` over the whole log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..agents import Agent
from ..core.budget import Budget
from ..core.errors import SchedulingError
from ..core.events import Event
from ..core.graph import Task, TaskGraph
from ..core.policies import AssignPolicy, Backoff, PriorityPolicy
from ..core.policies.resolve import resolve_assign, resolve_priority
from ..core.report import RunReport, build_report
from ..core.scheduler import Scheduler
from ..store.recorder import Recorder

__all__ = ["EventHook", "Resumption", "RunResult", "RunState", "regrow"]

EventHook = Callable[[Event, Scheduler], None]


@dataclass(frozen=True, slots=True)
class Resumption:
    """What an earlier life of a run left: its finished tasks' results and its event log.
    The resumed run restores those tasks as done (they never run again), continues the
    log's clock, and reports over the whole log."""

    results: Mapping[str, Any]  # in the order the tasks finished
    events: Sequence[Event]
    producers: Mapping[str, str] = field(default_factory=dict)  # task id -> the agent that made its result


def regrow(
    graph: TaskGraph,
    events: Iterable[Event],
    definitions: Mapping[str, Task],
    attach: Callable[[Task], Task] | None = None,
) -> None:
    """Add to ``graph`` the tasks an earlier life of its run added (expansions, planned
    tasks), in the order its ``added`` events say, from their stored ``definitions``;
    ``attach`` gives each its action again (actions are not stored)."""
    for e in events:
        if e.kind != "added" or not e.data:
            continue
        tasks = [definitions[t] for t in e.data["tasks"] if t not in graph and t in definitions]
        if attach is not None:
            tasks = [attach(t) for t in tasks]
        new = {t.id for t in tasks}
        edges = [(u, v) for u, v in e.data.get("edges", ()) if (u in graph or u in new) and (v in graph or v in new)]
        graph.add(tasks, edges)


@dataclass(slots=True, repr=False)
class RunResult:
    """What a run produced.  The report is computed from the event log on first access."""

    run_id: str
    results: dict[str, Any]
    errors: dict[str, str]
    events: list[Event]
    graph: TaskGraph
    answer: Any = None
    _report: RunReport | None = None

    @property
    def report(self) -> RunReport:
        if self._report is None:
            self._report = build_report(self.events, self.graph, run_id=self.run_id, answer=self.answer)
        return self._report

    def __repr__(self) -> str:  # short: asyncio formats a finished task's result with repr
        return f"RunResult({self.run_id!r}, {len(self.results)}/{len(self.graph)} done)"


class RunState:
    """The run around the attempts (see the module docstring)."""

    def __init__(
        self,
        graph: TaskGraph,
        agents: Iterable[Agent],
        *,
        priority: str | PriorityPolicy,
        assign: str | AssignPolicy,
        aging: float,
        backoff: Backoff | None,
        failover_after: int,
        seed: int,
        run_id: str | None,
        on_event: EventHook | None,
        recorder: Recorder | None,
        resume: Resumption | None,
        budget: Budget | None,
    ) -> None:
        self.graph = graph
        self.agents: dict[str, Agent] = {}
        for a in agents:
            if a.name in self.agents:
                raise SchedulingError(f"duplicate agent name {a.name!r}")
            self.agents[a.name] = a
        self.scheduler = Scheduler(
            graph,
            self.agents.values(),
            priority=resolve_priority(priority, aging),
            assign=resolve_assign(assign),
            backoff=backoff,
            failover_after=failover_after,
            seed=seed,
            budget=budget,
        )
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._on_event = on_event
        self._seen = 0  # events handed to on_event
        self.recorder = recorder
        self.resume = resume
        self._prior = list(resume.events) if resume is not None else []
        self._recorded = 0  # events of this life handed to the recorder
        if resume is not None:
            self.results.update(resume.results)

    def _emit(self) -> None:
        """Hand the log's new events to the ``on_event`` hook."""
        assert self._on_event is not None
        events = self.scheduler.events
        while self._seen < len(events):
            self._on_event(events[self._seen], self.scheduler)
            self._seen += 1

    def _record_events(self) -> None:
        """Hand the log's new events (and the definitions of tasks added at run time) to
        the recorder; it writes them in its next batch, off the event loop."""
        assert self.recorder is not None
        events = self.scheduler.events
        new = events[self._recorded :]
        if not new:
            return
        base = len(self._prior) + self._recorded
        self._recorded = len(events)
        for e in new:
            if e.kind == "added":
                self.recorder.tasks([self.graph[t] for t in e.data["tasks"]], e.data.get("by"))
        self.recorder.events([(base + i, e) for i, e in enumerate(new)])

    def _inputs(self, tid: str) -> dict[str, Any]:
        return {p: self.results.get(p) for p in self.graph.predecessors(tid)}

    def _result(self) -> RunResult:
        sinks = [t for t in self.graph.sinks() if t in self.results]
        answer: Any
        if len(sinks) == 1:
            answer = self.results[sinks[0]]
        else:
            answer = {t: self.results[t] for t in sinks} or None
        errors = {t: e for t, e in self.errors.items() if t not in self.results}
        events = self._prior + self.scheduler.events if self._prior else self.scheduler.events
        return RunResult(self.run_id, dict(self.results), errors, events, self.graph, answer)
