"""Semantic context: retrieval latency by store size, and embedding throughput.

Claims measured:

1. **Retrieval latency** per query (k = 5) for stores of 1k, 10k and 100k entries of
   384-dimensional unit vectors (the embedder's size), with the store's numpy search and
   with its faiss index (flat, and HNSW), best of several queries.  Goal: under 10 ms per
   query at 10k entries.
2. **Embedding throughput** of the bundled all-MiniLM-L6-v2 on this machine's CPU,
   sentences per second over realistic task outputs (the labelled retrieval set's
   entries), with the content cache off (every text new).

Usage: ``python benchmarks/context.py [--sizes 1000,10000,100000] [--json]``.  Writes
``results/context.json`` and ``results/context.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine_info, progress, pyplot, print_table, save_figure, write_json

from paragents.context import ContextStore, Embedder

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "retrieval" / "retrieval_set.json"
DIM = 384
QUERIES = 50


def _store(n: int, engine: str, rng: np.random.Generator) -> ContextStore:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    if engine == "numpy":
        store = ContextStore(faiss_threshold=n + 1)
    else:
        store = ContextStore(faiss_threshold=1, index=engine)
    for i, v in enumerate(vectors):
        store.add(f"e{i}", f"entry {i}", v, producer="bench", tokens=50)
    return store


def latency(sizes: list[int]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        for engine in ("numpy", "flat", "hnsw"):
            progress(f"retrieval: {n:,} entries, {engine}")
            store = _store(n, engine, rng)
            queries = rng.standard_normal((QUERIES, DIM)).astype(np.float32)
            times = []
            for q in queries:
                t = time.perf_counter()
                store.search(q, k=5)
                times.append(time.perf_counter() - t)
            times.sort()
            rows.append(
                {
                    "entries": n,
                    "engine": engine,
                    "median_ms": 1e3 * times[len(times) // 2],
                    "p95_ms": 1e3 * times[int(len(times) * 0.95)],
                }
            )
    return rows


def throughput() -> dict[str, Any]:
    data = json.loads(DATA.read_text())
    texts = [e["text"] for d in data["domains"].values() for e in d["entries"]]
    texts = [f"{t} (copy {i})" for i in range(4) for t in texts]  # all distinct: no cache hits
    embedder = Embedder(cache_size=0)
    embedder.embed(["warm up"])
    progress(f"embedding {len(texts)} texts")
    t = time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - t
    return {"texts": len(texts), "seconds": seconds, "texts_per_s": len(texts) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = latency(sizes)
    speed = throughput()
    doc = {"machine": machine_info(), "retrieval": rows, "embedding": speed, "goal_ms_at_10k": 10.0}
    write_json("context", doc, to_stdout=args.json)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for engine in ("numpy", "flat", "hnsw"):
        pts = [r for r in rows if r["engine"] == engine]
        ax.plot([r["entries"] for r in pts], [r["median_ms"] for r in pts], marker="o", label=engine)
    ax.axhline(10.0, color="grey", linestyle=":", label="goal at 10k: 10 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("entries in the store")
    ax.set_ylabel("median ms per query (k = 5)")
    ax.legend()
    save_figure(fig, "context")
    if args.json:
        return
    print_table(
        "retrieval latency per query (k = 5, 384-dim)",
        ["entries", "engine", "median ms", "p95 ms"],
        [[f"{r['entries']:,}", r["engine"], f"{r['median_ms']:.2f}", f"{r['p95_ms']:.2f}"] for r in rows],
        right_from=2,
    )
    print_table(
        "embedding throughput (all-MiniLM-L6-v2, CPU)",
        ["texts", "seconds", "texts/s"],
        [[str(speed["texts"]), f"{speed['seconds']:.1f}", f"{speed['texts_per_s']:.0f}"]],
    )


if __name__ == "__main__":
    main()
