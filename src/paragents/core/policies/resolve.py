"""Policies named by strings: how every driver turns ``"critical_path"`` into a policy.

Theory of operation
-------------------
Users name policies in YAML, on the command line and in keyword arguments; drivers
accept either a name or a policy object.  These two functions are the one place where a
name becomes an object, so every driver refuses an unknown name with the same message
listing the choices.  A policy object passes through unchanged.
"""

from __future__ import annotations

from ..errors import SchedulingError
from .assign import ASSIGN_POLICIES, AssignPolicy
from .priority import PRIORITY_POLICIES, PriorityPolicy

__all__ = ["resolve_assign", "resolve_priority"]


def resolve_priority(priority: str | PriorityPolicy, aging: float = 0.0) -> PriorityPolicy:
    if not isinstance(priority, str):
        return priority
    try:
        return PRIORITY_POLICIES[priority](aging=aging)  # type: ignore[call-arg]
    except KeyError:
        raise SchedulingError(
            f"unknown priority policy {priority!r} (choose from {', '.join(PRIORITY_POLICIES)})"
        ) from None


def resolve_assign(assign: str | AssignPolicy) -> AssignPolicy:
    if not isinstance(assign, str):
        return assign
    try:
        return ASSIGN_POLICIES[assign]()
    except KeyError:
        raise SchedulingError(
            f"unknown assignment policy {assign!r} (choose from {', '.join(ASSIGN_POLICIES)})"
        ) from None
