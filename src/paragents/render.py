"""Rich rendering for the command line: run reports, graph analyses, and a live run view.

Theory of operation
-------------------
Everything here turns numbers that other modules computed into ``rich`` renderables on
a :class:`rich.console.Console` the caller owns; nothing here runs a task or changes a
schedule.

* :func:`render_report` prints a :class:`~paragents.core.report.RunReport`: a summary
  (makespan against its lower bound, speedup over serial time, utilisation), one row per
  agent, the latency split ``T = Tc + Tt + Tp``, tokens and cost, failed tasks, and the
  answer, truncated.
* :func:`analyse_graph` is the static analysis behind ``paragents graph`` as a
  JSON-ready dict (CPM times, slack, HEFT upward rank, critical path, lower bound for a
  given set of agent slots); :func:`render_analysis` prints the same numbers as tables.
* :class:`RunProgress` is the live view of a running run.  The driver calls
  :meth:`RunProgress.on_event` for every scheduler event; the view keeps a few counters
  and redraws at most ``refresh_per_second`` times, always from the caller's thread (no
  refresh thread reads the scheduler while the event loop changes it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .core.analysis import cpm, critical_path, lower_bound, total_work, upward_rank
from .core.events import Event
from .core.graph import TaskGraph
from .core.report import RunReport
from .core.scheduler import Scheduler
from .planner import Plan

__all__ = ["RunProgress", "analyse_graph", "render_analysis", "render_plan", "render_report"]

#: How much of an answer the report prints.
ANSWER_CHARS = 800
_EPS = 1e-9
#: Agents with more slots than this show counts only, no per-slot marks.
_MAX_SLOT_MARKS = 24


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _num(value: float) -> str:
    """Three decimals, without the ``-0.000`` that rounding noise would print."""
    return f"{0.0 if abs(value) < 5e-4 else value:.3f}"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _answer_text(answer: Any, limit: int = ANSWER_CHARS) -> str:
    text = answer if isinstance(answer, str) else json.dumps(answer, indent=2, default=str)
    if len(text) > limit:
        return f"{text[:limit].rstrip()} … ({len(text) - limit} more characters)"
    return text


# ------------------------------------------------------------------ run report
def render_plan(plan: Plan, console: Console) -> None:
    """The planned tasks as a table (id, skill, inputs, description) and the repairs made."""
    table = Table(title="plan", title_justify="left")
    for column in ("task", "skill", "depends on", "description"):
        table.add_column(column, overflow="fold")
    for t in plan.tasks:
        mark = " (expandable)" if t.expandable else ""
        table.add_row(t.id + mark, t.skill, ", ".join(t.depends_on) or "-", t.description)
    console.print(table)
    for repair in plan.repairs:
        console.print(f"[dim]repaired: {repair}[/dim]")


def render_report(
    report: RunReport,
    console: Console,
    *,
    answer: Any = None,
    errors: Mapping[str, str] | None = None,
    title: str = "",
) -> None:
    """Print a run report.  ``answer`` defaults to ``report.answer``; ``errors`` maps the
    ids of tasks that failed to their last error."""
    summary = Table(title=title or f"run {report.run_id}", show_header=False, title_justify="left")
    summary.add_column("metric", style="bold")
    summary.add_column("value", justify="right")
    summary.add_column("note", style="dim")
    summary.add_row("makespan", _s(report.makespan_s), "first event to last")
    summary.add_row("critical path", _s(report.critical_path_s), "longest chain, measured durations")
    summary.add_row("lower bound", _s(report.lower_bound_s), "max(critical path, busy / slots)")
    summary.add_row("efficiency", _pct(report.efficiency), "lower bound / makespan")
    summary.add_row("serial time", _s(report.serial_time_s), "sum of task times")
    summary.add_row("speedup", f"{report.speedup:.2f}x", "serial time / makespan")
    summary.add_row("utilisation", _pct(report.utilization), "busy / (slots x makespan)")
    t = report.tasks
    summary.add_row(
        "tasks",
        f"{t.get('done', 0)}/{t.get('total', 0)} done",
        f"{t.get('failed', 0)} failed, {t.get('cancelled', 0)} cancelled, {t.get('retried', 0)} retried",
    )
    console.print(summary)

    agents = Table(title="agents", title_justify="left")
    for col in ("agent", "slots", "tasks", "busy", "utilisation"):
        agents.add_column(col, justify="left" if col == "agent" else "right")
    for name, row in report.agents.items():
        agents.add_row(
            name,
            str(int(row.get("slots", 0))),
            str(int(row.get("tasks", 0))),
            _s(row.get("busy_s", 0.0)),
            _pct(row.get("utilization", 0.0)),
        )
    console.print(agents)

    lat = report.latency
    total = sum(lat.values())
    latency = Table(title="latency, summed over tasks", title_justify="left")
    for col in ("part", "seconds", "share"):
        latency.add_column(col, justify="left" if col == "part" else "right")
    parts = (("compute (Tc)", "compute_s"), ("transfer (Tt)", "transfer_s"), ("processing (Tp)", "processing_s"))
    for label, key in parts:
        value = lat.get(key, 0.0)
        latency.add_row(label, _s(value), _pct(value / total) if total > 0 else "-")
    console.print(latency)

    tokens = report.tokens
    console.print(
        f"tokens: {tokens.get('prompt', 0):,} prompt + {tokens.get('completion', 0):,} completion"
        f"    cost: {report.cost:.4f}"
    )
    if errors:
        failed = Table(title="failed tasks", title_justify="left", style="red")
        failed.add_column("task")
        failed.add_column("error")
        for tid, error in errors.items():
            failed.add_row(tid, error)
        console.print(failed)
    shown = report.answer if answer is None else answer
    if shown is not None:
        console.print(Panel(Text(_answer_text(shown)), title="answer", title_align="left"))


# -------------------------------------------------------------- graph analysis
def analyse_graph(graph: TaskGraph, speeds: Sequence[float] | None = None) -> dict[str, Any]:
    """Static analysis of ``graph`` before running it, as a JSON-ready dict.

    ``speeds`` has one entry per agent slot (an agent with 2 slots at speed 1.5 gives
    ``[1.5, 1.5]``); without it, one slot at speed 1.  CPM times and slack use the tasks'
    duration estimates as given (speed 1); the upward rank uses the mean speed of the
    slots; the lower bound is ``max(critical path / fastest speed, total work / capacity)``.
    """
    slots = list(speeds) if speeds else [1.0]
    times = cpm(graph)
    ranks = upward_rank(graph, slots)
    path = critical_path(graph)
    on_path = set(path)
    return {
        "tasks": len(graph),
        "edges": len(graph.edges),
        "critical_path": path,
        "critical_path_s": times.length,
        "total_work_s": total_work(graph),
        "slots": len(slots),
        "capacity": sum(slots),
        "lower_bound_s": lower_bound(graph, slots),
        "per_task": [
            {
                "id": tid,
                "duration_s": graph[tid].duration,
                "earliest_start_s": times.earliest_start[tid],
                "latest_start_s": times.latest_start[tid],
                "slack_s": times.slack[tid],
                "upward_rank": ranks[tid],
                "critical": times.slack[tid] <= _EPS,
                "on_critical_path": tid in on_path,
                "depends_on": list(graph.predecessors(tid)),
            }
            for tid in graph.topological_order()
        ],
    }


def render_analysis(
    graph: TaskGraph, console: Console, speeds: Sequence[float] | None = None, *, title: str = ""
) -> None:
    """Print :func:`analyse_graph`'s numbers: the critical path, the bound, one row per task."""
    a = analyse_graph(graph, speeds)
    head = Table(title=title or "task graph", show_header=False, title_justify="left")
    head.add_column("metric", style="bold")
    head.add_column("value")
    head.add_row("tasks / edges", f"{a['tasks']} / {a['edges']}")
    head.add_row("critical path", " -> ".join(a["critical_path"]))
    head.add_row("critical path length", _s(a["critical_path_s"]))
    head.add_row("total work", _s(a["total_work_s"]))
    head.add_row("agent slots", f"{a['slots']} (capacity {a['capacity']:g} at speed 1)")
    head.add_row("lower bound on makespan", _s(a["lower_bound_s"]))
    console.print(head)

    table = Table(title="tasks in topological order, seconds at speed 1", title_justify="left")
    table.add_column("task", no_wrap=True)
    for col in ("duration", "earliest", "latest", "slack", "rank"):
        table.add_column(col, justify="right")
    table.add_column("critical")
    for row in a["per_task"]:
        mark = "path" if row["on_critical_path"] else ("yes" if row["critical"] else "")
        table.add_row(
            row["id"],
            *(_num(row[k]) for k in ("duration_s", "earliest_start_s", "latest_start_s", "slack_s", "upward_rank")),
            mark,
            style="bold" if row["on_critical_path"] else None,
        )
    console.print(table)
    console.print(
        "[dim]earliest/latest: start times (CPM); rank: HEFT upward rank at the mean slot speed; "
        "critical: 'path' = on the critical path above, 'yes' = zero slack[/dim]"
    )


