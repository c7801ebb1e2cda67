"""Workloads for the simulator: workflow traces (bundled Pegasus executions, WfCommons
recipes), layered random DAGs, and decomposed travel requests arriving as a Poisson
stream (the last as :class:`~paragents.sim.engine.Arrival` lists).  Every generator returns a
:class:`~paragents.core.graph.TaskGraph` and is deterministic under its seed."""

from .layered import DurationDist, LogNormal, Uniform, layered_dag
from .requests import SHAPES, WorkloadError, poisson_stream, travel_graph, travel_request
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
    "SHAPES",
    "Uniform",
    "WorkloadError",
    "layered_dag",
    "load_trace",
    "parse_wfcommons",
    "pegasus_traces",
    "poisson_stream",
    "recipe_graph",
    "recipe_min_tasks",
    "travel_graph",
    "travel_request",
]
