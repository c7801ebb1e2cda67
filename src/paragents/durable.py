"""Durable runs: a workflow or goal run recorded in a run store, and resumed after a crash.

Theory of operation
-------------------
A recorded run writes three things to its :class:`~paragents.store.RunStore` as it goes
(through a :class:`~paragents.store.recorder.Recorder`, in batches, off the event loop):
the event log, each finished task's result (durable before its successors are
dispatched), and the graph as it grew.  The ``runs`` row also holds a :class:`RunSpec`:
the workflow's YAML text, the team's YAML text and the command-line overrides, which is
what rebuilds agents, backends and policies later without the original files.

Resuming (:func:`aresume`) rebuilds the graph from the spec and then replays the log's
``added`` events with the stored definitions of the tasks added at run time (the growth
from expansions), restores every task that has a stored result as done, and runs the
rest under the same run id: the log continues where it stopped, with the same clock.
A task with a result is never executed again — the result table's key (run, task) is
the idempotency key — and a task that was running when the process died runs again
from the start.  Tasks that failed or were cancelled in the earlier life are tried
again, so resuming a finished run that had failures is a retry of exactly those.

A goal run resumes the same way, through :func:`~paragents.goal.arun_goal` with the
stored goal and team: when the plan had finished it is not asked for again (its result
is restored), the tasks it planned (and their expansions) come back from their stored
definitions with their actions attached again, and only what had not finished runs.
When the plan itself had not finished, the planner runs again and the tasks it had
already added are kept, not added twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from .agents import Agent
from .core.budget import Budget
from .core.errors import ParagentsError
from .core.report import RunReport
from .goal import DEFAULT_TEAM, GoalRun, arun_goal
from .runtime.driver import Resumption, RunResult, arun
from .runtime.run_state import EventHook, regrow
from .store import RunStore, StoredRun
from .store.recorder import Recorder
from .workflow import Workflow, load_agents, load_workflow

__all__ = [
    "RunSpec",
    "aresume",
    "arun_goal_recorded",
    "arun_recorded",
    "run_status",
    "with_overrides",
    "workflow_of",
]

T = TypeVar("T")
#: What runs a graph: ``runtime.driver.arun`` (the default) or ``distributed.arun`` (Ray).
Runner = Callable[..., Awaitable[RunResult]]


class ResumeError(ParagentsError):
    """The run cannot be resumed (a goal run, an unknown spec, nothing left to do)."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What rebuilds a run: the workflow and team as text, and the overrides used."""

    kind: str  # "workflow" or "goal"
    source: str  # the workflow YAML, or the goal in words
    path: str = ""
    agents: str | None = None  # the team's YAML (--agents), if one replaced the workflow's
    backend: str | None = None
    priority: str | None = None
    assign: str | None = None
    seed: int | None = None
    budget: dict[str, float] | None = None  # limits given on the command line

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunSpec:
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ResumeError(f"the stored run spec is not understood: {exc}") from None


def workflow_of(spec: RunSpec) -> Workflow:
    """The workflow a spec describes (from its stored text), with its overrides applied."""
    team = load_agents(spec.agents, backend_override=spec.backend) if spec.agents else None
    text = spec.source if "\n" in spec.source else spec.source + "\n"
    return with_overrides(load_workflow(text, backend_override=spec.backend, agents=team), spec)


def with_overrides(workflow: Workflow, spec: RunSpec) -> Workflow:
    """``workflow`` with the spec's policy, seed and budget overrides applied."""
    overrides = {"priority": spec.priority, "assign": spec.assign, "seed": spec.seed}
    workflow = replace(workflow, **{k: v for k, v in overrides.items() if v is not None})
    if spec.budget:
        base = workflow.budget.limits if workflow.budget is not None else {}
        workflow = replace(workflow, budget=Budget(**{**base, **spec.budget}))
    return workflow


def run_status(report: RunReport) -> tuple[str, str | None]:
    """``done`` when every task is done, ``stopped`` when a budget stopped it, else ``failed``."""
    doc = report.to_dict()
    stopped = doc.get("stopped")
    if stopped:
        return "stopped", json.dumps(stopped, sort_keys=True)
    tasks = report.tasks
    return ("done" if tasks.get("done", 0) == tasks.get("total", 0) else "failed"), None


async def _run_and_finish(
    store: RunStore,
    run_id: str,
    go: Callable[[Recorder], Awaitable[T]],
    result_of: Callable[[T], RunResult] = lambda r: r,  # type: ignore[assignment,return-value]
) -> T:
    """Run ``go`` with a recorder; mark the run interrupted if it raises, else finished
    with its status and report."""
    recorder = Recorder(store, run_id)
    try:
        outcome = await go(recorder)
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    report = result_of(outcome).report
    status, reason = run_status(report)
    store.finish_run(run_id, status, report.to_dict(), reason)
    return outcome


