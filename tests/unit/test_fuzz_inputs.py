"""Bad input, fuzzed: the workflow loader and the plan parser end in a result or a ParagentsError.

Anything else (a TypeError, a RecursionError, a raw yaml or json exception) is a bug.
Inputs: arbitrary text; arbitrary YAML- and JSON-shaped values; and mutations of the
example workflows (keys deleted, values swapped for other types, huge numbers, unicode,
cycles injected, tasks duplicated).  Each bug these found is kept as an ``@example``.
Also here: the size limits of :mod:`paragents.core.sizes`, at every place that enforces them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from paragents.core import sizes
from paragents.core.errors import GraphError, ParagentsError, PlanError, WorkflowError
from paragents.core.graph import Task, TaskGraph
from paragents.planner.parse import parse_plan
from paragents.workflow import load_workflow

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
FUZZ = settings(max_examples=150, deadline=None)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 10**30, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "é🙂", "\u202e", "a" * 300, "x:y", "*", "tasks", "id"])
)
KEYS = st.sampled_from(
    ["id", "tasks", "prompt", "depends_on", "agents", "name", "kind", "skills", "backend", "budget", "policies"]
) | st.text(max_size=12)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=30
)


def loads_or_refuses(text: str) -> None:
    try:
        load_workflow(text)
    except ParagentsError:
        pass


def plans_or_refuses(text: str, **options: Any) -> None:
    try:
        parse_plan(text, **options)
    except ParagentsError:
        pass


# ------------------------------------------------------------------ workflows
@FUZZ
@given(st.text(max_size=300))
@example("[" * 5000 + "\n")  # was a RecursionError from PyYAML's composer
@example("- &a [*a]\n")
@example("tasks: [{id: a, depends_on: [a]}]\n")
def test_any_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(text + "\n")  # with a newline the string is the document, not a path


@FUZZ
@given(VALUES)
@example({"backends": {"o": {"kind": "openai", "base_url": [1]}}, "tasks": [{"id": "a"}]})  # was AttributeError
@example({"backends": {"o": {"kind": "local", "threads": "x"}}, "tasks": [{"id": "a"}]})
@example({"tasks": [{"id": "a"}], "budget": {"deadline_s": float("inf")}})
def test_any_yaml_shaped_value_loads_or_is_refused(value: Any) -> None:
    loads_or_refuses(yaml.safe_dump(value, allow_unicode=True) + "\n")


@pytest.mark.parametrize("path", ["bad\x00name.yaml", "dir\x00/flow.yaml"])
def test_an_impossible_path_is_refused(path: str) -> None:
    with pytest.raises(WorkflowError, match="invalid file path"):  # was a raw ValueError
        load_workflow(path)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated_examples(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(yaml.safe_load(draw(st.sampled_from(EXAMPLES)).read_text(encoding="utf-8")))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "replace", "cycle", "duplicate", "huge", "unicode"]))
        paths = [p for p in _paths(doc) if p[-1] != "call"]  # never import a module a fuzzer named
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        tasks = doc.get("tasks") if isinstance(doc, dict) else None
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(VALUES)
        elif op == "huge":
            parent[path[-1]] = draw(st.sampled_from([10**40, -(10**40), 1e308, float("inf"), float("nan")]))
        elif op == "unicode":
            parent[path[-1]] = draw(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20))
        elif isinstance(tasks, list) and len(tasks) >= 2 and all(isinstance(t, dict) for t in tasks):
            i, j = draw(st.integers(0, len(tasks) - 1)), draw(st.integers(0, len(tasks) - 1))
            if op == "cycle":
                tasks[i]["depends_on"] = [tasks[j].get("id")]
                tasks[j]["depends_on"] = [tasks[i].get("id")]
            else:
                tasks.append(copy.deepcopy(tasks[i]))
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@FUZZ
@given(mutated_examples())
def test_mutated_examples_load_or_are_refused(text: str) -> None:
    loads_or_refuses(text + "\n")


def test_the_examples_themselves_load() -> None:
    assert EXAMPLES
    for path in EXAMPLES:
        assert len(load_workflow(path).graph) > 0


# ------------------------------------------------------------------ plans
def _task_like() -> st.SearchStrategy[Any]:
    field_values = VALUES | st.lists(st.text(max_size=5), max_size=3)
    return st.fixed_dictionaries(
        {},
        optional={
            "id": field_values,
            "description": field_values,
            "skill": field_values,
            "depends_on": field_values,
            "expandable": field_values,
        },
    ) | VALUES


@FUZZ
@given(st.text(max_size=400))
@example('{"tasks": [' * 3000)
@example('{"tasks": [{"id": "a", "description": "x", "depends_on": ["a"]}]}')
def test_any_text_plans_or_is_refused(text: str) -> None:
    plans_or_refuses(text, skills=["research", "write"])


@FUZZ
@given(st.lists(_task_like(), max_size=8), st.sampled_from(["tasks", "steps", "plan", "bare"]), st.booleans())
def test_any_json_shaped_plan_plans_or_is_refused(items: list[Any], key: str, truncate: bool) -> None:
    doc: Any = items if key == "bare" else {key: items}
    text = "Here is the plan:\n```json\n" + json.dumps(doc) + "\n```"
    if truncate:
        text = text[: len(text) // 2]
    plans_or_refuses(text, skills={"research": "finds sources"}, taken=["t1"], external=["done"])


@FUZZ
@given(VALUES)
def test_any_json_value_plans_or_is_refused(value: Any) -> None:
    plans_or_refuses(json.dumps(value))


# ------------------------------------------------------------------ size limits
def test_graph_refuses_an_id_over_the_limit() -> None:
    long_id = "x" * (sizes.MAX_ID_CHARS + 1)
    with pytest.raises(GraphError, match=r"257 characters is longer than the limit of 256 \(MAX_ID_CHARS\)"):
        TaskGraph([Task(long_id)])
    TaskGraph([Task("x" * sizes.MAX_ID_CHARS)])


def test_graph_refuses_a_prompt_over_the_limit() -> None:
    prompt = "p" * (sizes.MAX_PROMPT_CHARS + 1)
    with pytest.raises(GraphError, match=r"task 'a': prompt of 1,000,001 characters .* \(MAX_PROMPT_CHARS\)"):
        TaskGraph([Task("a", prompt=prompt)])


def test_graph_refuses_tasks_and_edges_over_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from paragents.core import graph as graph_module

    monkeypatch.setattr(graph_module, "MAX_TASKS", 3)
    monkeypatch.setattr(graph_module, "MAX_EDGES", 2)
    g = TaskGraph([Task("a"), Task("b", depends_on=("a",))])
    with pytest.raises(GraphError, match=r"would hold 4 tasks, more than the limit of 3 \(MAX_TASKS\)"):
        g.add([Task("c"), Task("d")])
    with pytest.raises(GraphError, match=r"would hold 3 edges, more than the limit of 2 \(MAX_EDGES\)"):
        g.add([Task("c", depends_on=("a", "b"))])
    g.add([Task("c", depends_on=("b",))])  # a refused batch left the graph as it was
    assert len(g) == 3 and len(g.edges) == 2


def test_workflow_names_the_task_over_a_size_limit() -> None:
    long_id = "i" * (sizes.MAX_ID_CHARS + 1)
    with pytest.raises(WorkflowError, match=r"tasks\[1\] \(id 'i+'\): id of 257 characters .*MAX_ID_CHARS"):
        load_workflow(f"tasks:\n  - id: ok\n  - id: {long_id}\n")
    prompt = "p" * (sizes.MAX_PROMPT_CHARS + 1)
    with pytest.raises(WorkflowError, match=r"tasks\[0\] \(id 'a'\): prompt of 1,000,001 characters"):
        load_workflow(f"tasks:\n  - id: a\n    prompt: {prompt}\n")


def test_workflow_refuses_more_tasks_than_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from paragents import workflow as workflow_module

    monkeypatch.setattr(workflow_module, "MAX_TASKS", 2)
    with pytest.raises(WorkflowError, match=r"tasks: 3 tasks, more than the limit of 2 \(MAX_TASKS\)"):
        load_workflow("tasks: [{id: a}, {id: b}, {id: c}]\n")


def test_plan_parser_names_the_task_over_a_size_limit() -> None:
    long_id = "i" * (sizes.MAX_ID_CHARS + 1)
    plan = json.dumps({"tasks": [{"id": long_id, "description": "d"}]})
    with pytest.raises(PlanError, match=r"tasks\[0\]: id of 257 characters .*MAX_ID_CHARS"):
        parse_plan(plan)
    plan = json.dumps({"tasks": [{"id": "a", "description": "d" * (sizes.MAX_PROMPT_CHARS + 1)}]})
    with pytest.raises(PlanError, match=r"tasks\[0\]: description of 1,000,001 characters .*MAX_PROMPT_CHARS"):
        parse_plan(plan)


def test_plan_parser_refuses_more_tasks_than_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from paragents.planner import parse as parse_module

    monkeypatch.setattr(parse_module, "MAX_TASKS", 2)
    plan = json.dumps({"tasks": [{"id": f"t{i}", "description": "d"} for i in range(3)]})
    with pytest.raises(PlanError, match=r"more than 2 tasks, the limit \(MAX_TASKS\)"):
        parse_plan(plan)
