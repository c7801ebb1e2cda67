"""Allocation of a shared capacity among agents, re-evaluated every window.

Theory of operation
-------------------
A driver (the asyncio runtime, the simulator, a Ray driver) owns a capacity: a GPU's
compute share (``1.0``), or ``N`` concurrency slots.  At the start of every window it
measures each agent (its arrival rate in the last window, its queue) and asks an
:class:`Allocator` how to divide the capacity for the next window.  The answer is a
``dict`` from agent name to share, in the same units as ``capacity``; the driver then
tells the core how much each agent may use.  :func:`to_slots` turns fractional shares of
an integer number of slots into whole slots.

This module is pure: no I/O, no clock, no asyncio, no randomness.  Everything an
allocator needs arrives as arguments (``demands``, ``capacity``, ``window``), so the same
decisions are taken by the runtime and the simulator, and tests call it directly.

Rules every allocator keeps (the tests check them on random inputs):

* every share is non-negative and the shares sum to at most ``capacity``;
* the guaranteed minimums: agent ``i`` gets at least ``m_i = min_share_i * capacity``.
  When the minimums do not fit (``sum(min_share) > 1``) they are scaled down in
  proportion, ``m_i = capacity * min_share_i / sum(min_share)``, so each agent keeps the
  same fraction of the guarantees and together they use exactly the capacity;
* the one exception is :class:`RoundRobin`, which is time slicing: it gives the whole
  capacity to one agent per window, so no per-window minimum holds.  Over any ``N``
  consecutive windows each agent averages ``capacity / N``, which honours its minimum
  exactly when ``min_share_i <= 1 / N``;
* an empty demand list gives an empty allocation; ``capacity == 0`` gives zeros.

The allocators:

``static`` (:class:`StaticEqual`)
    ``capacity / N`` each.  If some minimum exceeds that, those agents get their minimum
    and the others split what is left equally (max-min fair with floors).  Ignores load.
``round_robin`` (:class:`RoundRobin`)
    Time slicing: in window ``w`` the agent at position ``w mod N`` of ``demands`` gets
    the whole capacity, the others zero.  Callers must pass agents in a stable order.
    Idle agents are not skipped (that keeps the long-run average exact).
``adaptive`` (:class:`Adaptive`)
    Demand-proportional, O(N): a fixed number of passes over the agents, no sorting.
    Demand is ``d_i = rate_i * min_share_i / priority_level_i +
    backlog_weight * backlog_i / priority_level_i``: the minimum share doubles as the
    agent's weight, a lower priority level (1 = high) weighs more, and a queue pulls
    capacity towards it (``backlog_weight`` defaults to 1/s: a queue counts as the rate
    that drains it in one second).  Each agent gets its minimum, and the surplus
    ``capacity - sum(m)`` is divided in proportion to ``w_i = d_i * (1 + backlog_i) *
    service_rate_i`` (equally, if every ``w_i`` is 0), so the shares sum to the
    capacity.  The two factors make the split service-rate aware: a unit of capacity
    finishes ``service_rate_i`` requests per second at agent ``i`` (the c-mu rule: it
    removes the most waiting at the fastest server), and each request finished moves the
    ``backlog_i`` behind it forward (long queues, where the tail forms, gain more); the
    service rate alone would trade p99 for mean.  With a ``delay_scale`` ``tau`` (the
    default is 0.2 s, the serverless scenario's SLA) each ``w_i`` is further multiplied by
    ``1 + (oldest_wait_i / tau)^2``, the generalized c-mu rule (Van Mieghem, 1995) for
    the delay cost ``C(a) = a + a^3 / (3 tau^2)``: the index of a queue is its service
    rate times the marginal cost ``C'(a)`` of its oldest request's wait ``a``.  A wait
    well under ``tau`` costs linearly (the plain c-mu split, which minimises the mean);
    one past ``tau`` grows as its square, so a queue whose head has waited long is served
    before its tail becomes the p99.  ``benchmarks/gpu_allocation.py`` measures it on the
    serverless GPU scenario.  ``Adaptive(service_aware=False)`` divides the surplus in
    proportion to ``d_i`` alone.
``auction`` (:class:`Auction`)
    Each agent bids ``(base_bid + backlog_i) / priority_level_i``.  After the minimums,
    the surplus goes either in proportion to the bids (``mode="proportional"``, a
    proportional-share auction) or in ``rounds`` equal units, each to the highest current
    bid, a winner's bid being divided by one plus the units it has won
    (``mode="highest_bid"``, the D'Hondt rule; ties go to the earlier agent).
``lp`` (:class:`LinearProgram`)
    A linear program solved with HiGHS (``scipy.optimize.linprog``).  Agent ``i`` serves
    ``share_i / capacity * service_rate_i`` requests/s and has demand
    ``rate_i + backlog_i / horizon`` requests/s.  With auxiliary variables ``u_i`` for the
    served load it maximises ``sum u_i`` subject to ``u_i <= share_i * service_rate_i /
    capacity``, ``u_i <= demand_i``, ``sum share_i <= capacity``, ``share_i >= m_i``.
    Capacity the optimum leaves unused (every demand is met) is split equally when
    ``work_conserving`` is true, which never lowers the served load.  The program is
    solved in fractions of the capacity, so it is equally well scaled for any capacity.
    When several allocations serve the same maximal load, HiGHS returns one of them
    (which one is unspecified).  Priorities are not part of the objective.
``queue_aware`` (:class:`QueueProportional`)
    A work-conserving baseline that ignores priorities: after the minimums, the whole
    surplus goes in proportion to each agent's outstanding work in seconds of the whole
    capacity, ``w_i = (backlog_i + rate_i * lookahead_s) / service_rate_i`` (the queue
    plus the arrivals expected in the next ``lookahead_s``), equally if no agent has any.
``rl`` (:class:`paragents.resources.rl.RLAllocator`)
    A tabular Q-learning policy trained in the serverless GPU simulator: from a small
    discrete summary of the demands it picks one of a few surplus rules (proportional to
    the minimums, adaptive, queue-aware, shortest or longest outstanding work).  It lives
    in :mod:`paragents.resources.rl`; ``ALLOCATORS["rl"]`` imports that module (and
    numpy) only when it is first instantiated.

Only :class:`LinearProgram` imports scipy, and only when it is first used.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from ..core.errors import ParagentsError

__all__ = [
    "ALLOCATORS",
    "Adaptive",
    "AgentDemand",
    "AllocationError",
    "Allocator",
    "Auction",
    "LinearProgram",
    "QueueProportional",
    "RoundRobin",
    "StaticEqual",
    "minimum_shares",
    "served_load",
    "to_slots",
]


class AllocationError(ParagentsError, ValueError):
    """The demands or the capacity are invalid, or the solver failed."""


@dataclass(frozen=True, slots=True)
class AgentDemand:
    """What one agent asks for in the coming window, measured over the last one."""

    name: str
    min_share: float  # guaranteed minimum fraction of capacity (e.g. 0.10)
    priority_level: int  # 1 = high, 2 = medium, 3 = low
    rate: float  # observed arrival rate in the last window (requests/s)
    backlog: int = 0  # queued requests
    service_rate: float = 1.0  # requests/s it can serve at full capacity
    oldest_wait: float = 0.0  # seconds the oldest queued request has waited (0 if none)


class Allocator(Protocol):
    """Divides ``capacity`` among ``demands`` for window number ``window``."""

    name: ClassVar[str]

    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]: ...


# --------------------------------------------------------------------------- helpers


def _check(demands: Sequence[AgentDemand], capacity: float) -> None:
    if not (math.isfinite(capacity) and capacity >= 0):
        raise AllocationError(f"capacity must be finite and >= 0, got {capacity!r}")
    seen: set[str] = set()
    for d in demands:
        if d.name in seen:
            raise AllocationError(f"duplicate agent name {d.name!r}")
        seen.add(d.name)
        if not (math.isfinite(d.min_share) and d.min_share >= 0):
            raise AllocationError(f"{d.name}: min_share must be finite and >= 0")
        if d.priority_level < 1:
            raise AllocationError(f"{d.name}: priority_level must be >= 1")
        if not (math.isfinite(d.rate) and d.rate >= 0):
            raise AllocationError(f"{d.name}: rate must be finite and >= 0")
        if d.backlog < 0:
            raise AllocationError(f"{d.name}: backlog must be >= 0")
        if not (math.isfinite(d.service_rate) and d.service_rate > 0):
            raise AllocationError(f"{d.name}: service_rate must be finite and > 0")
        if not (math.isfinite(d.oldest_wait) and d.oldest_wait >= 0):
            raise AllocationError(f"{d.name}: oldest_wait must be finite and >= 0")


def minimum_shares(demands: Sequence[AgentDemand], capacity: float) -> list[float]:
    """Guaranteed share of each agent, in capacity units, scaled down if they do not fit.

    ``m_i = min_share_i * capacity``; if ``sum(min_share) > 1`` every minimum is divided by
    that sum, so the minimums keep their proportions and use exactly the capacity.
    """
    total = math.fsum(d.min_share for d in demands)
    scale = capacity / total if total > 1.0 else capacity
    return [d.min_share * scale for d in demands]


def _with_surplus(
    demands: Sequence[AgentDemand], mins: Sequence[float], capacity: float, weights: Sequence[float]
) -> dict[str, float]:
    """Minimums plus the surplus in proportion to ``weights`` (equally if all are zero)."""
    surplus = max(0.0, capacity - math.fsum(mins))
    total = math.fsum(weights)
    if total > 0:  # w / total <= 1: no overflow however small the weights
        return {d.name: m + surplus * (w / total) for d, m, w in zip(demands, mins, weights, strict=True)}
    each = surplus / len(demands)
    return {d.name: m + each for d, m in zip(demands, mins, strict=True)}


def served_load(
    demands: Sequence[AgentDemand],
    shares: Mapping[str, float],
    capacity: float,
    horizon: float = 1.0,
) -> float:
    """Requests/s served: ``sum min(share_i / capacity * service_rate_i, demand_i)``.

    ``demand_i = rate_i + backlog_i / horizon``; this is the objective of
    :class:`LinearProgram`, exposed so other allocators can be scored the same way.
    """
    if capacity <= 0:
        return 0.0
    return math.fsum(
        min(shares.get(d.name, 0.0) / capacity * d.service_rate, d.rate + d.backlog / horizon)
        for d in demands
    )


def to_slots(shares: Mapping[str, float], slots: int) -> dict[str, int]:
    """Round shares of ``slots`` concurrency slots to whole slots (largest remainder).

    The result sums to ``min(slots, round(sum(shares)))`` and each agent gets the floor or
    the ceiling of its share; ties in the remainder go to the earlier name in ``shares``.
    """
    if slots < 0:
        raise AllocationError(f"slots must be >= 0, got {slots}")
    floors = {n: math.floor(s + 1e-9) for n, s in shares.items()}
    target = min(slots, round(math.fsum(shares.values())))
    left = target - sum(floors.values())
    order = sorted(shares, key=lambda n: floors[n] - shares[n])  # largest remainder first
    for n in order[: max(0, left)]:
        floors[n] += 1
    return floors


# --------------------------------------------------------------------------- allocators


_Allocate = Callable[[Any, Sequence[AgentDemand], float, int], dict[str, float]]


def _checked(allocate: _Allocate) -> _Allocate:
    """Every allocator's preamble: refuse invalid input; no agents, no shares."""

    @functools.wraps(allocate)
    def checked(
        self: Any, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        _check(demands, capacity)
        return allocate(self, demands, capacity, window) if demands else {}

    return checked


@dataclass(frozen=True, slots=True)
class StaticEqual:
    """``capacity / N`` each; minimums above that are met first (max-min fair with floors)."""

    name: ClassVar[str] = "static"

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        mins = minimum_shares(demands, capacity)
        level = capacity / len(demands)
        if all(m <= level for m in mins):
            return {d.name: level for d in demands}
        # Water-filling: fix the largest minimums that exceed the current equal level.
        order = sorted(range(len(demands)), key=lambda i: -mins[i])
        fixed: dict[int, float] = {}
        left, count = capacity, len(demands)
        for i in order:
            level = left / count
            if mins[i] <= level:
                break
            fixed[i] = mins[i]
            left -= mins[i]
            count -= 1
        level = max(0.0, left) / count if count else 0.0
        return {d.name: fixed.get(i, level) for i, d in enumerate(demands)}


@dataclass(frozen=True, slots=True)
class RoundRobin:
    """Time slicing: the whole capacity to agent ``window mod N``, zero to the others.

    No per-window minimum holds; over ``N`` consecutive windows each agent averages
    ``capacity / N``.  Pass the agents in a stable order across windows.
    """

    name: ClassVar[str] = "round_robin"

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        turn = window % len(demands)
        return {d.name: (capacity if i == turn else 0.0) for i, d in enumerate(demands)}


@dataclass(frozen=True, slots=True)
class Adaptive:
    """Minimums, then the surplus by service-rate-aware demand; O(N), no sorting.

    The demand is ``d_i = (rate_i * min_share_i + backlog_weight * backlog_i) /
    priority_level_i`` (:meth:`weights`).  The default ``backlog_weight`` of 1/s reads a
    queue as the rate that would drain it in one second (the LP's default horizon), so
    both terms are requests per second.

    With ``service_aware`` (the default) the surplus goes in proportion to
    ``w_i = d_i * (1 + backlog_i) * service_rate_i`` (:meth:`surplus_weights`).  A unit
    of capacity finishes ``service_rate_i`` of agent ``i``'s requests per second (the
    c-mu rule: capacity removes the most waiting where it finishes the most requests), and
    every request it finishes moves the ``backlog_i`` queued behind it forward (a long
    queue gains more per unit than a short one; this factor is what keeps the slow
    agents' tail from growing).  ``delay_scale`` (seconds; None turns it off) multiplies
    ``w_i`` by ``1 + (oldest_wait_i / delay_scale)^2``: the generalized c-mu rule for a
    delay cost that turns from linear to cubic around ``delay_scale`` (see the module
    docstring).  With ``service_aware=False`` the surplus goes in proportion to ``d_i``
    alone.
    """

    backlog_weight: float = 1.0
    service_aware: bool = True
    delay_scale: float | None = 0.2
    name: ClassVar[str] = "adaptive"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.backlog_weight) and self.backlog_weight >= 0):
            raise AllocationError("backlog_weight must be finite and >= 0")
        if self.delay_scale is not None and not (math.isfinite(self.delay_scale) and self.delay_scale > 0):
            raise AllocationError("delay_scale must be finite and > 0 (or None)")

    def weights(self, demands: Sequence[AgentDemand]) -> list[float]:
        """Each agent's demand ``d_i``.

        These are the surplus weights when ``service_aware`` is false, and the ``adaptive``
        rule of :class:`paragents.resources.rl.RLAllocator` (its shipped policy was
        trained with them).
        """
        bw = self.backlog_weight
        return [(d.rate * d.min_share + bw * d.backlog) / d.priority_level for d in demands]

    def surplus_weights(self, demands: Sequence[AgentDemand]) -> list[float]:
        """Each agent's weight for its part of the surplus: ``w_i``, or ``d_i``.

        ``1 + backlog_i``, ``service_rate_i`` and the delay factor are divided by their
        largest values: that leaves the proportions as they are and keeps ``w_i <= d_i``
        (no overflow).
        """
        demand = self.weights(demands)
        if not self.service_aware or not demands:
            return demand
        longest = 1 + max(d.backlog for d in demands)
        fastest = max(d.service_rate for d in demands)
        delay = [1.0] * len(demands)
        if self.delay_scale is not None:
            delay = [1 + (d.oldest_wait / self.delay_scale) ** 2 for d in demands]
        most = max(delay)
        return [
            x * ((1 + d.backlog) / longest) * (d.service_rate / fastest) * (f / most)
            for x, d, f in zip(demand, demands, delay, strict=True)
        ]

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        weights = self.surplus_weights(demands)
        return _with_surplus(demands, minimum_shares(demands, capacity), capacity, weights)


