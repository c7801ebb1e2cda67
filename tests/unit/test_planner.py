"""The planner: malformed plans end repaired or in a PlanError that names the problem;
the retry loop is bounded; streamed parsing agrees with batch parsing under any chunking.

Backends here are real objects implementing the protocol: :class:`ScriptedBackend`
answers canned texts in order (a model we can make misbehave on cue) and
:class:`~paragents.backends.simulated.SimulatedBackend` answers prose, as a model that
ignores the instructions would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paragents.agents import Agent
from paragents.backends.base import Completion, Request, estimate_tokens
from paragents.backends.simulated import SimulatedBackend
from paragents.core.errors import BackendUnavailable, PlanError
from paragents.core.graph import Task, TaskGraph
from paragents.planner import Plan, PlannedTask, Planner, PlanStream, parse_plan, plan_schema
from paragents.runtime.driver import TaskContext, arun

SKILLS = {
    "research": "Researcher: finds facts and sources",
    "write": "Writer: drafts and edits text",
    "code": "Engineer: writes and runs programs",
}


class ScriptedBackend:
    """Answers the given texts in order (the last one again once they run out)."""

    name = "scripted"
    endpoint = "scripted://planner"
    model = "scripted"

    def __init__(self, *texts: str, error: Exception | None = None) -> None:
        self.texts = list(texts)
        self.error = error
        self.requests: list[Request] = []

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        text = self.texts[min(len(self.requests), len(self.texts)) - 1]
        return Completion(
            text=text,
            prompt_tokens=estimate_tokens(request.system + request.prompt),
            completion_tokens=estimate_tokens(text),
            ttft_s=0.0,
            total_s=0.0,
            compute_s=0.0,
            transfer_s=0.0,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def t(tid: Any, desc: Any = None, skill: Any = "research", deps: Any = (), expandable: Any = False) -> dict[str, Any]:
    """A task object as a model would write it."""
    return {
        "id": tid,
        "description": f"do {tid}" if desc is None else desc,
        "skill": skill,
        "depends_on": list(deps) if isinstance(deps, tuple) else deps,
        "expandable": expandable,
    }


def plan_text(*tasks: dict[str, Any], **dumps: Any) -> str:
    return json.dumps({"tasks": list(tasks)}, **dumps)


def edges(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {task.id: task.depends_on for task in plan.tasks}


def check_plan(
    plan: Plan, *, max_tasks: int | None = None, skills: Iterable[str] = SKILLS, external: Iterable[str] = ()
) -> None:
    """What every plan parse_plan returns must satisfy."""
    skills, external = set(skills), set(external)
    assert plan.tasks
    assert len(set(plan.ids)) == len(plan.ids)
    assert not set(plan.ids) & external
    for task in plan.tasks:
        assert task.id and task.description
        assert set(task.depends_on) <= (set(plan.ids) | external) - {task.id}
        assert len(set(task.depends_on)) == len(task.depends_on)
        assert not skills or task.skill in skills
    if max_tasks is not None:
        assert len(plan.tasks) <= max_tasks
    TaskGraph([Task(e) for e in external] + plan.to_tasks())  # a valid DAG, or this raises


def parse(text: str, **options: Any) -> Plan:
    options.setdefault("skills", SKILLS)
    plan = parse_plan(text, **options)
    check_plan(plan, max_tasks=options.get("max_tasks"), skills=options["skills"], external=options.get("external", ()))
    return plan


# ----------------------------------------------------------------- well-formed


def test_a_clean_plan_needs_no_repair_and_becomes_a_graph() -> None:
    text = plan_text(
        t("facts"), t("sources"), t("draft", skill="write", deps=("facts", "sources"), expandable=True)
    )
    plan = parse(text)

    assert plan.repairs == []
    assert edges(plan) == {"facts": (), "sources": (), "draft": ("facts", "sources")}
    graph = plan.to_graph(default_duration=2.5)
    draft = graph["draft"]
    assert draft.prompt == "do draft"
    assert draft.skills == frozenset({"write"})
    assert draft.expandable and not graph["facts"].expandable
    assert draft.duration == 2.5
    assert draft.meta["planned"] is True
    assert sorted(graph.edges) == [("facts", "draft"), ("sources", "draft")]


def test_to_tasks_formats_prompts_and_prefixes_ids() -> None:
    plan = parse(plan_text(t("a"), t("b", deps=("a",))))
    tasks = plan.to_tasks(goal="G", prompt_format="{goal}: {description} [{skill}]", id_prefix="p.", meta={"x": 1})

    assert [task.id for task in tasks] == ["p.a", "p.b"]
    assert tasks[1].depends_on == ("p.a",)
    assert tasks[1].prompt == "G: do b [research]"
    assert tasks[1].meta == {"planned": True, "x": 1}


def test_plan_round_trips_through_its_json_form() -> None:
    plan = parse(plan_text(t("a"), t("b", skill="code", deps=("a",), expandable=True)))
    assert parse(json.dumps(plan.to_dict())) == plan


def test_schema_constrains_skills_and_size() -> None:
    schema = plan_schema(SKILLS, max_tasks=5)
    tasks = schema["properties"]["tasks"]
    assert tasks["maxItems"] == 5 and tasks["minItems"] == 1
    item = tasks["items"]
    assert item["properties"]["skill"]["enum"] == list(SKILLS)
    assert item["required"] == ["id", "description", "skill", "depends_on", "expandable"]
    assert item["additionalProperties"] is False
    assert plan_schema()["properties"]["tasks"]["items"]["properties"]["skill"] == {"type": "string", "minLength": 1}
    with pytest.raises(ValueError, match="max_tasks"):
        plan_schema(max_tasks=0)


# ---------------------------------------------------- malformed, then repaired

REPAIRED: list[tuple[str, str, dict[str, Any], dict[str, tuple[str, ...]], list[str]]] = [
    (
        "unknown dependency",
        plan_text(t("a", deps=("ghost",)), t("b", deps=("a", "phantom"))),
        {},
        {"a": (), "b": ("a",)},
        [
            "dropped the dependency of task 'a' on unknown task 'ghost'",
            "dropped the dependency of task 'b' on unknown task 'phantom'",
        ],
    ),
    (
        "two-cycle",
        plan_text(t("a", deps=("b",)), t("b", deps=("a",))),
        {},
        {"a": (), "b": ("a",)},
        ["broke the cycle a -> b -> a by dropping the dependency of 'a' on 'b'"],
    ),
    (
        "three-cycle",
        plan_text(t("a", deps=("c",)), t("b", deps=("a",)), t("c", deps=("b",)), t("d", deps=("c",))),
        {},
        {"a": (), "b": ("a",), "c": ("b",), "d": ("c",)},
        ["broke the cycle a -> b -> c -> a by dropping the dependency of 'a' on 'c'"],
    ),
    (
        "two cycles",
        plan_text(t("a", deps=("b",)), t("b", deps=("a",)), t("c", deps=("d",)), t("d", deps=("c", "b"))),
        {},
        {"a": (), "b": ("a",), "c": (), "d": ("c", "b")},
        [
            "broke the cycle a -> b -> a by dropping the dependency of 'a' on 'b'",
            "broke the cycle c -> d -> c by dropping the dependency of 'c' on 'd'",
        ],
    ),
    (
        "self-loop",
        plan_text(t("a", deps=("a",)), t("b", deps=("a", "b", "a"))),
        {},
        {"a": (), "b": ("a",)},
        [
            "removed the dependency of task 'a' on itself",
            "removed the dependency of task 'b' on itself",
            "removed a repeated dependency of task 'b' on 'a'",
        ],
    ),
    (
        "duplicate ids",
        plan_text(t("a"), t("a"), t("a", desc="something else"), t("b", deps=("a",))),
        {},
        {"a": (), "a_2": (), "b": ("a",)},
        ["dropped tasks[1], an exact repeat of task 'a'", "tasks[2] reuses the id 'a'; renamed it 'a_2'"],
    ),
    (
        "missing and empty ids",
        plan_text({"description": "first"}, t("", desc="second"), t("t1", desc="third")),
        {},
        {"t1": (), "t2": (), "t1_2": ()},
        ["tasks[0] has no id; named it 't1'", "tasks[1] has no id; named it 't2'", "reuses the id 't1'"],
    ),
    (
        "numbers for ids",
        plan_text(t(1), t(2, deps=[1])),
        {},
        {"1": (), "2": ("1",)},
        ["tasks[0].id was the number 1; used '1'", "tasks[1].depends_on[0] was the number 1; used '1'"],
    ),
    (
        "depends_on as a string",
        plan_text(t("a"), t("b"), t("c", deps="a, b"), t("d", deps="c")),
        {},
        {"a": (), "b": (), "c": ("a", "b"), "d": ("c",)},
        [
            "tasks[2].depends_on was the string 'a, b'; read it as ['a', 'b']",
            "tasks[3].depends_on was the string 'c'; read it as ['c']",
        ],
    ),
    (
        "truncated mid-task",
        plan_text(t("a"), t("b", deps=("a",)), t("c", deps=("b",)))[:-40],
        {},
        {"a": (), "b": ("a",)},
        ["the text ends inside tasks[2] (truncated?); dropped that task"],
    ),
    (
        "truncated between tasks",
        plan_text(t("a"), t("b", deps=("a",)), t("c", deps=("b",))).split('{"id": "c"')[0],
        {},
        {"a": (), "b": ("a",)},
        ["the text ends before the task list closes (truncated?); kept the complete tasks"],
    ),
    (
        "truncated with a dependency on the lost task",
        plan_text(t("a", deps=("c",)), t("b", deps=("a",)), t("c"))[:-30],
        {},
        {"a": (), "b": ("a",)},
        ["dropped that task", "dropped the dependency of task 'a' on unknown task 'c'"],
    ),
    (
        "prose around the JSON",
        "Sure! I {think} this [plan] works:\n" + plan_text(t("a"), t("b", deps=("a",))) + "\nAsk {if} unclear.",
        {},
        {"a": (), "b": ("a",)},
        [],
    ),
    (
        "code fences",
        "```json\n" + plan_text(t("a"), t("b", deps=("a",)), indent=2) + "\n```\n",
        {},
        {"a": (), "b": ("a",)},
        [],
    ),
    (
        "a bare list of tasks",
        json.dumps([t("a"), t("b", deps=("a",))]),
        {},
        {"a": (), "b": ("a",)},
        [],
    ),
    (
        "over the size cap",
        plan_text(*[t(f"s{i}", deps=(f"s{i + 3}",) if i == 0 else ()) for i in range(5)]),
        {"max_tasks": 3},
        {"s0": (), "s1": (), "s2": ()},
        [
            "the plan has 5 tasks, more than the limit of 3; kept the first 3",
            "dropped the dependency of task 's0' on unknown task 's3'",
        ],
    ),
    (
        "unknown skills",
        plan_text(t("a", skill="Research"), t("b", skill="writer"), t("c", skill="engineer"), t("d", skill="dance")),
        {},
        {"a": (), "b": (), "c": (), "d": ()},
        [
            "tasks[0].skill 'Research' is not an available skill; used the closest, 'research'",
            "tasks[1].skill 'writer' is not an available skill; used the closest, 'write'",
            "tasks[2].skill 'engineer' is not an available skill; used the closest, 'code'",
            "tasks[3].skill 'dance' is not an available skill; used the default, 'research'",
        ],
    ),
    (
        "missing skill, aliases and loose booleans",
        json.dumps(
            [{"id": "a", "task": "look"}, {"id": "b", "prompt": "x", "dependencies": ["a"], "expandable": "yes"}]
        ),
        {},
        {"a": (), "b": ("a",)},
        [
            "tasks[0]: read 'task' as 'description'",
            "tasks[0] has no skill; used the default 'research'",
            "tasks[1]: read 'dependencies' as 'depends_on'",
            "tasks[1].expandable was 'yes'; read it as true",
        ],
    ),
    (
        "tasks keyed by id",
        json.dumps({"tasks": {"a": {"description": "x"}, "b": {"description": "y", "depends_on": ["a"]}}}),
        {},
        {"a": (), "b": ("a",)},
        ["'tasks' was an object keyed by task id; read it as a list"],
    ),
    (
        "a single task object",
        json.dumps(t("only")),
        {},
        {"only": ()},
        ["the plan is a single task object; read it as a one-task plan"],
    ),
    (
        "a plan nested under 'plan'",
        json.dumps({"plan": {"goal": "g", "tasks": [t("a"), t("b", deps=("a",))]}}),
        {},
        {"a": (), "b": ("a",)},
        [],
    ),
    (
        "missing commas between tasks",
        '{"tasks": [' + json.dumps(t("a")) + " " + json.dumps(t("b", deps=("a",))) + "]}",
        {},
        {"a": (), "b": ("a",)},
        [],
    ),
]


@pytest.mark.parametrize(
    ("text", "options", "expected", "repairs"), [c[1:] for c in REPAIRED], ids=[c[0] for c in REPAIRED]
)
def test_malformed_plan_is_repaired(
    text: str, options: dict[str, Any], expected: dict[str, tuple[str, ...]], repairs: list[str]
) -> None:
    plan = parse(text, **options)

    assert edges(plan) == expected
    for message in repairs:
        assert any(message in line for line in plan.repairs), (message, plan.repairs)
    if not repairs:
        assert plan.repairs == []


def test_repairs_are_what_the_graph_reflects() -> None:
    """The repaired plan passes the graph's own validation, which the raw one fails."""
    cyclic = [Task("a", depends_on=("b",)), Task("b", depends_on=("a",))]
    with pytest.raises(Exception, match="cycle"):
        TaskGraph(cyclic)
    graph = parse(plan_text(t("a", deps=("b",)), t("b", deps=("a",)))).to_graph()
    assert graph.topological_order() == ["a", "b"]


