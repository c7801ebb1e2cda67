"""Learned latency-aware orchestration vs a latency-agnostic search, on the simulated benchmark.

Claims measured
---------------
1. Over ``--seeds`` seeds (default 3), the latency-aware controller's mean critical path
   is at least 38% below the latency-agnostic baseline's, with accuracy within 1 point.
2. The latency-aware controller's mean critical path is within 5% of the best
   enumerated trade-off point (query-conditioned, up to 4 layers) at its accuracy.
3. Training finishes in minutes on this machine (seconds per arm are reported).

How
---
:func:`paragents.orchestration.sim_benchmark.run_seed` trains both arms per seed on the
same queries, seeds and episode budget (they differ only in lambda = 0 and sequential
layers for the baseline), evaluates them greedily on held-out queries with exact
expectations, evaluates a set of fixed architectures, and computes the exact Pareto
front (accuracy against mean critical path) of query-conditioned choices.  Queries and
operator descriptions are embedded with the bundled all-MiniLM-L6-v2.

Results: ``benchmarks/results/orchestration.json`` and ``orchestration.png`` (accuracy
against mean critical path: each arm per seed, the fixed architectures and the front).

Run:  .venv/bin/python benchmarks/orchestration.py [--json] [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    machine_info,
    mark,
    print_table,
    progress,
    publish,
    pyplot,
    save_figure,
)

from paragents.context.embedder import Embedder
from paragents.orchestration.sim_benchmark import SimSettings, run_seed

CP_REDUCTION_GOAL = 0.38
ACCURACY_GAP_GOAL = 0.01
OVER_BEST_GOAL = 0.05


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds, and whether each goal holds."""
    aware = [r["arms"]["latency_aware"] for r in runs]
    agnostic = [r["arms"]["latency_agnostic"] for r in runs]
    mean = statistics.fmean
    out = {
        "latency_aware": {k: mean(a[k] for a in aware) for k in ("accuracy", "cp", "cost", "train_s", "cp_over_best")},
        "latency_agnostic": {k: mean(a[k] for a in agnostic) for k in ("accuracy", "cp", "cost", "train_s")},
    }
    out["cp_reduction"] = 1 - out["latency_aware"]["cp"] / out["latency_agnostic"]["cp"]
    out["accuracy_gap"] = out["latency_aware"]["accuracy"] - out["latency_agnostic"]["accuracy"]
    out["goals"] = {
        "cp_reduction": out["cp_reduction"] >= CP_REDUCTION_GOAL,
        "accuracy_within_1_point": out["accuracy_gap"] >= -ACCURACY_GAP_GOAL,
        "within_5pct_of_best": out["latency_aware"]["cp_over_best"] <= OVER_BEST_GOAL,
    }
    return out


def report(doc: dict[str, Any]) -> None:
    rows = []
    for run in doc["runs"]:
        for arm, r in run["arms"].items():
            rows.append([str(run["seed"]), arm, f"{r['accuracy']:.3f}", f"{r['cp']:.0f}", f"{r['cost']:.0f}",
                         f"{r['train_s']:.0f}", "; ".join(f"{d}: {a}" for d, a in r["most_chosen"].items())])
    print_table("Simulated benchmark, greedy policy on held-out queries (exact expectations)",
                ["seed", "arm", "accuracy", "mean CP (tokens)", "mean cost (tokens)", "train s", "most chosen"],
                rows, right_from=2)
    s = doc["summary"]
    print_table("Goals (means over seeds)", ["claim", "measured", "goal"], [
        ["CP reduction vs latency-agnostic", mark(f"{s['cp_reduction']:.1%}", s["goals"]["cp_reduction"]), ">= 38%"],
        ["accuracy, aware - agnostic", mark(f"{s['accuracy_gap'] * 100:+.1f} pt", s["goals"]["accuracy_within_1_point"]),
         ">= -1 pt"],
        ["aware CP over best at its accuracy",
         mark(f"{s['latency_aware']['cp_over_best']:.1%}", s["goals"]["within_5pct_of_best"]), "<= 5%"],
    ], right_from=1)


def plot(doc: dict[str, Any]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    front = doc["runs"][0]["front"]
    ax.plot([p["cp"] for p in front], [p["accuracy"] for p in front], color="grey", ls="--",
            label="best query-conditioned trade-off (seed 0)")
    for arm, colour in (("latency_aware", "tab:green"), ("latency_agnostic", "tab:red")):
        pts = [r["arms"][arm] for r in doc["runs"]]
        ax.scatter([p["cp"] for p in pts], [p["accuracy"] for p in pts], color=colour, s=60,
                   label=f"learned, {arm.replace('_', '-')}" + (" (sequential CP)" if arm == "latency_agnostic" else ""))
    fixed = doc["runs"][0]["fixed"]
    ax.scatter([v["cp"] for v in fixed.values()], [v["accuracy"] for v in fixed.values()], marker="x", color="tab:blue",
               label="fixed architectures")
    for name, v in fixed.items():
        ax.annotate(name, (v["cp"], v["accuracy"]), fontsize=6, alpha=0.7)
    ax.set_xlabel("mean critical path (completion tokens)")
    ax.set_ylabel("accuracy (expected)")
    ax.set_title("Accuracy against critical path, simulated benchmark")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, "orchestration")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (default 3)")
    parser.add_argument("--quick", action="store_true", help="one short seed for a smoke test; writes no files")
    args = parser.parse_args(argv)
    settings = SimSettings()
    seeds = 1 if args.quick else args.seeds
    if args.quick:
        settings = dataclasses.replace(settings, train_queries=60, test_queries=60,
                                       train=dataclasses.replace(settings.train, steps=20, batch=16))
    embed = Embedder().embed
    runs = []
    for seed in range(seeds):
        progress(f"seed {seed}: training the latency-aware and latency-agnostic controllers")
        runs.append(run_seed(seed, settings, embed))
    doc = {
        "benchmark": "orchestration",
        "setup": {"seeds": seeds, "quick": args.quick, "settings": dataclasses.asdict(settings)},
        "runs": runs,
        "summary": summarise(runs),
        "machine": machine_info(),
    }
    return publish("orchestration", doc, as_json=args.json, quick=args.quick, report=report, plot=plot)


if __name__ == "__main__":
    raise SystemExit(main())
