"""The Q-learning allocator: it learns, its policy files round-trip, and it keeps the rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paragents.resources import ALLOCATORS, AgentDemand, AllocationError, QPolicy, RLAllocator
from paragents.resources.rl import N_STATES, RULES, default_policy, encode, evaluate, main, train
from paragents.sim.serverless import ServerlessAgent, ServerlessConfig

# Two agents whose surplus split matters: a fast one (5 ms a request) and a slow one
# (100 ms), equal loads, steady traffic.  Splitting by the minimums (the untrained
# policy's rule) starves the fast agent behind the slow one's big guarantee.
SMALL = ServerlessConfig(
    agents=(
        ServerlessAgent("fast", 0.05, 1, 200.0, 500.0),
        ServerlessAgent("slow", 0.45, 1, 10.0, 500.0),
    ),
    split=(0.5, 0.5),
    off_probability=0.0,
    burst_sigma=0.0,
)
SMALL_RUN = {"loads": (0.9,), "episode_s": 5.0}


@pytest.fixture(scope="module")
def trained() -> QPolicy:
    return train(SMALL, episodes=32, seed=0, **SMALL_RUN)


def test_training_improves_on_the_untrained_policy(trained):
    before = evaluate(QPolicy.untrained(), SMALL, seeds=(0, 1), **SMALL_RUN)
    after = evaluate(trained, SMALL, seeds=(0, 1), **SMALL_RUN)
    assert before < after < 0  # rewards are minus the queue: closer to 0 is better
    assert after / before < 0.7, (before, after)


def test_training_is_reproducible():
    a = train(SMALL, episodes=2, seed=3, **SMALL_RUN)
    b = train(SMALL, episodes=2, seed=3, **SMALL_RUN)
    assert a == b
    assert a != QPolicy.untrained()


def test_save_and_load_round_trip_gives_identical_decisions(trained, tmp_path):
    path = tmp_path / "policy.json"
    trained.save(path)
    loaded = QPolicy.load(path)
    assert loaded == trained
    assert loaded.training == trained.training
    demands = [
        [
            AgentDemand("fast", 0.05, 1, r, b, 200.0),
            AgentDemand("slow", 0.45, 1, r / 2, 3 * b, 10.0),
        ]
        for r in (0.0, 5.0, 90.0)
        for b in (0, 1, 7, 40)
    ]
    for i, d in enumerate(demands):
        assert RLAllocator(loaded).allocate(d, 1.0, i) == RLAllocator(trained).allocate(d, 1.0, i)


def test_the_shipped_policy_loads_and_is_trained():
    policy = default_policy()
    assert len(policy.q) == N_STATES
    assert policy.training["episodes"] > 0
    assert any(v != 0.0 for row in policy.q for v in row)
    assert isinstance(ALLOCATORS["rl"](), RLAllocator)
    assert ALLOCATORS["rl"]().policy is policy


def test_a_policy_file_for_other_rules_is_refused(tmp_path):
    doc = QPolicy.untrained().to_json()
    doc["rules"] = ["something", "else"]
    with pytest.raises(AllocationError, match="rules"):
        QPolicy.from_json(doc)


def test_the_training_command_writes_a_loadable_policy(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["train", "--out", str(out), "--episodes", "1", "--seed", "2"]) == 0
    policy = QPolicy.load(out)
    assert policy.training["seed"] == 2
    assert "eval_reward_trained" in policy.training
    assert "wrote" in capsys.readouterr().out


@st.composite
def demand_sets(draw: st.DrawFn, max_min: float = 0.5) -> list[AgentDemand]:
    n = draw(st.integers(1, 12))
    return [
        AgentDemand(
            name=f"agent{i}",
            min_share=draw(st.floats(0.0, max_min)),
            priority_level=draw(st.integers(1, 3)),
            rate=draw(st.floats(0.0, 100.0)),
            backlog=draw(st.integers(0, 50)),
            service_rate=draw(st.floats(0.1, 50.0)),
        )
        for i in range(n)
    ]


@given(demands=demand_sets(max_min=1.0), capacity=st.floats(0.0, 100.0), rule=st.integers(0, 4))
def test_every_rule_keeps_the_invariants(demands, capacity, rule):
    q = tuple(tuple(1.0 if a == rule else 0.0 for a in range(len(RULES))) for _ in range(N_STATES))
    shares = RLAllocator(QPolicy(q)).allocate(demands, capacity, 0)
    total_min = math.fsum(d.min_share for d in demands)
    scale = capacity / total_min if total_min > 1 else capacity
    assert set(shares) == {d.name for d in demands}
    assert math.fsum(shares.values()) <= capacity + 1e-9
    assert math.fsum(shares.values()) == pytest.approx(capacity, rel=1e-9, abs=1e-9)
    for d in demands:
        assert shares[d.name] >= d.min_share * scale - 1e-9 * max(1.0, capacity)


@given(demands=demand_sets())
def test_the_state_is_a_valid_table_row(demands):
    assert 0 <= encode(demands, 0.01) < N_STATES