def test_taken_ids_are_renamed_and_references_follow() -> None:
    text = plan_text(t("b", deps=("a",)), t("c", deps=("b", "old")), t("a", desc="again"))
    plan = parse(text, taken=["b", "old"], external=["a"])

    assert edges(plan) == {"b_2": ("a",), "c": ("b_2",), "a_2": ()}
    assert "tasks[0].id 'b' is already taken by another task; renamed it 'b_2'" in plan.repairs
    assert "dropped the dependency of task 'c' on unknown task 'old'" in plan.repairs


# ------------------------------------------------------------ unrecoverable

UNRECOVERABLE: list[tuple[str, str, str]] = [
    ("empty text", "", "the model returned no text"),
    ("only whitespace", " \n\t ", "the model returned no text"),
    ("prose only", "I would start by researching the topic.", "no JSON plan in the text: 'I would start"),
    ("empty object", "{}", 'the plan is an empty JSON object; expected {"tasks": [...]}'),
    ("empty task list", '{"tasks": []}', "the plan has no tasks"),
    ("empty bare list", "[]", "the plan has no tasks"),
    ("tasks not a list", '{"tasks": "research"}', "'tasks' must be a list of task objects, got 'research'"),
    ("tasks a number", '{"tasks": 3}', "'tasks' must be a list of task objects, got 3"),
    ("no task list", '{"goal": "x", "answer": "y"}', "the plan has no 'tasks' list (its keys are 'goal', 'answer')"),
    ("tasks are strings", '{"tasks": ["research", "write"]}', "tasks[0] must be a task object, got 'research'"),
    ("id a list", plan_text(t(["a"])), "tasks[0].id must be a string, got [\"a\"]"),
    ("id a boolean", plan_text(t(True)), "tasks[0].id must be a string, got true"),
    ("depends_on an object", plan_text(t("b", deps={"a": 1})), 'tasks[0].depends_on must be a list of task ids, got {'),
    ("depends_on holds null", plan_text(t("b", deps=[None])), "tasks[0].depends_on[0] must be a task id, got null"),
    ("no description", json.dumps({"tasks": [{"id": "a"}]}), "tasks[0] has no description"),
    ("empty description", plan_text(t("a", desc="  ")), "tasks[0].description is empty"),
    ("description a number", plan_text(t("a", desc=7)), "tasks[0].description must be a string, got 7"),
    ("skill a number", plan_text(t("a", skill=5)), "tasks[0].skill must be a string, got 5"),
    ("expandable a word", plan_text(t("a", expandable="maybe")), "tasks[0].expandable must be true or false, got 'may"),
    ("single quotes", "{'tasks': [{'id': 'a'}]}", "is not valid JSON"),
    ("a task in single quotes", '{"tasks": [{\'id\': \'a\'}]}', "tasks[0] is not valid JSON (Expecting property name"),
    ("truncated before a task", '{"tasks": [{"id": "a", "descri', "the text ends inside tasks[0], before any task is"),
    ("truncated non-plan JSON", '{"goal": "write a rep', "the plan is not valid JSON (Unterminated string"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in UNRECOVERABLE], ids=[c[0] for c in UNRECOVERABLE])
