"""The asyncio driver: real calls, dataflow dispatch, structured concurrency.

Theory of operation
-------------------
The driver is a thin loop around the sans-I/O :class:`~paragents.core.scheduler.Scheduler`:
it turns what happens in the world into scheduler calls and carries out the decisions.

* ``Dispatch`` -> a child task in the run's :class:`asyncio.TaskGroup` that performs the
  attempt (a Python callable, or an LLM call on the agent's backend through that
  endpoint's admission control) under the task's timeout.  When the attempt ends, the
  child itself reports to the scheduler and carries out the new decisions, so a task's
  successors are dispatched in the same turn of the event loop in which it finished:
  there is no central queue and no superstep.
* ``Retry`` -> a timer (``loop.call_at``) that calls ``Scheduler.tick`` at ``not_before``.
* ``Cancel`` -> ``cancel()`` on that attempt's child task.

Every child belongs to the TaskGroup, which the run owns: when :meth:`Runtime.run`
returns, or is cancelled, no task of the run is left behind, and retry timers are
cancelled.  Failures never escape a child: they become ``task_failed`` reports
(retryable unless the error says otherwise), so one bad task cannot tear down the run.
A ``RateLimited`` error also blocks the endpoint for its Retry-After, for every agent
that uses it.

Time is ``loop.time()`` measured from the run's start; it goes into every scheduler call.

With ``context`` set, every LLM prompt (a plain LLM task's, or a callable's through
``TaskContext.prompt()``) is assembled from the run's context store, each finished
task's text is added to that store before its successors are dispatched, and what
each prompt received is logged as a ``context`` event.

Adaptation.  With ``adaptive`` (an :class:`~paragents.adaptive.AdaptiveConfig`), an
:class:`~paragents.adaptive.AdaptiveManager` observes every log event as it is appended
and ticks every ``period_s`` on a timer; its decisions (hedges, re-estimates, avoided
agents) are carried out like the scheduler's, and a ``SetConcurrency`` sets that
endpoint limiter's concurrency.  A hedged task has two live attempts, so children are
keyed by ``(task, attempt)``; a ``Cancel`` naming an attempt stops that one only, and
the first attempt to finish reports the result (the scheduler ignores the other's).
A ``Replan`` (a task failed ``after_failures`` times) is carried out by the
``replanner`` when one is given (goal runs give the planner's): it returns tasks that
take the failing task's place (``Scheduler.replace``), unless the task ran meanwhile.

Durability.  With a ``recorder`` (:mod:`paragents.store.recorder`), every event of the log
is handed to it as it happens (it writes in batches, on its own thread), and a finished
task's result is awaited into the store *before* the scheduler hears of it, so no
successor is ever dispatched on a result that a crash could lose.  With ``resume`` (a
:class:`Resumption`: the results and the log of the run's earlier life), the tasks that
had finished are restored as done and never run again, the clock continues from the
log's last event, and the report covers the whole log.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..adaptive.manager import AdaptiveConfig, AdaptiveManager, Replan, SetConcurrency
from ..agents import Agent
from ..backends.base import Backend, Completion, Request
from ..context.runtime_context import ContextConfig, RunContext
from ..core.budget import Budget
from ..core.errors import (
    Failure,
    NoBackend,
    ParagentsError,
    SchedulingError,
    TaskTimeout,
)
from ..core.events import Cancel, Dispatch, Expansion, Retry, TaskState
from ..core.graph import Task, TaskGraph
from ..core.policies import AssignPolicy, Backoff, PriorityPolicy
from ..core.report import usage_dict
from ..store.recorder import Recorder
from ..store.serialize import inputs_hash
from .limits import AdmissionControl, Limits
from .run_state import EventHook, Resumption, RunResult, RunState

__all__ = ["Resumption", "RunResult", "Runtime", "TaskContext", "arun", "run"]

#: Replacement tasks for a task that keeps failing, given its id and the running runtime.
Replanner = Callable[[str, "Runtime"], Awaitable[Sequence[Task]]]


@dataclass(slots=True)
class TaskContext:
    """What a callable task receives: its task, agent, attempt, and its inputs' results.

    ``inputs`` maps each dependency's id to its result (in dependency order) and
    ``producers`` to the agent that produced it.  ``complete(request)`` calls a model
    under the run's admission control, counting its tokens.  ``expand(tasks, edges)`` adds
    tasks to the graph when this task finishes (see :class:`~paragents.core.events.Expansion`).
    """

    task: Task
    agent: Agent
    attempt: int
    inputs: dict[str, Any]
    producers: dict[str, str]  # input id -> the agent that produced it
    agents: Mapping[str, Agent]  # the run's agents by name
    admission: AdmissionControl
    prompter: Callable[[Task, Agent, int, dict[str, Any]], Awaitable[str]]
    expansion: Expansion | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    model_compute_s: float = 0.0
    model_transfer_s: float = 0.0

    def expand(self, tasks: Iterable[Task], edges: Iterable[tuple[str, str]] = (), *, rewire: bool = True) -> None:
        self.expansion = Expansion(tuple(tasks), tuple(edges), rewire)

    async def prompt(self) -> str:
        """This task's LLM prompt, built as the run builds every LLM prompt (with the
        run's context assembly when it is on)."""
        return await self.prompter(self.task, self.agent, self.attempt, self.inputs)

    async def complete(self, request: Request, backend: Backend | None = None) -> Completion:
        """Call a model from inside a task: ``backend`` (default: this agent's) through
        its endpoint's admission control; the tokens count towards this task's usage."""
        backend = backend if backend is not None else self.agent.backend
        if backend is None:
            raise NoBackend(f"task {self.task.id!r}: agent {self.agent.name!r} has no backend to call")
        completion = await self.admission.admitted(backend).complete(request)
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.model_calls += 1
        self.model_compute_s += completion.compute_s
        self.model_transfer_s += completion.transfer_s
        return completion

    def usage(self, elapsed_s: float) -> Mapping[str, float]:
        """This attempt's usage: the model's compute and transfer when it called a model
        through :meth:`complete`, else its whole run time as compute."""
        used = self.prompt_tokens + self.completion_tokens
        return usage_dict(
            compute_s=self.model_compute_s if self.model_calls else elapsed_s,
            transfer_s=self.model_transfer_s,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.agent.cost_of(used),
        )


