"""Properties of the capacity allocators in ``paragents.resources``, on random demand sets."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from paragents.resources import (
    ALLOCATORS,
    Adaptive,
    AgentDemand,
    AllocationError,
    Auction,
    LinearProgram,
    QueueProportional,
    RLAllocator,
    RoundRobin,
    StaticEqual,
    minimum_shares,
    served_load,
    to_slots,
)

ALL = [
    StaticEqual(),
    RoundRobin(),
    Adaptive(),
    Adaptive(service_aware=False),
    Auction(),
    Auction(mode="highest_bid", rounds=37),
    LinearProgram(),
    LinearProgram(work_conserving=False),
    QueueProportional(),
    QueueProportional(lookahead_s=0.0),
    RLAllocator(),
]
WITH_MINIMUMS = [a for a in ALL if not isinstance(a, RoundRobin)]


def _id(a: object) -> str:
    return repr(a)


@st.composite
def demand_sets(draw: st.DrawFn, max_agents: int = 12, max_min: float = 0.5) -> list[AgentDemand]:
    n = draw(st.integers(1, max_agents))
    return [
        AgentDemand(
            name=f"agent{i}",
            min_share=draw(st.floats(0.0, max_min)),
            priority_level=draw(st.integers(1, 3)),
            rate=draw(st.floats(0.0, 100.0)),
            backlog=draw(st.integers(0, 50)),
            service_rate=draw(st.floats(0.1, 50.0)),
            oldest_wait=draw(st.floats(0.0, 30.0)),
        )
        for i in range(n)
    ]


capacities = st.one_of(st.sampled_from([0.0, 1.0, 8.0]), st.floats(0.0, 100.0))
windows = st.integers(0, 1000)


def _tol(capacity: float) -> float:
    return 1e-9 * max(1.0, capacity)


@pytest.mark.parametrize("allocator", ALL, ids=_id)
@given(demands=demand_sets(), capacity=capacities, window=windows)
def test_shares_are_non_negative_and_within_capacity(allocator, demands, capacity, window):
    shares = allocator.allocate(demands, capacity, window)
    assert set(shares) == {d.name for d in demands}
    assert all(s >= 0.0 for s in shares.values())
    assert math.fsum(shares.values()) <= capacity + 1e-9


@pytest.mark.parametrize("allocator", WITH_MINIMUMS, ids=_id)
@given(demands=demand_sets(), capacity=capacities, window=windows)
def test_every_agent_gets_at_least_its_minimum_when_minimums_fit(
    allocator, demands, capacity, window
):
    assume(math.fsum(d.min_share for d in demands) <= 1.0)
    shares = allocator.allocate(demands, capacity, window)
    for d in demands:
        assert shares[d.name] >= d.min_share * capacity - _tol(capacity)


@pytest.mark.parametrize("allocator", WITH_MINIMUMS, ids=_id)
@given(demands=demand_sets(max_min=1.0), capacity=capacities, window=windows)
def test_minimums_that_do_not_fit_are_scaled_down_in_proportion(
    allocator, demands, capacity, window
):
    total = math.fsum(d.min_share for d in demands)
    assume(total > 1.0)
    shares = allocator.allocate(demands, capacity, window)
    for d in demands:
        assert shares[d.name] >= capacity * d.min_share / total - _tol(capacity)
    assert math.fsum(shares.values()) <= capacity + 1e-9


@given(demands=demand_sets(), capacity=capacities, start=windows)
def test_round_robin_gives_each_agent_capacity_over_n_on_average_over_n_windows(
    demands, capacity, start
):
    n = len(demands)
    total = dict.fromkeys((d.name for d in demands), 0.0)
    for w in range(start, start + n):
        shares = RoundRobin().allocate(demands, capacity, w)
        assert max(shares.values()) == capacity  # the whole capacity to one agent
        for name, s in shares.items():
            total[name] += s
    for d in demands:
        average = total[d.name] / n
        assert average == pytest.approx(capacity / n)
        if d.min_share <= 1.0 / n:
            assert average >= d.min_share * capacity - _tol(capacity)


@given(
    demands=demand_sets(max_min=0.05),
    min_share=st.floats(0.01, 0.3),
    priority=st.integers(1, 3),
    low=st.floats(0.0, 50.0),
    extra=st.floats(0.5, 50.0),
    backlog=st.integers(0, 20),
)
def test_adaptive_gives_more_to_the_agent_with_more_demand(
    demands, min_share, priority, low, extra, backlog
):
    busy = AgentDemand("busy", min_share, priority, low + extra, backlog)
    quiet = AgentDemand("quiet", min_share, priority, low, backlog)
    pool = [*demands, quiet, busy]
    assume(math.fsum(d.min_share for d in pool) + min_share < 0.99)  # leaves a surplus
    shares = Adaptive().allocate(pool, 1.0, 0)
    assert shares["busy"] > shares["quiet"]
    more_queue = AgentDemand("queued", min_share, priority, low, backlog + 10)
    shares = Adaptive().allocate([*demands, quiet, more_queue], 1.0, 0)
    assert shares["queued"] > shares["quiet"]


@given(
    demands=demand_sets(max_min=0.05),
    min_share=st.floats(0.01, 0.3),
    rate=st.floats(0.1, 50.0),
    backlog=st.integers(0, 20),
)
def test_adaptive_gives_more_to_higher_priority_at_equal_load(demands, min_share, rate, backlog):
    high = AgentDemand("high", min_share, 1, rate, backlog)
    medium = AgentDemand("medium", min_share, 2, rate, backlog)
    low = AgentDemand("low", min_share, 3, rate, backlog)
    assume(math.fsum(d.min_share for d in demands) + 3 * min_share < 0.99)  # leaves a surplus
    shares = Adaptive().allocate([*demands, low, medium, high], 1.0, 0)
    assert shares["high"] > shares["medium"] > shares["low"]


def test_adaptive_uses_the_whole_capacity():
    demands = [AgentDemand(f"a{i}", 0.1, 1 + i % 3, float(i), i) for i in range(5)]
    assert sum(Adaptive().allocate(demands, 4.0, 0).values()) == pytest.approx(4.0)


def test_adaptive_gives_the_surplus_to_the_faster_agent_at_equal_demand():
    # Same demand d = 10 * 0.1 + 2 = 3 and queue; one finishes 100 requests/s per unit of
    # capacity, the other 25: the surplus 0.8 goes 4 : 1.
    demands = [
        AgentDemand("fast", 0.1, 1, rate=10.0, backlog=2, service_rate=100.0),
        AgentDemand("slow", 0.1, 1, rate=10.0, backlog=2, service_rate=25.0),
    ]
    shares = Adaptive().allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"fast": 0.1 + 0.8 * 4 / 5, "slow": 0.1 + 0.8 / 5})
    plain = Adaptive(service_aware=False).allocate(demands, 1.0, 0)
    assert plain == pytest.approx({"fast": 0.5, "slow": 0.5})


def test_adaptive_weighs_a_long_queue_by_its_length_as_well_as_its_demand():
    # No arrivals, demand = backlog: w = backlog * (1 + backlog) = 1 * 2 and 4 * 5.
    demands = [
        AgentDemand("short", 0.2, 1, rate=0.0, backlog=1),
        AgentDemand("long", 0.2, 1, rate=0.0, backlog=4),
    ]
    shares = Adaptive().allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"short": 0.2 + 0.6 * 2 / 22, "long": 0.2 + 0.6 * 20 / 22})
    plain = Adaptive(service_aware=False).allocate(demands, 1.0, 0)
    assert plain == pytest.approx({"short": 0.2 + 0.6 / 5, "long": 0.2 + 0.6 * 4 / 5})


def test_adaptive_serves_first_the_queue_whose_oldest_request_waited_past_the_delay_scale():
    # Equal in everything but the wait of their oldest request: the delay factor
    # 1 + (wait / 0.2)^2 is 1 + 0.25 = 1.25 at 0.1 s and 1 + 4 = 5 at 0.4 s, so the
    # surplus 0.8 goes 1.25 : 5; without the delay factor it splits evenly.
    demands = [
        AgentDemand("fresh", 0.1, 1, rate=10.0, backlog=2, service_rate=50.0, oldest_wait=0.1),
        AgentDemand("stale", 0.1, 1, rate=10.0, backlog=2, service_rate=50.0, oldest_wait=0.4),
    ]
    shares = Adaptive().allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"fresh": 0.1 + 0.8 * 1.25 / 6.25, "stale": 0.1 + 0.8 * 5 / 6.25})
    assert Adaptive(delay_scale=None).allocate(demands, 1.0, 0) == pytest.approx({"fresh": 0.5, "stale": 0.5})
    # Waits well under the scale leave the c-mu split almost as it is.
    quick = [replace(d, oldest_wait=0.001 * (i + 1)) for i, d in enumerate(demands)]
    assert Adaptive().allocate(quick, 1.0, 0)["stale"] == pytest.approx(0.5, abs=1e-4)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(AllocationError, match="delay_scale"):
            Adaptive(delay_scale=bad)


def test_adaptive_on_the_serverless_agents_with_one_of_them_idle():
    # The scenario's agents as the simulator shows them: nlp has no work, so it claims no
    # minimum and its 0.3 is the surplus.  d = (rate * min + backlog) / priority:
    # coordinator (10 * 0.1 + 3) / 1 = 4, vision (20 * 0.25 + 3) / 2 = 4, reasoning
    # (10 * 0.35 + 3) / 1 = 6.5; times (1 + backlog) = 4 each, times the service rate:
    # 4 * 100 = 400, 4 * 60 = 240, 6.5 * 30 = 195 (of 835).
    demands = [
        AgentDemand("coordinator", 0.10, 1, rate=10.0, backlog=3, service_rate=100.0),
        AgentDemand("nlp", 0.0, 2, rate=0.0, backlog=0, service_rate=50.0),
        AgentDemand("vision", 0.25, 2, rate=20.0, backlog=3, service_rate=60.0),
        AgentDemand("reasoning", 0.35, 1, rate=10.0, backlog=3, service_rate=30.0),
    ]
    adaptive = Adaptive()
    assert adaptive.weights(demands) == pytest.approx([4.0, 0.0, 4.0, 6.5])
    shares = adaptive.allocate(demands, 1.0, 0)
    assert shares == pytest.approx(
        {
            "coordinator": 0.10 + 0.3 * 400 / 835,
            "nlp": 0.0,
            "vision": 0.25 + 0.3 * 240 / 835,
            "reasoning": 0.35 + 0.3 * 195 / 835,
        }
    )


def test_adaptive_weights_stay_the_plain_demand_whatever_the_surplus_rule():
    # The RL allocator's "adaptive" action and its shipped policy rely on weights() = d_i.
    demands = [AgentDemand("a", 0.2, 2, rate=5.0, backlog=3, service_rate=40.0)]
    for adaptive in (Adaptive(), Adaptive(service_aware=False)):
        assert adaptive.weights(demands) == pytest.approx([(5.0 * 0.2 + 3) / 2])
    assert Adaptive(service_aware=False).surplus_weights(demands) == Adaptive().weights(demands)


def test_adaptive_surplus_weights_do_not_overflow_on_huge_rates_and_queues():
    demands = [
        AgentDemand("a", 0.1, 1, rate=1e300, backlog=10**300, service_rate=1e300),
        AgentDemand("b", 0.1, 1, rate=1e300, backlog=10**300, service_rate=1e299),
    ]
    weights = Adaptive().surplus_weights(demands)
    assert all(math.isfinite(w) for w in weights)
    shares = Adaptive().allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"a": 0.1 + 0.8 * 10 / 11, "b": 0.1 + 0.8 / 11})


@given(demands=demand_sets(), capacity=st.floats(0.1, 100.0), window=windows)
def test_lp_serves_at_least_as_much_load_as_static_equal_shares(demands, capacity, window):
    lp = served_load(demands, LinearProgram().allocate(demands, capacity, window), capacity)
    for other in (StaticEqual(), Adaptive(), Auction()):
        theirs = served_load(demands, other.allocate(demands, capacity, window), capacity)
        assert lp >= theirs - 1e-6 * max(1.0, theirs)


def test_lp_moves_capacity_to_where_it_is_used():
    demands = [
        AgentDemand("idle", 0.1, 1, rate=0.0, service_rate=10.0),
        AgentDemand("busy", 0.1, 1, rate=8.0, service_rate=10.0),
    ]
    shares = LinearProgram(work_conserving=False).allocate(demands, 1.0, 0)
    # Any split giving "busy" at least 0.8 is optimal; the solver picks one of them.
    assert shares["idle"] >= 0.1 - 1e-9
    assert shares["busy"] >= 0.8 - 1e-9
    assert served_load(demands, shares, 1.0) == pytest.approx(8.0)
    assert StaticEqual().allocate(demands, 1.0, 0)["busy"] == 0.5  # serves only 5.0


@pytest.mark.parametrize("capacity", [1.0, 8.0])
@given(demands=demand_sets())
def test_queue_aware_hands_out_the_whole_capacity(capacity, demands):
    shares = QueueProportional().allocate(demands, capacity, 0)
    assert math.fsum(shares.values()) == pytest.approx(capacity)


def test_queue_aware_splits_the_surplus_by_outstanding_work():
    # Work in seconds of the whole capacity: (4 + 100 * 0.01) / 10 = 0.5 and 2 / 20 = 0.1.
    demands = [
        AgentDemand("long", 0.1, 3, rate=100.0, backlog=4, service_rate=10.0),
        AgentDemand("short", 0.1, 1, rate=0.0, backlog=2, service_rate=20.0),
        AgentDemand("idle", 0.2, 1, rate=0.0, backlog=0, service_rate=5.0),
    ]
    shares = QueueProportional(lookahead_s=0.01).allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"long": 0.1 + 0.5, "short": 0.1 + 0.1, "idle": 0.2})


def test_static_equal_meets_large_minimums_and_splits_the_rest_equally():
    demands = [
        AgentDemand("big", 0.7, 1, 0.0),
        AgentDemand("a", 0.0, 1, 0.0),
        AgentDemand("b", 0.0, 1, 0.0),
    ]
    shares = StaticEqual().allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"big": 0.7, "a": 0.15, "b": 0.15})


def test_highest_bid_auction_gives_the_largest_queue_the_most_units():
    # Bids 4 and 1; D'Hondt over 5 units: 4, 2, 1.33, 1 (tie, earlier agent) to "long".
    demands = [
        AgentDemand("long", 0.0, 1, 0.0, backlog=3),
        AgentDemand("short", 0.0, 1, 0.0, backlog=0),
    ]
    shares = Auction(mode="highest_bid", rounds=5).allocate(demands, 1.0, 0)
    assert shares == pytest.approx({"long": 0.8, "short": 0.2})


def test_minimums_that_do_not_fit_keep_their_proportions():
    demands = [AgentDemand("a", 0.6, 1, 0.0), AgentDemand("b", 0.9, 1, 0.0)]
    assert minimum_shares(demands, 10.0) == pytest.approx([4.0, 6.0])


@pytest.mark.parametrize("allocator", ALL, ids=_id)
def test_subnormal_demands_do_not_overflow_the_shares(allocator):
    # A weight of ~1e-309 once divided the surplus into inf shares.
    demands = [AgentDemand("a", 0.0, 1, rate=1.1125369292536007e-308), AgentDemand("b", 0.0, 2, rate=5e-324)]
    shares = allocator.allocate(demands, 1.0, 0)
    assert all(math.isfinite(s) and s >= 0 for s in shares.values())
    assert math.fsum(shares.values()) <= 1.0 + 1e-9


@pytest.mark.parametrize("allocator", ALL, ids=_id)
def test_no_agents_gets_an_empty_allocation(allocator):
    assert allocator.allocate([], 1.0, 0) == {}


@pytest.mark.parametrize(
    ("demands", "capacity"),
    [
        ([AgentDemand("a", 0.1, 1, 1.0), AgentDemand("a", 0.1, 1, 1.0)], 1.0),
        ([AgentDemand("a", -0.1, 1, 1.0)], 1.0),
        ([AgentDemand("a", 0.1, 0, 1.0)], 1.0),
        ([AgentDemand("a", 0.1, 1, -1.0)], 1.0),
        ([AgentDemand("a", 0.1, 1, 1.0, backlog=-1)], 1.0),
        ([AgentDemand("a", 0.1, 1, 1.0, service_rate=0.0)], 1.0),
        ([AgentDemand("a", 0.1, 1, 1.0, oldest_wait=-0.1)], 1.0),
        ([AgentDemand("a", 0.1, 1, 1.0, oldest_wait=math.nan)], 1.0),
        ([AgentDemand("a", 0.1, 1, 1.0)], -1.0),
        ([AgentDemand("a", 0.1, 1, 1.0)], math.inf),
    ],
)
@pytest.mark.parametrize("allocator", ALL, ids=_id)
def test_invalid_demands_are_refused(allocator, demands, capacity):
    with pytest.raises(AllocationError):
        allocator.allocate(demands, capacity, 0)


def test_registry_names_every_allocator():
    expected = {"static", "round_robin", "adaptive", "auction", "lp", "queue_aware", "rl"}
    assert set(ALLOCATORS) == expected
    for name, cls in ALLOCATORS.items():
        assert cls.name == name
        assert cls().allocate([AgentDemand("a", 0.5, 1, 1.0)], 1.0, 0) == pytest.approx({"a": 1.0})


@given(demands=demand_sets(), slots=st.integers(0, 64), window=windows)
def test_to_slots_rounds_to_whole_slots_without_exceeding_the_pool(demands, slots, window):
    shares = Adaptive().allocate(demands, float(slots), window)
    whole = to_slots(shares, slots)
    assert sum(whole.values()) == slots
    for name, s in shares.items():
        assert whole[name] in (math.floor(s + 1e-9), math.ceil(s - 1e-9))


def _seconds(allocator: Adaptive, demands: list[AgentDemand], calls: int = 3) -> float:
    start = time.perf_counter()
    for w in range(calls):
        allocator.allocate(demands, 1.0, w)
    return time.perf_counter() - start


def test_adaptive_time_is_linear_in_the_number_of_agents():
    def pool(n: int) -> list[AgentDemand]:
        return [AgentDemand(f"a{i}", 0.5 / n, 1 + i % 3, float(i % 17), i % 5) for i in range(n)]

    small, large = pool(1_000), pool(10_000)
    allocator = Adaptive()
    _seconds(allocator, small)  # warm up
    # Interleaved rounds, best of each: a burst of load elsewhere spoils one sample of
    # each size rather than every sample of one.
    best_small = best_large = math.inf
    for _ in range(9):
        best_small = min(best_small, _seconds(allocator, small))
        best_large = min(best_large, _seconds(allocator, large))
    ratio = best_large / best_small
    assert 5.0 <= ratio <= 20.0, ratio
