"""Makespan of paragents' scheduling policies against HEFT, CPOP and the optimum.

Claim measured
--------------
On workflow traces and random DAGs run by heterogeneous agents, paragents' best policy
finishes no later than HEFT (median over the seven Pegasus traces: makespan / HEFT <= 1),
and on small instances it is within 6% of the optimum on average (HEFT is near 1.06).

How
---
Agents: eight, speeds 1, 1, 2, 2, 4, 4, 8, 8, one slot each, every agent able to run every
task.  A task of ``duration`` d (its measured runtime in a trace, seconds) takes d / speed.

Communication: **compute only**.  paragents' virtual clock runs a task in exactly
``duration / speed`` with no transfer time, so saga is given the same problem: every
dependency carries 0 bytes and every link (each pair of nodes, and each node to itself)
has a bandwidth of 1e12, so transfer times are exactly 0.  The traces' edge bytes are
kept in ``Task.meta["edge_bytes"]`` but no transfer variant is run here, because the
virtual clock does not charge them and a comparison would not be like for like.

Workloads: the seven bundled Pegasus traces (``paragents.sim.workloads.load_trace``) and
three layered random DAGs (width 8, depth 6, fan-in 3 over two layers, lognormal
durations with mean 10 s and CV 1).  On each: every paragents priority x assignment
pair, run by ``run_virtual``; HEFT and CPOP from saga (``anrg-saga`` 2.0.2).  Reported:
makespan / lower bound (``analysis.lower_bound`` with the agents' speeds), makespan /
HEFT, CPOP / HEFT.  Pairs dropped as redundant here: the ``user`` priority (every task
has the default priority, so it is ``fifo``) and the ``capability`` assignment (every
agent has the wildcard skill, so it is ``least_loaded``).  That leaves 4 x 6 = 24 pairs.
"Best" is reported two ways: the one pair with the best median over the traces (a
policy one could choose in advance), and the best pair per trace (hindsight).

Small instances: 20 seeds of a 10-task layered DAG (3 to 5 layers of random widths,
fan-in 3 over two layers, durations uniform on [1, 10]) on four agents of speeds 1, 2,
3, 4.  The optimum comes from saga's SMT scheduler (z3, binary search on the makespan to
within 1e-4 s).  It is checked against saga's brute force (every mapping x every
topological order) on five 5-task instances on three agents, and on every instance
against the lower bound and every heuristic's makespan.

Every saga schedule is verified independently of saga: each task appears once, runs for
cost / speed on its node, no two tasks overlap on a node, no task starts before its
inputs end; the makespan is recomputed as the last end and compared with saga's.
saga iterates over sets, so its results depend on the string hash seed: it runs in a
subprocess of this script (``--saga-worker``) with ``PYTHONHASHSEED=0``.

Run:  .venv/bin/python benchmarks/makespan.py [--json] [--quick]
      (``make bench`` installs saga; about 3 minutes on 2 cores.  ``--quick``: two traces,
      one layered DAG and three small instances, paragents side and lower bounds only;
      it writes no result files.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise, product
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    machine_info,
    mark,
    print_table,
    progress,
    pyplot,
    save_figure,
    write_json,
)

from paragents.core.agent_state import AgentSpec
from paragents.core.analysis import lower_bound
from paragents.core.graph import TaskGraph
from paragents.core.policies import ASSIGN_POLICIES, PRIORITY_POLICIES, Plan
from paragents.sim.virtual import run_virtual
from paragents.sim.workloads import (
    LogNormal,
    Uniform,
    layered_dag,
    load_trace,
    pegasus_traces,
)

SPEEDS = (1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0)
SMALL_SPEEDS = (1.0, 2.0, 3.0, 4.0)
SMALL_TASKS = 10
SMALL_SEEDS = 20
BANDWIDTH = 1e12  # every link: transfers of 0 bytes take 0 s
SMT_EPSILON = 1e-4
PRIORITIES = ("fifo", "critical_path", "least_slack", "plan")
ASSIGNS = ("round_robin", "weighted_round_robin", "random", "least_loaded", "earliest_finish", "plan")
DROPPED = {
    "user": "every task has the default priority 0, so it orders like fifo",
    "capability": "every agent has the wildcard skill, so it chooses like least_loaded",
}
QUICK_TRACES = ("srasearch", "epigenomics")
GOALS = {"median_best_over_heft_max": 1.0, "small_mean_over_optimum_max": 1.06}
EPS = 1e-6


# ------------------------------------------------------------------------- workloads
def layered_instances(count: int) -> dict[str, TaskGraph]:
    return {
        f"layered-{s}": layered_dag(8, 6, fan_in=3, span=2, duration=LogNormal(10.0, 1.0), seed=s)
        for s in range(count)
    }


def small_instance(seed: int) -> TaskGraph:
    """A 10-task layered DAG: 3 to 5 layers whose widths split the tasks at random."""
    rng = random.Random(seed)
    depth = rng.randint(3, 5)
    cuts = sorted(rng.sample(range(1, SMALL_TASKS), depth - 1))
    widths = [b - a for a, b in zip([0, *cuts], [*cuts, SMALL_TASKS], strict=True)]
    return layered_dag(widths, fan_in=3, span=2, duration=Uniform(1.0, 10.0), seed=seed)


def agents_for(speeds: Sequence[float]) -> list[AgentSpec]:
    return [AgentSpec(f"a{i}", speed=s) for i, s in enumerate(speeds)]


# ------------------------------------------------------------------------- paragents
def run_pair(graph: TaskGraph, speeds: Sequence[float], prio: str, assign: str) -> float:
    """Makespan of one policy pair; ``plan`` on both sides shares one planner."""
    if prio == "plan" and assign == "plan":
        shared = Plan()
        p: Any = shared
        a: Any = shared
    else:
        p, a = PRIORITY_POLICIES[prio](), ASSIGN_POLICIES[assign]()
    run = run_virtual(graph, agents_for(speeds), priority=p, assign=a, seed=0)
    if run.report.tasks["done"] != len(graph):
        raise RuntimeError(f"{prio}+{assign}: run incomplete: {run.report.tasks}")
    return run.makespan


def run_pairs(graph: TaskGraph, speeds: Sequence[float]) -> dict[str, float]:
    return {f"{p}+{a}": run_pair(graph, speeds, p, a) for p, a in product(PRIORITIES, ASSIGNS)}


# ------------------------------------------------------------------------- saga
def saga_request(graph: TaskGraph, speeds: Sequence[float], *, optimum: str | None = None) -> dict[str, Any]:
    return {
        "tasks": [[t.id, t.duration] for t in graph],
        "edges": [list(e) for e in graph.edges],
        "speeds": list(speeds),
        "optimum": optimum,
    }


def call_saga(requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Run saga on each request in a subprocess with ``PYTHONHASHSEED=0``."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--saga-worker"],
        input=json.dumps(list(requests)), capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"saga worker failed (install saga with `make bench`):\n{proc.stderr.strip()}")
    return list(json.loads(proc.stdout))


def saga_worker() -> int:
    """Read requests (JSON list) on stdin; write HEFT, CPOP (and optimum) schedules on stdout."""
    import logging

    logging.disable(logging.WARNING)  # saga warns when it adds a super source or sink
    from saga import Network
    from saga import TaskGraph as SagaGraph
    from saga.schedulers import (
        BruteForceScheduler,
        CpopScheduler,
        HeftScheduler,
        SMTScheduler,
    )

    out = []
    for req in json.load(sys.stdin):
        tg = SagaGraph.create([(t, float(c)) for t, c in req["tasks"]], [(u, v, 0.0) for u, v in req["edges"]])
        names = [f"a{i}" for i in range(len(req["speeds"]))]
        net = Network.create(
            list(zip(names, map(float, req["speeds"]), strict=True)),
            [(a, b, BANDWIDTH) for a, b in product(names, repeat=2)],
        )
        schedulers: dict[str, Any] = {"heft": HeftScheduler(), "cpop": CpopScheduler()}
        if req["optimum"] == "smt":
            schedulers["optimum"] = SMTScheduler(epsilon=SMT_EPSILON)
        elif req["optimum"] == "brute_force":
            schedulers["optimum"] = BruteForceScheduler()
        row: dict[str, Any] = {}
        for key, scheduler in schedulers.items():
            t0 = time.perf_counter()
            sched = scheduler.schedule(net, tg)
            row[key] = {
                "makespan": sched.makespan,
                "seconds": time.perf_counter() - t0,
                "schedule": [[st.name, st.node, st.start, st.end] for _, tasks in sched.items() for st in tasks],
            }
        out.append(row)
    json.dump(out, sys.stdout)
    return 0


def verify(graph: TaskGraph, speeds: Sequence[float], result: Mapping[str, Any], what: str) -> float:
    """Check a saga schedule against the problem; return its makespan, recomputed."""
    speed = {f"a{i}": s for i, s in enumerate(speeds)}
    placed: dict[str, tuple[str, float, float]] = {}
    for name, node, start, end in result["schedule"]:
        if name in placed:
            raise AssertionError(f"{what}: task {name!r} scheduled twice")
        placed[name] = (node, float(start), float(end))
    for name, (node, start, end) in placed.items():
        cost = graph[name].duration if name in graph else 0.0  # saga's super source/sink cost 0
        if start < -EPS or not math.isclose(end - start, cost / speed[node], rel_tol=1e-9, abs_tol=EPS):
            raise AssertionError(f"{what}: task {name!r} on {node} runs [{start}, {end}], cost {cost}")
    missing = [t for t in graph.ids if t not in placed]
    if missing:
        raise AssertionError(f"{what}: tasks never scheduled: {missing[:5]}")
    for u, v in graph.edges:
        if placed[v][1] < placed[u][2] - EPS:
            raise AssertionError(f"{what}: {v!r} starts at {placed[v][1]} before input {u!r} ends at {placed[u][2]}")
    by_node: dict[str, list[tuple[float, float, str]]] = {}
    for name, (node, start, end) in placed.items():
        by_node.setdefault(node, []).append((start, end, name))
    for node, runs in by_node.items():
        runs.sort()
        for (_, e1, n1), (s2, _, n2) in pairwise(runs):
            if s2 < e1 - EPS:
                raise AssertionError(f"{what}: {n1!r} and {n2!r} overlap on {node}")
    makespan = max(end for _, _, end in placed.values())
    if not math.isclose(makespan, result["makespan"], rel_tol=1e-9, abs_tol=EPS):
        raise AssertionError(f"{what}: saga says makespan {result['makespan']}, the schedule ends at {makespan}")
    return makespan


# ------------------------------------------------------------------------- rows
def graph_row(name: str, graph: TaskGraph, speeds: Sequence[float], saga: Mapping[str, Any] | None) -> dict[str, Any]:
    progress(f"  {name}: {len(graph)} tasks, {len(PRIORITIES) * len(ASSIGNS)} policy pairs")
    t0 = time.perf_counter()
    pairs = run_pairs(graph, speeds)
    row: dict[str, Any] = {
        "name": name,
        "tasks": len(graph),
        "edges": len(graph.edges),
        "lower_bound_s": lower_bound(graph, list(speeds)),
        "paragents_s": pairs,
        "paragents_seconds": time.perf_counter() - t0,
    }
    best = min(pairs, key=lambda k: (pairs[k], k))
    row["best_pair"], row["best_s"] = best, pairs[best]
    row["best_over_lb"] = pairs[best] / row["lower_bound_s"]
    if saga is not None:
        row["heft_s"] = verify(graph, speeds, saga["heft"], f"{name} HEFT")
        row["cpop_s"] = verify(graph, speeds, saga["cpop"], f"{name} CPOP")
        row["heft_over_lb"] = row["heft_s"] / row["lower_bound_s"]
        row["cpop_over_heft"] = row["cpop_s"] / row["heft_s"]
        row["best_over_heft"] = pairs[best] / row["heft_s"]
    return row


def choose_fixed_pair(rows: Sequence[Mapping[str, Any]]) -> str:
    """The pair with the smallest median of makespan / lower bound over ``rows``."""
    pairs = rows[0]["paragents_s"]
    return min(pairs, key=lambda k: (statistics.median(r["paragents_s"][k] / r["lower_bound_s"] for r in rows), k))


def add_fixed(rows: Sequence[dict[str, Any]], pair: str) -> None:
    for r in rows:
        r["fixed_s"] = r["paragents_s"][pair]
        r["fixed_over_lb"] = r["fixed_s"] / r["lower_bound_s"]
        if "heft_s" in r:
            r["fixed_over_heft"] = r["fixed_s"] / r["heft_s"]


def summarise(rows: Sequence[Mapping[str, Any]], pair: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "fixed_pair": pair,
        "median_fixed_over_lb": statistics.median(r["fixed_over_lb"] for r in rows),
        "median_best_over_lb": statistics.median(r["best_over_lb"] for r in rows),
    }
    if all("heft_s" in r for r in rows):
        out["median_fixed_over_heft"] = statistics.median(r["fixed_over_heft"] for r in rows)
        out["median_best_over_heft"] = statistics.median(r["best_over_heft"] for r in rows)
        out["median_cpop_over_heft"] = statistics.median(r["cpop_over_heft"] for r in rows)
        out["median_heft_over_lb"] = statistics.median(r["heft_over_lb"] for r in rows)
        online = [p for p in rows[0]["paragents_s"] if "plan" not in p]
        best_online = min(online, key=lambda k: (statistics.median(r["paragents_s"][k] / r["heft_s"] for r in rows), k))
        out["best_online_pair"] = best_online
        out["median_best_online_over_heft"] = statistics.median(r["paragents_s"][best_online] / r["heft_s"] for r in rows)
        out["meets"] = out["median_fixed_over_heft"] <= GOALS["median_best_over_heft_max"] + EPS
    return out


def small_rows(seeds: Iterable[int], with_saga: bool) -> list[dict[str, Any]]:
    graphs = {s: small_instance(s) for s in seeds}
    saga = call_saga([saga_request(g, SMALL_SPEEDS, optimum="smt") for g in graphs.values()]) if with_saga else None
    rows = []
    for k, (seed, g) in enumerate(graphs.items()):
        progress(f"  small seed {seed}")
        pairs = run_pairs(g, SMALL_SPEEDS)
        row: dict[str, Any] = {"seed": seed, "edges": len(g.edges), "lower_bound_s": lower_bound(g, list(SMALL_SPEEDS))}
        row["paragents_s"] = pairs
        if saga is not None:
            res = saga[k]
            opt = verify(g, SMALL_SPEEDS, res["optimum"], f"small {seed} SMT")
            row["optimum_s"], row["smt_seconds"] = opt, res["optimum"]["seconds"]
            row["heft_s"] = verify(g, SMALL_SPEEDS, res["heft"], f"small {seed} HEFT")
            row["cpop_s"] = verify(g, SMALL_SPEEDS, res["cpop"], f"small {seed} CPOP")
            beaten = {k: v for k, v in {**pairs, "heft": row["heft_s"], "cpop": row["cpop_s"]}.items() if v < opt - SMT_EPSILON}
            if beaten or opt < row["lower_bound_s"] - EPS:
                raise AssertionError(f"small {seed}: optimum {opt} below a schedule {beaten} or the lower bound")
        rows.append(row)
    return rows


def small_summary(rows: Sequence[Mapping[str, Any]], fixed: str) -> dict[str, Any]:
    if not all("optimum_s" in r for r in rows):
        return {}
    pairs = list(rows[0]["paragents_s"])

    def mean_ratio(get: Any) -> float:
        return statistics.mean(get(r) / r["optimum_s"] for r in rows)

    per_pair = {p: mean_ratio(lambda r, p=p: r["paragents_s"][p]) for p in pairs}
    best = min(per_pair, key=lambda p: (per_pair[p], p))
    online = min((p for p in pairs if "plan" not in p), key=lambda p: (per_pair[p], p))
    out = {
        "fixed_pair": fixed,
        "mean_fixed_over_optimum": per_pair[fixed],
        "best_pair": best,
        "mean_best_over_optimum": per_pair[best],
        "best_online_pair": online,
        "mean_best_online_over_optimum": per_pair[online],
        "mean_heft_over_optimum": mean_ratio(lambda r: r["heft_s"]),
        "mean_cpop_over_optimum": mean_ratio(lambda r: r["cpop_s"]),
        "mean_over_optimum_by_pair": per_pair,
        "smt_seconds_total": sum(r["smt_seconds"] for r in rows),
    }
    out["meets"] = out["mean_best_over_optimum"] <= GOALS["small_mean_over_optimum_max"] + EPS
    return out


def optimum_check(count: int) -> list[dict[str, Any]]:
    """saga's SMT optimum against its brute force on ``count`` 5-task, 3-agent instances."""
    speeds = SMALL_SPEEDS[:3]
    graphs = [layered_dag([2, 2, 1], fan_in=2, duration=Uniform(1.0, 10.0), seed=100 + s) for s in range(count)]
    smt = call_saga([saga_request(g, speeds, optimum="smt") for g in graphs])
    brute = call_saga([saga_request(g, speeds, optimum="brute_force") for g in graphs])
    rows = []
    for k, g in enumerate(graphs):
        s = verify(g, speeds, smt[k]["optimum"], f"check {k} SMT")
        b = verify(g, speeds, brute[k]["optimum"], f"check {k} brute force")
        if not b - EPS <= s <= b + SMT_EPSILON:
            raise AssertionError(f"optimum check {k}: SMT {s} vs brute force {b}")
        rows.append({"seed": 100 + k, "smt_s": s, "brute_force_s": b, "brute_force_seconds": brute[k]["optimum"]["seconds"]})
    return rows


