"""The dynamic task-graph generator: goal -> JSON plan -> TaskGraph; expansion, replanning.

A :class:`Planner` asks a model for a plan (constrained to :func:`plan_schema` where the
backend can), reads and repairs the answer with :func:`parse_plan` (or, while it
streams, :class:`PlanStream`), and retries with the error when the answer is unusable.
A :class:`Plan` becomes graph tasks with :meth:`Plan.to_tasks` / :meth:`Plan.to_graph`.
"""

from .parse import Plan, PlannedTask, parse_plan
from .planner import Planner, PlanStats
from .schema import plan_schema
from .stream import PlanStream

__all__ = ["Plan", "PlanStats", "PlanStream", "PlannedTask", "Planner", "parse_plan", "plan_schema"]
