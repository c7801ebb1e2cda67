"""Learned latency-aware orchestration: operators, supernet, controller, trainer.

A controller reads a query and picks, layer by layer, which reasoning operators run in
parallel (:mod:`.architecture`); the chosen architecture compiles to a task graph and
runs on the normal runtime (:mod:`.supernet`), so its critical path is measured like any
run's.  The controller (:mod:`.controller`) is trained by policy gradient
(:mod:`.trainer`) on ``score - mu * cost - lambda * CP`` with the latency penalty
charged only to each layer's bottleneck operator (:mod:`.credit`).  The simulated
benchmark (:mod:`.simulated`) knows the true accuracy and critical path of every
architecture, so a learned controller can be checked against the exact optimum;
:mod:`.datasets` holds the real ones (bundled math word problems, HumanEval).

This package imports no torch and no model on import: the submodules do.
"""

from .architecture import (
    EARLY_STOP,
    Architecture,
    critical_path,
    format_architecture,
    sequential_path,
)
from .state import Candidate, LayerState, OperatorResult, Query

__all__ = [
    "EARLY_STOP",
    "Architecture",
    "Candidate",
    "LayerState",
    "OperatorResult",
    "Query",
    "critical_path",
    "format_architecture",
    "sequential_path",
]