def test_unrecoverable_plan_raises_plan_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(text, skills=SKILLS)
    assert message in str(info.value)


def test_every_error_of_a_plan_is_reported_together() -> None:
    text = plan_text(*[t(f"x{i}", desc=i) for i in range(7)], t("ok"))
    with pytest.raises(PlanError) as info:
        parse_plan(text)
    message = str(info.value)
    assert message.startswith("invalid plan: tasks[0].description must be a string, got 0; tasks[1].description")
    assert message.endswith("; and 2 more")


# -------------------------------------------------------------------- planner

GOOD = plan_text(t("facts"), t("sources"), t("report", skill="write", deps=("facts", "sources")))


async def test_planner_retries_with_the_error_then_succeeds() -> None:
    backend = ScriptedBackend("First, I would research the topic.", GOOD)
    planner = Planner(backend, skills=SKILLS, max_tasks=6)

    plan = await planner.plan("Write a report on bees")

    assert edges(plan) == {"facts": (), "sources": (), "report": ("facts", "sources")}
    assert planner.stats.attempts == 2
    assert not planner.stats.first_try_valid and not planner.stats.repaired
    assert planner.stats.errors == ["no JSON plan in the text: 'First, I would research the topic.'"]
    first, second = backend.requests
    assert "Write a report on bees" in first.prompt and "- write: Writer: drafts and edits text" in first.prompt
    assert "at most 6 tasks" in first.prompt and first.system
    assert "no JSON plan in the text" in second.prompt  # the validation error goes back
    assert "First, I would research the topic." in second.prompt  # with the answer it was about
    assert "Write a report on bees" in second.prompt
    for request in backend.requests:
        assert request.json_schema == plan_schema(SKILLS, max_tasks=6)


