"""LocalBackend on the real bundled SmolLM2, in this process.

One two-instance backend serves the whole module, so each model copy is loaded once;
the tests that need other settings build small pools of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paragents.backends.base import Request
from paragents.backends.bundled import BUNDLED_MODEL_FILE, bundled_model_path
from paragents.backends.local import LocalBackend
from paragents.core.errors import BackendError

SCHEMA = {
    "type": "object",
    "properties": {"capital": {"type": "string", "maxLength": 20}, "confident": {"type": "boolean"}},
    "required": ["capital", "confident"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalBackend]:
    backend = LocalBackend(instances=2)
    yield backend
    asyncio.run(backend.aclose())


def test_bundled_model_file_is_found_and_names_the_endpoint() -> None:
    path = bundled_model_path()
    assert path.name == BUNDLED_MODEL_FILE and path.stat().st_size > 50_000_000
    backend = LocalBackend()
    assert backend.endpoint == f"local://{BUNDLED_MODEL_FILE}"
    asyncio.run(backend.aclose())


async def test_bundled_model_generates_text_with_exact_usage(local: LocalBackend) -> None:
    c = await local.complete(
        Request(prompt="What is the capital of France?", system="Answer briefly.", max_tokens=16)
    )
    assert c.text.strip()
    assert c.prompt_tokens > 10  # the chat template's tokens are counted too
    assert 0 < c.completion_tokens <= 16
    assert 0 < c.ttft_s <= c.total_s
    assert 0 < c.compute_s <= c.total_s
    assert c.transfer_s == pytest.approx(c.total_s - c.compute_s)
    assert c.transfer_s < 0.1 * c.total_s + 0.05  # no network: hand-off to the thread only


async def test_streamed_pieces_add_up_to_the_answer_as_they_are_decoded(local: LocalBackend) -> None:
    pieces: list[tuple[float, str]] = []
    request = Request(
        prompt="Name three colours.",
        max_tokens=16,
        on_text=lambda piece: pieces.append((time.perf_counter(), piece)),
    )
    c = await local.complete(request)
    assert "".join(p for _, p in pieces) == c.text and c.text.strip()
    assert c.completion_tokens == len(pieces) > 1 and c.prompt_tokens > 5
    assert pieces[0][0] < pieces[-1][0]  # handed over one by one as decoded, not at the end


async def test_json_schema_output_parses_and_matches_the_schema(local: LocalBackend) -> None:
    c = await local.complete(
        Request(prompt="What is the capital of France? Answer in JSON.", max_tokens=48, json_schema=SCHEMA)
    )
    answer = json.loads(c.text)
    assert set(answer) == {"capital", "confident"}
    assert isinstance(answer["capital"], str) and len(answer["capital"]) <= 20
    assert isinstance(answer["confident"], bool)


async def test_two_instances_compute_two_calls_at_once(local: LocalBackend) -> None:
    count = Request(prompt="Count from 1 to 100, separated by commas.", max_tokens=48)
    await asyncio.gather(local.complete(count), local.complete(count))  # both copies loaded
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.perf_counter()
    first, second = await asyncio.gather(local.complete(count), local.complete(count))
    wall = time.perf_counter() - started
    tick_task.cancel()
    # Run one after the other, the two calls would take at least the sum of their times
    # in the model; overlapping, they take less.
    assert wall < 0.85 * (first.compute_s + second.compute_s)
    # The event loop kept running while the model computed.
    assert ticks >= 0.1 * wall / 0.005


async def test_loading_two_copies_at_once_leaves_stdout_and_stderr_alone() -> None:
    # llama-cpp-python silences a load by pointing file descriptors 1 and 2 at /dev/null
    # and back; two loads interleaved would leave them pointing at /dev/null for good.
    before = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
    fresh = LocalBackend(instances=2, n_ctx=256)
    await asyncio.gather(*(fresh.complete(Request(prompt="hi", max_tokens=2)) for _ in range(2)))
    await fresh.aclose()
    assert [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)] == before


def test_backends_with_the_same_settings_share_one_pool(local: LocalBackend) -> None:
    twin = LocalBackend(instances=2)
    assert twin._pool is local._pool  # one set of model copies for both
    assert twin.endpoint == local.endpoint  # and one limiter at run time
    asyncio.run(twin.aclose())
    assert local._pool is not None  # the module's backend still holds its share


def test_missing_model_file_is_refused_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ValueError, match="absent.gguf"):
        LocalBackend(model_path=str(missing))


async def test_file_that_is_not_a_model_fails_without_retry(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a GGUF file" * 100)
    backend = LocalBackend(model_path=str(bogus), endpoint="local://bogus")
    with pytest.raises(BackendError) as caught:
        await backend.complete(Request(prompt="hi", max_tokens=4))
    await backend.aclose()
    assert not caught.value.retryable
    assert str(caught.value).startswith("local://bogus: cannot load model") and "bogus.gguf" in str(caught.value)


async def test_prompt_longer_than_the_context_fails_without_retry() -> None:
    small = LocalBackend(n_ctx=128)
    with pytest.raises(BackendError) as caught:
        await small.complete(Request(prompt="word " * 400, max_tokens=4))
    await small.aclose()
    assert not caught.value.retryable
    assert "context window" in str(caught.value)


async def test_closed_backend_refuses_calls() -> None:
    backend = LocalBackend(n_ctx=128)
    await backend.aclose()
    await backend.aclose()  # idempotent
    with pytest.raises(BackendError, match="closed"):
        await backend.complete(Request(prompt="hi", max_tokens=4))


async def test_sampled_calls_get_fresh_seeds_and_greedy_calls_repeat(local: LocalBackend) -> None:
    prompt = "Write one short sentence about the sea."
    sampled = Request(prompt=prompt, max_tokens=24, temperature=0.9)
    greedy = Request(prompt=prompt, max_tokens=24)
    first, second = await local.complete(sampled), await local.complete(sampled)
    assert first.text != second.text  # the same prompt sampled twice: two different samples
    again = [(await local.complete(greedy)).text for _ in range(2)]
    assert again[0] == again[1] and again[0].strip()


async def test_sampled_texts_repeat_for_a_backend_with_the_same_seed() -> None:
    sampled = Request(prompt="Name an animal and a colour.", max_tokens=16, temperature=0.9)
    texts = []
    for _ in range(2):  # two backends in turn, each seeded 7: the same draws, the same samples
        backend = LocalBackend(n_ctx=256, seed=7, threads=1)  # one thread: no spinning on a busy machine
        texts.append([(await backend.complete(sampled)).text for _ in range(2)])
        await backend.aclose()
    assert texts[0] == texts[1] and texts[0][0] != texts[0][1]