@dataclass(frozen=True, slots=True)
class Auction:
    """Agents bid ``(base_bid + backlog) / priority_level`` for the surplus over minimums.

    ``mode="proportional"``: surplus in proportion to the bids.  ``mode="highest_bid"``:
    the surplus in ``rounds`` equal units, each to the highest bid ``b_i / (1 + won_i)``.
    """

    mode: Literal["proportional", "highest_bid"] = "proportional"
    rounds: int = 100
    base_bid: float = 1.0
    name: ClassVar[str] = "auction"

    def __post_init__(self) -> None:
        if self.mode not in ("proportional", "highest_bid"):
            raise AllocationError(f"unknown auction mode {self.mode!r}")
        if self.rounds < 1:
            raise AllocationError("rounds must be >= 1")
        if not (math.isfinite(self.base_bid) and self.base_bid >= 0):
            raise AllocationError("base_bid must be finite and >= 0")

    def bids(self, demands: Sequence[AgentDemand]) -> list[float]:
        """Each agent's bid, from its queue length and its priority."""
        return [(self.base_bid + d.backlog) / d.priority_level for d in demands]

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        mins = minimum_shares(demands, capacity)
        bids = self.bids(demands)
        if self.mode == "proportional" or math.fsum(bids) == 0:
            return _with_surplus(demands, mins, capacity, bids)
        surplus = max(0.0, capacity - math.fsum(mins))
        won = [0] * len(demands)
        heap = [(-b, i) for i, b in enumerate(bids)]
        heapq.heapify(heap)
        for _ in range(self.rounds):
            _, i = heapq.heappop(heap)
            won[i] += 1
            heapq.heappush(heap, (-bids[i] / (1 + won[i]), i))
        unit = surplus / self.rounds
        return {d.name: m + w * unit for d, m, w in zip(demands, mins, won, strict=True)}