async def test_planner_gives_up_after_max_attempts_with_the_last_error() -> None:
    backend = ScriptedBackend("nope", '{"tasks": []}', "{}", GOOD)
    planner = Planner(backend, skills=SKILLS, max_attempts=3)

    with pytest.raises(PlanError) as info:
        await planner.plan("Write a report on bees")

    assert len(backend.requests) == 3
    assert str(info.value) == (
        "could not produce a valid plan for goal 'Write a report on bees' in 3 attempts: "
        'the plan is an empty JSON object; expected {"tasks": [...]}'
    )
    assert planner.stats.attempts == 3
    assert len(planner.stats.errors) == 3


async def test_planner_with_a_model_that_answers_prose_ends_in_plan_error() -> None:
    backend = SimulatedBackend(time_scale=0.0)  # answers "Answer: <the prompt's first words>..."
    planner = Planner(backend, skills=SKILLS, max_attempts=2, max_tokens=24)

    with pytest.raises(PlanError, match=r"could not produce a valid plan for goal 'Plan a trip' in 2 attempts: no JS"):
        await planner.plan("Plan a trip")
    assert planner.stats.attempts == 2
    assert planner.stats.completion_tokens > 0


async def test_planner_stats_tell_clean_from_repaired() -> None:
    planner = Planner(ScriptedBackend(GOOD), skills=SKILLS)
    await planner.plan("g")
    assert (planner.stats.attempts, planner.stats.first_try_valid, planner.stats.repaired) == (1, True, False)

    planner = Planner(ScriptedBackend(plan_text(t("a", deps=("a",)))), skills=SKILLS)
    plan = await planner.plan("g")
    assert (planner.stats.attempts, planner.stats.first_try_valid, planner.stats.repaired) == (1, False, True)
    assert plan.repairs == ["removed the dependency of task 'a' on itself"]


