"""The supernet on the runtime: an architecture compiled to a task graph and run for real.

Theory of operation
-------------------
:func:`compile_architecture` turns one architecture (layers of operator names, see
:mod:`~paragents.orchestration.architecture`) and one query into a
:class:`~paragents.core.graph.TaskGraph` of Python-callable tasks:

* one **operator task** ``L<l>.<name>`` per operator of layer ``l`` (layers count from
  1).  It depends on ``L<l-1>.merge`` only (layer 1's have no dependencies), never on a
  sibling, so a layer's operators are ready together and run side by side.  It reads the
  previous layer's :class:`~paragents.orchestration.state.LayerState` from its input
  (layer 1 starts from ``LayerState(query)``), runs the operator with
  ``TaskContext.complete`` as its model (so admission control and the run's usage
  accounting apply to every call) and returns the
  :class:`~paragents.orchestration.state.OperatorResult`;
* one **merge task** ``L<l>.merge`` per layer, depending on every operator task of the
  layer and on ``L<l-1>.merge`` (an edge already implied, kept so that the merge has the
  state to carry over); it returns the merged state, :func:`merge`.

Every task is pinned to one agent.  ``meta`` holds ``layer`` and ``operator`` (merge
tasks: ``layer`` and ``merge: True``).  The estimates are an operator task's one call's
worth of completion tokens (``tokens_per_call_estimate``) and a duration of 1 (the unit:
one model call), and 0 for a merge; with one agent as wide as the widest layer they
order nothing.  Early-Stop never appears in a graph: an architecture already ends where
the controller stopped it, so an operator that stops is refused, as are unknown names,
empty layers and a name twice in a layer.

The merge rule (:func:`merge`).  The new state's candidates are every candidate of the
layer's operators, in the layer's operator order.  The merged answer is chosen among
the candidates with an answer (an empty answer never wins over a non-empty one; when
no candidate has one, the first candidate is the answer): (1) if any of them were
tested, only the tested ones with the best pass rate take part; (2) among those, the
answer given most often wins, answers compared by the operators' own vote key
(:func:`~paragents.orchestration.voting.vote_key`: numbers as numbers, code as syntax
trees); (3) ties go to the answer seen first in layer order, and the winning answer's
first candidate is the merged one.  A layer that produced no candidates at all leaves
the previous state as it was.

Failures.  An operator task catches the model's errors
(:class:`~paragents.core.errors.BackendError`: a backend down, a call that timed out,
a request refused) and returns an OperatorResult with no candidates, the calls and
tokens its context counted before the error (its span taken as all of its completion
tokens), and a note naming the error; so the layer merges whatever its other operators
found and the network goes on.  Two errors are not the operator's to absorb and fail
its attempt as usual: a ``RateLimited`` that names a Retry-After, which the runtime
retries once the endpoint allows it without spending the task's retries (the operator
then runs again from its input, and the tokens of the interrupted attempt are not
counted), and ``NoBackend``, a configuration error.  Operator tasks have no retries
otherwise: any other exception is a bug and fails the task.  :func:`run_architecture`
raises :class:`SupernetError` when the last merge did not finish (a failed task, a run
budget that stopped the run).  A 429 without a Retry-After is absorbed like any other
model error.

Accounting (:class:`ArchitectureRun`).  ``spans`` holds, per layer, each operator's
``span_tokens`` (the completion tokens on its own critical path) in layer order;
``cp_tokens`` is :func:`~paragents.orchestration.architecture.critical_path` of them
(the sum over layers of the slowest span); ``cost_tokens`` is every prompt and
completion token the operators spent (the run report's token total); ``cp_seconds`` is
the run's measured makespan.  :class:`SupernetExecutor` turns a run into the trainer's
:class:`~paragents.orchestration.simulated.Episode`: the final merged answer's score
(0 when there is none), the spans and ``cost_tokens`` as the cost.  Note that the cost
counts prompt tokens, which the simulated benchmark does not model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..agents import Agent
from ..core.errors import BackendError, NoBackend, ParagentsError, RateLimited
from ..core.graph import Task, TaskGraph
from ..runtime.driver import TaskContext, arun
from ..runtime.limits import AdmissionControl
from ..runtime.run_state import RunResult
from .architecture import EARLY_STOP, Architecture, critical_path, format_architecture
from .datasets import score
from .operators import Operator
from .simulated import Episode
from .state import Candidate, LayerState, OperatorResult, Query
from .voting import best_tested, vote_groups

__all__ = [
    "ArchitectureRun",
    "Scorer",
    "SupernetError",
    "SupernetExecutor",
    "compile_architecture",
    "merge",
    "run_architecture",
]

_TaskAction = Callable[[TaskContext], Awaitable[Any]]


class SupernetError(ParagentsError):
    """An architecture's run did not reach its last merge; the message says why."""


