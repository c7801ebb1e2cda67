"""Learned orchestration: sampler, critical path, credit, EMA, controller files, training.

Everything here is deterministic and model-free: small random embeddings stand in for
MiniLM, and the simulated benchmark's executor plays the operators.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from paragents.orchestration.architecture import (
    EARLY_STOP,
    bottlenecks,
    critical_path,
    greedy_layer,
    sample_layer,
    sequential_path,
    stop_chance,
    threshold_range,
)
from paragents.orchestration.controller import (
    ControllerConfig,
    load_controller,
    save_controller,
)
from paragents.orchestration.credit import (
    Ema,
    Weights,
    advantages,
    reward,
    shared_advantage,
)
from paragents.orchestration.simulated import SimExecutor, SimModel, sim_queries
from paragents.orchestration.trainer import StepLog, TrainConfig, new_controller, train

OPS = ("generate", "cot", "multi_cot", "sc_ensemble", "self_refine", "programmer", "test", EARLY_STOP)
DIM = 16


def _random_probs(rng: random.Random, k: int) -> list[float]:
    raw = [rng.random() ** 3 for _ in range(k)]
    if rng.random() < 0.3:  # some exact zeros
        raw[rng.randrange(k)] = 0.0
    if sum(raw) == 0:
        raw[0] = 1.0
    return raw


# ----------------------------------------------------------------- sampler
def test_sampled_layer_draws_distinct_operators_until_the_mass_reaches_the_threshold() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        k = rng.randint(1, 9)
        probs = _random_probs(rng, k)
        threshold = rng.choice([0.05, 0.3, 0.5, 0.8, 0.95, 1.0])
        drawn = sample_layer(probs, threshold, random.Random(rng.random()))
        total = sum(probs)
        assert drawn, "a layer holds at least one operator"
        assert len(set(drawn)) == len(drawn), "drawn without replacement"
        assert all(probs[i] > 0 for i in drawn), "zero-probability operators are never drawn"
        mass = sum(probs[i] for i in drawn) / total
        before_last = sum(probs[i] for i in drawn[:-1]) / total
        positive = sum(1 for p in probs if p > 0)
        assert mass >= threshold - 1e-9 or len(drawn) == positive, "stops only once the mass is reached"
        assert len(drawn) == 1 or before_last < threshold, "never draws past the threshold"


def test_greedy_layer_takes_the_most_probable_operators_first() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        probs = _random_probs(rng, rng.randint(1, 9))
        threshold = rng.choice([0.1, 0.5, 0.8, 1.0])
        chosen = greedy_layer(probs, threshold)
        order = sorted((i for i, p in enumerate(probs) if p > 0), key=lambda i: (-probs[i], i))
        assert chosen == order[: len(chosen)]
        total = sum(probs)
        assert sum(probs[i] for i in chosen) / total >= threshold - 1e-9 or len(chosen) == len(order)
        assert sum(probs[i] for i in chosen[:-1]) / total < threshold


def test_confident_probabilities_give_one_operator_and_spread_ones_give_several() -> None:
    assert greedy_layer([0.9, 0.05, 0.05], 0.8) == [0]
    assert greedy_layer([0.3, 0.3, 0.3, 0.1], 0.8) == [0, 1, 2]
    assert len(sample_layer([0.97, 0.01, 0.01, 0.01], 0.5, random.Random(3))) >= 1


def test_random_threshold_draws_stop_inside_its_range() -> None:
    rng = random.Random(4)
    for _ in range(3000):
        probs = _random_probs(rng, rng.randint(1, 9))
        threshold, spread = rng.choice([0.5, 0.8]), rng.choice([0.1, 0.2, 0.3])
        low, high = threshold_range(threshold, spread)
        drawn = sample_layer(probs, threshold, random.Random(rng.random()), spread)
        total = sum(probs)
        mass = sum(probs[i] for i in drawn) / total
        before_last = sum(probs[i] for i in drawn[:-1]) / total
        positive = sum(1 for p in probs if p > 0)
        assert mass >= low - 1e-9 or len(drawn) == positive
        assert len(drawn) == 1 or before_last < high


def test_stop_chance_is_the_threshold_falling_between_the_masses() -> None:
    assert threshold_range(0.8, 0.2) == (pytest.approx(0.6), 1.0)
    assert threshold_range(0.9, 0.3) == (pytest.approx(0.6), 1.0)
    assert stop_chance(0.5, 0.7, 0.8, 0.2) == pytest.approx(0.25)
    assert stop_chance(0.65, 0.9, 0.8, 0.2) == pytest.approx(0.625)
    assert stop_chance(0.0, 1.0, 0.8, 0.2) == pytest.approx(1.0)
    assert stop_chance(0.2, 0.5, 0.8, 0.2) == 0.0
    # against the sampler: after drawing operator 0 (mass 0.7) first, how often it stops
    rng, first, alone = random.Random(11), 0, 0
    for _ in range(20000):
        drawn = sample_layer([0.7, 0.2, 0.1], 0.8, rng, 0.2)
        if drawn[0] == 0:
            first += 1
            alone += len(drawn) == 1
    assert alone / first == pytest.approx(stop_chance(0.0, 0.7, 0.8, 0.2), abs=0.02)
    with pytest.raises(ValueError, match="spread"):
        threshold_range(0.8, -0.1)


def test_sampler_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="threshold"):
        sample_layer([0.5, 0.5], 0.0, random.Random(0))
    with pytest.raises(ValueError, match="non-negative"):
        greedy_layer([0.0, 0.0], 0.5)


def _controller(threshold: float = 0.8, layers: int = 4, seed: int = 0, widths: tuple[float, ...] = (), **tags: str):
    config = ControllerConfig(OPS, layers=layers, hidden=16, threshold=threshold, embed_dim=DIM, widths=widths,
                              spread=0.1 if widths else 0.0, tags=tuple(sorted(tags.items())))
    operator_vectors = np.random.default_rng(99).normal(size=(len(OPS), DIM))
    return new_controller(config, operator_vectors, seed)


def test_controller_decisions_respect_early_stop_and_never_leave_an_empty_layer() -> None:
    stop = OPS.index(EARLY_STOP)
    for threshold in (0.3, 0.8):
        controller = _controller(threshold)
        queries = np.random.default_rng(5).normal(size=(200, DIM))
        for rng in (random.Random(7), None):
            with torch.no_grad():
                # sampled: stop before about 4 layers in 10; greedy: p_stop near 0.5,
                # so that the queries fall on both sides of it
                controller.bias[1:, stop] = -0.5 if rng is not None else 0.0
            decisions = controller.decide(queries, rng)
            depths = set()
            for item in decisions.items:
                assert item.drawn and stop not in item.drawn[0], "no Early-Stop before the first layer"
                assert item.arch and all(len(layer) >= 1 for layer in item.arch)
                assert len(item.arch) == len(item.ran) <= len(item.drawn) <= controller.config.layers
                depths.add(len(item.arch))
                for drawn in item.drawn[1:]:
                    assert drawn[0] == stop and stop not in drawn[1:], "the gate is decided first, once"
                if len(item.drawn) > len(item.ran):
                    assert item.drawn[-1] == [stop], "a stopped network runs nothing after the stop"
                    assert len(item.drawn) == len(item.ran) + 1
                for ran, layer in zip(item.ran, item.arch, strict=True):
                    assert tuple(OPS[i] for i in ran) == layer and EARLY_STOP not in layer
            if rng is not None:
                assert len(depths) > 2, "sampled networks end at several depths"
            else:
                assert 1 in depths and controller.config.layers in depths, "greedy both stops and goes on"
                with torch.no_grad():
                    for b, item in enumerate(decisions.items):
                        for layer in range(1, len(item.drawn)):
                            previous = torch.zeros(1, len(OPS))
                            previous[0, item.ran[layer - 1]] = 1.0
                            _, p_stop = controller(torch.as_tensor(queries[b:b + 1], dtype=torch.float32),
                                                   previous, layer)
                            stopped = layer == len(item.ran)
                            assert stopped == (float(p_stop) > 0.5), "greedy stops exactly when p_stop > 0.5"
            # log probabilities are set exactly where something was decided
            nonzero = decisions.log_probs != 0
            for b, item in enumerate(decisions.items):
                expected = torch.zeros_like(nonzero[b])
                for layer, drawn in enumerate(item.drawn):
                    expected[layer, drawn] = True
                assert torch.equal(nonzero[b] & ~expected, torch.zeros_like(expected))


def test_early_stop_gate_log_probability_is_its_outcomes() -> None:
    controller = _controller(0.8)
    stop = OPS.index(EARLY_STOP)
    queries = np.random.default_rng(6).normal(size=(50, DIM))
    decisions = controller.decide(queries, random.Random(3))
    with torch.no_grad():
        for b, item in enumerate(decisions.items):
            previous = torch.zeros(1, len(OPS))
            for layer, drawn in enumerate(item.drawn):
                _, p_stop = controller(torch.as_tensor(queries[b:b + 1], dtype=torch.float32), previous, layer)
                if layer == 0:
                    assert float(p_stop) == 0.0
                    assert decisions.log_probs[b, 0, stop] == 0
                else:
                    stopped = len(item.ran) == layer
                    want = torch.log(p_stop if stopped else 1 - p_stop)
                    assert decisions.log_probs[b, layer, stop] == pytest.approx(float(want), abs=1e-5)
                if layer < len(item.ran):
                    previous = torch.zeros(1, len(OPS))
                    previous[0, item.ran[layer]] = 1.0


def test_layer_size_log_probability_follows_the_random_threshold() -> None:
    config = ControllerConfig(OPS, layers=3, hidden=16, threshold=0.8, spread=0.2, embed_dim=DIM)
    controller = new_controller(config, np.random.default_rng(99).normal(size=(len(OPS), DIM)), 0)
    queries = np.random.default_rng(8).normal(size=(60, DIM))
    decisions = controller.decide(queries, random.Random(5))
    assert decisions.size_log_probs.requires_grad, "the size term carries a gradient"
    checked = 0
    with torch.no_grad():
        for b, item in enumerate(decisions.items):
            previous = torch.zeros(1, len(OPS))
            for layer in range(config.layers):
                if layer >= len(item.ran):
                    assert decisions.size_log_probs[b, layer] == 0, "no size where no layer ran"
                    continue
                probs, _ = controller(torch.as_tensor(queries[b:b + 1], dtype=torch.float32), previous, layer)
                ops = [o for o in item.drawn[layer] if OPS[o] != EARLY_STOP]
                after = float(probs[0, ops].sum())
                before = after - float(probs[0, ops[-1]])
                want = math.log(max(stop_chance(before, after, 0.8, 0.2), 1e-6))
                assert float(decisions.size_log_probs[b, layer]) == pytest.approx(want, abs=1e-4)
                checked += 1
                previous = torch.zeros(1, len(OPS))
                previous[0, item.ran[layer]] = 1.0
    assert checked > 60
    greedy = controller.decide(queries, None)
    assert torch.count_nonzero(greedy.size_log_probs) == 0, "evaluation uses the fixed threshold"


def test_learned_width_picks_each_layers_threshold_and_joins_its_log_probability() -> None:
    widths = (0.3, 0.5, 0.7, 0.9)
    config = ControllerConfig(OPS, layers=3, hidden=16, threshold=0.8, spread=0.1, widths=widths, embed_dim=DIM)
    controller = new_controller(config, np.random.default_rng(99).normal(size=(len(OPS), DIM)), 0)
    queries = np.random.default_rng(8).normal(size=(80, DIM))
    decisions = controller.decide(queries, random.Random(5))
    used, sizes = set(), set()
    with torch.no_grad():
        for b, item in enumerate(decisions.items):
            assert len(item.thresholds) == len(item.ran)
            previous = torch.zeros(1, len(OPS))
            for layer, threshold in enumerate(item.thresholds):
                probs, _, width_probs = controller.scores(torch.as_tensor(queries[b:b + 1], dtype=torch.float32),
                                                          previous, layer)
                ops = [o for o in item.drawn[layer] if OPS[o] != EARLY_STOP]
                after = float(probs[0, ops].sum())
                before = after - float(probs[0, ops[-1]])
                want = (math.log(float(width_probs[0, widths.index(threshold)]))
                        + math.log(max(stop_chance(before, after, threshold, 0.1), 1e-6)))
                assert float(decisions.size_log_probs[b, layer]) == pytest.approx(want, abs=1e-4)
                used.add(threshold)
                sizes.add(len(ops))
                previous = torch.zeros(1, len(OPS))
                previous[0, item.ran[layer]] = 1.0
    assert used == set(widths), "every width gets tried"
    assert {1, 2} <= sizes, "narrow widths run one operator, wide ones several"
    greedy = controller.decide(queries, None)
    assert torch.count_nonzero(greedy.size_log_probs) == 0, "evaluation decides nothing at random"
    with torch.no_grad():
        for b, item in enumerate(greedy.items):
            _, _, width_probs = controller.scores(torch.as_tensor(queries[b:b + 1], dtype=torch.float32),
                                                  torch.zeros(1, len(OPS)), 0)
            assert item.thresholds[0] == widths[int(width_probs[0].argmax())], "greedy takes the likeliest width"
    with pytest.raises(ValueError, match="widths"):
        ControllerConfig(OPS, widths=(0.5, 1.2))


# ----------------------------------------------------------------- critical path and credit
def test_critical_path_is_the_sum_of_each_layers_slowest_span() -> None:
    spans = [[100.0, 300.0, 200.0], [50.0], [], [10.0, 40.0]]
    assert critical_path(spans) == 300 + 50 + 40
    assert sequential_path(spans) == 600 + 50 + 50
    assert bottlenecks(spans) == [1, 0, None, 1]
    assert bottlenecks([[5.0, 5.0]]) == [0], "ties go to the first"


def test_reward_is_score_minus_priced_cost_and_critical_path() -> None:
    assert reward(1.0, 2.0, 0.5, Weights(0.1, 0.4)) == pytest.approx(1.0 - 0.2 - 0.2)
    with pytest.raises(ValueError):
        Weights(-1.0, 0.0)


def test_latency_penalty_goes_only_to_each_layers_bottleneck() -> None:
    weights = Weights(mu=0.0, lam=0.5)
    spans_k = [[0.2, 0.5], [0.3]]
    drawn = [[0, 2], [7, 1]]  # layer 2 first decided Early-Stop's gate (position 7): go on
    ran = [[0, 2], [1]]
    fresh = Ema()
    assert shared_advantage(0.8, fresh, fresh) == 0.0, "no baseline before the first update"
    adv = advantages(shared_advantage(0.8, fresh, fresh), spans_k, drawn, ran, weights, fresh)
    assert adv == [[0.0, pytest.approx(-0.25)], [0.0, pytest.approx(-0.15)]]

    task, scale = Ema(0.9), Ema(0.9)
    task.update(0.5)
    scale.update(0.4, 0.04)  # std 0.2
    shared = shared_advantage(0.8, task, scale)
    assert shared == pytest.approx((0.8 - 0.5) / 0.2)
    adv = advantages(shared, spans_k, drawn, ran, weights, scale)
    assert adv[0] == [pytest.approx(shared), pytest.approx(shared - 0.25 / 0.2)]
    assert adv[1] == [pytest.approx(shared), pytest.approx(shared - 0.15 / 0.2)]

    # a group's leave-one-out baseline replaces the EMA mean; the penalty is unchanged
    shared = shared_advantage(0.8, task, scale, baseline=0.7)
    assert shared == pytest.approx(0.5)
    adv = advantages(shared, spans_k, drawn, ran, weights, scale)
    assert adv[0] == [pytest.approx(0.5), pytest.approx(0.5 - 1.25)]


def test_ema_recurrence_exact_values() -> None:
    ema = Ema(0.9)
    assert ema.std == 1.0
    ema.update(1.0, 0.5)
    assert (ema.mean, ema.var, ema.count) == (1.0, 0.5, 1)
    ema.update(2.0, 0.0)
    assert ema.mean == pytest.approx(1.1)
    assert ema.var == pytest.approx(0.9 * 0.5 + 0.1 * (0.0 + 0.9**2))
    ema.update(0.0, 1.0)
    assert ema.mean == pytest.approx(0.99)
    assert ema.var == pytest.approx(0.9 * 0.531 + 0.1 * (1.0 + 0.99**2))
    assert ema.std == pytest.approx(ema.var**0.5)
    with pytest.raises(ValueError):
        Ema(1.0)


# ----------------------------------------------------------------- controller files
def test_saved_controller_loads_only_into_the_same_configuration(tmp_path: Path) -> None:
    controller = _controller(arm="aware")
    with torch.no_grad():
        controller.bias.add_(0.25)
    path = save_controller(controller, tmp_path)
    assert path.name == f"controller-{controller.config.key()}.pt"
    vectors = controller.operator_embeddings.numpy()
    loaded = load_controller(controller.config, vectors, tmp_path)
    for (name, a), (_, b) in zip(controller.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    for other in (replace(controller.config, threshold=0.5), replace(controller.config, tags=(("arm", "agnostic"),))):
        assert other.key() != controller.config.key()
        with pytest.raises(FileNotFoundError, match="no trained controller"):
            load_controller(other, vectors, tmp_path)


# ----------------------------------------------------------------- training
@pytest.fixture(scope="module")
def sim() -> tuple[SimModel, list, dict[str, np.ndarray]]:
    queries = sim_queries(60, seed=3)
    rng = np.random.default_rng(3)
    embeddings = {q.id: rng.normal(size=DIM).astype(np.float32) for q in queries}
    return SimModel(seed=0), queries, embeddings


def _train(sim, config: TrainConfig, controller=None, checkpoint: Path | None = None, on_step=None):
    model, queries, embeddings = sim
    controller = controller if controller is not None else _controller(layers=2, seed=config.seed)
    executor = SimExecutor(model, seed=config.seed)
    history = asyncio.run(train(controller, executor, queries, embeddings, config, checkpoint, on_step))
    return controller, history


def test_interrupted_and_resumed_training_ends_with_the_same_parameters(sim, tmp_path: Path) -> None:
    config = TrainConfig(steps=6, batch=8, group=2, lr=0.05, seed=4, checkpoint_every=1, lr_end=0.2, entropy_end=0.5)
    straight, history = _train(sim, config)

    class Interrupt(Exception):
        pass

    def stop_at_four(log: StepLog) -> None:
        if log.step == 4:
            raise Interrupt

    checkpoint = tmp_path / "train.pt"
    with pytest.raises(Interrupt):
        _train(sim, config, checkpoint=checkpoint, on_step=stop_at_four)
    assert checkpoint.is_file()
    torch.manual_seed(12345)  # the resumed run must not depend on the process's RNG state
    random.seed(12345)
    resumed, resumed_history = _train(sim, config, controller=_controller(layers=2, seed=77), checkpoint=checkpoint)
    assert resumed_history == history
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_configuration_is_refused(sim, tmp_path: Path) -> None:
    checkpoint = tmp_path / "train.pt"
    _train(sim, TrainConfig(steps=1, batch=4, seed=0), checkpoint=checkpoint)
    other = _controller(threshold=0.5, layers=2)
    with pytest.raises(ValueError, match="another controller configuration"):
        _train(sim, TrainConfig(steps=2, batch=4, seed=0), controller=other, checkpoint=checkpoint)


def test_group_must_divide_the_batch() -> None:
    with pytest.raises(ValueError, match="group"):
        TrainConfig(batch=10, group=4)


@pytest.mark.parametrize("widths", [(), (0.3, 0.5, 0.7, 0.9)], ids=["fixed threshold", "learned width"])
def test_latency_penalty_drives_the_critical_path_down(sim, widths: tuple[float, ...]) -> None:
    base = TrainConfig(steps=60, batch=32, group=4, lr=0.03, entropy_bonus=0.0, seed=1)
    _, aware = _train(sim, replace(base, weights=Weights(0.0, 2.0)), _controller(layers=2, seed=1, widths=widths))
    _, blind = _train(sim, replace(base, weights=Weights(0.0, 0.0)), _controller(layers=2, seed=1, widths=widths))

    def mean_cp(history: list[StepLog], part: slice) -> float:
        return statistics.fmean(h.cp_k for h in history[part])

    first, last = mean_cp(aware, slice(0, 10)), mean_cp(aware, slice(-10, None))
    assert last < 0.6 * first, (first, last)
    assert last < 0.6 * mean_cp(blind, slice(-10, None))


def test_first_layer_refiners_cost_at_least_a_generate() -> None:
    model = SimModel(seed=0)
    for d in range(3):
        generate = model.expected_span(("generate",), d, first=True)
        assert model.expected_span(("sc_ensemble",), d, first=True) == pytest.approx(generate, rel=0.05)
        for refiner in ("self_refine", "test"):
            first = model.expected_span((refiner,), d, first=True)
            later = model.expected_span((refiner,), d)
            assert first == pytest.approx(later + generate, rel=0.05)
        # evaluation charges the first layer's profile
        assert model.evaluate((("test",),), d)["cp"] == pytest.approx(model.expected_span(("test",), d, first=True))
