"""Prometheus metrics of runs, fed from their event logs.

Theory of operation
-------------------
:class:`RunMetrics` owns one :class:`prometheus_client.CollectorRegistry` and is fed log
events one at a time with :meth:`RunMetrics.feed` (from a driver's ``on_event`` hook, or
from a store).  It keeps, per run, only what the gauges need: the attempts now running
and which tasks are done, failed or cancelled.  Series, labelled by ``agent`` and
``endpoint`` (the agent's backend endpoint, from the ``endpoints`` event the asyncio
runtime writes when a run starts, or the ``endpoints=`` mapping; else ``""``):

``paragents_tasks_running``               attempts running now (gauge)
``paragents_queue_length``                tasks whose inputs are done and that wait for
                                          an agent, over every tracked run (gauge, no labels)
``paragents_task_latency_seconds``        dispatch -> finish of each successful attempt
                                          (histogram)
``paragents_tasks_finished_total``        successful attempts (counter)
``paragents_tokens_total``                tokens, ``kind`` = ``prompt`` | ``completion``
``paragents_errors_total``                failed attempts, ``kind`` = ``retry`` | ``failed``
``paragents_cost_total``                  cost reported with ``finished``

The queue length needs the graph: :meth:`RunMetrics.track` gives a run's dependencies
(an ``added`` event extends them); a run that is not tracked counts nothing in the queue.

:class:`StoreMetrics` is what the dashboard serves at ``/metrics``: at each scrape it reads
the store's most recent runs and feeds every event it has not fed yet (it remembers the
last sequence number per run), so counters only grow and a live run's series move
between scrapes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..core.events import Event
from ..store import RunStore

__all__ = ["CONTENT_TYPE", "RunMetrics", "StoreMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_ENDS = frozenset({"finished", "failed", "retry", "cancelled", "requeued", "abandoned"})
_TERMINAL = frozenset({"finished", "failed", "cancelled", "restored"})
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class _RunState:
    preds: dict[str, set[str]] = field(default_factory=dict)
    running: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)  # tasks with a live attempt or waiting to retry
    ended: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)

    def queued(self) -> int:
        return sum(
            1
            for t, preds in self.preds.items()
            if t not in self.ended and t not in self.busy and preds <= self.done
        )


class RunMetrics:
    """Prometheus series of the runs fed to it (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None, endpoints: Mapping[str, str] | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.endpoints = dict(endpoints or {})
        self._runs: dict[str, _RunState] = {}
        self._lock = threading.Lock()
        labels = ("agent", "endpoint")
        r = self.registry
        self.running = Gauge("paragents_tasks_running", "Task attempts running now.", labels, registry=r)
        self.queue = Gauge("paragents_queue_length", "Tasks ready and waiting for an agent.", registry=r)
        self.queue.set_function(self._queue_length)
        self.latency = Histogram("paragents_task_latency_seconds", "Dispatch to finish of successful attempts.",
                                 labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.finished = Counter("paragents_tasks_finished", "Successful task attempts.", labels, registry=r)
        self.tokens = Counter("paragents_tokens", "Tokens used.", (*labels, "kind"), registry=r)
        self.errors = Counter("paragents_errors", "Failed task attempts.", (*labels, "kind"), registry=r)
        self.cost = Counter("paragents_cost", "Cost of the model calls.", labels, registry=r)

    def _queue_length(self) -> float:
        with self._lock:
            return float(sum(state.queued() for state in self._runs.values()))

    def track(self, run_id: str, dependencies: Mapping[str, Iterable[str]]) -> None:
        """Tell the metrics ``run_id``'s tasks and what each depends on (for the queue)."""
        with self._lock:
            state = self._runs.setdefault(run_id, _RunState())
            for task, preds in dependencies.items():
                state.preds.setdefault(task, set()).update(preds)

    def forget(self, run_id: str) -> None:
        """Stop counting ``run_id`` in the queue length (its counters keep their values)."""
        with self._lock:
            self._runs.pop(run_id, None)

    def feed(self, run_id: str, event: Event) -> None:
        """Account for one log event of ``run_id``."""
        with self._lock:
            state = self._runs.setdefault(run_id, _RunState())
            self._apply(state, event)

    def _labels(self, agent: str | None) -> tuple[str, str]:
        name = agent or ""
        return name, self.endpoints.get(name, "")

    def _apply(self, state: _RunState, e: Event) -> None:
        kind, task, data = e.kind, e.task, e.data or {}
        if kind == "endpoints":  # the runtime's record of each agent's backend endpoint
            self.endpoints.update({str(k): str(v) for k, v in data.items() if v})
            return
        if kind == "added":
            for tid in data.get("tasks", ()):
                state.preds.setdefault(str(tid), set())
            for u, v in data.get("edges", ()):
                state.preds.setdefault(str(v), set()).add(str(u))
            return
        if task is None:
            return
        if kind == "dispatched":
            state.running[task, e.attempt] = (e.agent or "", e.time)
            state.busy.add(task)
            self.running.labels(*self._labels(e.agent)).inc()
            return
        if kind in _ENDS:
            began = state.running.pop((task, e.attempt), None)
            if began is not None:
                self.running.labels(*self._labels(began[0])).dec()
            agent = e.agent or (began[0] if began else None)
            labels = self._labels(agent)
            if kind == "finished":
                if began is not None:
                    self.latency.labels(*labels).observe(max(e.time - began[1], 0.0))
                self.finished.labels(*labels).inc()
                self.tokens.labels(*labels, "prompt").inc(float(data.get("prompt_tokens", 0)))
                self.tokens.labels(*labels, "completion").inc(float(data.get("completion_tokens", 0)))
                self.cost.labels(*labels).inc(float(data.get("cost", 0.0)))
            elif kind in ("retry", "failed"):
                self.errors.labels(*labels, kind).inc()
            if kind in ("requeued", "abandoned") and not any(t == task for t, _ in state.running):
                state.busy.discard(task)
        if kind in _TERMINAL:
            state.ended.add(task)
            state.busy.discard(task)
            if kind in ("finished", "restored"):
                state.done.add(task)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class StoreMetrics:
    """:class:`RunMetrics` of a store's most recent runs, brought up to date at each scrape."""

    def __init__(self, store: RunStore, *, runs: int = 20, metrics: RunMetrics | None = None) -> None:
        self.store = store
        self.runs = runs
        self.metrics = metrics if metrics is not None else RunMetrics()
        self._fed: dict[str, int] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Feed every event of the recent runs that was not fed yet."""
        with self._lock:
            recent = self.store.list_runs(self.runs)
            for summary in recent:
                after = self._fed.get(summary.run_id, -1)
                stored = self.store.load_run(summary.run_id)
                self.metrics.track(stored.run_id, {r.task.id: r.task.depends_on for r in stored.tasks})
                for seq, event in zip(stored.seqs, stored.events, strict=True):
                    if seq > after:
                        self.metrics.feed(stored.run_id, event)
                        after = seq
                self._fed[stored.run_id] = after
            keep = {s.run_id for s in recent}
            for run_id in set(self._fed) - keep:
                self.metrics.forget(run_id)
                del self._fed[run_id]

    def scrape(self) -> bytes:
        """Refresh, then the metrics in Prometheus' text format."""
        self.refresh()
        return self.metrics.exposition()
