"""Telemetry from the event log: OpenTelemetry spans (SDK in-memory exporter) and
Prometheus metrics, fed by a real run of the asyncio runtime on simulated backends."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from paragents.agents import Agent
from paragents.backends.simulated import SimulatedBackend
from paragents.core.events import Event
from paragents.core.graph import Task, TaskGraph
from paragents.runtime import driver
from paragents.telemetry import RunMetrics, RunTracer


def _run_traced() -> tuple[list, driver.RunResult]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    backend = SimulatedBackend(endpoint="sim://test", model="sim-model", ttft_s=0.001, tokens_per_s=10_000, seed=0)
    agents = [Agent("worker", skills={"work"}, backend=backend, slots=1)]
    graph = TaskGraph([
        Task("a", prompt="first", skills={"work"}, tokens=20),
        Task("b", prompt="second", skills={"work"}, tokens=20, depends_on=("a",)),
        Task("c", prompt="third", skills={"work"}, tokens=20, depends_on=("a",)),
    ])
    tracer = RunTracer("r1", agents, tracer_provider=provider)
    result = driver.run(graph, agents, run_id="r1", on_event=tracer.on_event)
    tracer.close()
    return list(exporter.get_finished_spans()), result


def test_spans_nest_run_task_model_call_with_genai_attributes() -> None:
    spans, result = _run_traced()
    assert result.report.tasks["done"] == 3
    runs = [s for s in spans if s.name == "run r1"]
    tasks = {s.attributes["paragents.task.id"]: s for s in spans if s.name.startswith("task ")}
    calls = [s for s in spans if s.name.startswith("chat ")]
    assert len(runs) == 1 and set(tasks) == {"a", "b", "c"} and len(calls) == 3
    run = runs[0]
    assert run.parent is None
    for task in tasks.values():
        assert task.parent.span_id == run.context.span_id
        assert task.context.trace_id == run.context.trace_id
        assert task.attributes["paragents.agent"] == "worker"
        assert task.attributes["paragents.attempt"] == 1
        assert task.attributes["paragents.queue_wait_s"] >= 0
        assert task.status.status_code is StatusCode.OK
        assert run.start_time <= task.start_time <= task.end_time <= run.end_time
    by_parent = {c.parent.span_id: c for c in calls}
    for task in tasks.values():
        call = by_parent[task.context.span_id]
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == "sim-model"
        assert call.attributes["gen_ai.usage.output_tokens"] == 20
        assert call.attributes["gen_ai.usage.input_tokens"] > 0
        assert call.attributes["server.address"] == "sim://test"
        assert task.start_time <= call.start_time <= call.end_time <= task.end_time
    # b and c wait in the queue for the single slot: one of them waited for the other
    assert max(tasks["b"].attributes["paragents.queue_wait_s"], tasks["c"].attributes["paragents.queue_wait_s"]) > 0


def test_failed_attempt_span_has_error_status() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = RunTracer("r2", tracer_provider=provider)
    for event in [
        Event(0.0, "started", data={"tasks": 1, "agents": {"w": 1}}),
        Event(0.0, "dispatched", "t", "w", 1, {"ready_at": 0.0}),
        Event(0.5, "failed", "t", "w", 1, {"error": "boom"}),
    ]:
        tracer.on_event(event)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["task t"].status.status_code is StatusCode.ERROR
    assert spans["task t"].status.description == "boom"
    assert "run r2" in spans  # every task ended: the run span closed by itself


def _value(metrics: RunMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_metrics_follow_the_log() -> None:
    metrics = RunMetrics(endpoints={"w": "sim://x"})
    metrics.track("r", {"a": (), "b": ("a",), "c": ("a",)})
    labels = {"agent": "w", "endpoint": "sim://x"}
    feed = [
        Event(0.0, "started", data={"tasks": 3, "agents": {"w": 1}}),
        Event(0.0, "dispatched", "a", "w", 1, {"ready_at": 0.0}),
    ]
    for e in feed:
        metrics.feed("r", e)
    assert _value(metrics, "paragents_tasks_running", **labels) == 1
    assert _value(metrics, "paragents_queue_length") == 0
    metrics.feed("r", Event(1.0, "finished", "a", "w", 1, {"prompt_tokens": 10, "completion_tokens": 5}))
    assert _value(metrics, "paragents_tasks_running", **labels) == 0
    assert _value(metrics, "paragents_queue_length") == 2  # b and c are ready, nobody runs them
    assert _value(metrics, "paragents_tokens_total", **labels, kind="prompt") == 10
    assert _value(metrics, "paragents_tokens_total", **labels, kind="completion") == 5
    assert _value(metrics, "paragents_task_latency_seconds_count", **labels) == 1
    assert _value(metrics, "paragents_task_latency_seconds_sum", **labels) == 1.0
    metrics.feed("r", Event(1.0, "dispatched", "b", "w", 1, {"ready_at": 1.0}))
    assert _value(metrics, "paragents_queue_length") == 1
    metrics.feed("r", Event(1.5, "retry", "b", "w", 1, {"error": "429", "not_before": 2.0}))
    metrics.feed("r", Event(2.0, "dispatched", "b", "w", 2, {"ready_at": 2.0}))
    metrics.feed("r", Event(2.5, "failed", "b", "w", 2, {"error": "boom"}))
    assert _value(metrics, "paragents_errors_total", **labels, kind="retry") == 1
    assert _value(metrics, "paragents_errors_total", **labels, kind="failed") == 1
    assert _value(metrics, "paragents_tasks_finished_total", **labels) == 1
    assert b"paragents_queue_length 1.0" in metrics.exposition()
