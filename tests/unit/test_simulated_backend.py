"""The simulated backend: reproducible under a seed, latency as modelled, failures on demand."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from paragents.backends.base import Completion, Request, estimate_tokens
from paragents.backends.simulated import SimulatedBackend
from paragents.core.errors import BackendError, BackendTimeout, RateLimited

PROMPTS = [
    "Summarise the causes of the French revolution in three bullet points",
    "List prime numbers below twenty",
    "Translate 'good morning' into Italian",
    "",
]


async def _run(backend: SimulatedBackend, requests: list[Request]) -> list[Completion]:
    return [await backend.complete(request) for request in requests]


async def test_same_seed_gives_same_texts_and_durations() -> None:
    requests = [Request(prompt, expected_tokens=20 + 10 * i) for i, prompt in enumerate(PROMPTS)]

    def backend(seed: int) -> SimulatedBackend:
        return SimulatedBackend(seed=seed, jitter=0.5, transfer_s=0.01, time_scale=0.01)

    first = await _run(backend(7), requests)
    second = await _run(backend(7), requests)
    other = await _run(backend(8), requests)

    assert first == second
    assert [c.text for c in other] == [c.text for c in first]
    assert [c.compute_s for c in other] != [c.compute_s for c in first]


async def test_latency_follows_the_model() -> None:
    backend = SimulatedBackend(ttft_s=0.05, tokens_per_s=1000, jitter=0.0, transfer_s=0.03)
    began = time.monotonic()
    completion = await backend.complete(Request("hello", max_tokens=100))
    wall = time.monotonic() - began

    # compute = 0.05 + 100 / 1000 = 0.15 s, transfer = 0.03 s
    assert completion.compute_s == pytest.approx(0.15)
    assert completion.transfer_s == pytest.approx(0.03)
    assert completion.total_s == pytest.approx(0.18)
    assert completion.ttft_s == pytest.approx(0.08)
    assert 0.95 <= wall / completion.total_s <= 2.0


async def test_jitter_stays_within_its_bounds() -> None:
    backend = SimulatedBackend(ttft_s=0.1, tokens_per_s=100, jitter=0.2, seed=3, time_scale=0.01)
    completions = await _run(backend, [Request("x", max_tokens=10)] * 50)

    ratios = [c.compute_s / 0.002 for c in completions]  # nominal (0.1 + 10 / 100) * 0.01
    assert all(0.8 <= ratio <= 1.2 for ratio in ratios)
    assert max(ratios) - min(ratios) > 0.1


async def test_time_scale_scales_sleep_and_reported_times() -> None:
    backend = SimulatedBackend(ttft_s=0.5, tokens_per_s=100, jitter=0.0, time_scale=0.1)
    began = time.monotonic()
    completion = await backend.complete(Request("x", max_tokens=50))
    wall = time.monotonic() - began

    assert completion.total_s == pytest.approx(0.1)  # (0.5 + 50 / 100) * 0.1
    assert 0.95 <= wall / completion.total_s <= 2.0


async def test_token_counts_and_text_follow_the_request() -> None:
    backend = SimulatedBackend(time_scale=0.0, model="sim-7b")
    request = Request(PROMPTS[0], system="You are terse.", max_tokens=64, expected_tokens=25)
    completion = await backend.complete(request)

    assert completion.completion_tokens == 25
    assert completion.prompt_tokens == estimate_tokens(request.system + request.prompt)
    assert estimate_tokens(completion.text) == 25
    assert completion.text.startswith("Answer: Summarise the causes of the French")
    assert completion.model == "sim-7b"

    capped = await backend.complete(Request("short", max_tokens=8, expected_tokens=500))
    assert capped.completion_tokens == 8
    unhinted = await backend.complete(Request("short", max_tokens=12))
    assert unhinted.completion_tokens == 12


@pytest.mark.parametrize("tokens", [1, 2, 3, 7, 50, 333])
async def test_text_length_matches_the_token_count(tokens: int) -> None:
    backend = SimulatedBackend(time_scale=0.0)
    for prompt in PROMPTS:
        completion = await backend.complete(Request(prompt, max_tokens=tokens))
        assert estimate_tokens(completion.text) == tokens


async def test_injected_failure_raises_backend_error_naming_the_endpoint() -> None:
    backend = SimulatedBackend(endpoint="sim://flaky", failure_rate=1.0, time_scale=0.0)
    with pytest.raises(BackendError, match="sim://flaky: injected failure") as caught:
        await backend.complete(Request("x"))
    assert type(caught.value) is BackendError
    assert caught.value.endpoint == "sim://flaky"


async def test_injected_rate_limit_carries_retry_after() -> None:
    backend = SimulatedBackend(endpoint="sim://busy", rate_limit_rate=1.0, retry_after_s=0.25)
    with pytest.raises(RateLimited, match="sim://busy") as caught:
        await backend.complete(Request("x"))
    assert caught.value.retry_after == pytest.approx(0.25)
    assert caught.value.endpoint == "sim://busy"


async def test_injected_timeout_raises_after_the_modelled_duration() -> None:
    backend = SimulatedBackend(endpoint="sim://slow", timeout_rate=1.0, ttft_s=0.05, tokens_per_s=1000, jitter=0.0)
    began = time.monotonic()
    with pytest.raises(BackendTimeout, match="sim://slow"):
        await backend.complete(Request("x", max_tokens=50))
    assert time.monotonic() - began >= 0.1


async def test_failure_mix_follows_the_rates_and_the_seed() -> None:
    async def outcomes(seed: int) -> list[str]:
        backend = SimulatedBackend(
            failure_rate=0.2, rate_limit_rate=0.2, timeout_rate=0.2, seed=seed, time_scale=0.0
        )
        seen = []
        for _ in range(300):
            try:
                await backend.complete(Request("x", max_tokens=4))
            except BackendError as error:
                seen.append(type(error).__name__)
            else:
                seen.append("ok")
        return seen

    first = await outcomes(11)
    assert first == await outcomes(11)
    counts = Counter(first)
    for kind, expected in (("BackendError", 60), ("RateLimited", 60), ("BackendTimeout", 60), ("ok", 120)):
        assert expected * 0.5 <= counts[kind] <= expected * 1.5, counts


async def test_aclose_is_idempotent() -> None:
    backend = SimulatedBackend()
    await backend.aclose()
    await backend.aclose()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tokens_per_s": 0}, "tokens_per_s"),
        ({"jitter": 1.0}, "jitter"),
        ({"ttft_s": -0.1}, "ttft_s"),
        ({"time_scale": -1}, "time_scale"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": 0.6, "timeout_rate": 0.6}, "must not exceed 1"),
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatedBackend(**kwargs)


def test_estimate_tokens_is_about_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0}, {"temperature": -1.0}, {"expected_tokens": -1}])
def test_invalid_requests_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Request("x", **kwargs)
