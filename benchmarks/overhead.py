"""Scheduling overhead per task: paragents' core and asyncio driver vs asyncio.gather and LangGraph.

Claim measured
--------------
Running a task graph through paragents costs little on top of the work itself:

* the sans-I/O core (``Scheduler``) spends <= 10 us per task;
* the asyncio driver (``Runtime.run``) spends <= 30 us per task, at most 8x what a bare
  ``asyncio.gather`` of as many no-op coroutines costs in the same process;
* and at least 10x less per task than LangGraph spends per node on the same graph.

How
---
Every task is a no-op (``async def noop(): ...``), so the time measured is pure overhead.
Three shapes, each of N tasks in total (built from one shared spec for both frameworks):

``fanout``      one root, N-2 children that depend on it, one join that depends on them all;
``chain``       N tasks, each depending on the previous one;
``random_dag``  task i depends on min(i, 2) tasks drawn uniformly among tasks 0..i-1 (seeded).

For each shape and each N (default 1k, 10k, 100k; per-task cost should stay roughly flat):

``core``     the Scheduler alone, driven by a minimal loop: ``start``, then ``task_finished``
             for each ``Dispatch`` in FIFO order while a fake clock advances 1 us per event.
             Timed: Scheduler construction (priorities included) through the last event.
``driver``   ``Runtime(graph, [Agent(slots=S)]).run()`` with no-op async callables; S = N
             (concurrency never limits) and S = 64 (a moderate pool).  Timed inside the
             running loop: Runtime construction through ``run()`` returning.  The run
             report is built from the event log on first access to ``result.report``; its
             cost is shown separately as "(report)" and is not part of ``driver``.
``gather``   ``await asyncio.gather(*(noop() for _ in range(N)))`` in a fresh loop, timed
             inside the loop: the floor for running N coroutines as asyncio tasks.
``langgraph`` (when importable and not ``--no-langgraph``): the same graph as a LangGraph
             ``StateGraph`` of async no-op nodes, timed around ``ainvoke`` (compilation is
             reported separately and not counted).  The fan-out is a root node whose
             conditional edge returns ``Send("work", ...)`` N-2 times, then an edge to a
             join node; the chain is N nodes joined by ``add_edge``; the random DAG uses
             ``add_edge([preds...], node)`` (wait-for-all) for nodes with two inputs.
             LangGraph's per-node cost grows with N (a 10k-node chain takes ~17 s per run
             here), so it runs at N capped per shape (``--lg-max-*``); the table says which N,
             and compares with paragents' driver (S = N) at that same N.

Numbers are the best of ``--repeats`` runs (default 5), or of ``--repeats-large`` runs
(default 1) for runs of more than 10,000 paragents tasks or 1,000 LangGraph nodes, each
after a full garbage collection.  The paragents systems and gather are measured in rounds
(core, core S=64, driver, driver S=64, gather; repeat), so that a burst of load from
another process spoils one sample of each rather than every sample of one.  Five rather
than three because a shared 2-core machine shows run-to-run swings of up to 2x.
Results go to ``benchmarks/results/overhead.json`` and ``overhead.png``.

Run:  .venv/bin/python benchmarks/overhead.py [--sizes 1000,10000,100000] [--json] [--no-langgraph]
      (also --shapes, --repeats, --repeats-large, --lg-max-{fanout,chain,dag}, --no-gc, --seed;
      the default run takes about 100 s on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

from rich.markup import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Timing,
    best_of,
    best_of_interleaved,
    fmt_ratio,
    fmt_us,
    langgraph_version,
    machine_info,
    mark,
    print_table,
    progress,
    pyplot,
    save_figure,
    write_json,
)

from paragents.agents import Agent  # noqa: E402
from paragents.core.agent_state import AgentSpec  # noqa: E402
from paragents.core.graph import Task, TaskGraph  # noqa: E402
from paragents.core.report import build_report  # noqa: E402
from paragents.core.scheduler import Scheduler  # noqa: E402
from paragents.runtime.driver import Runtime  # noqa: E402

SHAPES = ("fanout", "chain", "random_dag")
MODERATE_SLOTS = 64
DEFAULT_SIZES = (1_000, 10_000, 100_000)
LARGE_PARAGENTS = 10_000  # runs above this many tasks use --repeats-large
LARGE_LANGGRAPH = 1_000  # LangGraph runs above this many nodes use --repeats-large

GOALS = {
    "core_us_per_task_max": 10.0,
    "driver_us_per_task_max": 30.0,
    "driver_over_gather_max": 8.0,
    "langgraph_over_driver_min": 10.0,
}

Spec = list[tuple[str, tuple[str, ...]]]  # (task id, ids it depends on), in a topological order


class _Calls:
    """Counts no-op executions, to check that every system ran every task exactly once."""

    n = 0


async def noop() -> None:
    _Calls.n += 1


async def lg_noop(state: Any) -> None:
    _Calls.n += 1


# ---------------------------------------------------------------------------- shapes
def make_spec(shape: str, n: int, seed: int = 0) -> Spec:
    if n < 3:
        raise SystemExit(f"sizes must be >= 3 (got {n})")
    if shape == "fanout":
        workers = [(f"w{i}", ("root",)) for i in range(n - 2)]
        return [("root", ()), *workers, ("join", tuple(w for w, _ in workers))]
    if shape == "chain":
        return [(f"n{i}", (f"n{i - 1}",) if i else ()) for i in range(n)]
    if shape == "random_dag":
        rng = random.Random(seed)
        return [(f"n{i}", tuple(f"n{p}" for p in rng.sample(range(i), min(i, 2)))) for i in range(n)]
    raise ValueError(f"unknown shape {shape!r}")


def paragents_graph(spec: Spec) -> TaskGraph:
    return TaskGraph([Task(tid, depends_on=deps, action=noop) for tid, deps in spec])


# ------------------------------------------------------------------------ measurements
def measure_core(graph: TaskGraph, slots: int) -> tuple[float, dict[str, float]]:
    n = len(graph)
    t0 = time.perf_counter()
    sched = Scheduler(graph, [AgentSpec("a", slots=slots)])
    queue = deque(sched.start(0.0))
    t1 = time.perf_counter()
    finished = sched.task_finished
    now = 0.0
    while queue:
        d = queue.popleft()
        now += 1e-6
        queue.extend(finished(d.task, now))
    t2 = time.perf_counter()
    if not sched.done or sched.counts["done"] != n:
        raise RuntimeError(f"core run incomplete: {sched.counts}")
    return t2 - t0, {"setup_s": t1 - t0}


def measure_driver(graph: TaskGraph, slots: int, report_s: list[float] | None = None) -> tuple[float, dict[str, float]]:
    """Seconds of Runtime construction + ``run()``.  With ``report_s``, also append what
    ``build_report`` takes on this run's events, measured after the timed part."""
    n = len(graph)

    async def main() -> tuple[float, float, Any]:
        t0 = time.perf_counter()
        runtime = Runtime(graph, [Agent("a", slots=slots)])
        t1 = time.perf_counter()
        result = await runtime.run()
        t2 = time.perf_counter()
        return t2 - t0, t1 - t0, result

    _Calls.n = 0
    total, setup, result = asyncio.run(main())
    if result.report.tasks["done"] != n or _Calls.n != n:
        raise RuntimeError(f"driver run incomplete: {result.report.tasks}, {_Calls.n} calls")
    if report_s is not None:
        t = time.perf_counter()
        build_report(result.events, graph)
        report_s.append(time.perf_counter() - t)
    return total, {"setup_s": setup}