# ------------------------------------------------------------------------- output
def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def print_tables(doc: Mapping[str, Any]) -> None:
    for key, title in (("traces", "Pegasus traces"), ("layered", "Layered random DAGs")):
        rows, summ = doc[key], doc[f"{key}_summary"]
        table = [
            [
                r["name"], str(r["tasks"]), f"{r['lower_bound_s']:,.2f}", _f(r["fixed_over_lb"]),
                _f(r.get("fixed_over_heft")), r["best_pair"], _f(r["best_over_lb"]), _f(r.get("best_over_heft")),
                _f(r.get("heft_over_lb")), _f(r.get("cpop_over_heft")),
            ]
            for r in rows
        ]
        met = summ.get("meets") if key == "traces" else None
        table.append(
            [
                "median", "", "", _f(summ["median_fixed_over_lb"]),
                mark(_f(summ.get("median_fixed_over_heft")), met), "", _f(summ["median_best_over_lb"]),
                _f(summ.get("median_best_over_heft")), _f(summ.get("median_heft_over_lb")),
                _f(summ.get("median_cpop_over_heft")),
            ]
        )
        print_table(
            f"{title}: makespan ratios, 8 agents of speeds 1,1,2,2,4,4,8,8 (compute only)",
            ["workload", "tasks", "LB (s)", "fixed/LB", "fixed/HEFT", "best pair", "best/LB", "best/HEFT",
             "HEFT/LB", "CPOP/HEFT"],
            table,
            caption=(
                f"fixed = {summ['fixed_pair']} (the pair with the best median makespan/LB); best = the best pair "
                f"on each workload (hindsight).  Best online pair (no plan): {summ.get('best_online_pair', '—')}, "
                f"median /HEFT {_f(summ.get('median_best_online_over_heft'))}."
            ),
        )
    small = doc["small_summary"]
    if small:
        rows = [
            [f"paragents {small['fixed_pair']} (fixed)", _f(small["mean_fixed_over_optimum"])],
            [f"paragents {small['best_pair']} (best pair)", mark(_f(small["mean_best_over_optimum"]), small["meets"])],
            [f"paragents {small['best_online_pair']} (online)", _f(small["mean_best_online_over_optimum"])],
            ["HEFT (saga)", _f(small["mean_heft_over_optimum"])],
            ["CPOP (saga)", _f(small["mean_cpop_over_optimum"])],
        ]
        print_table(
            f"Small instances: mean makespan / optimum over {len(doc['small'])} seeds "
            f"({SMALL_TASKS} tasks, agents of speeds {', '.join(f'{s:g}' for s in SMALL_SPEEDS)})",
            ["scheduler", "mean / optimum"],
            rows,
            caption=f"Optimum: saga SMT (z3), within {SMT_EPSILON:g} s; checked against brute force on "
            f"{len(doc['optimum_check'])} smaller instances.  Goal <= {GOALS['small_mean_over_optimum_max']:g}.",
        )


