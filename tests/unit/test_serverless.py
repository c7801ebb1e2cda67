"""The serverless GPU simulator: reproducibility, conservation, cold starts, SLA accounting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from paragents.resources import ALLOCATORS, AgentDemand, AllocationError
from paragents.sim.serverless import (
    ServerlessAgent,
    ServerlessConfig,
    ServerlessSim,
    run_serverless,
)

STEADY = ServerlessConfig(off_probability=0.0, burst_sigma=0.0)


@dataclass
class Scripted:
    """Gives each agent the share ``script(window)`` returns for it."""

    script: dict[str, list[float]]
    name: ClassVar[str] = "scripted"

    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        return {
            d.name: self.script[d.name][min(window, len(self.script[d.name]) - 1)] for d in demands
        }


@dataclass
class Recording:
    """Wraps an allocator and keeps every allocation it hands out."""

    inner: object
    seen: list[dict[str, float]] = field(default_factory=list)
    name: ClassVar[str] = "recording"

    def allocate(
        self, demands: Sequence[AgentDemand], capacity: float, window: int
    ) -> dict[str, float]:
        shares = self.inner.allocate(demands, capacity, window)  # type: ignore[attr-defined]
        self.seen.append(shares)
        return shares


def test_a_fixed_seed_reproduces_the_result_exactly():
    first = run_serverless("adaptive", load=0.8, seed=3, duration_s=5.0)
    again = run_serverless("adaptive", load=0.8, seed=3, duration_s=5.0)
    assert first == again
    assert first.to_dict() == again.to_dict()


def test_different_seeds_give_different_runs():
    a = run_serverless("static", seed=0, duration_s=5.0)
    b = run_serverless("static", seed=1, duration_s=5.0)
    assert a.overall.arrived != b.overall.arrived or a.overall.mean_s != b.overall.mean_s


def test_traces_are_the_requests_a_run_serves():
    sim = ServerlessSim(load=0.8, seed=2, duration_s=2.0)
    traces = sim.traces()
    assert list(traces) == [a.name for a in sim.config.agents]
    assert traces == ServerlessSim(load=0.8, seed=2, duration_s=2.0).traces()
    for arrivals, work in traces.values():
        assert len(arrivals) == len(work)
        assert list(arrivals) == sorted(arrivals)
        assert all(0 <= t < 2.0 for t in arrivals) and all(w > 0 for w in work)
    result = run_serverless("adaptive", load=0.8, seed=2, duration_s=2.0)
    for agent in result.agents:
        assert agent.arrived == len(traces[agent.name][0])


def test_every_allocator_meets_the_same_requests_for_a_seed():
    arrived = {
        run_serverless(n, seed=2, duration_s=2.0).overall.arrived for n in ("static", "adaptive")
    }
    assert len(arrived) == 1


def test_throughput_matches_the_arrival_rate_at_low_load():
    result = run_serverless("adaptive", load=0.2, seed=0, duration_s=30.0, config=STEADY)
    expected = math.fsum(STEADY.base_rates(0.2)) * 30.0
    assert abs(result.overall.arrived - expected) < 4 * math.sqrt(expected)  # Poisson
    assert result.overall.throughput_rps == pytest.approx(result.overall.arrived / 30.0, rel=0.02)
    assert result.overall.unfinished == 0


@pytest.mark.parametrize(
    "name", ["static", "round_robin", "adaptive", "auction", "queue_aware", "rl"]
)
def test_shares_handed_out_never_exceed_the_capacity(name):
    recording = Recording(ALLOCATORS[name]())
    result = run_serverless(recording, load=0.9, seed=1, duration_s=2.0)
    assert len(recording.seen) == result.windows
    assert all(math.fsum(s.values()) <= 1.0 + 1e-9 for s in recording.seen)
    assert all(v >= 0 for s in recording.seen for v in s.values())
    assert result.max_allocated <= 1.0 + 1e-9


def test_over_allocation_is_refused():
    greedy = Scripted({a.name: [0.5] for a in STEADY.agents})
    with pytest.raises(AllocationError, match="capacity"):
        run_serverless(greedy, duration_s=1.0, config=STEADY)


@pytest.mark.parametrize("load", [0.3, 0.9])
@pytest.mark.parametrize("drain", [0.0, 60.0])
def test_completed_plus_unfinished_equals_arrived(load, drain):
    config = ServerlessConfig(max_drain_s=drain)
    result = run_serverless("round_robin", load=load, seed=4, duration_s=5.0, config=config)
    for r in (result.overall, *result.agents):
        assert r.completed + r.unfinished == r.arrived
    assert result.overall.arrived == sum(a.arrived for a in result.agents)
    if drain:
        assert result.overall.unfinished == 0


def _one_agent(keep_alive: float) -> ServerlessConfig:
    agent = ServerlessAgent("solo", 0.1, 1, 100.0, 1000.0)
    return ServerlessConfig(
        agents=(agent,),
        keep_alive_s=keep_alive,
        off_probability=0.0,
        burst_sigma=0.0,
        load_bandwidth_gb_s=2.0,
        init_s=0.1,
        max_drain_s=0.0,
    )


def _off_then_on(off_windows: int) -> Scripted:
    return Scripted({"solo": [0.0] * off_windows + [1.0]})


def test_an_agent_scaled_to_zero_pays_a_cold_start_when_it_gets_share_again():
    # 0 share for 1 s (100 windows) > keep-alive 0.5 s: evicted, then 1000 MB / 2 GB/s + 0.1 s.
    config = _one_agent(keep_alive=0.5)
    result = run_serverless(_off_then_on(100), load=0.5, duration_s=3.0, config=config)
    assert result.overall.cold_starts == 1
    # Nothing can finish during the 0.6 s load that follows the first positive share at 1 s.
    sim = ServerlessSim(config, load=0.5, duration_s=3.0)
    while sim.window < 100 + 59:
        sim.step({"solo": 0.0 if sim.window < 100 else 1.0})
    assert sim.result("x").overall.completed == 0
    sim.step({"solo": 1.0})
    sim.step({"solo": 1.0})
    assert sim.result("x").overall.completed > 0


def test_no_cold_start_when_the_share_returns_within_the_keep_alive():
    result = run_serverless(_off_then_on(40), load=0.5, duration_s=3.0, config=_one_agent(0.5))
    assert result.overall.cold_starts == 0


def test_no_cold_start_with_a_share_that_never_drops_to_zero():
    result = run_serverless("static", load=0.5, seed=0, duration_s=20.0)
    assert result.overall.cold_starts == 0


def test_sla_violations_are_counted_on_a_hand_checkable_run():
    # One agent, 10 req/s for 1 s, every request exactly 0.1 s of the whole GPU, run at
    # share 0.25: each request takes 0.4 s, so the k-th (k = 0, 1, ...) finishes at
    # max(arrival, previous) + 0.4 and the SLA of 0.2 s is missed by every request.
    agent = ServerlessAgent("solo", 0.0, 1, 10.0, 0.0)
    config = ServerlessConfig(
        agents=(agent,), off_probability=0.0, burst_sigma=0.0, service_cv=0.0, max_drain_s=30.0
    )
    quarter = Scripted({"solo": [0.25]})
    result = run_serverless(quarter, load=1.0, seed=5, duration_s=1.0, config=config)
    solo = result.agent("solo")
    assert solo.completed == solo.arrived > 0
    assert solo.sla_violations == solo.arrived
    assert solo.sla_violation_fraction == 1.0
    # At the whole GPU every request takes 0.1 s: a request is late only behind a queue.
    sim = ServerlessSim(config, load=1.0, seed=5, duration_s=1.0)
    while not sim.finished:
        sim.step({"solo": 1.0})
    arrivals = sim._queues[0].arrivals
    finish, late = 0.0, 0
    for a in arrivals:
        finish = max(finish, a) + 0.1
        late += finish - a > 0.2 + 1e-12
    assert sim.result("full").overall.sla_violations == late


def test_an_unknown_allocator_name_is_refused():
    with pytest.raises(AllocationError, match="unknown allocator"):
        run_serverless("nope", duration_s=1.0)