async def test_unconstrained_planner_sends_no_schema_and_free_skills() -> None:
    backend = ScriptedBackend(plan_text(t("a", skill="anything")))
    plan = await Planner(backend, constrained=False).plan("g")

    assert backend.requests[0].json_schema is None
    assert plan.tasks[0].skill == "anything"


async def test_backend_failure_is_not_a_plan_error() -> None:
    planner = Planner(ScriptedBackend(error=BackendUnavailable("connection refused", endpoint="x")))
    with pytest.raises(BackendUnavailable):
        await planner.plan("g")


async def test_planner_refuses_bad_settings() -> None:
    backend = ScriptedBackend(GOOD)
    with pytest.raises(ValueError, match="max_attempts"):
        Planner(backend, max_attempts=0)
    with pytest.raises(ValueError, match="default skill"):
        Planner(backend, skills=SKILLS, default_skill="dance")
    with pytest.raises(PlanError, match="empty goal"):
        await Planner(backend).plan("  ")


async def test_planned_graph_runs_on_agents_with_those_skills() -> None:
    plan = await Planner(ScriptedBackend(GOOD), skills=SKILLS).plan("Write a report on bees")
    agents = [
        Agent(skill, role=role, skills={skill}, backend=SimulatedBackend(name=skill, time_scale=0.0))
        for skill, role in SKILLS.items()
    ]

    result = await arun(plan.to_graph(goal="Write a report on bees"), agents)

    assert set(result.results) == {"facts", "sources", "report"}
    assert result.errors == {}


async def test_expand_prefixes_ids_and_bounds_depth() -> None:
    backend = ScriptedBackend(plan_text(t("outline", expandable=True), t("fill", skill="write", deps=("outline",))))
    planner = Planner(backend, skills=SKILLS, max_depth=2)
    parent = Task("report", prompt="Write the report", expandable=True)

    children = await planner.expand(parent, "facts: bees dance", depth=0)

    assert [c.id for c in children] == ["report.outline", "report.fill"]
    assert children[1].depends_on == ("report.outline",)
    assert children[0].expandable  # depth 1 may still expand once more
    assert children[0].meta == {"planned": True, "parent": "report", "depth": 1}
    assert "Write the report" in backend.requests[0].prompt and "bees dance" in backend.requests[0].prompt

    grandchildren = await planner.expand(children[0], depth=1)
    assert [c.id for c in grandchildren] == ["report.outline.outline", "report.outline.fill"]
    assert not any(c.expandable for c in grandchildren)  # the last level never expands
    assert await planner.expand(grandchildren[0], depth=2) == []
    assert len(backend.requests) == 2


