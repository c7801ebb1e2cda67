"""The main job: a goal in, an answer out — plan it, run the plan in parallel, merge.

Theory of operation
-------------------
A goal run is an ordinary run of a graph that starts with two tasks and grows:

``goal.plan``    a callable task on the team's planner agent (the agent with the skill
                 ``plan``).  It asks the :class:`~paragents.planner.Planner` for a plan
                 of the goal, **streamed**: each planned task is added to the running
                 graph the moment the model has written it and the tasks it depends on,
                 so a task whose inputs are known starts while the plan is still being
                 written.  Its result is the plan as text (shown to the merge).
``goal.answer``  an LLM merge join (:func:`~paragents.aggregate.merge_prompt`) on the
                 agent with the skill ``writing`` (else any agent): it waits for the plan
                 and, through edges added with each planned task, for every planned task.

Planned tasks call their agent's model with a prompt that carries the goal and the
task's description; they go to agents by skill through the usual assignment policy and
are retried (with failover) when a call fails.  When a planned task fails on its last
attempt, the planner is asked to rewrite the work that has not run
(:meth:`~paragents.planner.Planner.replan`, given what is done and the error); its tasks
are spliced in where the failed task stood, so what followed it waits for them.  An ``expandable``
planned task is decomposed when it is reached: the planner is asked for smaller tasks
(ids prefixed with the parent's, depth bounded), which are spliced in before the answer;
if it returns none, the task does its own work.  Prompts are assembled from the run's
semantic context (direct inputs whole, then what else is relevant, within a budget)
unless ``context=None``.  Every model call made inside these
tasks goes through the endpoint's admission control and counts in the run's tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .adaptive.manager import AdaptiveConfig
from .agents import Agent
from .aggregate import merge_prompt
from .backends.base import Request
from .context.runtime_context import ContextConfig
from .core.agent_state import WILDCARD
from .core.budget import Budget
from .core.errors import ParagentsError, WorkflowError
from .core.events import Event
from .core.graph import Task, TaskGraph
from .core.policies import Backoff
from .core.scheduler import Scheduler
from .planner import Plan, PlannedTask, Planner
from .runtime.driver import Resumption, RunResult, Runtime, TaskContext
from .runtime.limits import Limits
from .runtime.run_state import regrow
from .store.recorder import Recorder

__all__ = ["ANSWER_TASK", "DEFAULT_TEAM", "PLAN_TASK", "GoalRun", "arun_goal", "planner_for"]

#: The team of a goal run given no team (``paragents team`` prints it).
DEFAULT_TEAM = resources.files("paragents").joinpath("teams/default.yaml")

#: Goal runs assemble prompts from the run's semantic context unless told otherwise.
DEFAULT_CONTEXT = ContextConfig()
PLAN_TASK = "goal.plan"
ANSWER_TASK = "goal.answer"
PLAN_SKILL = "plan"
WRITING_SKILL = "writing"


@dataclass(slots=True)
class GoalRun:
    """A goal's run: the run result, the plan the planner produced, and how planning went."""

    goal: str
    result: RunResult
    plan: Plan | None
    planner: Planner


def _with_skill(agents: Sequence[Agent], skill: str) -> Agent | None:
    return next((a for a in agents if skill in a.skills), None)


def planner_for(agents: Sequence[Agent], *, max_tasks: int = 6, max_attempts: int = 3) -> tuple[Agent, Planner]:
    """The team's planner agent and a Planner over the skills of the other agents."""
    if not agents:
        raise WorkflowError("the team has no agents")
    agent = _with_skill(agents, PLAN_SKILL) or agents[0]
    if agent.backend is None:
        raise WorkflowError(f"planner agent {agent.name!r} has no backend")
    skills: dict[str, str] = {}
    for a in agents:
        if a is agent and len(agents) > 1:
            continue
        for s in sorted(a.skills - {WILDCARD, PLAN_SKILL}):
            skills.setdefault(s, a.role or a.name)
    planner = Planner(
        agent.backend, skills=skills, max_tasks=max_tasks, max_attempts=max_attempts, max_tokens=agent.max_tokens
    )
    return agent, planner


