"""Workloads for the simulator: workflow traces (bundled Pegasus executions, WfCommons
recipes) and layered random DAGs.  Every generator returns a
:class:`~paragents.core.graph.TaskGraph` and is deterministic under its seed."""

from .layered import DurationDist, LogNormal, Uniform, layered_dag
from .traces import (
    PEGASUS_TRACES,
    RECIPES,
    RecipeSizeError,
    load_trace,
    parse_wfcommons,
    pegasus_traces,
    recipe_graph,
    recipe_min_tasks,
)

__all__ = [
    "PEGASUS_TRACES",
    "RECIPES",
    "DurationDist",
    "LogNormal",
    "RecipeSizeError",
    "Uniform",
    "layered_dag",
    "load_trace",
    "parse_wfcommons",
    "pegasus_traces",
    "recipe_graph",
    "recipe_min_tasks",
]