def measure_gather(n: int) -> float:
    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*[noop() for _ in range(n)])
        return time.perf_counter() - t0

    _Calls.n = 0
    elapsed = asyncio.run(main())
    if _Calls.n != n:
        raise RuntimeError(f"gather ran {_Calls.n} of {n}")
    return elapsed


class _LGState(TypedDict, total=False):
    out: Annotated[list[Any], operator.add]


def langgraph_graph(shape: str, spec: Spec) -> Any:
    """The same graph as a compiled LangGraph StateGraph of async no-op nodes."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    g: Any = StateGraph(_LGState)
    if shape == "fanout":
        workers = len(spec) - 2
        g.add_node("root", lg_noop)
        g.add_node("work", lg_noop)
        g.add_node("join", lg_noop)
        g.add_edge(START, "root")
        g.add_conditional_edges("root", lambda _state: [Send("work", {}) for _ in range(workers)], ["work"])
        g.add_edge("work", "join")
        g.add_edge("join", END)
        return g.compile()
    has_succ: set[str] = set()
    for tid, _ in spec:
        g.add_node(tid, lg_noop)
    for tid, deps in spec:
        has_succ.update(deps)
        if not deps:
            g.add_edge(START, tid)
        elif len(deps) == 1:
            g.add_edge(deps[0], tid)
        else:
            g.add_edge(list(deps), tid)  # wait for all of them, like a paragents task
    for tid, _ in spec:
        if tid not in has_succ:
            g.add_edge(tid, END)
    return g.compile()


def measure_langgraph(compiled: Any, n: int) -> float:
    async def main() -> float:
        t0 = time.perf_counter()
        await compiled.ainvoke({}, {"recursion_limit": n + 10})
        return time.perf_counter() - t0

    _Calls.n = 0
    elapsed = asyncio.run(main())
    if _Calls.n != n:
        raise RuntimeError(f"LangGraph ran {_Calls.n} of {n} nodes")
    return elapsed


# ----------------------------------------------------------------------------- the run
_NO_GC = False  # set from --no-gc


def _best(measure: Callable[[], Any], repeats: int) -> Timing:
    return best_of(measure, repeats, no_gc=_NO_GC)


def _us(timing: Timing, n: int) -> float:
    return timing.best / n * 1e6


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def run_paragents(shape: str, n: int, repeats: int, seed: int) -> dict[str, Any]:
    spec = make_spec(shape, n, seed)
    t = time.perf_counter()
    graph = paragents_graph(spec)
    build_s = time.perf_counter() - t
    progress(f"  {shape} N={n:,}: core, driver, gather x{repeats} (interleaved)")
    reports: list[float] = []
    timings = best_of_interleaved(
        {
            "core": lambda: measure_core(graph, n),
            "core_slots64": lambda: measure_core(graph, MODERATE_SLOTS),
            "driver": lambda: measure_driver(graph, n, reports),
            "driver_slots64": lambda: measure_driver(graph, MODERATE_SLOTS),
            "gather": lambda: measure_gather(n),
        },
        repeats,
        no_gc=_NO_GC,
    )
    core, core64, drv, drv64, gat = (
        timings[k] for k in ("core", "core_slots64", "driver", "driver_slots64", "gather")
    )
    report_s = min(reports)
    row: dict[str, Any] = {
        "shape": shape,
        "n": n,
        "edges": sum(len(d) for _, d in spec),
        "repeats": repeats,
        "graph_build_us_per_task": build_s / n * 1e6,
        "core_us_per_task": _us(core, n),
        "core_slots64_us_per_task": _us(core64, n),
        "driver_us_per_task": _us(drv, n),
        "driver_slots64_us_per_task": _us(drv64, n),
        "driver_report_us_per_task": report_s / n * 1e6,
        "driver_setup_us_per_task": drv.extra["setup_s"] / n * 1e6,
        "gather_us_per_task": _us(gat, n),
        "timings": {
            "core": core.to_json(),
            "core_slots64": core64.to_json(),
            "driver": drv.to_json(),
            "driver_slots64": drv64.to_json(),
            "gather": gat.to_json(),
        },
    }
    row["driver_over_gather"] = row["driver_us_per_task"] / row["gather_us_per_task"]
    row["driver_slots64_over_gather"] = row["driver_slots64_us_per_task"] / row["gather_us_per_task"]
    row["meets"] = {
        "core": _le(row["core_us_per_task"], GOALS["core_us_per_task_max"]),
        "driver": _le(row["driver_us_per_task"], GOALS["driver_us_per_task_max"]),
        "driver_slots64": _le(row["driver_slots64_us_per_task"], GOALS["driver_us_per_task_max"]),
        "driver_over_gather": _le(row["driver_over_gather"], GOALS["driver_over_gather_max"]),
        "driver_slots64_over_gather": _le(row["driver_slots64_over_gather"], GOALS["driver_over_gather_max"]),
    }
    return row


def run_langgraph(
    shape: str, n: int, repeats: int, seed: int, driver_us: Callable[[int], float]
) -> dict[str, Any]:
    spec = make_spec(shape, n, seed)
    progress(f"  {shape} N={n:,}: LangGraph (build + compile)")
    t = time.perf_counter()
    compiled = langgraph_graph(shape, spec)
    compile_s = time.perf_counter() - t
    progress(f"  {shape} N={n:,}: LangGraph (ainvoke x{repeats})")
    lg = _best(lambda: measure_langgraph(compiled, n), repeats)
    lg_us = _us(lg, n)
    drv_us = driver_us(n)
    ratio = lg_us / drv_us
    return {
        "shape": shape,
        "n": n,
        "construction": "Send from a router node x N-2, then a join node" if shape == "fanout" else (
            "chain of add_edge" if shape == "chain" else "add_edge / add_edge([preds], node)"
        ),
        "repeats": repeats,
        "compile_s": compile_s,
        "langgraph_us_per_node": lg_us,
        "paragents_driver_us_per_task": drv_us,
        "langgraph_over_driver": ratio,
        "meets": {"langgraph_over_driver": ratio >= GOALS["langgraph_over_driver_min"]},
        "timings": {"langgraph": lg.to_json()},
    }


def _flatness(rows: Sequence[dict[str, Any]], key: str) -> dict[str, float]:
    """Per shape: per-task cost at the largest N divided by that at the smallest N."""
    out: dict[str, float] = {}
    for shape in SHAPES:
        pts = sorted((r["n"], r[key]) for r in rows if r["shape"] == shape and r.get(key) is not None)
        if len(pts) >= 2:
            out[shape] = pts[-1][1] / pts[0][1]
    return out


def print_tables(doc: dict[str, Any]) -> None:
    g = doc["goals"]
    rows = []
    for r in doc["paragents"]:
        m = r["meets"]
        rows.append(
            [
                r["shape"],
                f"{r['n']:,}",
                str(r["repeats"]),
                mark(fmt_us(r["core_us_per_task"]), m["core"]),
                fmt_us(r["core_slots64_us_per_task"]),
                mark(fmt_us(r["driver_us_per_task"]), m["driver"]),
                fmt_us(r["driver_report_us_per_task"]),
                mark(fmt_us(r["driver_slots64_us_per_task"]), m["driver_slots64"]),
                fmt_us(r["gather_us_per_task"]),
                mark(fmt_ratio(r["driver_over_gather"]), m["driver_over_gather"]),
                mark(fmt_ratio(r["driver_slots64_over_gather"]), m["driver_slots64_over_gather"]),
            ]
        )
    print_table(
        "paragents overhead per task (microseconds; best of the runs shown)",
        [
            "shape", "N", "best of", "core S=N", "core S=64", "driver S=N", "(report)",
            "driver S=64", "gather", "drv/gather S=N", "drv/gather S=64",
        ],
        rows,
        right_from=1,
        caption=(
            f"Goals: core <= {g['core_us_per_task_max']:g} us/task; driver <= {g['driver_us_per_task_max']:g} "
            f"us/task and <= {g['driver_over_gather_max']:g}x gather (✓ met, ✗ missed).\n"
            "S = slots of the single agent (S=N: concurrency never limits). '(report)': building the run "
            "report from the event log, on demand after run(); not included in 'driver'."
        ),
    )
    if doc["langgraph"]:
        lrows = []
        for r in doc["langgraph"]:
            lrows.append(
                [
                    r["shape"],
                    f"{r['n']:,}",
                    escape(r["construction"]),
                    str(r["repeats"]),
                    f"{r['compile_s']:.2f}",
                    fmt_us(r["langgraph_us_per_node"]),
                    fmt_us(r["paragents_driver_us_per_task"]),
                    mark(fmt_ratio(r["langgraph_over_driver"]), r["meets"]["langgraph_over_driver"]),
                ]
            )
        print_table(
            f"LangGraph {doc['machine'].get('langgraph')} vs paragents driver, same graph and N, same process",
            ["shape", "N (LangGraph)", "built with", "best of", "compile s", "LangGraph us/node",
             "paragents driver us/task", "LangGraph / paragents"],
            lrows,
            right_from=3,
            caption=(
                f"Goal: LangGraph / paragents >= {g['langgraph_over_driver_min']:g}x. LangGraph runs at N capped "
                f"per shape ({', '.join(f'{k} {v:,}' for k, v in doc['config']['langgraph_max_n'].items())}); "
                "its compile time is not counted; paragents driver with S = N."
            ),
        )
    elif doc["config"]["langgraph_skipped_reason"]:
        progress(f"LangGraph not measured: {doc['config']['langgraph_skipped_reason']}")
    flat = doc["scaling"]
    if flat:
        srows = [[name, *(fmt_ratio(flat[name].get(s)) for s in SHAPES)] for name in flat]
        print_table(
            "Linearity: per-task cost at the largest N / at the smallest N (1.0x = perfectly flat)",
            ["system", *SHAPES],
            srows,
            caption=(
                "asyncio.gather grows too: past ~10k tasks CPython's cyclic GC walks ever more live objects\n"
                "and the working set leaves the CPU caches. --no-gc switches the GC off during timed runs."
            ),
        )


def plot(doc: dict[str, Any]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    systems = [
        ("core_us_per_task", "core", "tab:blue"),
        ("driver_us_per_task", "driver S=N", "tab:orange"),
        ("driver_slots64_us_per_task", "driver S=64", "tab:red"),
        ("gather_us_per_task", "asyncio.gather", "tab:gray"),
    ]
    styles = {"fanout": ("o", "-"), "chain": ("s", "--"), "random_dag": ("^", ":")}
    for key, label, colour in systems:
        for shape in SHAPES:
            pts = sorted((r["n"], r[key]) for r in doc["paragents"] if r["shape"] == shape)
            if pts:
                marker, ls = styles[shape]
                ax.plot(*zip(*pts), marker=marker, ls=ls, color=colour, label=f"{label} / {shape}")
    for shape in SHAPES:
        pts = sorted((r["n"], r["langgraph_us_per_node"]) for r in doc["langgraph"] if r["shape"] == shape)
        if pts:
            marker, ls = styles[shape]
            ax.plot(*zip(*pts), marker=marker, ls=ls, color="tab:green", label=f"LangGraph / {shape}")
    from matplotlib.ticker import FuncFormatter

    g = doc["goals"]
    band = ax.get_yaxis_transform()  # x in axes fraction, y in data
    for goal, colour, label in (
        (g["core_us_per_task_max"], "tab:blue", "core goal"),
        (g["driver_us_per_task_max"], "tab:orange", "driver goal"),
    ):
        ax.axhline(goal, color=colour, lw=0.8, alpha=0.5)
        ax.text(0.99, goal, f"{label} {goal:g} us", transform=band, color=colour, ha="right", va="bottom", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if str(v)[0] in "235" else ""))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda _v, _pos: ""))
    ax.set_xlabel("tasks in the graph (N)")
    ax.set_ylabel("overhead per task (microseconds, best of runs)")
    m = doc["machine"]
    ax.set_title(f"Per-task overhead vs N (no-op tasks) — Python {m['python']}, {m['cpu_count']} CPUs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.set_size_inches(12, 6)
    return save_figure(fig, "overhead")


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise SystemExit(f"--sizes: expected comma-separated integers, got {text!r}") from None
    if not sizes or sizes[0] < 3:
        raise SystemExit("--sizes: every size must be >= 3")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="numbers of tasks, comma-separated")
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"subset of {','.join(SHAPES)}")
    ap.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    ap.add_argument("--no-langgraph", action="store_true", help="skip the LangGraph comparison")
    ap.add_argument("--repeats", type=int, default=5, help="best of this many runs (default 5)")
    ap.add_argument(
        "--repeats-large", type=int, default=1,
        help=f"runs for N > {LARGE_PARAGENTS:,} (paragents) or > {LARGE_LANGGRAPH:,} (LangGraph) (default 1)",
    )
    ap.add_argument("--lg-max-fanout", type=int, default=10_000, help="largest N for LangGraph's fan-out")
    ap.add_argument("--lg-max-chain", type=int, default=1_000, help="largest N for LangGraph's chain")
    ap.add_argument("--lg-max-dag", type=int, default=1_000, help="largest N for LangGraph's random DAG")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-gc", action="store_true",
        help="switch the cyclic garbage collector off during timed runs (isolates its share at large N)",
    )
    args = ap.parse_args(argv)
    global _NO_GC
    _NO_GC = args.no_gc
    sizes = _parse_sizes(args.sizes)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            raise SystemExit(f"--shapes: unknown shape {s!r} (choose from {', '.join(SHAPES)})")
    lg_max = {"fanout": args.lg_max_fanout, "chain": args.lg_max_chain, "random_dag": args.lg_max_dag}

    skipped = None
    if args.no_langgraph:
        skipped = "--no-langgraph"
    elif langgraph_version() is None:
        skipped = "langgraph is not importable (install the 'bench' extra)"

    machine = machine_info()  # before the run: its load average says how busy the machine was
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    lg_rows: list[dict[str, Any]] = []
    for shape in shapes:
        progress(f"{shape}:")
        for n in sizes:
            reps = args.repeats if n <= LARGE_PARAGENTS else args.repeats_large
            rows.append(run_paragents(shape, n, reps, args.seed))
        if skipped is None:
            extra_driver: dict[int, float] = {}

            def driver_us(n: int, shape: str = shape, extra: dict[int, float] = extra_driver) -> float:
                for r in rows:
                    if r["shape"] == shape and r["n"] == n:
                        return float(r["driver_us_per_task"])
                if n not in extra:  # LangGraph's capped N is not among --sizes: measure it
                    graph = paragents_graph(make_spec(shape, n, args.seed))
                    reps = args.repeats if n <= LARGE_PARAGENTS else args.repeats_large
                    extra[n] = _us(_best(lambda: measure_driver(graph, n), reps), n)
                return extra[n]

            for n in sorted({min(n, lg_max[shape]) for n in sizes}):
                reps = args.repeats if n <= LARGE_LANGGRAPH else args.repeats_large
                lg_rows.append(run_langgraph(shape, n, reps, args.seed, driver_us))

    scaling: dict[str, dict[str, float]] = {}
    for key, name in (
        ("core_us_per_task", "core"),
        ("driver_us_per_task", "driver S=N"),
        ("driver_slots64_us_per_task", "driver S=64"),
        ("gather_us_per_task", "asyncio.gather"),
    ):
        if flat := _flatness(rows, key):
            scaling[name] = flat
    if lg_rows and (flat := _flatness(lg_rows, "langgraph_us_per_node")):
        scaling["LangGraph"] = flat

    doc: dict[str, Any] = {
        "benchmark": "overhead",
        "claim": (
            "paragents' core costs <= 10 us/task; its asyncio driver <= 30 us/task and <= 8x a bare "
            "asyncio.gather; LangGraph costs >= 10x the driver per node on the same graph"
        ),
        "unit": "microseconds per task (best of runs); ratios are dimensionless",
        "machine": machine,
        "config": {
            "sizes": sizes,
            "shapes": shapes,
            "repeats": args.repeats,
            "repeats_large": args.repeats_large,
            "moderate_slots": MODERATE_SLOTS,
            "seed": args.seed,
            "gc_during_timed_runs": not args.no_gc,
            "langgraph_max_n": lg_max,
            "langgraph_skipped_reason": skipped,
            "policies": "Runtime/Scheduler defaults (priority=critical_path, assign=earliest_finish)",
        },
        "goals": GOALS,
        "paragents": rows,
        "langgraph": lg_rows,
        "scaling": scaling,
        "wall_s": None,
    }
    doc["wall_s"] = time.perf_counter() - started
    png = plot(doc)
    path = write_json("overhead", doc, to_stdout=args.json)
    if not args.json:
        print_tables(doc)
        progress(f"wrote {path} and {png} ({doc['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
