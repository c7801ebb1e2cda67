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
from .priority import PRIORITY_POLICIES, CriticalPath, Fifo, LeastSlack, PriorityPolicy, UserPriority
from .retry import Backoff

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
    "PriorityPolicy",
    "RandomAssign",
    "RoundRobin",
    "UserPriority",
    "WeightedRoundRobin",
]
