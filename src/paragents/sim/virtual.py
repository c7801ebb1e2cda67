"""``run_virtual``: the simulator with fixed durations, for tests, analysis and replays.

Theory of operation
-------------------
The deterministic special case of :func:`paragents.sim.engine.simulate`: no model
servers, no network, no noise, so an attempt takes exactly ``task.duration /
agent.speed`` (or what the ``duration`` hook says) and every time in the log is exact.
It plays trio's ``MockClock`` role for the core: a run of thousands of tasks takes
milliseconds, and a test can assert that a task started at precisely ``2.0``.  Policies
may be given as objects (as tests build them) or by name.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.agent_state import AgentLike
from ..core.graph import TaskGraph
from ..core.policies.assign import AssignPolicy
from ..core.policies.priority import PriorityPolicy
from ..core.policies.retry import Backoff
from .engine import DurationFn, ExpandFn, FailFn, SimResult, simulate

__all__ = ["run_virtual"]


def run_virtual(
    graph: TaskGraph,
    agents: Iterable[AgentLike],
    *,
    priority: str | PriorityPolicy = "critical_path",
    assign: str | AssignPolicy = "earliest_finish",
    backoff: Backoff | None = None,
    seed: int = 0,
    duration: DurationFn | None = None,
    fails: FailFn | None = None,
    expand: ExpandFn | None = None,
    run_id: str = "virtual",
) -> SimResult:
    """Run ``graph`` on a virtual clock and return the scheduler (with its log) and the report."""
    return simulate(
        graph, agents, priority=priority, assign=assign, backoff=backoff, seed=seed,
        duration=duration, fails=fails, expand=expand, run_id=run_id,
    )