@dataclass(frozen=True, slots=True)
class LinearProgram:
    """Maximise the served load with HiGHS; see the module docstring for the program.

    ``horizon`` (seconds) turns a backlog into a rate: ``demand_i = rate_i +
    backlog_i / horizon``.
    """

    horizon: float = 1.0
    work_conserving: bool = True
    name: ClassVar[str] = "lp"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.horizon) and self.horizon > 0):
            raise AllocationError("horizon must be finite and > 0")

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        mins = minimum_shares(demands, capacity)
        if capacity == 0:
            return {d.name: 0.0 for d in demands}
        import numpy as np
        from scipy.optimize import linprog
        from scipy.sparse import coo_matrix, hstack, identity, vstack

        n = len(demands)
        # Solved in fractions of the capacity (f_i = share_i / capacity), so that the
        # program is as well scaled for 1e-300 as for 1e6 units of capacity.
        # Variables x = [f_0..f_{n-1}, u_0..u_{n-1}]; linprog minimises, so -sum u.
        floors = [m / capacity for m in mins]
        c = np.concatenate([np.zeros(n), -np.ones(n)])
        speed = np.array([d.service_rate for d in demands])
        # u_i - service_rate_i * f_i <= 0
        served = hstack([coo_matrix((-speed, (range(n), range(n))), shape=(n, n)), identity(n)])
        total = hstack([coo_matrix(np.ones((1, n))), coo_matrix((1, n))])
        a_ub = vstack([served, total]).tocsr()
        b_ub = np.concatenate([np.zeros(n), [1.0]])
        demand = [d.rate + d.backlog / self.horizon for d in demands]
        bounds = [(f, 1.0) for f in floors] + [(0.0, q) for q in demand]
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status != 0:
            raise AllocationError(f"linear program failed: {res.message}")
        # Clean the solver's tolerances: at least the minimum, in total at most the capacity.
        extra = [max(0.0, float(f) - lo) for f, lo in zip(res.x[:n], floors, strict=True)]
        surplus = max(0.0, 1.0 - math.fsum(floors))
        used = math.fsum(extra)
        if used > surplus:
            extra = [e * surplus / used for e in extra]
            used = surplus
        idle = (surplus - used) / n if self.work_conserving else 0.0
        return {
            d.name: m + capacity * (e + idle) for d, m, e in zip(demands, mins, extra, strict=True)
        }