class Scorer(Protocol):
    """Grades the final answer: 1.0 right, 0.0 wrong (see :func:`~paragents.orchestration.datasets.score`)."""

    def __call__(self, query: Query, candidate: Candidate, *, timeout_s: float) -> float: ...


@dataclass(frozen=True, slots=True)
class ArchitectureRun:
    """One architecture run on one query (see "Accounting" in the module docstring)."""

    arch: Architecture
    state: LayerState  # the last layer's merged state
    layers: tuple[tuple[OperatorResult, ...], ...]  # per layer, in the layer's operator order
    spans: tuple[tuple[int, ...], ...]  # per layer, each operator's span_tokens
    cost_tokens: int  # prompt + completion tokens of every call
    cp_tokens: int  # sum over layers of the largest span
    cp_seconds: float  # the run's makespan
    run: RunResult = field(repr=False)


def merge(query: Query, results: Sequence[OperatorResult], previous: LayerState | None = None) -> LayerState:
    """The state a layer leaves: its operators' candidates and the merged answer; the
    ``previous`` state (default: ``LayerState(query)``) when it produced no candidates."""
    candidates = tuple(candidate for result in results for candidate in result.candidates)
    if not candidates:
        return previous if previous is not None else LayerState(query)
    return LayerState(query, candidates, _choose(query, candidates))


def compile_architecture(
    query: Query,
    arch: Architecture,
    operators: Mapping[str, Operator],
    *,
    agent: str = "orchestrator",
    tokens_per_call_estimate: int = 256,
) -> TaskGraph:
    """The task graph that runs ``arch`` on ``query``, every task pinned to ``agent``."""
    _check(arch, operators)
    if tokens_per_call_estimate < 0:
        raise ValueError(f"tokens_per_call_estimate must be non-negative, got {tokens_per_call_estimate}")
    tasks: list[Task] = []
    previous: str | None = None
    for number, layer in enumerate(arch, start=1):
        inputs = (previous,) if previous is not None else ()
        ids = [f"L{number}.{name}" for name in layer]
        for tid, name in zip(ids, layer, strict=True):
            tasks.append(
                Task(
                    tid,
                    depends_on=inputs,
                    duration=1.0,
                    tokens=tokens_per_call_estimate,
                    agent=agent,
                    action=_operator_action(query, operators[name], previous),
                    meta={"layer": number, "operator": name},
                )
            )
        merge_id = f"L{number}.merge"
        tasks.append(
            Task(
                merge_id,
                depends_on=(*ids, *inputs),
                duration=0.0,
                agent=agent,
                action=_merge_action(query, ids, previous),
                meta={"layer": number, "merge": True},
            )
        )
        previous = merge_id
    return TaskGraph(tasks)


async def run_architecture(
    query: Query, arch: Architecture, operators: Mapping[str, Operator], agent: Agent, **runtime_options: Any
) -> ArchitectureRun:
    """Run ``arch`` on ``query`` on the runtime (:func:`~paragents.runtime.driver.arun`,
    with ``runtime_options``) with ``agent``, given at least as many slots as the widest
    layer has operators, so that each layer's operators run at once."""
    graph = compile_architecture(query, arch, operators, agent=agent.name)
    worker = replace(agent, slots=max(agent.slots, *(len(layer) for layer in arch)))
    result = await arun(graph, [worker], **runtime_options)
    last = f"L{len(arch)}.merge"
    if last not in result.results:
        raise SupernetError(_why_unfinished(arch, result))
    layers = tuple(
        tuple(result.results[f"L{number}.{name}"] for name in layer) for number, layer in enumerate(arch, start=1)
    )
    spans = tuple(tuple(op.span_tokens for op in layer) for layer in layers)
    return ArchitectureRun(
        arch=arch,
        state=result.results[last],
        layers=layers,
        spans=spans,
        cost_tokens=sum(op.prompt_tokens + op.completion_tokens for layer in layers for op in layer),
        cp_tokens=int(critical_path(spans)),
        cp_seconds=result.report.makespan_s,
        run=result,
    )