async def arun_goal(
    goal: str,
    agents: Sequence[Agent],
    *,
    limits: Mapping[str, Limits] | None = None,
    max_tasks: int = 6,
    expand_depth: int = 1,
    priority: str = "critical_path",
    assign: str = "earliest_finish",
    seed: int = 0,
    run_id: str | None = None,
    on_event: Callable[[Event, Scheduler], None] | None = None,
    backoff: Backoff | None = None,
    context: ContextConfig | None = DEFAULT_CONTEXT,
    recorder: Recorder | None = None,
    budget: Budget | None = None,
    resume: Resumption | None = None,
    definitions: Mapping[str, Task] | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> GoalRun:
    """Plan ``goal`` with the team's planner, run the plan on the team, merge an answer."""
    goal = goal.strip()
    if not goal:
        raise WorkflowError("the goal is empty")
    planner_agent, planner = planner_for(agents, max_tasks=max_tasks)
    planner.max_depth = expand_depth
    writer = _with_skill(agents, WRITING_SKILL) or agents[-1]
    plans: list[Plan] = []
    runtime: Runtime | None = None

    def to_task(planned: PlannedTask | Task, depth: int = 0) -> Task:
        if isinstance(planned, Task):  # an expansion's subtask
            task = planned.evolve(prompt=f"Goal: {goal}\nYour task: {planned.prompt}")
        else:
            task = Task(
                planned.id,
                prompt=f"Goal: {goal}\nYour task: {planned.description}",
                skills=frozenset({planned.skill}) if planned.skill else frozenset(),
                depends_on=planned.depends_on,
                expandable=planned.expandable,
                retries=2,
                meta={"planned": True, "depth": depth},
            )
        if task.expandable and depth < expand_depth:
            return task.evolve(action=_expand_or_do(planner, depth, to_task))
        return task.evolve(action=do_or_replan)

    async def do_or_replan(ctx: TaskContext) -> str:
        """A planned task's work; on its last failing attempt, the planner writes replacements."""
        agent = ctx.agent
        request = Request(await ctx.prompt(), system=agent.system_prompt, max_tokens=agent.max_tokens)
        try:
            return (await ctx.complete(request)).text
        except ParagentsError as exc:
            if ctx.attempt <= ctx.task.retries:
                raise  # the scheduler retries it (after backoff, on another agent if it keeps failing)
            new = await replacements(ctx.task.id, str(exc))
            ctx.prompt_tokens += planner.stats.prompt_tokens
            ctx.completion_tokens += planner.stats.completion_tokens
            if not new:
                raise
            ctx.expand(new)
            return f"Failed ({exc}); the planner replaced it with: " + ", ".join(t.id for t in new)

    async def replacements(task_id: str, error: str) -> list[Task]:
        """The planner's tasks for the rest of the plan, written around ``task_id``."""
        assert runtime is not None
        done = {t: r for t, r in runtime.results.items() if t not in (PLAN_TASK, ANSWER_TASK)}
        graph = runtime.graph
        skip = {PLAN_TASK, ANSWER_TASK, task_id, *done}
        remaining = [graph[t] for t in graph.ids if t not in skip]
        new = await planner.replan(goal, done, graph[task_id], remaining, error=error, taken=graph.ids)
        return [to_task(t) for t in new]

    async def replan_failing(task_id: str, rt: Runtime) -> list[Task]:
        """The adaptive manager's replan: a task failed repeatedly (see ``ReplanConfig``)."""
        return await replacements(task_id, rt.errors.get(task_id, ""))

    async def plan_goal(ctx: TaskContext) -> str:
        assert runtime is not None

        def on_task(planned: PlannedTask) -> None:
            if planned.id in runtime.graph:  # added in an earlier life of a resumed run
                return
            task = to_task(planned)
            runtime.add_tasks([task], edges=[(task.id, ANSWER_TASK)])

        planner.backend = ctx.admission.admitted(planner_agent.backend)  # type: ignore[arg-type]
        plan = await planner.plan(goal, on_task=on_task)
        plans.append(plan)
        ctx.prompt_tokens += planner.stats.prompt_tokens
        ctx.completion_tokens += planner.stats.completion_tokens
        return "The plan:\n" + "\n".join(f"- {t.id}: {t.description}" for t in plan.tasks)

    graph = TaskGraph(
        [
            Task(PLAN_TASK, prompt=f"Plan: {goal}", agent=planner_agent.name, action=plan_goal, duration=5.0),
            Task(
                ANSWER_TASK,
                prompt=merge_prompt(f"The goal: {goal}\nWrite the final answer to it."),
                agent=writer.name,
                depends_on=(PLAN_TASK,),
                duration=3.0,
            ),
        ]
    )
    if resume is not None:  # the tasks the earlier life planned, with their actions again
        regrow(graph, resume.events, definitions or {}, lambda t: _reattach(t, expand_depth, planner, to_task, do_or_replan))
    runtime = Runtime(
        graph,
        agents,
        priority=priority,
        assign=assign,
        limits=limits,
        seed=seed,
        run_id=run_id,
        on_event=on_event,
        backoff=backoff,
        context=context,
        recorder=recorder,
        budget=budget,
        resume=resume,
        adaptive=adaptive,
        replanner=replan_failing,
    )
    result = await runtime.run()
    return GoalRun(goal, result, plans[0] if plans else None, planner)


def _reattach(
    task: Task,
    expand_depth: int,
    planner: Planner,
    prepare: Callable[[Task, int], Task],
    work: Callable[[TaskContext], Any],
) -> Task:
    """A stored planned task (its prompt already says the goal) with its action."""
    depth = int(task.meta.get("depth", 0)) if task.meta else 0
    if task.expandable and depth < expand_depth:
        return task.evolve(action=_expand_or_do(planner, depth, prepare))
    return task.evolve(action=work)


def _expand_or_do(
    planner: Planner, depth: int, prepare: Callable[[Task, int], Task]
) -> Callable[[TaskContext], Any]:
    """The action of an expandable task: decompose it (``prepare`` readies each subtask),
    or do the work itself."""

    async def expand_or_do(ctx: TaskContext) -> Any:
        context = "\n".join(f"{tid}: {str(value)[:400]}" for tid, value in ctx.inputs.items())
        try:
            subtasks = await planner.expand(ctx.task, context=context, depth=depth)
        except ParagentsError:  # a failed decomposition is not fatal: the task does its own work
            subtasks = []
        ctx.prompt_tokens += planner.stats.prompt_tokens
        ctx.completion_tokens += planner.stats.completion_tokens
        if subtasks:
            ctx.expand([prepare(t.evolve(retries=2), depth + 1) for t in subtasks])
            return "Decomposed into: " + ", ".join(t.id for t in subtasks)
        agent = ctx.agent
        completion = await ctx.complete(
            Request(await ctx.prompt(), system=agent.system_prompt, max_tokens=agent.max_tokens)
        )
        return completion.text

    return expand_or_do
