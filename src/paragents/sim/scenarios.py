"""Named simulation scenarios: what ``paragents simulate WORKLOAD`` runs.

Theory of operation
-------------------
A scenario is a workload (a graph, or requests arriving over time), a pool of agents
and a latency model, built from a short name plus ``key=value`` parameters, so the
command line and scripts reach every workload of :mod:`paragents.sim.workloads` the same
way:

==============================  ===========================================================
``simple`` / ``medium`` /       one travel request of that shape (``seed``, ``spread``);
``complex``                     agents share one model server unless told otherwise
``stream``                      a Poisson stream of travel requests (``rate`` per second,
                                ``count``, ``mix`` as ``simple+medium``, ``spread``); each
                                agent has its own model replica unless told otherwise
``layered``                     a layered random DAG (``width``, ``depth``, ``fan_in``,
                                ``span``, ``cv``); fixed durations
``pegasus:NAME``                a bundled Pegasus trace (``1000genome``, ``montage``, ...)
``recipe:NAME``                 a WfCommons recipe (``tasks``)
``PATH.json``                   any WfCommons JSON trace
``PATH.yaml``                   a paragents workflow: its graph, agents and policies
==============================  ===========================================================

The latency model: ``server`` is ``shared`` (one model server for every agent),
``replicas`` (one per agent) or ``none`` (fixed ``duration / speed``), with the server's
``single`` and ``peak`` tokens/s, ``batch`` and ``ttft``; ``jitter`` (coefficient of
variation), ``failures`` and ``stragglers`` (probabilities per attempt) add noise, and
``retries`` (default 2) is how often a task that declares none may be retried after a
failed attempt.
Unknown parameters and malformed values are refused with a message naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.agent_state import AgentLike, AgentSpec
from ..core.errors import ParagentsError
from ..core.graph import TaskGraph
from .engine import Arrival, SimResult, simulate
from .latency import Faults, LatencyModel, ModelServer, ThroughputCurve
from .workloads.requests import SHAPES, poisson_stream, travel_graph

__all__ = ["Scenario", "ScenarioError", "build_scenario", "describe", "run_scenario"]


class ScenarioError(ParagentsError, ValueError):
    """The workload name or one of its parameters is not understood."""


@dataclass(slots=True)
class Scenario:
    name: str
    agents: list[AgentLike]
    graph: TaskGraph | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    latency: LatencyModel | None = None
    priority: str | None = None  # a workflow file's own policies
    assign: str | None = None


_LATENCY_KEYS = {"server", "single", "peak", "batch", "ttft", "jitter", "failures", "stragglers", "retries"}
_WORKLOAD_KEYS: dict[str, set[str]] = {
    "request": {"seed", "spread"},
    "stream": {"rate", "count", "mix", "seed", "spread"},
    "layered": {"width", "depth", "fan_in", "span", "cv", "seed"},
    "recipe": {"tasks", "seed"},
    "trace": set(),
    "workflow": set(),
}


class _Params:
    """``key=value`` strings, read with types; what was never read is an error."""

    def __init__(self, pairs: Sequence[str], allowed: set[str]) -> None:
        self.values: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ScenarioError(f"parameter {pair!r} is not key=value")
            if key not in allowed:
                raise ScenarioError(f"unknown parameter {key!r} (this workload takes: {', '.join(sorted(allowed))})")
            self.values[key] = value

    def get(self, key: str, default: Any, kind: type = float) -> Any:
        raw = self.values.get(key)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise ScenarioError(f"parameter {key}={raw!r} is not a valid {kind.__name__}") from None


def _pool(agents: int, speeds: Sequence[float] | None, slots: int) -> list[AgentLike]:
    if speeds:
        return [AgentSpec(f"agent{i}", slots=slots, speed=s) for i, s in enumerate(speeds)]
    if agents < 1:
        raise ScenarioError(f"need at least one agent, got {agents}")
    return [AgentSpec(f"agent{i}", slots=slots) for i in range(agents)]


def _latency(p: _Params, agents: Sequence[AgentLike], default_server: str) -> LatencyModel:
    server = p.get("server", default_server, str)
    noise = {
        "jitter_cv": p.get("jitter", 0.0),
        "faults": Faults(failure_p=p.get("failures", 0.0), straggler_p=p.get("stragglers", 0.0)),
    }
    try:
        if server == "none":
            return LatencyModel(**noise)  # type: ignore[arg-type]
        curve = ThroughputCurve.saturating(p.get("single", 40.0), p.get("peak", 400.0))
        spec = ModelServer("gpu", curve, max_batch=p.get("batch", 16, int), ttft_s=p.get("ttft", 0.2))
        names = [a.name for a in agents]
        if server == "shared":
            return LatencyModel.shared_server(names, spec, **noise)
        if server == "replicas":
            return LatencyModel.replicas(names, spec, **noise)
    except ParagentsError as exc:
        raise ScenarioError(str(exc)) from None
    raise ScenarioError(f"server={server!r}: choose shared, replicas or none")


def build_scenario(
    workload: str,
    params: Sequence[str] = (),
    *,
    agents: int = 4,
    speeds: Sequence[float] | None = None,
) -> Scenario:
    """The scenario ``workload`` names (see the module docstring)."""
    kind, _, arg = workload.partition(":")
    path = Path(workload)
    if kind in SHAPES:
        family = "request"
    elif kind in _WORKLOAD_KEYS and kind not in ("request", "trace", "workflow"):
        family = kind
    elif kind == "pegasus" or path.suffix == ".json":
        family = "trace"
    elif path.suffix in (".yaml", ".yml"):
        family = "workflow"
    else:
        known = ", ".join([*SHAPES, "stream", "layered", "pegasus:NAME", "recipe:NAME", "FILE.json", "FILE.yaml"])
        raise ScenarioError(f"unknown workload {workload!r} (choose from {known})")
    p = _Params(params, _WORKLOAD_KEYS[family] | _LATENCY_KEYS)
    seed = p.get("seed", 0, int)
    if family == "workflow":
        return _workflow_scenario(path, p)
    if family == "stream":
        pool = _pool(agents, speeds, slots=2)
        mix = p.get("mix", "simple+medium+complex", str).split("+")
        rate, count = p.get("rate", 0.1 * len(pool)), p.get("count", 100, int)
        try:
            arrivals = poisson_stream(rate, count, mix=mix, seed=seed, spread=p.get("spread", 0.3))
        except ParagentsError as exc:
            raise ScenarioError(str(exc)) from None
        return Scenario(workload, pool, arrivals=arrivals, latency=_latency(p, pool, "replicas"))
    pool = _pool(agents, speeds, slots=1)
    if family == "request":
        graph = travel_graph(kind, seed=seed, spread=p.get("spread", 0.3))
        return Scenario(workload, pool, graph=graph, latency=_latency(p, pool, "shared"))
    graph = _with_retries(_static_graph(family, arg, workload, p, seed), p.get("retries", 2, int))
    return Scenario(workload, pool, graph=graph, latency=_latency(p, pool, "none"))


def _with_retries(graph: TaskGraph, retries: int) -> TaskGraph:
    if retries < 0:
        raise ScenarioError(f"retries must be >= 0, got {retries}")
    return TaskGraph(t if t.retries else t.evolve(retries=retries) for t in graph)


def _static_graph(family: str, arg: str, workload: str, p: _Params, seed: int) -> TaskGraph:
    from .workloads import LogNormal, layered_dag, load_trace, recipe_graph

    try:
        if family == "layered":
            return layered_dag(
                p.get("width", 8, int),
                p.get("depth", 6, int),
                fan_in=p.get("fan_in", 2, int),
                span=p.get("span", 1, int),
                duration=LogNormal(cv=p.get("cv", 0.5)),
                seed=seed,
            )
        if family == "recipe":
            return recipe_graph(arg, p.get("tasks", 200, int), seed=seed)
        return load_trace(arg if workload.startswith("pegasus:") else workload)
    except (ParagentsError, ValueError, OSError) as exc:
        raise ScenarioError(f"{workload}: {exc}") from None


def _workflow_scenario(path: Path, p: _Params) -> Scenario:
    from ..workflow import load_workflow

    wf = load_workflow(path)
    return Scenario(
        str(path),
        list(wf.agents),
        graph=wf.graph,
        latency=_latency(p, list(wf.agents), "none"),
        priority=wf.priority,
        assign=wf.assign,
    )


def run_scenario(
    scenario: Scenario,
    *,
    priority: str | None = None,
    assign: str | None = None,
    seed: int = 0,
) -> SimResult:
    return simulate(
        scenario.graph,
        scenario.agents,
        arrivals=scenario.arrivals,
        latency=scenario.latency,
        priority=priority or scenario.priority or "critical_path",
        assign=assign or scenario.assign or "earliest_finish",
        seed=seed,
        run_id=scenario.name,
    )


def describe(scenario: Scenario) -> Mapping[str, Any]:
    """What ran, for the JSON document and the table's title."""
    tasks = len(scenario.graph) if scenario.graph is not None else sum(len(a.tasks) for a in scenario.arrivals)
    return {
        "workload": scenario.name,
        "tasks": tasks,
        "requests": len(scenario.arrivals),
        "pool": [{"name": a.name, "slots": a.slots, "speed": a.speed} for a in scenario.agents],
        "servers": [s.name for s in scenario.latency.servers] if scenario.latency else [],
    }
