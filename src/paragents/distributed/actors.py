"""What runs on the cluster: agent actors, heavy tool tasks, and one attempt's work.

Theory of operation
-------------------
Every :class:`~paragents.agents.Agent` of a run becomes one async Ray actor,
:class:`AgentWorker`, created with the agent itself (its backend travels with it, see
below) and the handle of the run's :class:`~paragents.distributed.limiter.EndpointGate`.
The driver calls :meth:`AgentWorker.perform` once per attempt; the actor runs it on its
own event loop, so one actor serves as many attempts at once as its agent has slots.

:func:`perform` is one attempt, the same work as the asyncio runtime's: an LLM call on
the agent's backend (prompt = the task's text and its inputs' results), or the task's
Python callable with a :class:`~paragents.runtime.driver.TaskContext` (its
``complete`` goes through the gate; its ``expand`` is carried back to the driver).
An LLM task's prompt comes assembled by the driver when the run's semantic context is on
(the context store lives there); a callable's ``ctx.prompt()`` is built here without it.
Timeouts are applied here, where the attempt runs.  Nothing raises out of
:func:`perform`: the outcome is :class:`Done` (result, usage, expansion) or
:class:`Failed` (message, retryable, Retry-After), so an exception the driver sees is
always the cluster's own (an actor or node lost, a cancellation).  ``usage["node"]``
records the Ray node the attempt ran on.

Heavy tool tasks.  A task with a callable whose ``meta["ray"]`` is set does not run
inside the agent's actor: it runs as a Ray remote function (:func:`run_remote`) with the
Ray options given there (``{"num_cpus": 2}``, ``{"num_gpus": 0.5}``, ...; the string
``"remote"`` means one CPU), placed by Ray wherever those resources are free.  The agent
still holds the slot the scheduler gave it while the function runs.

How backends reach actors.  An agent is pickled with its backend (cloudpickle).  The
simulated and OpenAI-compatible backends are plain objects and travel as they are (an
OpenAI backend opens its HTTP client on first use, inside the actor).  A
:class:`~paragents.backends.local.LocalBackend` holds loaded models and threads, so it
travels as its settings and each actor builds its own (:func:`portable`).  Where an
actor is placed and what it reserves is a :class:`Placement`: API-backed agents reserve
no CPU (``num_cpus=0``: they wait on the network), an agent with a local model one CPU
per model thread, and a GPU fraction when the driver is given one (e.g. an allocator's
share of a GPU).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import ray

from ..agents import Agent
from ..backends.base import Backend, Request
from ..backends.local import LocalBackend
from ..core.errors import (
    Failure,
    NoBackend,
    ParagentsError,
    TaskTimeout,
)
from ..core.events import Expansion
from ..core.graph import Task
from ..runtime.driver import TaskContext, build_prompt
from .limiter import GateClient

__all__ = [
    "AgentWorker",
    "Done",
    "Failed",
    "Placement",
    "perform",
    "placement_of",
    "portable",
    "remote_options",
    "run_remote",
]


@dataclass(frozen=True, slots=True)
class Done:
    result: Any
    usage: dict[str, Any]
    expansion: Expansion | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    retryable: bool = True
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """What an agent's actor reserves on the cluster (Ray's actor options)."""

    num_cpus: float = 0.0
    num_gpus: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)

    def demand(self) -> dict[str, float]:
        """What it reserves, keyed by Ray's resource names (zero amounts left out)."""
        demand = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources}
        return {name: amount for name, amount in demand.items() if amount > 0}

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            opts["num_gpus"] = self.num_gpus
        if self.resources:
            opts["resources"] = dict(self.resources)
        return opts


def placement_of(agent: Agent, gpu_share: float | None = None) -> Placement:
    """The default placement: no CPU for an API-backed agent, one CPU per model thread
    for a local model, plus ``gpu_share`` of a GPU when given."""
    cpus = 0.0
    if isinstance(agent.backend, LocalBackend):
        settings = (
            agent.backend._settings
        )  # the settings a local backend is rebuilt from
        cpus = float(settings.threads * settings.instances)
    return Placement(num_cpus=cpus, num_gpus=gpu_share or 0.0)


@dataclass(frozen=True, slots=True)
class _LocalRecipe:
    """A local backend as the settings that rebuild it inside an actor."""

    kwargs: Mapping[str, Any]

    def build(self) -> LocalBackend:
        return LocalBackend(**self.kwargs)


def portable(agent: Agent) -> tuple[Agent, _LocalRecipe | None]:
    """``agent`` made ready to pickle: a local backend is replaced by its recipe."""
    backend = agent.backend
    if not isinstance(backend, LocalBackend):
        return agent, None
    s = backend._settings
    recipe = _LocalRecipe(
        {
            "model_path": str(s.path),
            "instances": s.instances,
            "threads": s.threads,
            "n_ctx": s.n_ctx,
            "seed": s.seed,
            "name": backend.name,
            "endpoint": backend.endpoint,
        }
    )
    return replace(agent, backend=None), recipe


