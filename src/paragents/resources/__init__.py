"""Allocation of shared capacity (GPU shares, concurrency slots) among agents.

Pure like the core: drivers consult an allocator each window and tell the core how much
capacity each agent has now.  See :mod:`paragents.resources.allocators`.

:class:`RLAllocator` and :class:`QPolicy` come from :mod:`paragents.resources.rl`, which is
imported on first access, so that ``python -m paragents.resources.rl`` runs it fresh.
"""

from typing import Any

from .allocators import (
    ALLOCATORS,
    Adaptive,
    AgentDemand,
    AllocationError,
    Allocator,
    Auction,
    LinearProgram,
    QueueProportional,
    RoundRobin,
    StaticEqual,
    minimum_shares,
    served_load,
    to_slots,
)

__all__ = [
    "ALLOCATORS",
    "Adaptive",
    "AgentDemand",
    "AllocationError",
    "Allocator",
    "Auction",
    "LinearProgram",
    "QPolicy",
    "QueueProportional",
    "RLAllocator",
    "RoundRobin",
    "StaticEqual",
    "minimum_shares",
    "served_load",
    "to_slots",
]


def __getattr__(name: str) -> Any:
    if name in ("QPolicy", "RLAllocator"):
        from . import rl

        return getattr(rl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