@dataclass(frozen=True, slots=True)
class QueueProportional:
    """Minimums, then the surplus in proportion to outstanding work; work conserving.

    ``w_i = (backlog_i + rate_i * lookahead_s) / service_rate_i``; priorities are ignored.
    """

    lookahead_s: float = 0.01
    name: ClassVar[str] = "queue_aware"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lookahead_s) and self.lookahead_s >= 0):
            raise AllocationError("lookahead_s must be finite and >= 0")

    def weights(self, demands: Sequence[AgentDemand]) -> list[float]:
        """Each agent's outstanding work, in seconds of the whole capacity."""
        ahead = self.lookahead_s
        return [(d.backlog + d.rate * ahead) / d.service_rate for d in demands]

    @_checked
    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        weights = self.weights(demands)
        return _with_surplus(demands, minimum_shares(demands, capacity), capacity, weights)


class _LazyRL:
    """``ALLOCATORS["rl"]``: builds :class:`paragents.resources.rl.RLAllocator` on call,
    so that importing this module does not import numpy or read the policy file."""

    name: ClassVar[str] = "rl"

    def __new__(cls, *args: Any, **kwargs: Any) -> Allocator:  # type: ignore[misc]
        from .rl import RLAllocator

        return RLAllocator(*args, **kwargs)


ALLOCATORS: dict[str, type[Allocator]] = {
    a.name: a  # type: ignore[misc]
    for a in (StaticEqual, RoundRobin, Adaptive, Auction, LinearProgram, QueueProportional, _LazyRL)
}
