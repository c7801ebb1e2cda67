"""Scheduling policies: priority (which ready task first), assignment (which agent), retry."""

from .assign import (
    ASSIGN_POLICIES,
    AssignPolicy,
    CapabilityMatch,
    EarliestFinish,
    LeastLoaded,
    RandomAssign,
    RoundRobin,
    WeightedRoundRobin,
)
from .plan import Plan
from .priority import (
    PRIORITY_POLICIES,
    CriticalPath,
    Fifo,
    LeastSlack,
    PriorityPolicy,
    UserPriority,
)
from .retry import Backoff

# ``plan`` plays both roles; it is registered here because plan.py builds on assign.py.
PRIORITY_POLICIES[Plan.name] = Plan  # type: ignore[assignment]
ASSIGN_POLICIES[Plan.name] = Plan  # type: ignore[assignment]

__all__ = [
    "ASSIGN_POLICIES",
    "PRIORITY_POLICIES",
    "AssignPolicy",
    "Backoff",
    "CapabilityMatch",
    "CriticalPath",
    "EarliestFinish",
    "Fifo",
    "LeastLoaded",
    "LeastSlack",
    "Plan",
    "PriorityPolicy",
    "RandomAssign",
    "RoundRobin",
    "UserPriority",
    "WeightedRoundRobin",
]
