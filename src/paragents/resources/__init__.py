"""Allocation of shared capacity (GPU shares, concurrency slots) among agents.

Pure like the core: drivers consult an allocator each window and tell the core how much
capacity each agent has now.  See :mod:`paragents.resources.allocators`.
"""

from .allocators import (
    ALLOCATORS,
    Adaptive,
    AgentDemand,
    AllocationError,
    Allocator,
    Auction,
    LinearProgram,
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
    "RoundRobin",
    "StaticEqual",
    "minimum_shares",
    "served_load",
    "to_slots",
]