# ------------------------------------------------------------------- live view
class RunProgress:
    """A live view of one run: finished/total bar, state counts, per-agent busy slots.

    Use as a context manager and pass :meth:`on_event` as the driver's ``on_event``::

        with RunProgress(Console(stderr=True), title=workflow.name) as progress:
            result = run(graph, agents, on_event=progress.on_event)
    """

    def __init__(self, console: Console, *, title: str = "", refresh_per_second: float = 10.0) -> None:
        self.title = title
        self._interval = 1.0 / refresh_per_second
        self._last_refresh = 0.0
        self._started_at = time.monotonic()
        self._total = 0
        self._counts: dict[str, int] = {}
        self._retries = 0
        self._agents: dict[str, tuple[int, int]] = {}  # name -> (running, slots)
        self._finished_by: dict[str, int] = {}
        self._scheduler: Scheduler | None = None
        self._live = Live(
            console=console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
            get_renderable=self._render,
        )

    def __enter__(self) -> RunProgress:
        self._started_at = time.monotonic()
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._snapshot()
        self._live.stop()

    def on_event(self, event: Event, scheduler: Scheduler) -> None:
        """Count what the event says; redraw if the last redraw is old enough."""
        self._scheduler = scheduler
        if event.kind == "finished" and event.agent is not None:
            self._finished_by[event.agent] = self._finished_by.get(event.agent, 0) + 1
        elif event.kind == "retry":
            self._retries += 1
        now = time.monotonic()
        if now - self._last_refresh >= self._interval:
            self._last_refresh = now
            self._snapshot()
            self._live.refresh()

    def _snapshot(self) -> None:
        sched = self._scheduler
        if sched is None:
            return
        self._total = len(sched.graph)
        self._counts = sched.counts
        self._agents = {name: (len(a.running), a.slots) for name, a in sched.agents.items()}

    def _render(self) -> RenderableType:
        c = self._counts
        ended = c.get("done", 0) + c.get("failed", 0) + c.get("cancelled", 0)
        line = Table.grid(padding=(0, 1))
        line.add_row(
            Text(self.title or "run", style="bold"),
            ProgressBar(total=max(self._total, 1), completed=ended, width=30),
            Text(
                f"{c.get('done', 0)}/{self._total} done · {c.get('running', 0)} running · "
                f"{c.get('ready', 0)} ready · {c.get('failed', 0)} failed · {self._retries} retried · "
                f"{time.monotonic() - self._started_at:.1f} s"
            ),
        )
        agents = Table.grid(padding=(0, 2))
        for name, (running, slots) in self._agents.items():
            busy = "█" * running + "·" * max(slots - running, 0) if slots <= _MAX_SLOT_MARKS else ""
            agents.add_row(
                Text(name),
                Text(busy, style="cyan"),
                Text(f"{running}/{slots} running"),
                Text(f"{self._finished_by.get(name, 0)} done", style="dim"),
            )
        return Group(line, agents)


