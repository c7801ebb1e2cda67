"""What durability costs: a recorded run vs the in-memory runtime, and the time to resume.

Claim measured
--------------
Recording a run (every event, every result durable before its successors start, the
graph as it grew) adds a bounded cost per task, because writes are batched into group
commits on a writer thread, off the event loop; and a crashed 10,000-task run resumes
in about the time it takes to read its log.

How
---
10,000 no-op tasks (async callables, 100 independent chains of 100 so that completions
and dispatches interleave), one agent with 100 slots, run in one process:

* ``memory``      the asyncio runtime, nothing recorded;
* ``sqlite``      the same with a recorder on a SQLite file (WAL);
* ``postgresql``  the same on a PostgreSQL 15 server of the benchmark's own (loopback,
                  started with ``initdb``/``pg_ctl`` as the ``postgres`` user; skipped with
                  the reason printed when the binaries are missing).

Per-task time is the run's wall time / 10,000 (best of ``--repeats``); the ratio is to
``memory``.  Resume: a recorded run of the same graph is cut in half (the second half of
every chain waits on a gate task that fails the first time), then resumed from the
store: the time to load its log and results, and the total time of the resumed run
(restoring 5,000 tasks and running 5,001).

Results: ``benchmarks/results/store_overhead.json`` and ``store_overhead.png``.

Run:  .venv/bin/python benchmarks/store_overhead.py [--json] [--tasks 10000] [--repeats 3] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "tests"))

from _common import machine_info, print_table, progress, pyplot, save_figure, write_json  # noqa: E402

from paragents.agents import Agent  # noqa: E402
from paragents.core.graph import Task, TaskGraph  # noqa: E402
from paragents.runtime.driver import Resumption, Runtime  # noqa: E402
from paragents.store import open_store  # noqa: E402
from paragents.store.recorder import Recorder  # noqa: E402

CHAINS = 100


async def noop() -> None:
    return None


def chains(n: int, gate: Any = None) -> TaskGraph:
    """``n`` tasks in ``CHAINS`` chains; with ``gate``, each chain's second half waits on it."""
    per = max(n // CHAINS, 1)
    tasks = []
    if gate is not None:
        tasks.append(Task("gate", action=gate))
    for c in range(CHAINS):
        for i in range(per):
            deps: list[str] = [f"c{c}_{i - 1}"] if i else []
            if gate is not None and i == per // 2:
                deps.append("gate")
            tasks.append(Task(f"c{c}_{i}", action=noop, depends_on=tuple(deps)))
    return TaskGraph(tasks)


async def timed_run(n: int, url: str | None, run_id: str) -> float:
    store = open_store(url) if url else None
    recorder = None
    if store is not None:
        store.create_run(run_id, "bench", {"kind": "bench"})
        recorder = Recorder(store, run_id)
    runtime = Runtime(chains(n), [Agent("w", slots=CHAINS)], run_id=run_id, recorder=recorder)
    start = time.perf_counter()
    result = await runtime.run()
    took = time.perf_counter() - start
    assert result.report.tasks["done"] == n, result.report.tasks
    if store is not None:
        store.close()
    return took


async def resume_times(n: int, url: str) -> dict[str, float]:
    failed_once = {"gate": False}

    async def gate() -> None:
        if not failed_once["gate"]:
            failed_once["gate"] = True
            raise RuntimeError("gate closed")

    store = open_store(url)
    store.create_run("half", "bench", {"kind": "bench"})
    first = await Runtime(chains(n, gate), [Agent("w", slots=CHAINS)], run_id="half",
                          recorder=Recorder(store, "half")).run()
    done_before = first.report.tasks["done"]
    t0 = time.perf_counter()
    stored = store.load_run("half")
    loaded = time.perf_counter() - t0
    results = {tid: r.result for tid, r in stored.results.items()}
    graph = chains(n, gate)
    runtime = Runtime(graph, [Agent("w", slots=CHAINS)], run_id="half", recorder=Recorder(store, "half"),
                      resume=Resumption(results, stored.events))
    again = await runtime.run()
    total = time.perf_counter() - t0
    assert again.report.tasks["done"] == len(graph), again.report.tasks
    store.close()
    return {"restored": len(results), "ran_before": done_before, "load_s": loaded, "resume_total_s": total,
            "events_loaded": len(stored.events)}


@contextmanager
def postgres() -> Iterator[str]:
    from pg_server import running_postgres

    with running_postgres() as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, one repeat, no files written")
    args = parser.parse_args(argv)
    n, repeats = (1_000, 1) if args.quick else (args.tasks, args.repeats)
    tmp = Path(tempfile.mkdtemp(prefix="paragents-bench-"))
    doc: dict[str, Any] = {"benchmark": "store_overhead", "tasks": n, "repeats": repeats, "stores": {}}
    pg = nullcontext(None) if args.no_postgres else postgres()
    with pg as pg_url:
        stores = {"memory": None, "sqlite": str(tmp / "runs.db")}
        if pg_url:
            stores["postgresql"] = pg_url
        for name, url in stores.items():
            best = min(asyncio.run(timed_run(n, url, f"{name}{i}")) for i in range(repeats))
            doc["stores"][name] = {"run_s": best, "per_task_us": best / n * 1e6}
            progress(f"{name}: {best / n * 1e6:.1f} us/task")
        base = doc["stores"]["memory"]["per_task_us"]
        for v in doc["stores"].values():
            v["ratio_to_memory"] = v["per_task_us"] / base
        doc["resume"] = {name: asyncio.run(resume_times(n, url)) for name, url in stores.items() if url}
    doc["machine"] = machine_info()
    rows = [[k, f"{v['per_task_us']:.1f}", f"{v['ratio_to_memory']:.2f}x"] for k, v in doc["stores"].items()]
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print_table(f"Recorded run of {n:,} no-op tasks (best of {repeats})", ["store", "us per task", "vs memory"], rows)
        print_table("Resume of a half-finished run", ["store", "restored", "load log s", "resume total s"],
                    [[k, str(v["restored"]), f"{v['load_s']:.2f}", f"{v['resume_total_s']:.2f}"]
                     for k, v in doc["resume"].items()])
    if not args.quick:
        write_json("store_overhead", doc)
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        names = list(doc["stores"])
        ax.bar(names, [doc["stores"][k]["per_task_us"] for k in names], color=["grey", "tab:blue", "tab:green"][: len(names)])
        ax.set_ylabel("microseconds per task")
        ax.set_title(f"{n:,} no-op tasks, recorded vs in memory")
        save_figure(fig, "store_overhead")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
