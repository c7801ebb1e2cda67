"""Consistency of a stored run: does its log, graph and results tell one story?

Theory of operation
-------------------
The recording rules give a stored run invariants that hold at every instant — the
runtime stores a task's result *before* the scheduler logs its ``finished`` event, and
writes the log in order — so a check can tell a run that was cut short from one that is
corrupt.  :func:`check_run` lists violations (``[]`` when consistent);
:func:`resumable` lists the work a cut-short run left open.  The rules:

1. ``status`` is a known status (:data:`~paragents.store.schema.STATUSES`).
2. The log's ``seq`` runs 0, 1, 2, ... without a gap.
3. Every task an event names is in ``tasks``.
4. The graph — the tasks' ``depends_on`` plus the edges of every ``added`` event — names
   only known tasks and is acyclic (validated by :class:`~paragents.core.graph.TaskGraph`).
5. Attempts pair up.  A ``dispatched`` event opens attempt ``(task, attempt)``; a
   ``finished``, ``retry``, ``requeued`` event, or a ``failed`` / ``cancelled`` event
   that names an agent, closes it and must match an open attempt.  (``failed`` and
   ``cancelled`` without an agent end a task that was not running and need none.)
   A task is not dispatched again while an attempt of it is open.
6. Every ``finished`` task has a stored result, from the same attempt; so has every
   ``restored`` one.
7. Every stored result has a ``finished`` or ``restored`` event.

A resumed run's log holds several **lives**, each opened by a ``started`` event: the
scheduler of a resumed run starts again, logs the tasks it took over from the stored
results as ``restored``, and counts attempts from 1.  Attempts still open when a new
life starts were cut off by the crash that the resume followed; they are not problems.

Open attempts (rule 5) and results without a ``finished`` event (rule 7) in the last
life are what a crash leaves behind: the process died after the dispatch, or between
committing a result and logging its finish.  For a run whose status is unfinished (``running``,
``interrupted``, ``crashed``) they are not problems but the work a resume redoes or
reuses, and :func:`resumable` lists them.  For a finished run (``done``, ``failed``,
``stopped``) nothing may be left open: :func:`check_run` reports them.
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.graph import TaskGraph
from .schema import FINISHED_STATUSES, STATUSES
from .store import StoredRun

__all__ = ["check_run", "resumable"]

#: Event kinds that end an attempt whenever they occur.
_ENDS = frozenset({"finished", "retry", "requeued"})
#: Event kinds that end an attempt when they name an agent (the task was running).
_ENDS_IF_RUNNING = frozenset({"failed", "cancelled"})


def check_run(run: StoredRun) -> list[str]:
    """The run's consistency problems, in the order of the rules above; [] when consistent."""
    problems: list[str] = []
    if run.status not in STATUSES:
        problems.append(f"unknown status {run.status!r}")
    problems += _seq_gaps(run.seqs)
    known = {rec.task.id for rec in run.tasks}
    for seq, e in zip(run.seqs, run.events, strict=True):
        if e.task is not None and e.task not in known:
            problems.append(f"event #{seq} ({e.kind}) names task {e.task!r}, which is not among the run's tasks")
    problems += _graph(run)
    opened, pairing, finished = _attempts(run)
    problems += pairing
    for task_id, attempt in finished.items():
        stored = run.results.get(task_id)
        if stored is None:
            kind = "was restored" if attempt is None else "finished"
            problems.append(f"task {task_id!r} {kind} but has no stored result")
        elif attempt is not None and stored.attempt != attempt:
            problems.append(
                f"task {task_id!r} finished in attempt {attempt} but its result is from attempt {stored.attempt}"
            )
    if run.status in FINISHED_STATUSES:
        problems += [f"{note} (the run is {run.status})" for note in _open_work(run, opened, finished)]
    return problems


def resumable(run: StoredRun) -> list[str]:
    """What an unfinished run left open — attempts never ended, results never logged as
    finished — as notes for a person; [] for a finished run or one with nothing open."""
    if run.status in FINISHED_STATUSES:
        return []
    opened, _, finished = _attempts(run)
    return _open_work(run, opened, finished)


def _seq_gaps(seqs: list[int]) -> list[str]:
    problems = []
    expected = 0
    for seq in seqs:
        if seq != expected:
            problems.append(f"the log skips from event #{expected - 1} to #{seq}" if seq > expected
                            else f"event #{seq} is out of order")
        expected = seq + 1
    return problems


def _graph(run: StoredRun) -> list[str]:
    edges = [
        (str(u), str(v))
        for e in run.events
        if e.kind == "added" and isinstance(e.data, dict)
        for u, v in e.data.get("edges") or ()
    ]
    try:
        TaskGraph([rec.task for rec in run.tasks], edges)
    except GraphError as exc:
        return [f"task graph: {exc}"]
    return []


def _attempts(run: StoredRun) -> tuple[dict[str, tuple[int, str | None]], list[str], dict[str, int | None]]:
    """Replay the log: the attempts the last life left open ``{task: (attempt, agent)}``,
    pairing problems, and ``{task: attempt}`` of every ``finished`` event (None for
    ``restored``)."""
    opened: dict[str, tuple[int, str | None]] = {}
    problems: list[str] = []
    finished: dict[str, int | None] = {}
    for seq, e in zip(run.seqs, run.events, strict=True):
        if e.kind == "started":
            opened = {}  # a new life: what the old one left open was cut off by a crash
        elif e.task is None:
            continue
        elif e.kind == "restored":
            finished[e.task] = None
        elif e.kind == "dispatched":
            if e.task in opened:
                problems.append(
                    f"event #{seq}: task {e.task!r} dispatched (attempt {e.attempt}) while attempt "
                    f"{opened[e.task][0]} was still running"
                )
            opened[e.task] = (e.attempt, e.agent)
        elif e.kind in _ENDS or (e.kind in _ENDS_IF_RUNNING and e.agent is not None):
            current = opened.get(e.task)
            if current is None or current[0] != e.attempt:
                problems.append(f"event #{seq}: {e.kind} of task {e.task!r} attempt {e.attempt}, which was not running")
            else:
                del opened[e.task]
            if e.kind == "finished":
                finished[e.task] = e.attempt
    return opened, problems, finished


def _open_work(
    run: StoredRun, opened: dict[str, tuple[int, str | None]], finished: dict[str, int | None]
) -> list[str]:
    notes = [
        f"task {task_id!r} attempt {attempt} was dispatched to agent {agent!r} and never ended"
        for task_id, (attempt, agent) in opened.items()
    ]
    notes += [
        f"task {task_id!r} has a stored result but no 'finished' or 'restored' event"
        for task_id in run.results
        if task_id not in finished
    ]
    return notes