async def test_expansion_grows_a_running_graph() -> None:
    answer = plan_text(t("part1"), t("part2"), t("merge", skill="write", deps=("part1", "part2")))
    planner = Planner(ScriptedBackend(answer), skills=SKILLS)

    async def expand(ctx: TaskContext) -> str:
        ctx.expand(await planner.expand(ctx.task, "", depth=0))
        return "split"

    graph = TaskGraph(
        [
            Task("big", skills={"python"}, expandable=True, action=expand),
            Task("final", skills={"write"}, depends_on=("big",)),
        ]
    )
    agents = [
        Agent(skill, skills={skill}, backend=SimulatedBackend(name=skill, time_scale=0.0)) for skill in SKILLS
    ] + [Agent("python", skills={"python"})]

    result = await arun(graph, agents)

    assert set(result.results) == {"big", "big.part1", "big.part2", "big.merge", "final"}
    assert set(result.graph.predecessors("final")) == {"big", "big.merge"}


async def test_replan_rewrites_the_rest_without_reusing_ids() -> None:
    old = TaskGraph(
        [
            Task("a", prompt="research"),
            Task("b", prompt="fetch data", depends_on=("a",)),
            Task("c", prompt="analyse", depends_on=("b",)),
            Task("d", prompt="report", depends_on=("c",)),
        ]
    )
    answer = plan_text(
        t("b", desc="use cached data", deps=("a",)),
        t("c", desc="analyse", deps=("b", "ghost")),
        t("d", skill="write", deps=("c", "a")),
    )
    backend = ScriptedBackend(answer)
    planner = Planner(backend, skills=SKILLS)

    tasks = await planner.replan(
        "Report on sales", {"a": "sales figures"}, old["b"], [old["c"], old["d"]], error="HTTP 500"
    )

    assert {task.id: task.depends_on for task in tasks} == {"b_2": ("a",), "c_2": ("b_2",), "d_2": ("c_2", "a")}
    assert all(task.meta["replanned_after"] == "b" for task in tasks)
    old.add(tasks)  # fits the running graph: new ids, dependencies on finished work only
    prompt = backend.requests[0].prompt
    assert "- a: sales figures" in prompt and "b: fetch data" in prompt and "HTTP 500" in prompt
    assert '"id": "d"' in prompt  # the old remaining plan is shown
    assert planner.stats.repaired


# ---------------------------------------------------------------- streaming

STREAMED = "Here is the plan.\n```json\n" + plan_text(
    t("facts"),
    t("sources"),
    t("draft", skill="write", deps=("facts", "sources")),
    t("review", skill="write", deps=("draft", "figures")),
    t("figures", skill="code", deps=("facts",)),
    indent=1,
) + "\n```\nDone."


def stream(text: str, chunks: Sequence[int], **options: Any) -> tuple[list[PlannedTask], PlanStream]:
    """Feed ``text`` cut at ``chunks`` (positions); the tasks in release order and the stream."""
    options.setdefault("skills", SKILLS)
    s = PlanStream(**options)
    out: list[PlannedTask] = []
    cuts = [0, *sorted(set(chunks)), len(text)]
    for start, end in zip(cuts, cuts[1:]):
        out += s.feed(text[start:end])
    out += s.close()
    return out, s


def assert_released_in_dependency_order(tasks: Sequence[PlannedTask]) -> None:
    seen: set[str] = set()
    for task in tasks:
        assert set(task.depends_on) <= seen, f"{task.id} released before its inputs"
        seen.add(task.id)


def test_stream_at_every_split_point_gives_the_batch_plan() -> None:
    batch = parse_plan(STREAMED, skills=SKILLS)
    for cut in range(len(STREAMED) + 1):
        tasks, s = stream(STREAMED, [cut])
        assert s.plan == batch
        assert sorted(tasks, key=batch.tasks.index) == batch.tasks
        assert_released_in_dependency_order(tasks)


def test_stream_one_character_at_a_time_releases_tasks_as_their_inputs_arrive() -> None:
    s = PlanStream(skills=SKILLS)
    released: list[tuple[int, str]] = []
    for i, char in enumerate(STREAMED):
        released += [(i, task.id) for task in s.feed(char)]
    closing = {task.id for task in s.close()}

    order = [tid for _, tid in released]
    assert order == ["facts", "sources", "draft", "figures", "review"]
    assert closing == set()
    end_of_facts = STREAMED.index("}", STREAMED.index('"facts"'))
    assert released[0] == (end_of_facts, "facts")  # at its closing brace, long before the end
    assert released[2][0] < STREAMED.index('"review"')  # draft's inputs were complete
    # review waited for figures, which the model listed after it
    assert released[3][0] == released[4][0] == STREAMED.index("}", STREAMED.index('"id": "figures"'))


