"""Adaptive workflow manager: hedging, AIMD and online re-estimation vs none, same seeds.

Claims measured
---------------
1. *Stragglers* (5% of calls 10x slower): hedged requests cut the p99 task latency to at
   most 0.6x of the run without hedging, with at most 10% extra calls.
2. *Rate limit*: an endpoint that accepts R requests per minute and answers 429 above it;
   AIMD concurrency keeps throughput at least 95% of R, and no 429 surfaces to the user
   as a failed task.
3. *Misestimated durations* (one task kind takes 3x its declared duration): makespan
   with online re-estimation fed into critical-path priorities vs fixed estimates.

How
---
Everything runs in the discrete-event simulator (:mod:`paragents.sim.engine`) with the
real scheduler and the real :class:`~paragents.adaptive.AdaptiveManager` ticking every
0.25 s of virtual time.  Each scenario runs ``--seeds`` seeds; both sides of a
comparison run the same seed (same workload, same random stream), differing only in
the ``adaptive`` switch.  The true duration of every attempt comes from a table made
before the run (the ``duration`` hook), so re-estimation changes what the scheduler
believes, never what the simulated world does.

* *Stragglers*: a Poisson stream of 150 requests (plan -> 3 parallel searches -> join,
  1 / 2 / 1 s, jitter cv 0.2) at 0.45 requests/s on 8 one-slot agents (about 65% busy
  with the stragglers).  Task latency = ready -> finished; p99 over all tasks of a seed,
  then the mean over seeds.  Extra calls = hedges / tasks.
* *Rate limit*: 1000 independent 2 s calls (jitter cv 0.2, 3 retries each) from 32
  one-slot agents to one endpoint of R = 600 requests/min (a bucket of 1 s; a 429's
  Retry-After is the time until the bucket refills one request, and the client honours
  it).  Without adaptation the client sends as many calls as agents are free; with AIMD
  (default parameters: slow start, +1 per window, x0.9 on a 429) it starts at 4 in
  flight, ceiling 64.  Throughput = finished calls / makespan, against R.  A 429 is
  retried after its Retry-After without spending the task's retries, up to 20 times
  per task (the scheduler's ``rate_limit_retries``); "429 failures" = tasks that failed
  for good with a 429 all the same.
* *Misestimation*: 4 "analysis" chains of 5-7 tasks (declared 1 s, true 3 s) and 12
  "draft" chains of 3-5 tasks (declared and true 2 s), task sizes x U(0.8, 1.2), on 6
  agents with critical-path priority.

Results: ``benchmarks/results/adaptive.json`` and ``adaptive.png``.

Run:  .venv/bin/python benchmarks/adaptive.py [--json] [--seeds 10] [--quick]
"""

from __future__ import annotations

import argparse
import random
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

from paragents.adaptive import AdaptiveConfig, AimdConfig, EstimateConfig, HedgeConfig
from paragents.core.agent_state import AgentSpec
from paragents.core.graph import Task, TaskGraph
from paragents.sim.engine import Arrival, SimResult, percentile, simulate
from paragents.sim.latency import Endpoint, Faults, LatencyModel

PERIOD_S = 0.25
TARGET_P99 = 0.6
TARGET_EXTRA = 0.10
TARGET_THROUGHPUT = 0.95
RPM = 600.0


def _truth(table: dict[str, float]) -> Any:
    """The simulator's ``duration`` hook: each task's true duration, whatever its estimate."""
    return lambda task, agent, attempt: table[task.id] / agent.speed


# ------------------------------------------------------------------ stragglers
def straggler_run(seed: int, hedge: bool, requests: int) -> dict[str, float]:
    rng = random.Random(seed)
    arrivals, tasks, t = [], [], 0.0
    for i in range(requests):
        t += rng.expovariate(0.45)
        r = f"r{i}"
        plan = Task(f"{r}.plan", duration=1.0, meta={"kind": "plan"})
        searches = [Task(f"{r}.s{j}", duration=2.0, depends_on=(plan.id,), meta={"kind": "search"}) for j in range(3)]
        join = Task(f"{r}.join", duration=1.0, depends_on=tuple(s.id for s in searches), meta={"kind": "join"})
        req = (plan, *searches, join)
        tasks += req
        arrivals.append(Arrival(t, r, req))
    agents = [AgentSpec(f"a{i}") for i in range(8)]
    model = LatencyModel(jitter_cv=0.2, faults=Faults(straggler_p=0.05, straggler_factor=10.0))
    cfg = AdaptiveConfig(period_s=PERIOD_S, hedging=HedgeConfig(enabled=True)) if hedge else None
    run = simulate(None, agents, arrivals=arrivals, latency=model, seed=seed, duration=_truth({t.id: t.duration for t in tasks}), adaptive=cfg)
    timings = [tt for tt in run.report.timings.values() if tt.state == "done"]
    lat = [(tt.end or 0.0) - (tt.ready_at or 0.0) for tt in timings]
    return {
        "p99_latency_s": percentile(sorted(lat), 99),
        "mean_latency_s": statistics.fmean(lat),
        "makespan_s": run.makespan,
        "tasks": len(timings),
        "hedges": run.report.hedges,
        "extra_calls": run.report.hedges / len(timings),
    }


