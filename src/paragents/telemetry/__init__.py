"""Telemetry of runs: Prometheus metrics and OpenTelemetry spans, both built from the event log.

:class:`~paragents.telemetry.metrics.RunMetrics` turns log events into Prometheus series
(:class:`~paragents.telemetry.metrics.StoreMetrics` feeds it from a run store for the
dashboard's ``/metrics``); :class:`~paragents.telemetry.tracing.RunTracer` turns them into
spans — run > task > model call — through a driver's ``on_event`` hook.
"""

from .metrics import RunMetrics, StoreMetrics
from .tracing import RunTracer, tracer_provider_from_env

__all__ = ["RunMetrics", "RunTracer", "StoreMetrics", "tracer_provider_from_env"]
