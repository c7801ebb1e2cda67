"""Uneven parallel branches: dataflow dispatch (paragents) vs supersteps (LangGraph).

Claim measured
--------------
paragents starts a task the moment its inputs are done, so parallel branches of unequal
step lengths finish in ``ideal = max over branches of (sum of the branch's step times)``.
LangGraph runs a graph in lock-step supersteps: a branch's next node waits for the slowest
node of the current step in every other branch, so its makespan approaches
``sum over steps k of (max over branches of step k's time)``, above the ideal whenever
step boundaries do not line up.

How
---
Each scenario is a set of branches; a branch is a chain of steps, each step an
``asyncio.sleep`` of a given length; every branch starts at once and one join task/node
(no work) waits for all of them.  The same scenario runs, in one process:

* in paragents: ``Runtime(graph, [Agent("worker", slots=<branches>)]).run()``, each task
  an async callable that sleeps (enough slots that no step ever waits for an agent);
* in LangGraph: a ``StateGraph`` with one ``add_edge(START, first step)`` per branch,
  ``add_edge`` between consecutive steps, ``add_edge([last steps...], "join")``, async
  nodes that sleep.

Makespan is wall time inside the running event loop around ``run()`` / ``ainvoke``; the
table shows the median of ``--repeats`` runs (min and max are in the JSON), its ratio to
the ideal, and the superstep model's prediction for LangGraph.  ``--scale`` multiplies every
step (e.g. ``--scale 10`` for LLM-like second-long steps; the ratios should not move).

Scenarios:

``4 branches``  totals 0.1 / 0.2 / 0.3 / 0.4 s with steps of different lengths and counts,
                so that no two branches' step boundaries line up.
``8 branches``  2 to 6 steps per branch, each 10 to 80 ms, drawn with a fixed seed.

Results go to ``benchmarks/results/uneven_branches.json`` and ``uneven_branches.png``.

Run:  .venv/bin/python benchmarks/uneven_branches.py [--json] [--no-langgraph] [--repeats 5] [--scale 1]
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
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
from paragents.core.graph import Task, TaskGraph  # noqa: E402
from paragents.runtime.driver import Runtime  # noqa: E402

#: paragents should be within this factor of the ideal (timer granularity, dispatch).
PARAGENTS_MAX_OVER_IDEAL = 1.05


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    branches: tuple[tuple[float, ...], ...]  # seconds of each step, per branch

    def scaled(self, factor: float) -> Scenario:
        return Scenario(self.name, tuple(tuple(s * factor for s in b) for b in self.branches))

    @property
    def ideal_s(self) -> float:
        """Dataflow makespan: the longest branch (the join does no work)."""
        return max(sum(b) for b in self.branches)

    @property
    def superstep_s(self) -> float:
        """Lock-step makespan: each step lasts as long as its slowest branch."""
        depth = max(len(b) for b in self.branches)
        return sum(max((b[k] for b in self.branches if k < len(b)), default=0.0) for k in range(depth))

    @property
    def tasks(self) -> int:
        return sum(len(b) for b in self.branches) + 1


def scenarios() -> list[Scenario]:
    four = Scenario(
        "4 branches, 0.1-0.4 s",
        (
            (0.06, 0.01, 0.03),  # 0.1 s
            (0.01, 0.12, 0.02, 0.05),  # 0.2 s
            (0.03, 0.03, 0.18, 0.06),  # 0.3 s
            (0.08, 0.08, 0.08, 0.08, 0.08),  # 0.4 s
        ),
    )
    rng = random.Random(0)
    eight = Scenario(
        "8 branches, random (seed 0)",
        tuple(tuple(rng.randint(10, 80) / 1000 for _ in range(rng.randint(2, 6))) for _ in range(8)),
    )
    return [four, eight]


def _sleeper(seconds: float) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        await asyncio.sleep(seconds)

    return step


def _lg_sleeper(seconds: float) -> Callable[[Any], Awaitable[None]]:
    async def node(state: Any) -> None:
        await asyncio.sleep(seconds)

    return node


async def _nothing() -> None:
    return None


async def _lg_nothing(state: Any) -> None:
    return None


# --------------------------------------------------------------------------- paragents
def paragents_graph(sc: Scenario) -> TaskGraph:
    tasks: list[Task] = []
    lasts: list[str] = []
    for b, steps in enumerate(sc.branches):
        prev: tuple[str, ...] = ()
        for k, seconds in enumerate(steps):
            tid = f"b{b}s{k}"
            tasks.append(Task(tid, depends_on=prev, duration=seconds, action=_sleeper(seconds)))
            prev = (tid,)
        lasts.extend(prev)
    tasks.append(Task("join", depends_on=tuple(lasts), duration=0.0, action=_nothing))
    return TaskGraph(tasks)


def run_paragents(sc: Scenario) -> float:
    graph = paragents_graph(sc)

    async def main() -> float:
        t0 = time.perf_counter()
        result = await Runtime(graph, [Agent("worker", slots=len(sc.branches))]).run()
        elapsed = time.perf_counter() - t0
        if result.report.tasks["done"] != sc.tasks:
            raise RuntimeError(f"paragents run incomplete: {result.report.tasks}")
        return elapsed

    return asyncio.run(main())


# --------------------------------------------------------------------------- LangGraph
class _LGState(TypedDict, total=False):
    out: Annotated[list[Any], operator.add]


def langgraph_graph(sc: Scenario) -> Any:
    from langgraph.graph import END, START, StateGraph

    g: Any = StateGraph(_LGState)
    lasts: list[str] = []
    for b, steps in enumerate(sc.branches):
        prev = START
        for k, seconds in enumerate(steps):
            node = f"b{b}s{k}"
            g.add_node(node, _lg_sleeper(seconds))
            g.add_edge(prev, node)
            prev = node
        lasts.append(prev)
    g.add_node("join", _lg_nothing)
    g.add_edge(lasts, "join")  # wait for every branch
    g.add_edge("join", END)
    return g.compile()


def run_langgraph(compiled: Any) -> float:
    async def main() -> float:
        t0 = time.perf_counter()
        await compiled.ainvoke({}, {"recursion_limit": 1_000})
        return time.perf_counter() - t0

    return asyncio.run(main())


# ----------------------------------------------------------------------------- report
def _stats(samples: Sequence[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "samples_s": list(samples),
    }


def measure(sc: Scenario, repeats: int, with_langgraph: bool) -> dict[str, Any]:
    progress(f"{sc.name}: paragents x{repeats}")
    run_paragents(sc)  # warm-up (imports, first-call caches); not counted
    pa = [run_paragents(sc) for _ in range(repeats)]
    row: dict[str, Any] = {
        "scenario": sc.name,
        "branches": [list(b) for b in sc.branches],
        "branch_totals_s": [sum(b) for b in sc.branches],
        "tasks": sc.tasks,
        "ideal_s": sc.ideal_s,
        "superstep_model_s": sc.superstep_s,
        "paragents": _stats(pa),
        "langgraph": None,
    }
    row["paragents"]["over_ideal"] = row["paragents"]["median_s"] / sc.ideal_s
    row["paragents"]["meets"] = row["paragents"]["over_ideal"] <= PARAGENTS_MAX_OVER_IDEAL
    if with_langgraph:
        progress(f"{sc.name}: LangGraph x{repeats}")
        compiled = langgraph_graph(sc)
        run_langgraph(compiled)  # warm-up
        lg = [run_langgraph(compiled) for _ in range(repeats)]
        row["langgraph"] = _stats(lg)
        row["langgraph"]["over_ideal"] = row["langgraph"]["median_s"] / sc.ideal_s
        row["langgraph"]["over_superstep_model"] = row["langgraph"]["median_s"] / sc.superstep_s
        row["langgraph_over_paragents"] = row["langgraph"]["median_s"] / row["paragents"]["median_s"]
    return row


def print_tables(doc: dict[str, Any]) -> None:
    def x2(value: float) -> str:  # two decimals: these ratios sit near 1
        return f"{value:.2f}x"

    rows = []
    for r in doc["results"]:
        pa, lg = r["paragents"], r["langgraph"]
        rows.append(
            [
                r["scenario"],
                "/".join(f"{t:.2f}" for t in r["branch_totals_s"]),
                str(r["tasks"]),
                f"{r['ideal_s']:.3f}",
                f"{pa['median_s']:.3f}",
                mark(x2(pa["over_ideal"]), pa["meets"]),
                f"{r['superstep_model_s']:.3f}",
                f"{lg['median_s']:.3f}" if lg else "—",
                x2(lg["over_ideal"]) if lg else "—",
                x2(r["langgraph_over_paragents"]) if lg else "—",
            ]
        )
    lgv = doc["machine"].get("langgraph")
    print_table(
        f"Makespan of uneven parallel branches (seconds, median of {doc['config']['repeats']} runs; "
        f"scale {doc['config']['scale']:g}; LangGraph {lgv or 'not measured'})",
        [
            "scenario", "branch totals (s)", "tasks", "ideal", "paragents", "/ideal",
            "superstep model", "LangGraph", "/ideal", "LG/paragents",
        ],
        rows,
        right_from=2,
        caption=(
            "ideal = max over branches of the branch's total (dataflow: each step starts when the previous one "
            "ends).\nsuperstep model = sum over steps of the slowest branch's step (lock-step execution). "
            f"Goal: paragents/ideal <= {PARAGENTS_MAX_OVER_IDEAL:g} (✓ met, ✗ missed)."
        ),
    )


def plot(doc: dict[str, Any]) -> Path:
    plt = pyplot()
    results = doc["results"]
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.25
    xs = range(len(results))
    series = [
        ("ideal (longest branch)", "tab:gray", [r["ideal_s"] for r in results], None),
        ("paragents", "tab:orange", [r["paragents"]["median_s"] for r in results], [r["paragents"] for r in results]),
    ]
    if any(r["langgraph"] for r in results):
        series.append(
            (
                "LangGraph",
                "tab:green",
                [r["langgraph"]["median_s"] if r["langgraph"] else 0.0 for r in results],
                [r["langgraph"] for r in results],
            )
        )
    for i, (label, colour, values, stats) in enumerate(series):
        pos = [x + (i - (len(series) - 1) / 2) * width for x in xs]
        bars = ax.bar(pos, values, width, label=label, color=colour)
        if stats is not None:
            lo = [v - (s["min_s"] if s else v) for v, s in zip(values, stats)]
            hi = [(s["max_s"] if s else v) - v for v, s in zip(values, stats)]
            ax.errorbar(pos, values, yerr=[lo, hi], fmt="none", ecolor="black", capsize=3, lw=0.8)
            for bar, r, s in zip(bars, results, stats):
                if s:
                    ax.annotate(
                        f"{s['over_ideal']:.2f}x ideal", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8,
                    )
    for x, r in zip(xs, results):
        ax.hlines(r["superstep_model_s"], x - 1.5 * width, x + 1.5 * width, colors="tab:green", linestyles="dashed", lw=1)
    ax.plot([], [], color="tab:green", ls="dashed", lw=1, label="superstep model (sum of per-step maxima)")
    ax.set_xticks(list(xs), [r["scenario"] for r in results])
    ax.set_ylabel("makespan (s), median; bars: min..max")
    m = doc["machine"]
    ax.set_title(f"Uneven parallel branches: makespan vs ideal — Python {m['python']}, scale {doc['config']['scale']:g}")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0, max(max(s[2]) for s in series) * 1.25)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, "uneven_branches")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    ap.add_argument("--no-langgraph", action="store_true", help="skip LangGraph")
    ap.add_argument("--repeats", type=int, default=5, help="runs per system and scenario; the median is reported")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every step's duration by this")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.scale <= 0:
        raise SystemExit("--repeats must be >= 1 and --scale > 0")
    machine = machine_info()
    skipped = None
    if args.no_langgraph:
        skipped = "--no-langgraph"
    elif langgraph_version() is None:
        skipped = "langgraph is not importable (install the 'bench' extra)"
        progress(f"LangGraph not measured: {skipped}")

    started = time.perf_counter()
    results = [measure(sc.scaled(args.scale), args.repeats, skipped is None) for sc in scenarios()]
    doc: dict[str, Any] = {
        "benchmark": "uneven_branches",
        "claim": (
            "with uneven parallel branches, paragents' makespan is ~ the longest branch (ideal); LangGraph's "
            "supersteps make it ~ the sum over steps of the slowest branch's step"
        ),
        "unit": "seconds (median of runs); ratios are dimensionless",
        "machine": machine,
        "config": {
            "repeats": args.repeats,
            "scale": args.scale,
            "langgraph_skipped_reason": skipped,
            "paragents_goal_max_over_ideal": PARAGENTS_MAX_OVER_IDEAL,
            "paragents_agents": "one Agent with slots = number of branches; default policies",
        },
        "results": results,
        "wall_s": time.perf_counter() - started,
    }
    png = plot(doc)
    path = write_json("uneven_branches", doc, to_stdout=args.json)
    if not args.json:
        print_tables(doc)
        progress(f"wrote {path} and {png} ({doc['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
