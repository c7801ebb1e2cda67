"""paragents: run LLM multi-agent systems as dynamic task graphs.

A goal becomes a DAG of tasks; each task goes to a capable agent the moment its inputs
are ready, many run at once, and a sans-I/O scheduler orders ready work by critical path
and places it where it finishes soonest.  Users import from here; the modules behind it
are free to move.
"""

from .agents import Agent, AgentPool
from .backends.base import Backend, Completion, Request
from .backends.simulated import SimulatedBackend
from .core.analysis import cpm, critical_path, lower_bound, upward_rank
from .core.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BudgetExceeded,
    CycleError,
    GraphError,
    ParagentsError,
    PlanError,
    RateLimited,
    SchedulingError,
    TaskTimeout,
    WorkflowError,
)
from .core.events import Event, Expansion, TaskState
from .core.graph import Task, TaskGraph
from .core.report import RunReport, build_report
from .core.scheduler import Scheduler
from .goal import GoalRun, arun_goal
from .patterns import map_reduce, split_text
from .planner import Plan, Planner
from .runtime.driver import RunResult, Runtime, TaskContext, arun, run
from .runtime.limits import Limits
from .sim.engine import simulate
from .sim.virtual import run_virtual

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentPool",
    "Backend",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BudgetExceeded",
    "Completion",
    "CycleError",
    "Event",
    "Expansion",
    "GoalRun",
    "GraphError",
    "Limits",
    "ParagentsError",
    "Plan",
    "Planner",
    "PlanError",
    "RateLimited",
    "Request",
    "RunReport",
    "RunResult",
    "Runtime",
    "Scheduler",
    "SchedulingError",
    "SimulatedBackend",
    "Task",
    "TaskContext",
    "TaskGraph",
    "TaskState",
    "TaskTimeout",
    "WorkflowError",
    "arun",
    "arun_goal",
    "build_report",
    "cpm",
    "critical_path",
    "lower_bound",
    "map_reduce",
    "run",
    "run_virtual",
    "simulate",
    "split_text",
    "upward_rank",
]
