"""The planner: a goal in, a valid task graph out, by asking a model and checking its answer.

Theory of operation
-------------------
:class:`Planner` owns a backend and the set of skills the agents offer (skill -> the
role that has it).  Each of its three verbs is one bounded conversation with the model:

* :meth:`Planner.plan` — a goal becomes a :class:`~paragents.planner.parse.Plan`.
* :meth:`Planner.expand` — an ``expandable`` task, once it has run, becomes smaller tasks
  for an :class:`~paragents.core.events.Expansion` (ids prefixed with the parent's id,
  depth bounded by ``max_depth``).
* :meth:`Planner.replan` — after a task failed, the part of the graph that has not run
  is rewritten; the new tasks depend only on finished tasks or on each other, and
  never reuse an id the graph has.

A conversation: the prompt is a template from ``prompts/`` (files, so they can be read
and tuned without touching code) filled with the goal, the skills, the task limit and a
worked example; the backend is called with the plan's JSON schema when ``constrained``
(so a backend that supports constrained decoding cannot emit anything but a
well-shaped plan); the answer goes through :func:`~paragents.planner.parse.parse_plan`,
which repairs what is safe to repair.  If the answer is unusable, the parser's error
and the answer are sent back with the ``repair`` template, at most ``max_attempts``
calls in all; then :class:`~paragents.core.errors.PlanError` names the goal and the last
error.  Backend failures (unreachable, rate limited) are not the plan's fault and are
raised as they are.

:attr:`Planner.stats` describes the last conversation: how many calls it took, whether
the first answer was a valid plan as it stood, whether the accepted plan was repaired,
the errors along the way and the tokens spent.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from string import Template
from typing import Any

from ..backends.base import Backend, Request
from ..core.errors import PlanError
from ..core.graph import Task
from .parse import Plan, PlannedTask, parse_plan
from .schema import plan_schema
from .stream import PlanStream

__all__ = ["PlanStats", "Planner"]

_CLIP_ANSWER = 2000  # characters of a bad answer quoted back in the repair prompt
_CLIP_RESULT = 400  # characters of each finished task's result quoted when replanning


@dataclass(slots=True)
class PlanStats:
    """How the last conversation with the model went."""

    attempts: int = 0
    first_try_valid: bool = False
    repaired: bool = False
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Planner:
    """Turns goals into plans with a model; see the module docstring.

    ``skills`` maps each skill an agent offers to that agent's role (an empty mapping
    lets the model name skills freely).  ``max_tasks`` bounds every plan, ``max_attempts``
    the calls per conversation, ``max_tokens`` each answer, and ``max_depth`` how many
    times expansions may nest.  ``default_skill`` (the first skill unless given) replaces
    a skill the model named that matches none.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        skills: Mapping[str, str] | None = None,
        max_tasks: int = 12,
        max_attempts: int = 3,
        max_tokens: int = 1024,
        constrained: bool = True,
        temperature: float = 0.0,
        max_depth: int = 2,
        default_skill: str | None = None,
    ) -> None:
        skills = dict(skills or {})
        for name in skills:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"skill names must be non-empty strings, got {name!r}")
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if max_depth < 0:
            raise ValueError(f"max_depth must be non-negative, got {max_depth}")
        if default_skill is not None and skills and default_skill not in skills:
            raise ValueError(f"default skill {default_skill!r} is not one of the skills {list(skills)}")
        self.backend = backend
        self.skills = skills
        self.max_tasks = max_tasks
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens
        self.constrained = constrained
        self.temperature = temperature
        self.max_depth = max_depth
        self.default_skill = default_skill
        self.stats = PlanStats()
        self._first_error = ("", "")  # the streamed first attempt's answer and error

    # ------------------------------------------------------------------ verbs
    async def plan(self, goal: str, *, on_task: Callable[[PlannedTask], None] | None = None) -> Plan:
        """A valid plan for ``goal``; :class:`PlanError` after ``max_attempts`` unusable answers.

        With ``on_task``, planning is streamed: the first answer is read as the model
        writes it, and each task is handed to ``on_task`` (on the event loop) as soon as
        it and its dependencies are complete, before the plan is.  If that answer breaks
        off after some tasks were handed over, those tasks are the plan (the repair says
        so); if none were, the usual repair conversation follows, and the accepted plan's
        tasks are handed over at its end.  Every task reaches ``on_task`` exactly once.
        """
        if not goal.strip():
            raise PlanError("cannot plan for an empty goal")
        prompt = self._render("plan.md", goal=goal.strip())
        subject = f"goal {_clip(goal.strip(), 80)!r}"
        if on_task is None:
            return await self._converse(prompt, subject)
        streamed = await self._stream_first(prompt, on_task)
        if streamed is not None:
            return streamed
        plan = await self._converse(prompt, subject, first_done=True)
        for task in plan.tasks:
            on_task(task)
        return plan

    async def expand(self, task: Task, context: str = "", depth: int = 0) -> list[Task]:
        """Smaller tasks that do ``task``'s work, for an :class:`~paragents.core.events.Expansion`.

        ``context`` is what is known so far (the task's result, its inputs); ``depth`` is
        how deep ``task`` itself is (0 for a task of the first plan).  At ``max_depth``
        nothing is expanded (an empty list); the new tasks are expandable only if they
        could expand in turn.  Their ids are ``"<task.id>.<id>"``, their meta records
        ``parent`` and ``depth``.
        """
        if depth >= self.max_depth:
            return []
        prompt = self._render("expand.md", task=task.prompt or task.id, context=context.strip() or "(nothing yet)")
        plan = await self._converse(prompt, f"the expansion of task {task.id!r}")
        tasks = plan.to_tasks(id_prefix=f"{task.id}.", meta={"parent": task.id, "depth": depth + 1})
        deeper = depth + 1 < self.max_depth
        return [t if deeper or not t.expandable else t.evolve(expandable=False) for t in tasks]

    async def replan(
        self,
        goal: str,
        done: Mapping[str, Any],
        failed_task: Task,
        remaining: Sequence[Task],
        *,
        error: str = "",
        taken: Collection[str] = (),
    ) -> list[Task]:
        """New tasks for the part of the graph that has not run, after ``failed_task`` failed.

        ``done`` maps finished task ids to their results; ``remaining`` are the tasks that
        have not run (shown to the model as the old plan).  The new tasks depend only on
        ``done`` ids or on each other; their ids avoid every id given here and ``taken``
        (the rest of the graph's ids), renamed (``x_2``) if the model reuses one.
        """
        done_lines = "\n".join(f"- {tid}: {_clip(str(result), _CLIP_RESULT)}" for tid, result in done.items())
        previous = json.dumps({"tasks": [_as_planned(t) for t in remaining]}, indent=1)
        prompt = self._render(
            "replan.md",
            goal=goal.strip(),
            done=done_lines or "(none)",
            failed=f"{failed_task.id}: {failed_task.prompt or '(no description)'}",
            error=error.strip() or "(not given)",
            previous=previous,
        )
        taken_ids = {failed_task.id, *(t.id for t in remaining), *taken}
        plan = await self._converse(
            prompt, f"replanning after task {failed_task.id!r} failed", taken=taken_ids, external=done.keys()
        )
        return plan.to_tasks(meta={"replanned_after": failed_task.id})

    # -------------------------------------------------------------- internals
    async def _stream_first(self, prompt: str, on_task: Callable[[PlannedTask], None]) -> Plan | None:
        """The first attempt, streamed; None (stats kept) when it gave no usable task."""
        stats = self.stats = PlanStats(attempts=1)
        stream = PlanStream(skills=self.skills, default_skill=self.default_skill, max_tasks=self.max_tasks)
        released: list[PlannedTask] = []
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def feed(piece: str) -> None:
            for task in stream.feed(piece):
                released.append(task)
                on_task(task)

        def on_text(piece: str) -> None:  # backends may stream from a worker thread
            if threading.get_ident() == loop_thread:
                feed(piece)
            else:
                loop.call_soon_threadsafe(feed, piece)

        completion = await self.backend.complete(self._request(prompt, on_text=on_text))
        await asyncio.sleep(0)  # let pieces handed over from a worker thread be fed first
        if not released:  # a backend that does not stream: the whole answer at once
            feed(completion.text)
        stats.prompt_tokens += completion.prompt_tokens
        stats.completion_tokens += completion.completion_tokens
        try:
            for task in stream.close():
                released.append(task)
                on_task(task)
        except PlanError as exc:
            stats.errors.append(str(exc))
            if not released:
                self._first_error = (completion.text, str(exc))
                return None
            plan = Plan(released, [f"kept the {len(released)} tasks complete before the answer broke: {exc}"])
        else:
            plan = stream.plan
        stats.repaired = bool(plan.repairs)
        stats.first_try_valid = not plan.repairs
        return plan

    def _request(self, prompt: str, *, on_text: Callable[[str], None] | None = None) -> Request:
        schema = plan_schema(self.skills, max_tasks=self.max_tasks) if self.constrained else None
        return Request(
            prompt,
            system=_template("system.md").substitute(),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            json_schema=schema,
            on_text=on_text,
        )

    def _repair_prompt(self, prompt: str, answer: str, error: str) -> str:
        return _template("repair.md").substitute(
            request=prompt,
            previous=_clip(answer, _CLIP_ANSWER) or "(nothing)",
            error=error,
            max_tasks=self.max_tasks,
        )

    async def _converse(
        self,
        prompt: str,
        subject: str,
        *,
        taken: Collection[str] = (),
        external: Collection[str] = (),
        first_done: bool = False,
    ) -> Plan:
        """Ask, check, and ask again with the error, at most ``max_attempts`` times in all.

        With ``first_done``, the first attempt was the streamed one (its stats and error
        are kept): the conversation goes on from the repair prompt.
        """
        if first_done:
            stats = self.stats
            answer, error = self._first_error
            request_prompt = self._repair_prompt(prompt, answer, error)
            first = 2
        else:
            stats = self.stats = PlanStats()
            request_prompt = prompt
            first = 1
        for attempt in range(first, self.max_attempts + 1):
            completion = await self.backend.complete(self._request(request_prompt))
            stats.attempts = attempt
            stats.prompt_tokens += completion.prompt_tokens
            stats.completion_tokens += completion.completion_tokens
            try:
                plan = parse_plan(
                    completion.text,
                    skills=self.skills,
                    default_skill=self.default_skill,
                    max_tasks=self.max_tasks,
                    taken=taken,
                    external=external,
                )
            except PlanError as exc:
                stats.errors.append(str(exc))
                request_prompt = self._repair_prompt(prompt, completion.text, str(exc))
                continue
            stats.repaired = bool(plan.repairs)
            stats.first_try_valid = attempt == 1 and not plan.repairs
            return plan
        raise PlanError(
            f"could not produce a valid plan for {subject} in {self.max_attempts} "
            f"attempt{'s' if self.max_attempts > 1 else ''}: {stats.errors[-1]}"
        )

    def _render(self, name: str, **values: str) -> str:
        """Fill a task-producing template: the values given, plus skills, rules and example."""
        names = list(self.skills)
        if names:
            skills = "\n".join(f"- {s}: {role}" if role else f"- {s}" for s, role in self.skills.items())
            skill_names = ", ".join(names)
        else:
            skills = "- any: name the skill each task needs in one word"
            skill_names = "one word naming the kind of work"
        rules = _template("rules.md").substitute(max_tasks=self.max_tasks, skill_names=skill_names)
        return _template(name).substitute(values, skills=skills, rules=rules, example=_example(self.skills))