async def perform(
    task: Task,
    agent: Agent,
    attempt: int,
    inputs: dict[str, Any],
    producers: dict[str, str],
    agents: Mapping[str, Agent],
    gate: GateClient,
    node: str,
    prompt: str | None = None,
) -> Done | Failed:
    """One attempt of ``task`` on ``agent``; every failure becomes a :class:`Failed`.
    ``prompt``, when given, is the task's LLM prompt as the driver assembled it from the
    run's context; without it the prompt is the task's text and its inputs."""
    try:
        done = await _attempt(
            task, agent, attempt, inputs, producers, agents, gate, prompt
        )
    except Exception as exc:  # noqa: BLE001 -- every failure becomes a Failed outcome
        return Failed(*Failure.of(exc))
    done.usage["node"] = node
    return done


async def _attempt(
    task: Task,
    agent: Agent,
    attempt: int,
    inputs: dict[str, Any],
    producers: dict[str, str],
    agents: Mapping[str, Agent],
    gate: GateClient,
    prompt: str | None,
) -> Done:
    fn = task.action
    if fn is None:
        return await _complete(
            task,
            agent,
            prompt if prompt is not None else build_prompt(task, inputs),
            gate,
        )

    async def prompter(
        t: Task, _agent: Agent, _attempt: int, given: dict[str, Any]
    ) -> str:
        return build_prompt(t, given)  # the run's context store lives in the driver

    # The gate client stands in for the runtime's AdmissionControl: ``admitted(backend)``.
    ctx = TaskContext(task, agent, attempt, inputs, producers, agents, gate, prompter)  # type: ignore[arg-type]
    takes_ctx = any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        and p.default is p.empty
        for p in inspect.signature(fn).parameters.values()
    )
    args = (ctx,) if takes_ctx else ()
    started = time.perf_counter()
    if inspect.iscoroutinefunction(fn):
        result = await _within_timeout(task, fn(*args))
    elif task.meta.get("inline"):
        result = fn(*args)
    else:  # a plain function runs in a worker thread so the actor keeps serving its other slots
        result = await _within_timeout(task, asyncio.to_thread(fn, *args))
    if inspect.isawaitable(result):
        result = await _within_timeout(task, result)
    return Done(result, dict(ctx.usage(time.perf_counter() - started)), ctx.expansion)


async def _within_timeout(task: Task, aw: Any) -> Any:
    if task.timeout is None:
        return await aw
    try:
        async with asyncio.timeout(task.timeout):
            return await aw
    except TimeoutError:
        raise TaskTimeout(
            f"task {task.id!r} timed out after {task.timeout:g} s"
        ) from None


async def _complete(task: Task, agent: Agent, prompt: str, gate: GateClient) -> Done:
    backend: Backend | None = agent.backend
    if backend is None:
        raise NoBackend(
            f"task {task.id!r} has no action and agent {agent.name!r} has no backend"
        )
    request = Request(
        prompt=prompt,
        system=agent.system_prompt,
        max_tokens=agent.max_tokens,
        expected_tokens=task.tokens or None,
    )
    try:
        completion = await gate.admitted(backend).complete(
            request, timeout=task.timeout
        )
    except TimeoutError:
        raise TaskTimeout(
            f"task {task.id!r} timed out after {task.timeout:g} s"
        ) from None
    return Done(completion.text, dict(agent.usage_of(completion)))


@ray.remote(max_restarts=0, max_task_retries=0)
class AgentWorker:
    """One agent on the cluster: performs the attempts the driver sends it."""

    def __init__(
        self,
        agent: Agent,
        recipe: _LocalRecipe | None,
        agents: Mapping[str, Agent],
        gate: GateClient,
    ) -> None:
        self.agent = (
            replace(agent, backend=recipe.build()) if recipe is not None else agent
        )
        self.agents = dict(agents)
        self.agents[agent.name] = self.agent
        self.gate = gate
        self.node = ray.get_runtime_context().get_node_id()

    def where(self) -> str:
        """The id of the node this actor runs on (the driver waits for it: ready)."""
        return self.node

    async def perform(
        self,
        task: Task,
        attempt: int,
        inputs: dict[str, Any],
        producers: dict[str, str],
        prompt: str | None = None,
    ) -> Done | Failed:
        return await perform(
            task,
            self.agent,
            attempt,
            inputs,
            producers,
            self.agents,
            self.gate,
            self.node,
            prompt,
        )

    async def close(self) -> None:
        if self.agent.backend is not None:
            await self.agent.backend.aclose()


@ray.remote(max_retries=0)
def run_remote(
    task: Task,
    agent: Agent,
    attempt: int,
    inputs: dict[str, Any],
    producers: dict[str, str],
    agents: Mapping[str, Agent],
    gate: GateClient,
) -> Done | Failed:
    """A heavy tool task as a Ray remote function (``meta["ray"]``), on its own loop."""
    node = ray.get_runtime_context().get_node_id()
    return asyncio.run(
        perform(task, agent, attempt, inputs, producers, agents, gate, node)
    )


def remote_options(task: Task) -> dict[str, Any] | None:
    """The Ray options of a heavy tool task, or None for a task that runs in its agent."""
    spec = task.meta.get("ray") if task.action is not None else None
    if spec is None:
        return None
    if spec == "remote":
        return {"num_cpus": 1}
    if isinstance(spec, Mapping):
        return dict(spec)
    raise ParagentsError(
        f"task {task.id!r}: meta['ray'] must be 'remote' or a mapping of Ray options, got {spec!r}"
    )
