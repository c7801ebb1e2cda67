"""The Ray driver's cost: per-task overhead and throughput, against the asyncio runtime.

Claim measured
--------------
Moving attempts out of the process onto Ray actors costs a round trip per task; the
figures for the note say how much, and how throughput with many simulated-latency agents
compares with the local runtime.

How
---
Both sides run in this process, the same graphs and agents, the same scheduler; Ray runs
on a two-node cluster on this machine (``ray.cluster_utils.Cluster``: a head with one
CPU and one worker node with one CPU; agents' actors reserve no CPU and are spread over
both nodes).  Actor start-up is not timed (the Ray driver starts its clock once every
actor runs); the wall time of ``run()`` includes it and is printed too.

*Per-task overhead.*  1,000 independent no-op tasks (an ``async def`` returning at once)
on 4 agents with 4 slots each.  Overhead per task = makespan / 1,000 on each side;
reported with the ratio Ray / local.

*Throughput.*  ``N`` = 16, 32, 64 agents, one slot each, ``4 N`` independent LLM tasks
on the simulated backend answering after 50 ms (no jitter).  Throughput = tasks /
makespan; the ideal is ``N / 0.05`` tasks/s.  Reported per N for both sides, with the
ratio Ray / local.

Results: ``benchmarks/results/ray_overhead.json`` and ``ray_overhead.png``.

Run:  .venv/bin/python benchmarks/ray_overhead.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    fmt_ratio,
    fmt_us,
    machine_info,
    print_table,
    progress,
    pyplot,
    save_figure,
    write_json,
)

from paragents.agents import Agent
from paragents.backends.simulated import SimulatedBackend
from paragents.core.graph import Task, TaskGraph
from paragents.runtime.driver import RunResult
from paragents.runtime.driver import arun as local_arun

AGENT_COUNTS = (16, 32, 64)
LATENCY_S = 0.05


async def _noop() -> None:
    return None


def _noop_graph(n: int) -> tuple[TaskGraph, list[Agent]]:
    tasks = [Task(f"t{i}", action=_noop, duration=0.001) for i in range(n)]
    return TaskGraph(tasks), [Agent(f"a{i}", slots=4) for i in range(4)]


def _llm_graph(agents: int, per_agent: int) -> tuple[TaskGraph, list[Agent]]:
    backend = SimulatedBackend(ttft_s=LATENCY_S, tokens_per_s=1e9, jitter=0.0)
    tasks = [
        Task(f"t{i}", prompt=f"task {i}", tokens=1, duration=LATENCY_S)
        for i in range(agents * per_agent)
    ]
    return TaskGraph(tasks), [
        Agent(f"a{i}", backend=backend, slots=1, max_tokens=1) for i in range(agents)
    ]


def _measure(runner: Any, graph: TaskGraph, agents: list[Agent]) -> dict[str, float]:
    started = time.perf_counter()
    result: RunResult = asyncio.run(runner(graph, agents))
    wall = time.perf_counter() - started
    report = result.report
    assert report.tasks.get("done") == len(graph), report.tasks
    return {"makespan_s": report.makespan_s, "wall_s": wall, "tasks": len(graph)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--json",
        action="store_true",
        help="Print the JSON document on stdout, nothing else.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Fewer tasks and agents (a smoke run)."
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray.cluster_utils import Cluster

    from paragents.distributed import arun as ray_arun

    n_tasks = 200 if args.quick else 1000
    counts = (16,) if args.quick else AGENT_COUNTS
    per_agent = 4
    progress("starting a two-node Ray cluster")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        progress(f"per-task overhead: {n_tasks} no-op tasks")
        local = _measure(local_arun, *_noop_graph(n_tasks))
        on_ray = _measure(ray_arun, *_noop_graph(n_tasks))
        overhead = {
            "tasks": n_tasks,
            "local_per_task_us": local["makespan_s"] / n_tasks * 1e6,
            "ray_per_task_us": on_ray["makespan_s"] / n_tasks * 1e6,
            "local": local,
            "ray": on_ray,
        }
        overhead["ratio"] = overhead["ray_per_task_us"] / overhead["local_per_task_us"]
        throughput = []
        for n in counts:
            progress(
                f"throughput: {n} agents, {n * per_agent} tasks of {LATENCY_S * 1000:g} ms"
            )
            local = _measure(local_arun, *_llm_graph(n, per_agent))
            on_ray = _measure(ray_arun, *_llm_graph(n, per_agent))
            row = {
                "agents": n,
                "tasks": n * per_agent,
                "ideal_tasks_per_s": n / LATENCY_S,
                "local_tasks_per_s": n * per_agent / local["makespan_s"],
                "ray_tasks_per_s": n * per_agent / on_ray["makespan_s"],
                "ray_wall_s": on_ray["wall_s"],
            }
            row["ratio"] = row["ray_tasks_per_s"] / row["local_tasks_per_s"]
            throughput.append(row)
    finally:
        ray.shutdown()
        cluster.shutdown()

    doc = {
        "benchmark": "ray_overhead",
        "machine": machine_info(),
        "ray": ray.__version__,
        "cluster": "two nodes on this machine (head 1 CPU + worker 1 CPU), actors spread",
        "overhead": overhead,
        "throughput": throughput,
    }
    write_json("ray_overhead", doc, to_stdout=args.json)
    _plot(doc)
    if not args.json:
        print_table(
            f"Per-task overhead, {n_tasks} no-op tasks (4 agents x 4 slots)",
            ["runtime", "per task (µs)", "makespan (s)"],
            [
                [
                    "local (asyncio)",
                    fmt_us(overhead["local_per_task_us"]),
                    f"{overhead['local']['makespan_s']:.3f}",
                ],
                [
                    "Ray (2 nodes)",
                    fmt_us(overhead["ray_per_task_us"]),
                    f"{overhead['ray']['makespan_s']:.3f}",
                ],
                ["ratio Ray / local", fmt_ratio(overhead["ratio"]), ""],
            ],
        )
        print_table(
            f"Throughput, {per_agent} tasks of {LATENCY_S * 1000:g} ms per agent",
            [
                "agents",
                "ideal (tasks/s)",
                "local (tasks/s)",
                "Ray (tasks/s)",
                "Ray / local",
                "Ray wall (s)",
            ],
            [
                [
                    str(r["agents"]),
                    f"{r['ideal_tasks_per_s']:.0f}",
                    f"{r['local_tasks_per_s']:.0f}",
                    f"{r['ray_tasks_per_s']:.0f}",
                    f"{r['ratio']:.2f}",
                    f"{r['ray_wall_s']:.1f}",
                ]
                for r in throughput
            ],
        )
    return 0


def _plot(doc: dict[str, Any]) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    o = doc["overhead"]
    left.bar(
        ["local", "Ray"],
        [o["local_per_task_us"], o["ray_per_task_us"]],
        color=["tab:blue", "tab:orange"],
    )
    left.set_ylabel("µs per task")
    left.set_title(f"Per-task overhead ({o['tasks']} no-op tasks): {o['ratio']:.1f}x")
    rows = doc["throughput"]
    xs = [r["agents"] for r in rows]
    right.plot(xs, [r["ideal_tasks_per_s"] for r in rows], "k--", label="ideal")
    right.plot(
        xs, [r["local_tasks_per_s"] for r in rows], "o-", label="local (asyncio)"
    )
    right.plot(xs, [r["ray_tasks_per_s"] for r in rows], "s-", label="Ray (2 nodes)")
    right.set_xlabel("agents (50 ms tasks)")
    right.set_ylabel("tasks / s")
    right.set_title("Throughput")
    right.legend()
    save_figure(fig, "ray_overhead")


if __name__ == "__main__":
    sys.exit(main())
