"""What the dashboard and the static report show of one run, computed from the store.

Theory of operation
-------------------
A run's page is a pure function of what the store holds about it: its task definitions
(the graph as it grew), its event log and its status.  :func:`run_view` turns a
:class:`~paragents.store.StoredRun` into one JSON-ready document — the graph (tasks,
edges, per-task state, agent, start and end), the critical path, the run report, the
adaptive manager's events and the log's last sequence number — that both the live page
(:mod:`paragents.dashboard.app`) and the self-contained HTML report
(:mod:`paragents.dashboard.report`) render with the same script.

Times in the view are seconds since the run's first event, as in the run report.  A task
whose inputs are all done but that has not been dispatched is shown ``ready`` (the
report itself only knows ``pending``).  The critical path is the longest path weighted by
the measured duration of every finished task and the planning estimate of the others, so
a live run's highlighted chain moves as tasks finish.
"""

from __future__ import annotations

from typing import Any

from ..core.analysis import critical_path
from ..core.events import Event
from ..core.graph import TaskGraph
from ..core.report import build_report
from ..store import StoredRun

__all__ = ["ADAPTIVE_KINDS", "event_dicts", "graph_of", "run_view"]

#: Log kinds listed as "what the adaptive manager did": its controls and budget stops.
ADAPTIVE_KINDS = frozenset({"adapted", "stopped"})


def graph_of(stored: StoredRun) -> TaskGraph:
    """The run's graph as it grew: every task the store holds, in the order it was added."""
    return TaskGraph([rec.task for rec in stored.tasks])


def event_dicts(events: list[Event], seqs: list[int], t0: float, after: int = -1) -> list[dict[str, Any]]:
    """The log's events after sequence number ``after``, each with its ``seq`` and a time
    relative to ``t0``."""
    out = []
    for seq, event in zip(seqs, events, strict=True):
        if seq > after:
            doc = event.to_dict()
            doc["seq"] = seq
            doc["time"] = event.time - t0
            out.append(doc)
    return out


def run_view(stored: StoredRun) -> dict[str, Any]:
    """Everything the run's page shows, as one JSON-ready document."""
    graph = graph_of(stored)
    report = build_report(stored.events, graph, run_id=stored.run_id)
    t0 = stored.events[0].time if stored.events else 0.0
    timings = report.timings
    durations = {t.id: (timings[t.id].duration if timings[t.id].state == "done" else t.duration) for t in graph}
    path = critical_path(graph, durations) if len(graph) else []
    tasks = []
    for task in graph:
        timing = timings[task.id]
        state = timing.state
        if state == "pending" and all(timings[p].state == "done" for p in graph.predecessors(task.id)):
            state = "ready"
        tasks.append(
            {
                "id": task.id,
                "skills": sorted(task.skills),
                "depends_on": list(graph.predecessors(task.id)),
                "estimate_s": task.duration,
                "state": state,
                "agent": timing.agent,
                "ready_at": timing.ready_at,
                "start": timing.start,
                "end": timing.end,
                "attempts": timing.attempts,
                "compute_s": timing.compute_s,
                "transfer_s": timing.transfer_s,
                "processing_s": timing.processing_s,
                "tokens": timing.prompt_tokens + timing.completion_tokens,
                "error": timing.error,
            }
        )
    return {
        "run": {
            "run_id": stored.run_id,
            "name": stored.name,
            "status": stored.status,
            "created_at": stored.created_at,
            "updated_at": stored.updated_at,
            "stop_reason": stored.stop_reason,
        },
        "tasks": tasks,
        "edges": [list(e) for e in graph.edges],
        "critical_path": path,
        "report": report.to_dict(),
        "adaptations": [e for e in event_dicts(stored.events, stored.seqs, t0) if e["kind"] in ADAPTIVE_KINDS],
        "seq": stored.seqs[-1] if stored.seqs else -1,
        "t0": t0,
    }