def plot(doc: Mapping[str, Any]) -> Path:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    rows = [*doc["traces"], *doc["layered"]]
    names = [r["name"] for r in rows]
    series = [
        ("paragents " + doc["traces_summary"]["fixed_pair"], [r["fixed_over_lb"] for r in rows]),
        ("best paragents pair", [r["best_over_lb"] for r in rows]),
        ("HEFT", [r.get("heft_over_lb", float("nan")) for r in rows]),
        ("CPOP", [r.get("cpop_s", float("nan")) / r["lower_bound_s"] for r in rows]),
    ]
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax1.bar([i + k * width for i in range(len(rows))], values, width, label=label)
    ax1.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], names, rotation=30, ha="right")
    ax1.set_ylabel("makespan / lower bound")
    ax1.set_ylim(bottom=0.9)
    ax1.legend(fontsize=8)
    ax1.set_title("traces and layered DAGs (8 heterogeneous agents)")
    small = doc["small"]
    if small and "optimum_s" in small[0]:
        best = doc["small_summary"]["fixed_pair"]
        seeds = [r["seed"] for r in small]
        for label, key in ((f"paragents {best}", None), ("HEFT", "heft_s"), ("CPOP", "cpop_s")):
            vals = [(r["paragents_s"][best] if key is None else r[key]) / r["optimum_s"] for r in small]
            ax2.plot(seeds, vals, marker="o", linestyle="", label=label)
        ax2.axhline(1.0, color="grey", linewidth=0.8)
        ax2.set_xlabel("seed")
        ax2.set_ylabel("makespan / optimum")
        ax2.legend(fontsize=8)
    ax2.set_title(f"small instances ({SMALL_TASKS} tasks, 4 agents)")
    return save_figure(fig, "makespan")