def render_simulation(doc: Mapping[str, Any], console: Console) -> None:
    """The request and model-server tables of a simulation (``SimResult.to_dict()``)."""
    requests = doc.get("requests")
    if requests:
        table = Table(title="requests", title_justify="left")
        for col in ("kind", "count", "completed", "mean", "p50", "p95", "p99"):
            table.add_column(col, justify="left" if col == "kind" else "right")
        rows = [("all", requests), *sorted(requests.get("by_kind", {}).items())]
        for kind, r in rows:
            table.add_row(
                kind, str(r["count"]), str(r["completed"]),
                *(_s(r[k]) for k in ("mean_latency_s", "p50_latency_s", "p95_latency_s", "p99_latency_s")),
            )
        table.caption = f"throughput {requests['throughput_rps']:.4g} requests/s"
        console.print(table)
    servers = doc.get("servers")
    if servers:
        table = Table(title="model servers", title_justify="left")
        for col in ("server", "busy", "utilisation", "mean batch", "calls", "tokens"):
            table.add_column(col, justify="left" if col == "server" else "right")
        for name, s in servers.items():
            table.add_row(
                name, _s(s["busy_s"]), _pct(s["utilization"]), f"{s['mean_batch']:.2f}",
                str(s["calls"]), f"{s['tokens']:,.0f}",
            )
        console.print(table)


def render_serverless(doc: Mapping[str, Any], console: Console) -> None:
    """The serverless GPU scenario's metrics, overall and per agent."""
    table = Table(title=f"serverless GPU, allocator {doc['allocator']}", title_justify="left")
    cols = ("agent", "requests", "throughput/s", "mean", "p95", "p99", "SLA violations", "cold starts")
    for col in cols:
        table.add_column(col, justify="left" if col == "agent" else "right")
    for name, r in [("all", doc["overall"]), *doc["agents"].items()]:
        table.add_row(
            name, str(r["completed"]), f"{r['throughput_rps']:.1f}",
            _s(r["mean_s"]), _s(r["p95_s"]), _s(r["p99_s"]),
            f"{r['sla_violations']} ({_pct(r['sla_violation_fraction'])})", str(r["cold_starts"]),
        )
    extra = {k: v for k, v in doc.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    table.caption = ", ".join(f"{k} {v:.4g}" for k, v in extra.items())
    console.print(table)


def render_runs(runs: Sequence[Any], console: Console, *, title: str) -> None:
    """The store's runs (``RunSummary`` records), newest first."""
    table = Table(title=title, title_justify="left")
    for col in ("run", "name", "status", "tasks done", "started", "stopped by"):
        table.add_column(col, justify="right" if col == "tasks done" else "left")
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        table.add_row(r.run_id, r.name, r.status, f"{r.tasks_done}/{r.tasks_total}", started, r.stop_reason or "")
    console.print(table)