def test_stream_holds_a_task_with_unknown_inputs_until_close() -> None:
    s = PlanStream(skills=SKILLS)
    assert [x.id for x in s.feed(plan_text(t("a"), t("b", deps=("a", "nowhere"))))] == ["a"]
    rest = s.close()
    assert [(x.id, x.depends_on) for x in rest] == [("b", ("a",))]
    assert "dropped the dependency of task 'b' on unknown task 'nowhere'" in s.plan.repairs


def test_stream_of_a_truncated_plan_keeps_the_complete_tasks() -> None:
    text = plan_text(t("a"), t("b", deps=("a",)), t("c", deps=("b",)))[:-25]
    tasks, s = stream(text, range(0, len(text), 5))
    assert [x.id for x in tasks] == ["a", "b"]
    assert s.plan.repairs == ["the text ends inside tasks[2] (truncated?); dropped that task"]


def test_stream_reports_a_bad_task_at_close_even_after_releasing_others() -> None:
    s = PlanStream(skills=SKILLS)
    assert [x.id for x in s.feed(plan_text(t("a"), t("b", deps=5.5)))] == ["a"]
    with pytest.raises(PlanError, match=r"tasks\[1\]\.depends_on must be a list of task ids, got 5.5"):
        s.close()


def test_stream_refuses_use_after_close() -> None:
    s = PlanStream()
    with pytest.raises(RuntimeError):
        _ = s.plan
    s.feed(plan_text(t("a")))
    s.close()
    with pytest.raises(RuntimeError):
        s.feed("more")
    with pytest.raises(RuntimeError):
        s.close()


def test_stream_falls_back_to_reading_other_plan_shapes_at_close() -> None:
    tasks, s = stream(json.dumps(t("only")), [3, 9])
    assert [x.id for x in tasks] == ["only"]
    assert s.plan.repairs == ["the plan is a single task object; read it as a one-task plan"]


IDS = st.text("abcdefgh_", min_size=1, max_size=6)


@st.composite
def plan_texts(draw: st.DrawFn) -> str:
    """A valid plan (dependencies may point forward), with prose, fences and odd spacing."""
    ids = draw(st.lists(IDS, min_size=1, max_size=8, unique=True))
    tasks = []
    for tid in ids:
        deps = draw(st.lists(st.sampled_from(ids), max_size=3, unique=True).filter(lambda d, tid=tid: tid not in d))
        desc = draw(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12))
        desc = desc if desc.strip() else "x"
        tasks.append(t(tid, desc=desc, skill=draw(st.sampled_from(list(SKILLS))), deps=tuple(deps)))
    indent = draw(st.sampled_from([None, 0, 2]))
    body = draw(st.sampled_from([lambda ts: {"tasks": ts}, lambda ts: ts, lambda ts: {"goal": "[x]", "tasks": ts}]))
    text = json.dumps(body(tasks), indent=indent, ensure_ascii=draw(st.booleans()))
    before = draw(st.sampled_from(["", "Plan:\n", "```json\n", "I'd say {roughly} this:\n"]))
    after = draw(st.sampled_from(["", "\n```", " Hope {this} helps ]"]))
    return before + text + after


@settings(max_examples=150)
@given(text=plan_texts(), data=st.data())
def test_any_chunking_of_a_plan_gives_the_batch_tasks(text: str, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    batch = parse_plan(text, skills=SKILLS)

    tasks, s = stream(text, cuts)

    assert s.plan == batch
    assert sorted(tasks, key=batch.tasks.index) == batch.tasks
    assert_released_in_dependency_order(tasks)


# -------------------------------------------------------------------- fuzzing

JSONISH = st.text(alphabet='{}[]":,\\ \n-_0123456789abcdeijknopstuxtrue', max_size=120)
KEYS = [*"abc", "id", "tasks", "description", "depends_on", "skill", "expandable", "plan"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=20,
)


def parse_or_plan_error(text: str, **options: Any) -> None:
    """``parse_plan`` returns a valid plan or raises PlanError: never anything else."""
    options.setdefault("skills", SKILLS)
    try:
        plan = parse_plan(text, **options)
    except PlanError:
        return
    check_plan(plan, max_tasks=options.get("max_tasks"), skills=options["skills"], external=options.get("external", ()))


@settings(max_examples=300)
@given(st.text(max_size=200) | JSONISH)
def test_any_text_gives_a_plan_or_a_plan_error(text: str) -> None:
    parse_or_plan_error(text)


@settings(max_examples=300)
@given(JSON_VALUES, st.booleans())
def test_any_json_gives_a_plan_or_a_plan_error(value: Any, wrap: bool) -> None:
    parse_or_plan_error(json.dumps({"tasks": [value]} if wrap else value), max_tasks=3)


@settings(max_examples=300)
@given(plan_texts(), st.data())
def test_damaged_plans_give_a_plan_or_a_plan_error(text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(text)))
    damage = data.draw(st.sampled_from(["cut", "drop", "insert"]))
    if damage == "cut":
        text = text[:at]
    elif damage == "drop":
        text = text[:at] + text[at + 1 :]
    else:
        text = text[:at] + data.draw(st.sampled_from(list('{}[]",:\\'))) + text[at:]
    parse_or_plan_error(text)
    parse_or_plan_error(text, skills={}, taken=["a", "b"], external=["c"])