class SupernetExecutor:
    """Runs architectures on real models for the trainer: ``await run(query, arch)``.

    Every run goes through :func:`run_architecture` with ``agent`` and
    ``runtime_options``; all runs share one admission control (built from the
    ``limits`` option unless it is one already), so episodes run at the same time share
    each endpoint's limits.  The final answer is scored by ``scorer`` in a worker thread
    (scoring code runs it), with ``score_timeout_s`` for it.
    """

    def __init__(
        self,
        operators: Mapping[str, Operator],
        agent: Agent,
        *,
        scorer: Scorer = score,
        score_timeout_s: float = 10.0,
        **runtime_options: Any,
    ) -> None:
        if not score_timeout_s > 0:
            raise ValueError(f"score_timeout_s must be positive, got {score_timeout_s}")
        self.operators = dict(operators)
        self.agent = agent
        self.scorer = scorer
        self.score_timeout_s = score_timeout_s
        limits = runtime_options.get("limits")
        if not isinstance(limits, AdmissionControl):
            runtime_options["limits"] = AdmissionControl(limits)
        self.runtime_options = runtime_options

    async def run(self, query: Query, arch: Architecture) -> Episode:
        """One episode: the final answer's score, the spans per layer and the token cost."""
        episode, _ = await self.run_detailed(query, arch)
        return episode

    async def run_detailed(self, query: Query, arch: Architecture) -> tuple[Episode, ArchitectureRun]:
        """The episode and the run it came from."""
        outcome = await run_architecture(query, arch, self.operators, self.agent, **self.runtime_options)
        answer = outcome.state.answer
        value = 0.0
        if answer is not None:
            value = await asyncio.to_thread(self.scorer, query, answer, timeout_s=self.score_timeout_s)
        spans = tuple(tuple(float(span) for span in layer) for layer in outcome.spans)
        return Episode(value, spans, float(outcome.cost_tokens)), outcome


def _choose(query: Query, candidates: Sequence[Candidate]) -> Candidate:
    """The merged answer among a non-empty layer's candidates (see the module docstring)."""
    voters = [candidate for candidate in candidates if candidate.answer.strip()]
    if not voters:
        return candidates[0]
    return vote_groups(query, best_tested(voters))[0][0]  # stable: ties go to the earliest answer


def _check(arch: Architecture, operators: Mapping[str, Operator]) -> None:
    if not arch:
        raise ValueError("an architecture needs at least one layer")
    for number, layer in enumerate(arch, start=1):
        if not layer:
            raise ValueError(f"layer {number} of {format_architecture(arch)} has no operators")
        for name in layer:
            if name not in operators:
                raise ValueError(f"layer {number}: unknown operator {name!r} (known: {', '.join(operators)})")
            if name == EARLY_STOP or operators[name].stops:
                raise ValueError(
                    f"layer {number}: {name!r} stops the network and never runs in a graph; "
                    "end the architecture before it"
                )
        if len(set(layer)) < len(layer):
            raise ValueError(f"layer {number} names an operator twice: {'+'.join(layer)}")


def _operator_action(query: Query, operator: Operator, previous: str | None) -> _TaskAction:
    """The callable of an operator task (see "Failures" in the module docstring)."""

    async def run_operator(ctx: TaskContext) -> OperatorResult:
        state = ctx.inputs[previous] if previous is not None else LayerState(query)
        started = time.perf_counter()
        try:
            return await operator.run(state, ctx.complete)
        except BackendError as exc:
            if isinstance(exc, NoBackend) or (isinstance(exc, RateLimited) and exc.retry_after is not None):
                raise
            return OperatorResult(
                name=operator.name,
                candidates=(),
                calls=ctx.model_calls,
                prompt_tokens=ctx.prompt_tokens,
                completion_tokens=ctx.completion_tokens,
                span_tokens=ctx.completion_tokens,
                elapsed_s=time.perf_counter() - started,
                notes=(f"model error, no candidates: {exc}",),
            )

    return run_operator


def _merge_action(query: Query, operator_ids: Sequence[str], previous: str | None) -> _TaskAction:
    """The callable of a merge task: :func:`merge` of the layer's operator results."""

    async def merge_layer(ctx: TaskContext) -> LayerState:
        state = ctx.inputs[previous] if previous is not None else LayerState(query)
        return merge(query, [ctx.inputs[tid] for tid in operator_ids], state)

    return merge_layer


def _why_unfinished(arch: Architecture, result: RunResult) -> str:
    reasons = [f"{tid}: {error}" for tid, error in result.errors.items()]
    stopped = result.report.stopped
    if stopped is not None:
        reasons.append(f"the run's {stopped.get('budget')} budget stopped it")
    why = "; ".join(reasons) or "its last merge did not finish"
    return f"architecture {format_architecture(arch)} did not run to its end: {why}"