# ------------------------------------------------------------------ rate limit
def rate_limit_run(seed: int, aimd: bool, calls: int) -> dict[str, float]:
    rng = random.Random(seed)
    tasks = [Task(f"c{i}", duration=2.0 * rng.uniform(0.9, 1.1), retries=3) for i in range(calls)]
    agents = [AgentSpec(f"a{i}") for i in range(32)]
    model = LatencyModel(
        jitter_cv=0.2,
        endpoints=(Endpoint("api", RPM, burst_s=1.0),),
        routes={a.name: "api" for a in agents},
    )
    cfg = (
        AdaptiveConfig(period_s=PERIOD_S, concurrency=AimdConfig(enabled=True, initial=4, ceiling=64))
        if aimd
        else None
    )
    run = simulate(TaskGraph(tasks), agents, latency=model, seed=seed, duration=_truth({t.id: t.duration for t in tasks}), adaptive=cfg)
    return _rate_summary(run)


def _rate_summary(run: SimResult) -> dict[str, float]:
    done = run.report.tasks["done"]
    failed_429 = sum(1 for e in run.events if e.kind == "failed" and (e.data or {}).get("retry_after") is not None)
    ep = run.endpoints["api"]
    throughput_rpm = done / run.makespan * 60.0
    return {
        "makespan_s": run.makespan,
        "done": done,
        "throughput_rpm": throughput_rpm,
        "throughput_vs_R": throughput_rpm / RPM,
        "responses_429": ep.limited,
        "failed_429": failed_429,
        "concurrency_changes": run.report.adaptations.get("concurrency", 0),
    }


# ------------------------------------------------------------------ misestimation
def misestimate_run(seed: int, reestimate: bool) -> dict[str, float]:
    rng = random.Random(seed)
    tasks: list[Task] = []
    truth: dict[str, float] = {}
    for kind, chains, lengths, declared, true in (("analysis", 4, (5, 7), 1.0, 3.0), ("draft", 12, (3, 5), 2.0, 2.0)):
        for c in range(chains):
            prev: tuple[str, ...] = ()
            for k in range(rng.randint(*lengths)):
                size = rng.uniform(0.8, 1.2)
                t = Task(f"{kind}{c}.{k}", duration=declared * size, depends_on=prev, meta={"kind": kind})
                truth[t.id] = true * size
                tasks.append(t)
                prev = (t.id,)
    agents = [AgentSpec(f"a{i}") for i in range(6)]
    cfg = AdaptiveConfig(period_s=PERIOD_S, estimates=EstimateConfig(enabled=True)) if reestimate else None
    model = LatencyModel(jitter_cv=0.1)
    run = simulate(TaskGraph(tasks), agents, latency=model, seed=seed, duration=_truth(truth), adaptive=cfg)
    return {"makespan_s": run.makespan, "reestimates": run.report.adaptations.get("estimates", 0)}