@settings(max_examples=200)
@given(plan_texts(), st.data())
def test_any_chunking_of_a_damaged_plan_agrees_with_the_batch_parser(text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(text)))
    text = text[:at] + data.draw(st.sampled_from(["", *'{}[]",:\\'])) + text[at + data.draw(st.integers(0, 1)) :]
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=8))
    try:
        batch: Plan | str = parse_plan(text, skills=SKILLS, max_tasks=4)
    except PlanError as exc:
        batch = str(exc)
    try:
        tasks, s = stream(text, cuts, max_tasks=4)
    except PlanError as exc:
        assert str(exc) == batch
    else:
        assert s.plan == batch
        assert_released_in_dependency_order(tasks)


# ------------------------------------------------------------ streamed planning
class StreamingBackend(ScriptedBackend):
    """Hands each answer over in small pieces through ``on_text``, yielding between them,
    from a worker thread when ``threaded`` (as the local backend does)."""

    def __init__(self, *texts: str, threaded: bool = False) -> None:
        super().__init__(*texts)
        self.threaded = threaded
        self.finished = False

    async def complete(self, request: Request) -> Completion:
        self.finished = False
        answer = await super().complete(request)
        if request.on_text is not None:
            pieces = [answer.text[i : i + 7] for i in range(0, len(answer.text), 7)]
            for piece in pieces:
                if self.threaded:
                    await asyncio.to_thread(request.on_text, piece)
                else:
                    request.on_text(piece)
                await asyncio.sleep(0)
        self.finished = True
        return answer


@pytest.mark.parametrize("threaded", [False, True], ids=["loop", "worker-thread"])
async def test_streamed_plan_hands_over_tasks_before_the_answer_is_complete(threaded: bool) -> None:
    backend = StreamingBackend(GOOD, threaded=threaded)
    seen: list[tuple[str, bool]] = []
    plan = await Planner(backend, skills=SKILLS).plan("a report", on_task=lambda task: seen.append((task.id, backend.finished)))
    assert [tid for tid, _ in seen] == plan.ids == ["facts", "sources", "report"]
    assert seen[0] == ("facts", False)  # released while the model was still writing
    assert backend.requests[0].on_text is not None


async def test_streamed_plan_that_breaks_off_keeps_the_tasks_already_handed_over() -> None:
    broken = GOOD[: GOOD.index('"report"')]  # cut inside the third task
    seen: list[str] = []
    planner = Planner(StreamingBackend(broken), skills=SKILLS)
    plan = await planner.plan("a report", on_task=lambda task: seen.append(task.id))
    assert seen == plan.ids
    assert set(seen) <= {"facts", "sources"} and seen
    assert planner.stats.attempts == 1


async def test_streamed_plan_with_nothing_usable_goes_on_with_repair_and_hands_over_once() -> None:
    backend = StreamingBackend("I am not sure what you mean.", GOOD)
    seen: list[str] = []
    planner = Planner(backend, skills=SKILLS, max_attempts=3)
    plan = await planner.plan("a report", on_task=lambda task: seen.append(task.id))
    assert seen == plan.ids == ["facts", "sources", "report"]
    assert planner.stats.attempts == 2 and not planner.stats.first_try_valid
    assert "I am not sure" in backend.requests[1].prompt  # the repair quotes the bad answer


async def test_streamed_plan_that_never_works_ends_in_plan_error() -> None:
    planner = Planner(StreamingBackend("nothing"), skills=SKILLS, max_attempts=2)
    with pytest.raises(PlanError, match="in 2 attempts"):
        await planner.plan("a report", on_task=lambda task: None)