# Weak keys: graphs built per run (a compiled architecture, say) bring new callables each time.
_KINDS: weakref.WeakKeyDictionary[Any, tuple[bool, bool]] = weakref.WeakKeyDictionary()


def _callable_kind(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """``(takes_context, is_async)`` of a task callable, computed once per callable.

    A callable takes the :class:`TaskContext` if it has a required positional parameter.
    """
    try:
        kind = _KINDS.get(fn)
    except TypeError:  # not weakly referenceable (a builtin): computed each time
        kind = None
    if kind is None:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
        ]
        kind = (bool(params), inspect.iscoroutinefunction(fn))
        try:
            _KINDS[fn] = kind
        except TypeError:
            pass
    return kind


def build_prompt(task: Task, inputs: Mapping[str, Any]) -> str:
    """The prompt of an LLM task: its own text, then the results of its inputs."""
    if not inputs:
        return task.prompt
    parts = [task.prompt, "", "Results of the tasks this one depends on:"]
    for tid, value in inputs.items():
        parts.append(f"## {tid}\n{value}")
    return "\n".join(parts)


class Runtime(RunState):
    """One run of a graph on real agents.  ``await Runtime(...).run()``; while it runs,
    :meth:`cancel` stops one task (and what depends on it) or the whole run, and
    :meth:`add_tasks` grows the graph."""

    def __init__(
        self,
        graph: TaskGraph,
        agents: Iterable[Agent],
        *,
        priority: str | PriorityPolicy = "critical_path",
        assign: str | AssignPolicy = "earliest_finish",
        aging: float = 0.0,
        backoff: Backoff | None = None,
        limits: Mapping[str, Limits] | AdmissionControl | None = None,
        failover_after: int = 2,
        seed: int = 0,
        run_id: str | None = None,
        on_event: EventHook | None = None,
        context: ContextConfig | None = None,
        recorder: Recorder | None = None,
        resume: Resumption | None = None,
        budget: Budget | None = None,
        adaptive: AdaptiveConfig | None = None,
        replanner: Replanner | None = None,
    ) -> None:
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
        self.admission = limits if isinstance(limits, AdmissionControl) else AdmissionControl(limits)
        self.context = RunContext(context) if context is not None else None
        self._children: dict[tuple[str, int], asyncio.Task[None]] = {}  # (task, attempt) -> child
        self.replanner = replanner
        self.adaptive: AdaptiveManager | None = None
        if adaptive is not None:
            endpoints = {a.name: a.backend.endpoint for a in self.agents.values() if a.backend is not None}
            self.adaptive = AdaptiveManager(adaptive, endpoints)
        self._adapted = 0  # log events the adaptive manager has observed
        self._timers: list[asyncio.TimerHandle] = []
        self._tg: asyncio.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._finished: asyncio.Event | None = None
        self._fatal: BaseException | None = None

    # ----------------------------------------------------------------- public
    async def run(self) -> RunResult:
        loop = self._loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        if self.context is not None:
            await self.context.warm()
            if self.resume is not None:  # later prompts see what the earlier life produced
                for tid, result in self.resume.results.items():
                    await self.context.record(tid, result, self.resume.producers.get(tid, ""))
        offset = self._prior[-1].time if self._prior else 0.0  # a resumed log's clock goes on
        if self.recorder is not None:
            await self.recorder.start()
            if self.resume is None:
                self.recorder.tasks(list(self.graph), None)
        self._t0 = loop.time() - offset
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if self.adaptive is not None:
                    self._carry(self.adaptive.initial_actions())
                    self._timers.append(loop.call_at(self._t0 + offset + self.adaptive.config.period_s, self._adapt))
                restored = self.resume.results if self.resume is not None else ()
                decisions = self.scheduler.start(self._now(), restored=restored)
                endpoints = {n: str(getattr(a.backend, "endpoint", "") or "") for n, a in self.agents.items()}
                self.scheduler.annotate("endpoints", self._now(), data=endpoints)  # for per-endpoint metrics
                self._apply(decisions)
                deadline = self.scheduler.deadline
                if deadline is not None:  # the budget's deadline stops even a run that waits idle
                    self._timers.append(loop.call_at(self._t0 + deadline, self._tick, deadline))
                await self._finished.wait()
        finally:
            self._tg = None
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            if self.recorder is not None:
                self._record_events()
                await self.recorder.close()
        if self._fatal is not None:
            raise self._fatal
        return self._result()

    def cancel(self, task_id: str | None = None, reason: str = "cancelled by user") -> None:
        """Cancel one task and everything downstream of it, or the whole run."""
        self._apply(self.scheduler.cancel(task_id, now=self._now(), reason=reason))

    def add_tasks(self, tasks: Iterable[Task], edges: Iterable[tuple[str, str]] = ()) -> None:
        """Grow the graph while it runs (new edges may end only in tasks not yet started)."""
        self._apply(self.scheduler.tasks_added(tasks, edges, now=self._now()))

    # --------------------------------------------------------------- internals
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time() - self._t0

    def _apply(self, decisions: Sequence[Any]) -> None:
        """Carry out the scheduler's decisions, then check whether the run has ended."""
        self._carry(decisions)
        if self.adaptive is not None:
            events = self.scheduler.events
            while self._adapted < len(events):
                self.adaptive.observe(events[self._adapted], self.scheduler)
                self._adapted += 1
        if self._on_event is not None:
            self._emit()
        if self.recorder is not None:
            self._record_events()
        sched = self.scheduler
        if sched.done or sched.stalled:
            if sched.stalled:
                self._fatal = SchedulingError(f"run stalled: no agent can take the remaining tasks ({sched.counts})")
            assert self._finished is not None
            self._finished.set()

    def _carry(self, decisions: Sequence[Any]) -> None:
        for d in decisions:
            if type(d) is Dispatch:
                assert self._tg is not None
                self._children[d.task, d.attempt] = self._tg.create_task(self._attempt(d.task, d.agent, d.attempt))
            elif type(d) is Retry:
                assert self._loop is not None
                self._timers.append(self._loop.call_at(self._t0 + d.not_before, self._tick, d.not_before))
            elif type(d) is Cancel:
                keys = [(d.task, d.attempt)] if d.attempt else [k for k in self._children if k[0] == d.task]
                for key in keys:
                    child = self._children.pop(key, None)
                    if child is not None:
                        child.cancel()
            elif type(d) is SetConcurrency:
                self.admission.for_endpoint(d.endpoint).set_concurrency(d.limit)
            elif type(d) is Replan and self.replanner is not None:
                assert self._tg is not None
                self._tg.create_task(self._replan(d))

    async def _replan(self, action: Replan) -> None:
        """Ask the replanner for tasks to take the failing task's place, and put them there
        if it still has not run by the time they arrive."""
        assert self.replanner is not None
        sched = self.scheduler
        try:
            new = list(await self.replanner(action.task, self))
        except Exception as exc:  # noqa: BLE001 - a planner failure leaves the run as it was
            data = {"control": "replan", "reason": f"the planner could not replace {action.task!r}: {exc}"}
            sched.annotate("adapted", self._now(), action.task, data=data)
            return
        if not new or sched.state(action.task).value not in ("pending", "ready", "backoff"):
            return
        self.results[action.task] = "Replaced by: " + ", ".join(t.id for t in new)
        self._apply(sched.replace(action.task, Expansion(tuple(new)), now=self._now(), reason=action.reason))

    def _adapt(self) -> None:
        """The adaptive manager's periodic tick; re-armed while the run lasts."""
        assert self.adaptive is not None and self._loop is not None
        if self._finished is not None and self._finished.is_set():
            return
        self._apply(self.adaptive.tick(self._now(), self.scheduler))
        self._timers.append(self._loop.call_later(self.adaptive.config.period_s, self._adapt))

    def _tick(self, due: float) -> None:
        # asyncio may run a timer up to one clock resolution early: never tick before ``due``.
        self._apply(self.scheduler.tick(max(self._now(), due)))

    async def _attempt(self, tid: str, agent_name: str, attempt: int) -> None:
        """Perform one attempt and report its outcome; never raises except on cancellation."""
        task = self.graph[tid]
        agent = self.agents[agent_name]
        sched = self.scheduler
        try:
            result, usage, expansion = await self._perform(task, agent, attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure becomes a report to the scheduler
            message, retryable, retry_after = Failure.of(exc)
            if self._children.get((tid, attempt)) is asyncio.current_task():
                del self._children[tid, attempt]
            self.errors[tid] = message
            self._apply(
                sched.task_failed(
                    tid, self._now(), error=message, retryable=retryable, retry_after=retry_after, attempt=attempt
                )
            )
            return
        if self._children.get((tid, attempt)) is asyncio.current_task():
            del self._children[tid, attempt]
        if self.context is not None and sched.attempt(tid) == attempt:
            await self.context.record(tid, result, agent_name)  # before successors are dispatched
        if self.recorder is not None and sched.attempt(tid) == attempt and not sched.state(tid).terminal:
            self._record_events()  # the log up to here goes in the same commit or an earlier one
            await self.recorder.result(tid, attempt, agent_name, result, usage, inputs_hash(self._inputs(tid)))
        try:
            decisions = sched.task_finished(tid, self._now(), usage=usage, expansion=expansion, attempt=attempt)
        except ParagentsError as exc:  # an invalid expansion fails its task, not the run
            self.errors[tid] = f"invalid expansion: {exc}"
            decisions = sched.task_failed(tid, self._now(), error=self.errors[tid], retryable=False, attempt=attempt)
        else:
            if sched.attempt(tid) == attempt and sched.state(tid) is TaskState.DONE:  # not a late loser's
                self.results[tid] = result
                self.errors.pop(tid, None)
        self._apply(decisions)

    async def _perform(
        self, task: Task, agent: Agent, attempt: int
    ) -> tuple[Any, Mapping[str, Any] | None, Expansion | None]:
        fn = task.action
        if fn is None:
            return await self._complete(task, agent, self._inputs(task.id))
        takes_ctx, is_async = _callable_kind(fn)
        loop = self._loop
        assert loop is not None
        if is_async and not takes_ctx and task.timeout is None:  # the lean path: no context to build
            started = loop.time()
            result = await fn()
            return result, {"compute_s": loop.time() - started}, None
        producers = {p: self.scheduler.agent_of(p) or "" for p in self.graph.predecessors(task.id)}
        ctx = TaskContext(
            task, agent, attempt, self._inputs(task.id), producers, self.agents, self.admission, self._prompt
        )
        args = (ctx,) if takes_ctx else ()
        started = loop.time()
        if is_async:
            result = await (fn(*args) if task.timeout is None else self._within_timeout(task, fn(*args)))
        elif task.meta.get("inline"):
            result = fn(*args)
        else:  # a plain function runs in a worker thread so the loop keeps dispatching
            result = await self._within_timeout(task, asyncio.to_thread(fn, *args))
        if inspect.isawaitable(result):
            result = await self._within_timeout(task, result)
        return result, ctx.usage(loop.time() - started), ctx.expansion

    async def _within_timeout(self, task: Task, aw: Awaitable[Any]) -> Any:
        if task.timeout is None:
            return await aw
        try:
            async with asyncio.timeout(task.timeout):
                return await aw
        except TimeoutError:
            raise TaskTimeout(f"task {task.id!r} timed out after {task.timeout:g} s") from None

    async def _complete(
        self, task: Task, agent: Agent, inputs: dict[str, Any]
    ) -> tuple[Any, Mapping[str, Any] | None, Expansion | None]:
        backend = agent.backend
        if backend is None:
            raise NoBackend(f"task {task.id!r} has no action and agent {agent.name!r} has no backend")
        request = Request(
            prompt=await self._prompt(task, agent, 0, inputs),
            system=agent.system_prompt,
            max_tokens=agent.max_tokens,
            expected_tokens=task.tokens or None,
        )
        try:
            completion = await self.admission.admitted(backend).complete(request, timeout=task.timeout)
        except TimeoutError:
            raise TaskTimeout(f"task {task.id!r} timed out after {task.timeout:g} s") from None
        return completion.text, agent.usage_of(completion), None

    async def _prompt(self, task: Task, agent: Agent, attempt: int, inputs: dict[str, Any]) -> str:
        """An LLM task's prompt: assembled from the run's context when that is on (what went
        in is logged as a ``context`` event), else the task's text and its inputs."""
        if self.context is None:
            return build_prompt(task, inputs)
        assembly = await self.context.prompt(task.prompt, inputs)
        self.scheduler.annotate("context", self._now(), task.id, agent.name, assembly.log_record())
        return assembly.text

async def arun(graph: TaskGraph, agents: Iterable[Agent], **options: Any) -> RunResult:
    """Run ``graph`` on ``agents`` and return results, errors, the event log and the report.

    Options are :class:`Runtime`'s: ``priority``, ``assign``, ``aging``, ``backoff``,
    ``limits``, ``failover_after``, ``seed``, ``run_id``, ``on_event``, ``context``
    (a :class:`~paragents.context.ContextConfig` turns on semantic context assembly),
    ``recorder`` (a durable run store's writer), ``resume`` (a :class:`Resumption`) and
    ``budget`` (a :class:`~paragents.core.budget.Budget`: when a limit on tokens, cost,
    dispatched attempts or run time is reached, the run stops and cancels what has not
    started; ``result.report.stopped`` says which limit, ``Runtime.scheduler.stop_reason``
    says it in words), ``adaptive`` (an :class:`~paragents.adaptive.AdaptiveConfig`:
    hedging, AIMD concurrency, online estimates, avoiding slow agents while it runs).
    """
    return await Runtime(graph, agents, **options).run()


def run(graph: TaskGraph, agents: Iterable[Agent], **options: Any) -> RunResult:
    """Synchronous :func:`arun`."""
    return asyncio.run(arun(graph, agents, **options))
