"""The YAML workflow loader: valid files load into runnable objects; every mistake is named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from paragents._example_tasks import count_lines
from paragents.backends.base import Completion, Request
from paragents.backends.simulated import SimulatedBackend
from paragents.core.errors import WorkflowError
from paragents.core.policies import Backoff
from paragents.runtime.limits import Limits
from paragents.context import ContextConfig
from paragents.workflow import BACKEND_KINDS, BackendKind, load_agents, load_workflow, resolve_call

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE: dict[str, Any] = {
    "name": "tiny",
    "policies": {
        "priority": "least_slack",
        "assign": "round_robin",
        "aging": 0.5,
        "seed": 3,
        "retry": {"base_s": 0.1, "factor": 3, "max_s": 4, "jitter": 0.0},
    },
    "backends": {
        "fast-sim": {
            "kind": "simulated",
            "ttft_s": 0.01,
            "tokens_per_s": 800,
            "seed": 4,
            "limits": {"max_concurrency": 2, "requests_per_minute": 600, "tokens_per_minute": 100000},
        },
    },
    "agents": [
        {"name": "researcher", "role": "finds things", "skills": ["research"], "backend": "fast-sim", "slots": 2},
        {"name": "writer", "skills": ["write"], "backend": "fast-sim", "speed": 1.5, "max_tokens": 64},
    ],
    "tasks": [
        {"id": "a", "prompt": "find", "skills": ["research"], "duration": 2.0, "tokens": 50},
        {"id": "b", "prompt": "find more", "skills": ["research"], "depends_on": ["a"], "retries": 2},
        {"id": "c", "prompt": "write", "skills": ["write"], "depends_on": ["a", "b"], "timeout": 9, "agent": "writer"},
    ],
}


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def variant(change: Callable[[dict[str, Any]], None]) -> str:
    """The YAML text of BASE after ``change`` mutated a deep copy of it."""
    doc = copy.deepcopy(BASE)
    change(doc)
    return dump(doc)


def load_error(text: str) -> str:
    with pytest.raises(WorkflowError) as info:
        load_workflow(text)
    return str(info.value)


# ------------------------------------------------------------------- valid files
def test_every_key_reaches_the_objects_it_configures() -> None:
    wf = load_workflow(dump(BASE))

    assert wf.name == "tiny"
    assert (wf.priority, wf.assign, wf.aging, wf.seed) == ("least_slack", "round_robin", 0.5, 3)
    assert wf.backoff == Backoff(base_s=0.1, factor=3.0, max_s=4.0, jitter=0.0)
    assert wf.graph.ids == ["a", "b", "c"]
    assert sorted(wf.graph.edges) == [("a", "b"), ("a", "c"), ("b", "c")]
    a, b, c = (wf.graph[t] for t in "abc")
    assert (a.duration, a.tokens, a.skills, a.action) == (2.0, 50, frozenset({"research"}), None)
    assert b.retries == 2
    assert (c.timeout, c.agent) == (9.0, "writer")
    researcher, writer = wf.agents
    assert (researcher.name, researcher.role, researcher.slots, researcher.skills) == (
        "researcher", "finds things", 2, frozenset({"research"})
    )
    assert (writer.speed, writer.max_tokens) == (1.5, 64)
    assert isinstance(researcher.backend, SimulatedBackend)
    assert researcher.backend is writer.backend
    assert researcher.backend.endpoint == "sim://fast-sim"
    assert wf.limits == {"sim://fast-sim": Limits(max_concurrency=2, requests_per_minute=600, tokens_per_minute=100000)}
    assert wf.run_options() == {
        "priority": "least_slack", "assign": "round_robin", "aging": 0.5,
        "backoff": wf.backoff, "limits": wf.limits, "seed": 3, "context": ContextConfig(),
    }


def test_defaults_fill_everything_but_the_tasks() -> None:
    wf = load_workflow("tasks:\n  - id: only\n    prompt: hello\n")

    assert (wf.name, wf.priority, wf.assign, wf.aging, wf.seed) == (
        "workflow", "critical_path", "earliest_finish", 0.0, 0
    )
    assert wf.backoff == Backoff()
    [agent] = wf.agents
    assert agent.name == "generalist" and agent.slots == 4 and "*" in agent.skills
    assert agent.backend is not None and agent.backend.endpoint == "sim://default"
    assert wf.limits == {}


def test_agent_without_backend_uses_the_only_declared_one() -> None:
    def change(doc: dict[str, Any]) -> None:
        for agent in doc["agents"]:
            del agent["backend"]

    wf = load_workflow(variant(change))
    assert {a.backend.endpoint for a in wf.agents if a.backend} == {"sim://fast-sim"}


def test_agent_must_name_its_backend_when_several_are_declared() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["backends"]["slow-sim"] = {"kind": "simulated"}
        del doc["agents"][1]["backend"]

    assert "agents[1] (name 'writer'): backend is required when several backends are declared (fast-sim, slow-sim)" in (
        load_error(variant(change))
    )


def test_backends_sharing_an_endpoint_share_its_limits() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["backends"]["fast-sim"]["endpoint"] = "http://gpu-box:8000/v1"
        doc["backends"]["twin"] = {"kind": "simulated", "endpoint": "http://gpu-box:8000/v1"}
        doc["agents"][1]["backend"] = "twin"

    wf = load_workflow(variant(change))
    assert list(wf.limits) == ["http://gpu-box:8000/v1"]
    assert {a.backend.endpoint for a in wf.agents if a.backend} == {"http://gpu-box:8000/v1"}


def test_conflicting_limits_for_one_endpoint_are_refused() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["backends"]["twin"] = {"kind": "simulated", "endpoint": "sim://fast-sim", "limits": {"max_concurrency": 9}}

    assert "backends.twin: endpoint 'sim://fast-sim' already has different limits (from backends.fast-sim)" in (
        load_error(variant(change))
    )


def test_call_resolves_to_the_python_function() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["tasks"][0]["call"] = "paragents._example_tasks:count_lines"

    wf = load_workflow(variant(change))
    assert wf.graph["a"].action is count_lines
    assert wf.graph["a"].meta == {"call": "paragents._example_tasks:count_lines"}
    assert resolve_call("os.path:join") is __import__("os").path.join


def test_call_finds_a_module_next_to_the_workflow_file(tmp_path: Path) -> None:
    (tmp_path / "my_steps_for_workflow_test.py").write_text("def step():\n    return 42\n")
    doc = copy.deepcopy(BASE)
    doc["tasks"][0]["call"] = "my_steps_for_workflow_test:step"
    path = tmp_path / "flow.yaml"
    path.write_text(dump(doc))

    assert load_workflow(path).graph["a"].action() == 42


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["name"]
    path = tmp_path / "nightly-digest.yaml"
    path.write_text(dump(doc))

    assert load_workflow(str(path)).name == "nightly-digest"


@pytest.mark.parametrize("name", ["research_report.yaml", "code_review.yaml"])
def test_examples_load(name: str) -> None:
    wf = load_workflow(EXAMPLES / name)
    assert len(wf.graph) >= 10
    assert len(wf.graph.sinks()) == 1
    assert len(wf.agents) >= 4
    assert wf.limits


def test_agents_file_replaces_the_workflows_agents(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(dump({
        "backends": {"box": {"kind": "simulated", "limits": {"max_concurrency": 1}}},
        "agents": [{"name": "solo", "skills": ["*"], "backend": "box", "slots": 3}],
    }))
    team = load_agents(path)
    assert [a.name for a in team.agents] == ["solo"]
    assert team.limits == {"sim://box": Limits(max_concurrency=1)}

    def unpin(doc: dict[str, Any]) -> None:
        doc["tasks"][2]["agent"] = None

    wf = load_workflow(variant(unpin), agents=team)
    assert [a.name for a in wf.agents] == ["solo"]
    assert set(wf.limits) == {"sim://fast-sim", "sim://box"}
    # A pin to an agent the agents file does not have is caught against the new agents.
    assert "agent names unknown agent 'writer'; agents: solo" in str(
        pytest.raises(WorkflowError, load_workflow, dump(BASE), agents=team).value
    )


class _RemoteBackend:
    """A backend kind registered by the test: the registry is the one extension point."""

    def __init__(
        self, *, name: str, endpoint: str = "http://remote", model: str = "big", temperature: float = 0.0
    ) -> None:
        self.name, self.endpoint, self.model = name, endpoint, model

    async def complete(self, request: Request) -> Completion:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def test_registered_kind_is_validated_from_its_signature_and_sim_override_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BACKEND_KINDS, "remote", BackendKind(_RemoteBackend))

    def change(doc: dict[str, Any]) -> None:
        doc["backends"]["fast-sim"] = {"kind": "remote", "model": "huge", "limits": {"max_concurrency": 5}}

    wf = load_workflow(variant(change))
    assert isinstance(wf.agents[0].backend, _RemoteBackend)
    assert wf.limits == {"http://remote": Limits(max_concurrency=5)}

    sim = load_workflow(variant(change), backend_override="sim")
    assert all(isinstance(a.backend, SimulatedBackend) for a in sim.agents)
    assert sim.limits == {"sim://fast-sim": Limits(max_concurrency=5)}

    def two_on_one_server(doc: dict[str, Any]) -> None:
        doc["backends"] = {
            "small": {"kind": "remote", "endpoint": "http://gpu:8000/v1", "limits": {"max_concurrency": 2}},
            "large": {"kind": "remote", "endpoint": "http://gpu:8000/v1", "model": "large"},
        }
        doc["agents"][0]["backend"], doc["agents"][1]["backend"] = "small", "large"

    shared = load_workflow(variant(two_on_one_server), backend_override="sim")
    assert [a.backend.endpoint for a in shared.agents if a.backend] == ["http://gpu:8000/v1"] * 2
    assert all(isinstance(a.backend, SimulatedBackend) for a in shared.agents)
    assert shared.limits == {"http://gpu:8000/v1": Limits(max_concurrency=2)}

    def wrong_type(doc: dict[str, Any]) -> None:
        doc["backends"]["fast-sim"] = {"kind": "remote", "temperature": "hot"}

    assert "backends.fast-sim: temperature must be a number, got string 'hot'" in load_error(variant(wrong_type))


# ------------------------------------------------------------------ mistakes
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets ``doc[k1][k2]...`` (integers index lists)."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


MISTAKES = {
    "unknown top-level key": (
        _set("taks", []),
        "top level: unknown key 'taks'; allowed: name, description, policies, backends, agents, tasks",
    ),
    "unknown task key": (
        _set("tasks.1.dependson", ["a"]),
        "tasks[1] (id 'b'): unknown key 'dependson'; allowed: id, prompt, skills, depends_on, duration, tokens,"
        " priority, retries, timeout, agent, expandable, call",
    ),
    "unknown agent key": (
        _set("agents.0.model", "x"),
        "agents[0] (name 'researcher'): unknown key 'model'; allowed: name,",
    ),
    "unknown policies key": (_set("policies.prio", "fifo"), "policies: unknown key 'prio'; allowed: priority, assign,"),
    "unknown retry key": (_set("policies.retry.tries", 3), "policies.retry: unknown key 'tries'; allowed: base_s,"),
    "unknown limits key": (
        _set("backends.fast-sim.limits.rpm", 5),
        "backends.fast-sim.limits: unknown key 'rpm'; allowed: max_concurrency, requests_per_minute,",
    ),
    "unknown backend parameter": (
        _set("backends.fast-sim.tokens_per_sec", 5),
        "backends.fast-sim: unknown key 'tokens_per_sec'; allowed: kind, limits, endpoint, model, ttft_s,"
        " tokens_per_s,",
    ),
    "missing tasks": (_delete("tasks"), "top level: missing required key 'tasks'"),
    "missing task id": (_delete("tasks.0.id"), "tasks[0]: missing required key 'id'"),
    "missing agent name": (_delete("agents.1.name"), "agents[1]: missing required key 'name'"),
    "missing backend kind": (
        _delete("backends.fast-sim.kind"),
        "backends.fast-sim: missing required key 'kind' (one of: local, openai, simulated)",
    ),
    "empty task list": (_set("tasks", []), "tasks: the list is empty"),
    "task that is not a mapping": (_set("tasks.1", "b"), "tasks[1]: expected a mapping of keys, got string 'b'"),
    "duration of the wrong type": (
        _set("tasks.0.duration", "long"),
        "tasks[0] (id 'a'): duration must be a number, got string 'long'",
    ),
    "skills as a string": (
        _set("tasks.0.skills", "research"),
        "tasks[0] (id 'a'): skills must be a list of names, got string 'research'",
    ),
    "boolean where an integer belongs": (
        _set("tasks.1.retries", True),
        "tasks[1] (id 'b'): retries must be an integer, got boolean True",
    ),
    "id of the wrong type": (_set("tasks.0.id", 7), "tasks[0]: id must be a string, got integer 7"),
    "negative duration": (_set("tasks.0.duration", -1), "tasks[0] (id 'a'): duration must be >= 0, got -1"),
    "zero timeout": (_set("tasks.2.timeout", 0), "tasks[2] (id 'c'): timeout must be > 0, got 0"),
    "zero slots": (_set("agents.0.slots", 0), "agents[0] (name 'researcher'): slots must be >= 1, got 0"),
    "null where a value is required": (
        _set("agents.0.speed", None),
        "agents[0] (name 'researcher'): speed must be a number, got null",
    ),
    "policies not a mapping": (_set("policies", ["fifo"]), "top level: policies must be a mapping, got list ['fifo']"),
    "unknown dependency": (
        _set("tasks.2.depends_on", ["a", "x"]),
        "tasks[2] (id 'c'): depends_on names unknown task 'x'",
    ),
    "duplicate task id": (_set("tasks.1.id", "a"), "tasks[1] (id 'a'): duplicate task id (first at tasks[0])"),
    "self dependency": (_set("tasks.0.depends_on", ["a"]), "tasks: cycle in task graph: a -> a"),
    "unknown agent pin": (
        _set("tasks.2.agent", "ghost"),
        "tasks[2] (id 'c'): agent names unknown agent 'ghost'; agents: researcher, writer",
    ),
    "pinned agent without the skills": (
        _set("tasks.0.agent", "writer"),
        "tasks[0] (id 'a'): pinned agent 'writer' lacks the skills research",
    ),
    "skills nobody has": (
        _set("tasks.0.skills", ["paint"]),
        "tasks[0] (id 'a'): no agent has the skills paint (agents' skills: researcher: research; writer: write)",
    ),
    "duplicate agent": (
        _set("agents.1.name", "researcher"),
        "agents[1] (name 'researcher'): duplicate agent name (first at agents[0])",
    ),
    "unknown priority policy": (
        _set("policies.priority", "fastest"),
        "policies: unknown priority policy 'fastest'; valid: critical_path, fifo, least_slack, plan, user",
    ),
    "unknown assign policy": (
        _set("policies.assign", "best"),
        "policies: unknown assign policy 'best'; valid: capability, earliest_finish, least_loaded, plan,"
        " random, round_robin, weighted_round_robin",
    ),
    "retry jitter out of range": (_set("policies.retry.jitter", 2), "policies.retry: jitter must be <= 1, got 2"),
    "unknown backend name": (
        _set("agents.0.backend", "gpt"),
        "agents[0] (name 'researcher'): backend names unknown backend 'gpt'; declared: fast-sim",
    ),
    "unknown backend kind": (
        _set("backends.fast-sim.kind", "quantum"),
        "backends.fast-sim: unknown kind 'quantum'; valid: local, openai, simulated",
    ),
    "backend parameter of the wrong type": (
        _set("backends.fast-sim.ttft_s", "soon"),
        "backends.fast-sim: ttft_s must be a number, got string 'soon'",
    ),
    "backend parameter out of range": (
        _set("backends.fast-sim.jitter", 2),
        "backends.fast-sim: jitter must be in [0, 1), got 2.0",
    ),
    "limits out of range": (
        _set("backends.fast-sim.limits.max_concurrency", 0),
        "backends.fast-sim.limits: max_concurrency must be >= 1, got 0",
    ),
    "call without a colon": (
        _set("tasks.0.call", "paragents._example_tasks.count_lines"),
        "tasks[0] (id 'a'): call must look like 'package.module:function', got 'paragents._example_tasks.count_lines'",
    ),
    "call of a module that does not exist": (
        _set("tasks.0.call", "no_such_module_xyz:run"),
        "tasks[0] (id 'a'): call 'no_such_module_xyz:run': cannot import 'no_such_module_xyz' (ModuleNotFoundError",
    ),
    "call of a missing function": (
        _set("tasks.0.call", "paragents._example_tasks:count_words"),
        "tasks[0] (id 'a'): call 'paragents._example_tasks:count_words': 'paragents._example_tasks'"
        " has no attribute 'count_words'",
    ),
    "call of something not callable": (
        _set("tasks.0.call", "paragents._example_tasks:__all__"),
        "tasks[0] (id 'a'): call 'paragents._example_tasks:__all__': '__all__' is not callable",
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_mistake_is_named_with_its_place(case: str) -> None:
    change, expected = MISTAKES[case]
    assert expected in load_error(variant(change))


def test_cycle_is_named_with_its_ids_in_order() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["tasks"][0]["depends_on"] = ["c"]

    message = load_error(variant(change))
    assert "cycle in task graph:" in message
    cycle = message.split("cycle in task graph: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == ["a", "b", "c"]
    for before, after in zip(cycle, cycle[1:]):  # each arrow is a real edge, input first
        assert (before, after) in {("c", "a"), ("a", "b"), ("a", "c"), ("b", "c")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ntasks:\n  - {id: a, skills: [research\n", "invalid YAML at line 4, column 1"),
        ("name: x\ntasks: - id: a\n", "invalid YAML at line 2, column 8: sequence entries are not allowed here"),
        ("name: x\nname: y\ntasks: []\n", "invalid YAML at line 2, column 1: duplicate key 'name'"),
        ("\n", "top level: expected a mapping of keys, got null"),
        ("- a\n- b\n", "top level: expected a mapping of keys, got list ['a', 'b']"),
    ],
)
def test_malformed_yaml_is_reported_with_its_line(text: str, expected: str) -> None:
    assert expected in load_error(text)


def test_errors_in_a_file_start_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(variant(_set("tasks.2.depends_on", ["x"])))

    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert str(info.value) == f"{path}: tasks[2] (id 'c'): depends_on names unknown task 'x'"


def test_missing_file_and_unknown_override_are_named(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="no such file: '.*nothing.yaml'"):
        load_workflow(tmp_path / "nothing.yaml")
    with pytest.raises(WorkflowError, match="unknown backend override 'gpu'; valid: local, openai, sim"):
        load_workflow(dump(BASE), backend_override="gpu")


def test_agents_file_mistakes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("agents:\n  - {name: solo, backend: box}\ntasks: []\n")

    with pytest.raises(WorkflowError, match=r"team\.yaml: top level: unknown key 'tasks'; allowed: backends, agents$"):
        load_agents(path)
    path.write_text("agents:\n  - {name: solo, backend: box}\n")
    with pytest.raises(WorkflowError) as info:
        load_agents(path)
    assert str(info.value) == f"{path}: agents[0] (name 'solo'): backend names unknown backend 'box'; declared: none"