# ------------------------------------------------------------------ driver
def _mean(rows: list[dict[str, float]], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def scenario(name: str, seeds: int, run: Any, sides: tuple[str, str], keys: tuple[str, ...]) -> dict[str, Any]:
    per = {side: [run(s, side == sides[1]) for s in range(seeds)] for side in sides}
    out = {"seeds": seeds, "runs": per}
    for side in sides:
        out[side] = {k: _mean(per[side], k) for k in keys}
    progress(f"{name}: " + ", ".join(f"{side} {out[side]}" for side in sides))
    return out


def run_all(seeds: int, quick: bool) -> dict[str, Any]:
    requests = 40 if quick else 150
    calls = 200 if quick else 1000
    strag = scenario(
        "stragglers", seeds, lambda s, on: straggler_run(s, on, requests), ("without", "hedging"),
        ("p99_latency_s", "mean_latency_s", "makespan_s", "extra_calls", "hedges"),
    )
    strag["p99_ratio"] = strag["hedging"]["p99_latency_s"] / strag["without"]["p99_latency_s"]
    strag["makespan_ratio"] = strag["hedging"]["makespan_s"] / strag["without"]["makespan_s"]
    strag["targets"] = {"p99_ratio_max": TARGET_P99, "extra_calls_max": TARGET_EXTRA}
    rate = scenario(
        "rate_limit", seeds, lambda s, on: rate_limit_run(s, on, calls), ("without", "aimd"),
        ("makespan_s", "throughput_rpm", "throughput_vs_R", "responses_429", "failed_429", "concurrency_changes"),
    )
    rate["R_rpm"] = RPM
    rate["targets"] = {"throughput_vs_R_min": TARGET_THROUGHPUT, "failed_429_max": 0}
    mis = scenario(
        "misestimation", seeds, misestimate_run, ("fixed", "reestimated"), ("makespan_s", "reestimates"),
    )
    mis["makespan_ratio"] = mis["reestimated"]["makespan_s"] / mis["fixed"]["makespan_s"]
    return {"stragglers": strag, "rate_limit": rate, "misestimation": mis}


def report(doc: dict[str, Any]) -> None:
    s, r, m = doc["scenarios"]["stragglers"], doc["scenarios"]["rate_limit"], doc["scenarios"]["misestimation"]
    rows = [
        [
            "stragglers: p99 task latency (s)",
            f"{s['without']['p99_latency_s']:.2f}",
            f"{s['hedging']['p99_latency_s']:.2f}",
            mark(f"{s['p99_ratio']:.2f}x", s["p99_ratio"] <= TARGET_P99),
            "≤ 0.6x",
        ],
        [
            "stragglers: makespan (s)",
            f"{s['without']['makespan_s']:.1f}",
            f"{s['hedging']['makespan_s']:.1f}",
            f"{s['makespan_ratio']:.2f}x",
            "",
        ],
        [
            "stragglers: extra calls",
            "0%",
            mark(f"{100 * s['hedging']['extra_calls']:.1f}%", s["hedging"]["extra_calls"] <= TARGET_EXTRA),
            "",
            "≤ 10%",
        ],
        [
            f"rate limit: throughput vs R={r['R_rpm']:g}/min",
            f"{100 * r['without']['throughput_vs_R']:.0f}%",
            mark(f"{100 * r['aimd']['throughput_vs_R']:.0f}%", r["aimd"]["throughput_vs_R"] >= TARGET_THROUGHPUT),
            "",
            "≥ 95%",
        ],
        [
            "rate limit: 429 responses / 429 failures",
            f"{r['without']['responses_429']:.0f} / {r['without']['failed_429']:.1f}",
            mark(f"{r['aimd']['responses_429']:.0f} / {r['aimd']['failed_429']:.1f}", r["aimd"]["failed_429"] == 0),
            "",
            "0 failures",
        ],
        [
            "rate limit: makespan (s)",
            f"{r['without']['makespan_s']:.1f}",
            f"{r['aimd']['makespan_s']:.1f}",
            f"{r['aimd']['makespan_s'] / r['without']['makespan_s']:.2f}x",
            "",
        ],
        [
            "misestimation: makespan (s)",
            f"{m['fixed']['makespan_s']:.1f}",
            f"{m['reestimated']['makespan_s']:.1f}",
            mark(f"{m['makespan_ratio']:.2f}x", m["makespan_ratio"] < 1),
            "< 1x",
        ],
    ]
    print_table(
        f"Adaptive manager vs none (mean over {s['seeds']} seeds, same seeds both sides)",
        ["measure", "without", "adaptive", "ratio", "target"],
        rows,
    )


def plot(doc: dict[str, Any]) -> None:
    plt = pyplot()
    sc = doc["scenarios"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (
        (axes[0], "stragglers", ("without", "hedging"), "p99_latency_s", "p99 task latency (s)"),
        (axes[1], "rate_limit", ("without", "aimd"), "throughput_rpm", "throughput (requests/min)"),
        (axes[2], "misestimation", ("fixed", "reestimated"), "makespan_s", "makespan (s)"),
    )
    for ax, name, sides, key, label in panels:
        for i, side in enumerate(sides):
            vals = [row[key] for row in sc[name]["runs"][side]]
            ax.scatter([i] * len(vals), vals, alpha=0.5)
            ax.bar(i, statistics.fmean(vals), 0.5, alpha=0.3)
        ax.set_xticks(range(2), sides)
        ax.set_ylabel(label)
        ax.set_title(name)
    axes[1].axhline(RPM, ls=":", color="grey", label="R")
    axes[1].legend()
    save_figure(fig, "adaptive")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per scenario (default 10)")
    parser.add_argument("--quick", action="store_true", help="a small run for a smoke test; writes no files")
    args = parser.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    doc = {
        "benchmark": "adaptive",
        "setup": {"seeds": seeds, "period_s": PERIOD_S, "R_rpm": RPM, "quick": args.quick},
        "scenarios": run_all(seeds, args.quick),
        "machine": machine_info(),
    }
    return publish("adaptive", doc, as_json=args.json, quick=args.quick, report=report, plot=plot)


if __name__ == "__main__":
    raise SystemExit(main())
