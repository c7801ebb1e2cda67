"""Adaptive workflow manager: monitors a run and adapts it while it runs (pure, no I/O).

``AdaptiveManager(config, endpoints)``: ``observe(event, scheduler)`` for each new log
event, ``tick(now, scheduler)`` periodically; it returns scheduler decisions and
:class:`SetConcurrency` / :class:`Replan` actions for the driver.  See ``manager.py``.
"""

from .controls import (
    Aimd,
    DurationEstimator,
    HedgeTrigger,
    OutlierDetector,
    ReplanTrigger,
)
from .manager import (
    Action,
    AdaptiveConfig,
    AdaptiveManager,
    AimdConfig,
    AvoidConfig,
    EstimateConfig,
    HedgeConfig,
    Replan,
    ReplanConfig,
    SetConcurrency,
)
from .monitors import Ewma, Outcome, P2Quantile, Rate, RunMonitor, Series, task_kind

__all__ = [
    "Action",
    "AdaptiveConfig",
    "AdaptiveManager",
    "Aimd",
    "AimdConfig",
    "AvoidConfig",
    "DurationEstimator",
    "EstimateConfig",
    "Ewma",
    "HedgeConfig",
    "HedgeTrigger",
    "Outcome",
    "OutlierDetector",
    "P2Quantile",
    "Rate",
    "Replan",
    "ReplanConfig",
    "ReplanTrigger",
    "RunMonitor",
    "Series",
    "SetConcurrency",
    "task_kind",
]
