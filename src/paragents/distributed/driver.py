"""The Ray driver: the scheduling core in this process, the work on a Ray cluster.

Theory of operation
-------------------
:class:`RayRuntime` is the asyncio runtime's loop with the attempts moved out of the
process.  The sans-I/O :class:`~paragents.core.scheduler.Scheduler` stays here and is
fed exactly as the asyncio runtime feeds it, so the event log, the run report, the
store records and the results are the same; only where an attempt runs changes.

* Start: the run's :class:`~paragents.distributed.limiter.EndpointGate` is created on
  this node, then one :class:`~paragents.distributed.actors.AgentWorker` per agent,
  each on the node :class:`~paragents.distributed.spread.Spreader` picks (the one with
  room that holds the fewest of the run's actors; what each reserves is its
  :class:`~paragents.distributed.actors.Placement`).  The clock starts once every actor
  has said where it runs, so actor start-up is not counted as task time.
* ``Dispatch`` -> ``perform.remote(...)`` on the agent's actor (or
  :func:`~paragents.distributed.actors.run_remote` for a heavy tool task), and the
  returned ObjectRef is *watched*: a callback on its future (Ray's own thread) puts the
  attempt's key on the ``_arrived`` list and wakes the loop.  Nothing ever blocks on one
  ref: the loop sleeps until something arrived, then settles the whole batch that
  arrived meanwhile, in arrival order, and carries out the decisions that follow.
* ``Retry`` -> a ``loop.call_at`` timer that calls ``Scheduler.tick``, as in the
  asyncio runtime; ``Cancel`` -> ``ray.cancel`` of that attempt's ref, which is
  forgotten (a late answer is never reported).
* Settling an answer: :class:`~paragents.distributed.actors.Done` ->
  ``task_finished`` (after the result is durable, with a recorder);
  :class:`~paragents.distributed.actors.Failed` -> ``task_failed``.

Failure handling. When an actor dies (its process crashed, its node was removed), its
refs raise ``RayActorError`` (``ActorUnschedulableError`` if its node died before it
started). On the first one the agent is *replaced*: a new actor for the same agent is
created on a live node (picked among the nodes alive then) under a new incarnation name
(``writer`` -> ``writer#1``), ``agent_added`` tells the core, then ``agent_removed`` for
the dead one requeues every attempt that was running on it (without spending the tasks'
retries: the task did nothing wrong). Adding before removing keeps an agent that was the
only one with a skill from orphaning its tasks. The requeued tasks go to whichever
capable agent is free first -- another agent, or the replacement. The gate forgets the
dead holder's leases. A task pinned to an agent by name (``Task.agent``) cannot follow
it to a new incarnation and fails. Other errors of the cluster (a remote function's
worker crashed, an object lost) fail the attempt as retryable.

Every attempt's node is in its ``finished`` event's usage (``usage["node"]``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.exceptions import (
    ActorUnschedulableError,
    RayActorError,
    RayError,
    TaskCancelledError,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..adaptive.manager import AdaptiveConfig
from ..agents import Agent
from ..context.runtime_context import ContextConfig, RunContext
from ..core.budget import Budget
from ..core.errors import ParagentsError, SchedulingError
from ..core.events import Cancel, Dispatch, Retry, TaskState
from ..core.graph import TaskGraph
from ..core.policies import AssignPolicy, Backoff, PriorityPolicy
from ..runtime.limits import Limits
from ..runtime.run_state import EventHook, Resumption, RunResult, RunState
from ..store.recorder import Recorder
from ..store.serialize import inputs_hash
from .actors import (
    AgentWorker,
    Done,
    Failed,
    Placement,
    placement_of,
    portable,
    remote_options,
    run_remote,
)
from .limiter import EndpointGate, GateClient
from .spread import Spreader

__all__ = ["DistributedError", "RayRuntime", "arun", "run", "session"]


#: What an actor's refs raise when it is gone: it died, or its node died before it started.
_ACTOR_LOST = (RayActorError, ActorUnschedulableError)

#: How long the actors of a run may take to be placed and started before the run gives up.
PLACEMENT_TIMEOUT_S = 120.0


class DistributedError(ParagentsError):
    """The run cannot go on the cluster: an unsupported option, actors that cannot be placed."""


@dataclass(slots=True)
class _Actor:
    """One live incarnation of an agent: its actor handle, what it reserves, the node
    picked for it (``""``: none could hold it) and the node it runs on once known."""

    agent: Agent
    handle: Any
    place: Placement
    picked: str
    node: str = ""


@dataclass(slots=True)
class _Flight:
    """One attempt on the cluster: its ref, the future watched, the incarnation it runs on."""

    ref: Any
    future: Future[Any]
    agent: str


class RayRuntime(RunState):
    """One run of a graph on a Ray cluster (Ray must be initialised: see :func:`session`).

    Options are the asyncio runtime's where they make sense (``priority``, ``assign``,
    ``aging``, ``backoff``, ``limits``, ``failover_after``, ``seed``, ``run_id``,
    ``on_event``, ``context``, ``recorder``, ``resume``, ``budget``), plus ``placement``
    (agent name -> :class:`Placement`, overriding the default) and ``gpus`` (agent name ->
    fraction of a GPU its actor reserves, e.g. an allocator's shares).  ``adaptive`` is
    refused: the adaptive manager runs only in the asyncio runtime.
    """

    def __init__(
        self,
        graph: TaskGraph,
        agents: Iterable[Agent],
        *,
        priority: str | PriorityPolicy = "critical_path",
        assign: str | AssignPolicy = "earliest_finish",
        aging: float = 0.0,
        backoff: Backoff | None = None,
        limits: Mapping[str, Limits] | None = None,
        failover_after: int = 2,
        seed: int = 0,
        run_id: str | None = None,
        on_event: EventHook | None = None,
        recorder: Recorder | None = None,
        resume: Resumption | None = None,
        budget: Budget | None = None,
        placement: Mapping[str, Placement] | None = None,
        gpus: Mapping[str, float] | None = None,
        context: ContextConfig | None = None,
        adaptive: AdaptiveConfig | None = None,
    ) -> None:
        if adaptive is not None:
            raise DistributedError(
                "the adaptive manager (adaptive:) is not supported on Ray; run it with the local executor"
            )
        super().__init__(
            graph,
            agents,
            priority=priority,
            assign=assign,
            aging=aging,
            backoff=backoff,
            failover_after=failover_after,
            seed=seed,
            run_id=run_id,
            on_event=on_event,
            recorder=recorder,
            resume=resume,
            budget=budget,
        )
        self.limits = dict(limits or {})
        self.placement = dict(placement or {})
        self.gpus = dict(gpus or {})
        self.context = RunContext(context) if context is not None else None
        self._actors: dict[str, _Actor] = {}  # scheduler agent name -> its live actor
        self._spreader = Spreader()
        self._incarnations: dict[str, int] = {}  # base agent name -> replacements made
        self._flights: dict[tuple[str, int], _Flight] = {}
        self._arrived: list[tuple[str, int]] = []
        self._preparing: dict[
            tuple[str, int], asyncio.Task[None]
        ] = {}  # prompts being assembled
        self._tg: asyncio.TaskGroup | None = None
        self._gate: Any = None
        self._gate_client: GateClient | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._t0 = 0.0
        self._over = False
        self._fatal: BaseException | None = None

    # ----------------------------------------------------------------- public
    async def run(self) -> RunResult:
        if not ray.is_initialized():
            raise DistributedError(
                "Ray is not initialised: call ray.init() or use paragents.distributed.session()"
            )
        loop = self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.context is not None:
            await self.context.warm()
            if (
                self.resume is not None
            ):  # later prompts see what the earlier life produced
                for tid, result in self.resume.results.items():
                    await self.context.record(
                        tid, result, self.resume.producers.get(tid, "")
                    )
        if self.recorder is not None:
            await self.recorder.start()
            if self.resume is None:
                self.recorder.tasks(list(self.graph), None)
        try:
            await self._start_cluster()
            offset = self._prior[-1].time if self._prior else 0.0
            self._t0 = loop.time() - offset
            async with asyncio.TaskGroup() as tg:  # owns the prompt assemblies
                self._tg = tg
                restored = self.resume.results if self.resume is not None else ()
                self._apply(self.scheduler.start(self._now(), restored=restored))
                deadline = self.scheduler.deadline
                if deadline is not None:
                    self._timers.append(
                        loop.call_at(self._t0 + deadline, self._tick, deadline)
                    )
                while not self._over:
                    await self._wake.wait()
                    self._wake.clear()
                    batch, self._arrived = self._arrived, []
                    for key in batch:
                        await self._settle(key)
                for preparing in self._preparing.values():
                    preparing.cancel()
        finally:
            self._tg = None
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._stop_cluster()
            if self.recorder is not None:
                self._record_events()
                await self.recorder.close()
        if self._fatal is not None:
            raise self._fatal
        return self._result()

    def cancel(
        self, task_id: str | None = None, reason: str = "cancelled by user"
    ) -> None:
        """Cancel one task and everything downstream of it, or the whole run."""
        self._apply(self.scheduler.cancel(task_id, now=self._now(), reason=reason))

    def nodes(self) -> dict[str, str]:
        """Agent (incarnation) name -> id of the node its live actor runs on."""
        return {name: actor.node for name, actor in self._actors.items()}

    # ------------------------------------------------------------- the cluster
    async def _start_cluster(self) -> None:
        here = ray.get_runtime_context().get_node_id()
        self._gate = EndpointGate.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
        ).remote(self.limits)
        self._gate_client = GateClient(self._gate, frozenset(self.limits), "driver")
        self._spreader.refresh(ray.nodes())
        for agent in self.agents.values():
            self._actors[agent.name] = self._spawn(agent)
        await self._placed(list(self._actors))

    def _spawn(self, agent: Agent, avoid: Sequence[str] = ()) -> _Actor:
        """Create an actor for ``agent`` (placement as configured) on the node picked for
        it, away from the nodes in ``avoid`` if another can hold it."""
        base = agent.name.split("#", 1)[0]
        place = self.placement.get(base) or placement_of(agent, self.gpus.get(base))
        node = self._spreader.pick(place, avoid)
        strategy = "DEFAULT" if node is None else affinity(node, place)
        shipped, recipe = portable(agent)
        others = {name: replace(a, backend=None) for name, a in self.agents.items()}
        gate = GateClient(self._gate, frozenset(self.limits), agent.name)
        handle = AgentWorker.options(
            **place.options(),
            # The scheduler never sends more than ``slots`` attempts; the headroom lets a
            # cancelled attempt unwind while its successor starts.
            max_concurrency=2 * agent.slots + 1,
            scheduling_strategy=strategy,
        ).remote(shipped, recipe, others, gate)
        return _Actor(agent, handle, place, node or "")

    def _respawn(self, lost: _Actor, agent: Agent) -> _Actor:
        """An actor for ``agent`` in place of ``lost``: its reservation is given back and
        the new one goes to a node alive now, away from ``lost``'s if another can hold it."""
        self._spreader.release(lost.picked, lost.place)
        self._spreader.refresh(ray.nodes())
        return self._spawn(agent, [lost.picked, lost.node])

    async def _placed(self, names: Sequence[str]) -> None:
        """Wait (awaiting the batch of refs together) until these actors run; note their nodes.

        An actor whose node died before it started is created again on a live node."""
        waiting = list(names)
        try:
            async with asyncio.timeout(PLACEMENT_TIMEOUT_S):
                while waiting:
                    refs = [self._actors[n].handle.where.remote() for n in waiting]
                    nodes = await asyncio.gather(*refs, return_exceptions=True)
                    lost = []
                    for name, node in zip(waiting, nodes, strict=True):
                        if isinstance(node, _ACTOR_LOST):
                            lost.append(name)
                        elif isinstance(node, BaseException):
                            raise node
                        else:
                            self._actors[name].node = node
                    for name in lost:
                        dead = self._actors[name]
                        self._actors[name] = self._respawn(dead, dead.agent)
                    waiting = lost
        except TimeoutError:
            raise DistributedError(
                f"the actors of agents {', '.join(waiting)} were not placed within {PLACEMENT_TIMEOUT_S:g} s: "
                "does the cluster have the CPUs/GPUs their placement asks for?"
            ) from None

    def _stop_cluster(self) -> None:
        for flight in self._flights.values():
            _cancel(flight.ref)
        self._flights.clear()
        for actor in self._actors.values():
            ray.kill(actor.handle, no_restart=True)
        self._actors.clear()
        if self._gate is not None:
            ray.kill(self._gate, no_restart=True)
            self._gate = None

    # --------------------------------------------------------------- internals
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time() - self._t0

    def _apply(self, decisions: Sequence[Any]) -> None:
        for d in decisions:
            if type(d) is Dispatch:
                self._dispatch(d)
            elif type(d) is Retry:
                assert self._loop is not None
                self._timers.append(
                    self._loop.call_at(
                        self._t0 + d.not_before, self._tick, d.not_before
                    )
                )
            elif type(d) is Cancel:
                keys = (
                    [(d.task, d.attempt)]
                    if d.attempt
                    else [k for k in self._flights if k[0] == d.task]
                )
                keys += [
                    k
                    for k in self._preparing
                    if k[0] == d.task and d.attempt in (0, k[1])
                ]
                for key in keys:
                    flight = self._flights.pop(key, None)
                    if flight is not None:
                        _cancel(flight.ref)
                    preparing = self._preparing.pop(key, None)
                    if preparing is not None:
                        preparing.cancel()
        if self._on_event is not None:
            self._emit()
        if self.recorder is not None:
            self._record_events()
        sched = self.scheduler
        if sched.done or sched.stalled:
            if sched.stalled:
                self._fatal = SchedulingError(
                    f"run stalled: no agent can take the remaining tasks ({sched.counts})"
                )
            self._over = True
            assert self._wake is not None
            self._wake.set()

    def _dispatch(self, d: Dispatch) -> None:
        task = self.graph[d.task]
        if self.context is not None and task.action is None:
            assert self._tg is not None
            self._preparing[d.task, d.attempt] = self._tg.create_task(
                self._assemble_and_send(d)
            )
        else:
            self._send(d, None)

    async def _assemble_and_send(self, d: Dispatch) -> None:
        """An LLM task's prompt from the run's context (logged as a ``context`` event), then
        the attempt goes to the cluster."""
        assert self.context is not None
        task = self.graph[d.task]
        try:
            assembly = await self.context.prompt(task.prompt, self._inputs(d.task))
        except Exception as exc:  # noqa: BLE001 -- a failed assembly fails the attempt, not the run
            del self._preparing[d.task, d.attempt]
            self.errors[d.task] = f"context assembly: {type(exc).__name__}: {exc}"
            self._apply(
                self.scheduler.task_failed(
                    d.task, self._now(), error=self.errors[d.task], attempt=d.attempt
                )
            )
            return
        del self._preparing[d.task, d.attempt]
        self.scheduler.annotate(
            "context", self._now(), task.id, d.agent, assembly.log_record()
        )
        self._send(d, assembly.text)

    def _send(self, d: Dispatch, prompt: str | None) -> None:
        task = self.graph[d.task]
        inputs = self._inputs(d.task)
        producers = {
            p: self.scheduler.agent_of(p) or "" for p in self.graph.predecessors(d.task)
        }
        actor = self._actors.get(d.agent)
        if (
            actor is None
        ):  # lost while the prompt was assembled: agent_removed has requeued it
            return
        options = remote_options(task)
        if options is None:
            ref = actor.handle.perform.remote(
                task, d.attempt, inputs, producers, prompt
            )
        else:
            shipped, _ = portable(actor.agent)
            others = {name: replace(a, backend=None) for name, a in self.agents.items()}
            gate = GateClient(self._gate, frozenset(self.limits), d.agent)
            ref = run_remote.options(**options).remote(
                task, shipped, d.attempt, inputs, producers, others, gate
            )
        key = (d.task, d.attempt)
        future: Future[Any] = ref.future()
        self._flights[key] = _Flight(ref, future, d.agent)
        loop = self._loop
        assert loop is not None
        future.add_done_callback(
            lambda _f: loop.call_soon_threadsafe(self._arrive, key)
        )

    def _arrive(self, key: tuple[str, int]) -> None:
        self._arrived.append(key)
        assert self._wake is not None
        self._wake.set()

    async def _settle(self, key: tuple[str, int]) -> None:
        """Report the outcome of one attempt that arrived (a forgotten one is ignored)."""
        flight = self._flights.pop(key, None)
        if flight is None or self._over:
            return
        tid, attempt = key
        try:
            outcome: Done | Failed = flight.future.result()
        except TaskCancelledError:
            return
        except _ACTOR_LOST as exc:
            self._replace(flight.agent, exc)
            return
        except RayError as exc:
            outcome = Failed(f"{type(exc).__name__}: {exc}".splitlines()[0])
        sched = self.scheduler
        if type(outcome) is Failed:
            self.errors[tid] = outcome.error
            self._apply(
                sched.task_failed(
                    tid,
                    self._now(),
                    error=outcome.error,
                    retryable=outcome.retryable,
                    retry_after=outcome.retry_after,
                    attempt=attempt,
                )
            )
            return
        assert type(outcome) is Done
        if self.context is not None and sched.attempt(tid) == attempt:
            await self.context.record(
                tid, outcome.result, flight.agent
            )  # before successors are dispatched
        if (
            self.recorder is not None
            and sched.attempt(tid) == attempt
            and not sched.state(tid).terminal
        ):
            self._record_events()
            usage = outcome.usage
            await self.recorder.result(
                tid,
                attempt,
                flight.agent,
                outcome.result,
                usage,
                inputs_hash(self._inputs(tid)),
            )
        try:
            decisions = sched.task_finished(
                tid,
                self._now(),
                usage=outcome.usage,
                expansion=outcome.expansion,
                attempt=attempt,
            )
        except (
            ParagentsError
        ) as exc:  # an invalid expansion fails its task, not the run
            self.errors[tid] = f"invalid expansion: {exc}"
            decisions = sched.task_failed(
                tid,
                self._now(),
                error=self.errors[tid],
                retryable=False,
                attempt=attempt,
            )
        else:
            if sched.attempt(tid) == attempt and sched.state(tid) is TaskState.DONE:
                self.results[tid] = outcome.result
                self.errors.pop(tid, None)
        self._apply(decisions)

    def _replace(self, name: str, exc: BaseException) -> None:
        """``name``'s actor is lost: start a new incarnation, then requeue the dead one's work."""
        lost = self._actors.pop(name, None)
        if lost is None:  # already replaced: this was another of its attempts
            return
        base = name.split("#", 1)[0]
        n = self._incarnations[base] = self._incarnations.get(base, 0) + 1
        agent = replace(lost.agent, name=f"{base}#{n}")
        self.agents[agent.name] = agent
        self._actors[agent.name] = self._respawn(lost, agent)
        self._gate.release_holder.remote(name)
        reason = f"actor lost on node {lost.node[:12]}: {type(exc).__name__}"
        now = self._now()
        self._apply(self.scheduler.agent_added(agent, now=now))
        self._apply(self.scheduler.agent_removed(name, now=now, reason=reason))

    def _tick(self, due: float) -> None:
        if not self._over:
            self._apply(self.scheduler.tick(max(self._now(), due)))


def _cancel(ref: Any) -> None:
    """Cancel an attempt's ref; one whose actor is already gone needs nothing."""
    try:
        ray.cancel(ref)
    except (RayError, ValueError):
        pass


def affinity(node: str, place: Placement) -> NodeAffinitySchedulingStrategy:
    """How an actor is tied to the node picked for it.

    An actor that reserves nothing is pinned (Ray treats a soft affinity as no affinity
    for it, and it can never wait for resources); one that reserves resources prefers
    the node and goes elsewhere if its resources are taken or it died."""
    if place.demand():
        return NodeAffinitySchedulingStrategy(
            node_id=node, soft=True, _spill_on_unavailable=True
        )
    return NodeAffinitySchedulingStrategy(node_id=node, soft=False)


async def arun(graph: TaskGraph, agents: Iterable[Agent], **options: Any) -> RunResult:
    """Run ``graph`` on ``agents`` on the Ray cluster this process is connected to.
    Options are :class:`RayRuntime`'s."""
    return await RayRuntime(graph, agents, **options).run()


def run(graph: TaskGraph, agents: Iterable[Agent], **options: Any) -> RunResult:
    """Synchronous :func:`arun`."""
    return asyncio.run(arun(graph, agents, **options))


@contextmanager
def session(address: str | None = None, **init: Any) -> Iterator[Callable[..., Any]]:
    """Connected to Ray for the ``with`` block; yields :func:`arun`.

    ``address`` names a running cluster (``ray://...`` or ``HOST:PORT``); without one a
    local Ray instance is started (every Ray process listening on 127.0.0.1) and shut down
    after.  When this process is already connected, that connection is used and kept.
    """
    if ray.is_initialized():
        yield arun
        return
    os.environ.setdefault(
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"
    )  # bind 127.0.0.1 only
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        **init,
    }
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise DistributedError(f"cannot connect to {where}: {exc}") from None
    try:
        yield arun
    finally:
        ray.shutdown()