async def arun_goal_recorded(
    goal: str, agents: Sequence[Agent], spec: RunSpec, store: RunStore, *, run_id: str, **options: Any
) -> GoalRun:
    """Plan and run ``goal`` (see :func:`~paragents.goal.arun_goal`), recording it in ``store``."""
    store.create_run(run_id, "goal", spec.to_json())
    return await _run_and_finish(
        store,
        run_id,
        lambda recorder: arun_goal(goal, agents, run_id=run_id, recorder=recorder, **options),
        lambda run: run.result,
    )


async def arun_recorded(
    workflow: Workflow,
    spec: RunSpec,
    store: RunStore,
    *,
    run_id: str | None = None,
    on_event: EventHook | None = None,
    runner: Runner = arun,
) -> RunResult:
    """Run ``workflow`` recording everything in ``store`` under ``run_id`` (new if None),
    with ``runner`` (the asyncio runtime's ``arun`` by default)."""
    run_id = run_id or uuid.uuid4().hex[:12]
    store.create_run(run_id, workflow.name, spec.to_json())

    async def go(recorder: Recorder) -> RunResult:
        options = workflow.run_options()
        return await runner(
            workflow.graph, workflow.agents, run_id=run_id, on_event=on_event, recorder=recorder, **options
        )

    return await _run_and_finish(store, run_id, go)


def _resumption(stored: StoredRun, ids: Collection[str] | None = None) -> Resumption:
    """The finished tasks' results (in the order they finished) and the log of ``stored``."""
    done = sorted((r.finished_at, tid) for tid, r in stored.results.items() if ids is None or tid in ids)
    results = {tid: stored.results[tid].result for _, tid in done}
    producers = {tid: stored.results[tid].agent for _, tid in done}
    for e in stored.events:  # a task replanned away is done too: its replacements stand for it
        if e.kind == "replaced" and e.task and e.task not in results and (ids is None or e.task in ids):
            results[e.task] = None
    return Resumption(results, stored.events, producers)


async def aresume(
    store: RunStore,
    run_id: str,
    *,
    on_event: EventHook | None = None,
    agents: Sequence[Agent] | None = None,
) -> RunResult:
    """Resume ``run_id`` from ``store``: restore what finished, run the rest.  A goal run
    runs on ``agents`` when given (a team built in Python), else on its stored team."""
    stored = store.load_run(run_id)
    spec = RunSpec.from_json(stored.spec)
    if spec.kind == "goal":
        return await _resume_goal(store, stored, spec, on_event, agents)
    if spec.kind != "workflow":
        raise ResumeError(f"run {run_id!r} is of an unknown kind {spec.kind!r}")
    workflow = workflow_of(spec)
    graph = workflow.graph
    regrow(graph, stored.events, {rec.task.id: rec.task for rec in stored.tasks})
    resume = _resumption(stored, set(graph.ids))
    store.set_status(run_id, "running")

    async def go(recorder: Recorder) -> RunResult:
        options = workflow.run_options()
        return await arun(
            graph, workflow.agents, run_id=run_id, on_event=on_event, recorder=recorder, resume=resume, **options
        )

    return await _run_and_finish(store, run_id, go)


async def _resume_goal(
    store: RunStore,
    stored: StoredRun,
    spec: RunSpec,
    on_event: EventHook | None,
    agents: Sequence[Agent] | None,
) -> RunResult:
    """A goal run goes on: the plan (if it finished) is not asked for again, the tasks it
    planned come back from their stored definitions with their actions, and what had
    finished is restored."""
    team = None
    if agents is None:
        team = load_agents(spec.agents or DEFAULT_TEAM.read_text(encoding="utf-8"), backend_override=spec.backend)
        agents = team.agents
    definitions = {rec.task.id: rec.task for rec in stored.tasks}
    store.set_status(stored.run_id, "running")
    options: dict[str, Any] = {
        "priority": spec.priority or "critical_path",
        "assign": spec.assign or "earliest_finish",
        "seed": spec.seed or 0,
        "budget": Budget(**spec.budget) if spec.budget else None,
    }
    if team is not None:
        options["limits"] = team.limits

    async def go(recorder: Recorder) -> RunResult:
        run = await arun_goal(
            spec.source, list(agents), run_id=stored.run_id, on_event=on_event, recorder=recorder,
            resume=_resumption(stored), definitions=definitions, **options,
        )
        return run.result

    try:
        return await _run_and_finish(store, stored.run_id, go)
    finally:
        if team is not None:
            for backend in {id(a.backend): a.backend for a in team.agents if a.backend is not None}.values():
                await backend.aclose()