# ------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    ap.add_argument("--quick", action="store_true", help="a small subset, paragents side only; writes no files")
    ap.add_argument("--saga-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.saga_worker:
        return saga_worker()
    with_saga = not args.quick
    machine = machine_info()
    started = time.perf_counter()
    names = QUICK_TRACES if args.quick else tuple(pegasus_traces())
    workloads = {
        "traces": {n: load_trace(n) for n in names},
        "layered": layered_instances(1 if args.quick else 3),
    }
    doc: dict[str, Any] = {
        "benchmark": "makespan",
        "quick": args.quick,
        "machine": machine,
        "config": {
            "speeds": list(SPEEDS), "small_speeds": list(SMALL_SPEEDS), "small_tasks": SMALL_TASKS,
            "priorities": list(PRIORITIES), "assigns": list(ASSIGNS), "dropped": DROPPED,
            "communication": "compute only: 0 bytes per dependency, bandwidth 1e12 on every link (saga)",
            "bandwidth": BANDWIDTH, "smt_epsilon_s": SMT_EPSILON,
        },
        "goals": GOALS,
    }
    for key, graphs in workloads.items():
        progress(f"{key}:")
        saga = call_saga([saga_request(g, SPEEDS) for g in graphs.values()]) if with_saga else None
        rows = [graph_row(n, g, SPEEDS, saga[k] if saga else None) for k, (n, g) in enumerate(graphs.items())]
        doc[key] = rows
    fixed = choose_fixed_pair(doc["traces"])
    for key in workloads:
        add_fixed(doc[key], fixed)
        doc[f"{key}_summary"] = summarise(doc[key], fixed)
    progress("small instances:")
    doc["small"] = small_rows(range(3 if args.quick else SMALL_SEEDS), with_saga)
    doc["small_summary"] = small_summary(doc["small"], fixed)
    doc["optimum_check"] = optimum_check(5) if with_saga else []
    doc["elapsed_s"] = time.perf_counter() - started
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print_tables(doc)
    if not args.quick:
        write_json("makespan", doc)
        plot(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