@functools.cache
def _template(name: str) -> Template:
    return Template((files("paragents.planner") / "prompts" / name).read_text(encoding="utf-8").strip())


def _example(skills: Mapping[str, str]) -> str:
    """A small plan in the exact form asked for: two tasks that run at once, one that joins them.

    The joining task gets a skill whose name or role mentions writing, if there is one.
    """
    names = list(skills) or ["research", "write"]
    first = names[0]
    last = next((s for s, role in skills.items() if "writ" in f"{s} {role}".lower()), names[-1])
    tasks = [
        ("gather_facts", "List the key facts the answer needs.", first, []),
        ("find_examples", "Find two concrete examples that illustrate the facts.", first, []),
        ("write_answer", "Write the answer from the facts and examples.", last, ["gather_facts", "find_examples"]),
    ]
    return json.dumps(
        {
            "tasks": [
                {"id": i, "description": d, "skill": s, "depends_on": deps, "expandable": False}
                for i, d, s, deps in tasks
            ]
        }
    )


def _as_planned(task: Task) -> dict[str, Any]:
    """A graph task in the plan's JSON form (to show the model the old plan)."""
    return {
        "id": task.id,
        "description": task.prompt,
        "skill": min(task.skills, default=""),
        "depends_on": list(task.depends_on),
        "expandable": task.expandable,
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
