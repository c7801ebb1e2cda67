"""OpenTelemetry spans of a run — run > task attempt > model call — built from its event log.

Theory of operation
-------------------
:class:`RunTracer` is a driver's ``on_event(event, scheduler)`` hook: it watches the log
go by and opens and closes spans at the times the events carry, so no driver knows about
tracing.  Event times are the driver's clock (seconds, monotonic); the first event fixes
the offset to wall-clock nanoseconds that every span timestamp uses.

* **run** span ``run {run_id}``: from ``started`` until every task it knows of (``started``
  counts them, ``added`` adds more) has ended (finished, failed, cancelled or restored),
  or :meth:`RunTracer.close`.
* **task** span ``task {id}``, a child of the run, one per attempt: from the moment the
  task became ready (the ``dispatched`` event's ``ready_at``: the queue wait is inside the
  span) to the attempt's end.  Attributes ``paragents.task.id``, ``paragents.agent``,
  ``paragents.attempt``, ``paragents.queue_wait_s`` (dispatch - ready), ``paragents.hedge``;
  status ERROR for ``failed`` and ``retry`` with the error as description.
* **model call** span ``chat {model}``, a child of its task span, for a finished attempt of
  an agent with a model or one that reported tokens: dispatch -> finish, with the GenAI
  semantic conventions ``gen_ai.operation.name`` = ``chat``, ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``server.address`` (the
  endpoint), and ``paragents.compute_s`` / ``paragents.transfer_s`` / ``paragents.cost``.
  The log holds one usage per attempt, so the several calls of one attempt are one span.

The model and endpoint of an agent come from the agents given to the tracer (their
backends); spans go to the ``tracer_provider`` given, or to the global one.
:func:`tracer_provider_from_env` builds a provider that exports over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..agents import Agent
from ..core.events import Event

__all__ = ["RunTracer", "tracer_provider_from_env"]

_ENDS = frozenset({"finished", "failed", "retry", "cancelled", "requeued", "abandoned"})
_TERMINAL = frozenset({"finished", "failed", "cancelled", "restored"})


def tracer_provider_from_env() -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP when an OTLP endpoint is configured, else None."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                      "paragents")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class RunTracer:
    """An ``on_event`` hook that records a run as OpenTelemetry spans."""

    def __init__(
        self,
        run_id: str = "",
        agents: Iterable[Agent] = (),
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.run_id = run_id
        self._tracer = trace.get_tracer("paragents", tracer_provider=tracer_provider)
        self._models: dict[str, tuple[str, str]] = {}
        for agent in agents:
            backend = agent.backend
            if backend is not None:
                self._models[agent.name] = (str(getattr(backend, "model", "") or ""),
                                            str(getattr(backend, "endpoint", "") or ""))
        self._offset_ns: int | None = None
        self._run: Span | None = None
        self._attempts: dict[tuple[str, int], tuple[Span, float]] = {}
        self._expected = 0
        self._ended: set[str] = set()

    def _ns(self, t: float) -> int:
        if self._offset_ns is None:
            self._offset_ns = time.time_ns() - int(t * 1e9)
        return self._offset_ns + int(t * 1e9)

    def on_event(self, event: Event, scheduler: Any = None) -> None:
        """Account for one log event (the driver hook's signature; ``scheduler`` is unused)."""
        kind, data = event.kind, event.data or {}
        now = self._ns(event.time)
        if kind == "started":
            self._expected = int(data.get("tasks", 0))
            self._run = self._tracer.start_span(
                f"run {self.run_id}".strip(), kind=SpanKind.INTERNAL, start_time=now,
                attributes={"paragents.run.id": self.run_id, "paragents.tasks": self._expected},
            )
            return
        if kind == "added":
            self._expected += len(data.get("tasks", ()))
            return
        if kind == "stopped" and self._run is not None:
            self._run.add_event("stopped", {k: str(v) for k, v in data.items()}, timestamp=now)
            return
        if kind == "adapted" and self._run is not None:
            self._run.add_event(f"adapted {data.get('control', '')}", {k: str(v) for k, v in data.items()},
                                timestamp=now)
            return
        if event.task is None:
            return
        if kind == "dispatched":
            self._dispatched(event, now)
        elif kind in _ENDS:
            self._attempt_ended(event, now)
        if kind in _TERMINAL:
            self._ended.add(event.task)
            if self._run is not None and self._expected and len(self._ended) >= self._expected:
                self._end_run(now)

    def _dispatched(self, event: Event, now: int) -> None:
        assert event.task is not None
        data = event.data or {}
        ready_at = float(data.get("ready_at", event.time))
        parent = trace.set_span_in_context(self._run) if self._run is not None else None
        span = self._tracer.start_span(
            f"task {event.task}", context=parent, start_time=min(self._ns(ready_at), now),
            attributes={
                "paragents.task.id": event.task,
                "paragents.agent": event.agent or "",
                "paragents.attempt": event.attempt,
                "paragents.queue_wait_s": max(event.time - ready_at, 0.0),
                "paragents.hedge": bool(data.get("hedge", False)),
            },
        )
        span.add_event("dispatched", timestamp=now)
        self._attempts[event.task, event.attempt] = (span, event.time)

    def _attempt_ended(self, event: Event, now: int) -> None:
        assert event.task is not None
        opened = self._attempts.pop((event.task, event.attempt), None)
        if opened is None:
            return
        span, dispatched_at = opened
        data = event.data or {}
        if event.kind == "finished":
            self._model_call(span, event, self._ns(dispatched_at), now)
            span.set_status(Status(StatusCode.OK))
        elif event.kind in ("failed", "retry"):
            span.set_status(Status(StatusCode.ERROR, str(data.get("error", ""))))
        span.set_attribute("paragents.outcome", event.kind)
        span.end(end_time=now)

    def _model_call(self, task_span: Span, event: Event, start: int, end: int) -> None:
        data = event.data or {}
        model, endpoint = self._models.get(event.agent or "", ("", ""))
        prompt, completion = int(data.get("prompt_tokens", 0)), int(data.get("completion_tokens", 0))
        if not model and not (prompt or completion):
            return  # a plain callable: no model was called
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": prompt,
            "gen_ai.usage.output_tokens": completion,
            "paragents.compute_s": float(data.get("compute_s", 0.0)),
            "paragents.transfer_s": float(data.get("transfer_s", 0.0)),
            "paragents.cost": float(data.get("cost", 0.0)),
        }
        if endpoint:
            attributes["server.address"] = endpoint
        span = self._tracer.start_span(f"chat {model}".strip(), context=trace.set_span_in_context(task_span),
                                       kind=SpanKind.CLIENT, start_time=start, attributes=attributes)
        span.end(end_time=end)

    def _end_run(self, now: int) -> None:
        assert self._run is not None
        self._run.end(end_time=now)
        self._run = None

    def close(self) -> None:
        """End every span still open (a run that stopped or was interrupted)."""
        end = time.time_ns()
        for span, _ in self._attempts.values():
            span.end(end_time=end)
        self._attempts.clear()
        if self._run is not None:
            self._end_run(end)
