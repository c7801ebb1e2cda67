"""Planner validity with the bundled model, and the wall time of the main job.

Claims measured:

1. **Validity** — for 20 realistic goals, the share of plans from the bundled
   SmolLM2-135M (constrained decoding under the plan schema, the default team's skills)
   that were valid on the first try as written, valid after the parser's repairs (first
   answer or a later attempt of the repair conversation), or failed with a PlanError.
2. **Main job** — the wall time of the README's main-job command, ``paragents run
   "<goal>"`` in a subprocess (process start, model load, planning, parallel execution,
   merge), with its run report's speedup over serial and utilisation.

Usage: ``python benchmarks/planner_validity.py [--goals N] [--json]``.  Writes
``results/planner_validity.json`` and ``results/planner_validity.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine_info, pyplot, print_table, progress, save_figure, write_json

from paragents.cli import DEFAULT_TEAM
from paragents.core.errors import PlanError
from paragents.goal import planner_for
from paragents.workflow import load_agents

GOALS = [
    "Plan a three-day trip to Lisbon on a budget",
    "Write a market research brief on electric bikes in Europe",
    "Review a pull request that adds caching to a web API",
    "Compare three note-taking apps for a small team",
    "Prepare a one-week study plan for a statistics exam",
    "Draft a launch announcement for a new open-source library",
    "Estimate the cost of running a small LLM on edge devices",
    "Plan a birthday party for twenty guests",
    "Summarise the pros and cons of remote work for a startup",
    "Design a weekly meal plan for a vegetarian family of four",
    "Write a short report on solar panels for a house",
    "Plan the migration of a website from one host to another",
    "Research the best time to visit Japan and write advice",
    "Create an onboarding checklist for a new software engineer",
    "Compare renting and buying a flat in a large city",
    "Write a product description for a reusable water bottle",
    "Plan a small conference of one hundred people",
    "Analyse customer complaints and propose three fixes",
    "Prepare interview questions for a data analyst role",
    "Write a beginner's guide to keeping houseplants alive",
]

MAIN_JOB_GOAL = "Plan a three-day trip to Lisbon on a budget"


async def validity(goals: list[str]) -> list[dict[str, Any]]:
    team = load_agents(DEFAULT_TEAM.read_text(encoding="utf-8"))
    _, planner = planner_for(team.agents, max_tasks=6)
    rows: list[dict[str, Any]] = []
    try:
        for i, goal in enumerate(goals, 1):
            progress(f"plan {i}/{len(goals)}: {goal}")
            started = time.perf_counter()
            try:
                plan = await planner.plan(goal)
                outcome = "first try" if planner.stats.first_try_valid else "after repair"
                tasks = len(plan.tasks)
                repairs = len(plan.repairs)
            except PlanError:
                outcome, tasks, repairs = "failed", 0, 0
            rows.append(
                {
                    "goal": goal,
                    "outcome": outcome,
                    "attempts": planner.stats.attempts,
                    "tasks": tasks,
                    "repairs": repairs,
                    "seconds": time.perf_counter() - started,
                    "completion_tokens": planner.stats.completion_tokens,
                }
            )
    finally:
        for backend in {id(a.backend): a.backend for a in team.agents}.values():
            await backend.aclose()  # type: ignore[union-attr]
    return rows


def main_job() -> dict[str, Any]:
    """``paragents run "<goal>" --json`` in a subprocess, timed from outside."""
    script = Path(sys.executable).with_name("paragents")
    progress(f'main job: paragents run "{MAIN_JOB_GOAL}"')
    started = time.perf_counter()
    proc = subprocess.run([str(script), "run", MAIN_JOB_GOAL, "--json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return {
        "command": f'paragents run "{MAIN_JOB_GOAL}"',
        "exit_code": proc.returncode,
        "wall_s": wall,
        "makespan_s": report.get("makespan_s"),
        "serial_time_s": report.get("serial_time_s"),
        "speedup": report.get("speedup"),
        "utilization": report.get("utilization"),
        "tasks": report.get("tasks"),
        "tokens": report.get("tokens"),
        "planned_tasks": len((report.get("plan") or {}).get("tasks", [])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=len(GOALS), help="how many of the 20 goals to plan")
    parser.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    args = parser.parse_args()
    rows = asyncio.run(validity(GOALS[: args.goals]))
    job = main_job()
    n = len(rows)
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("first try", "after repair", "failed")}
    doc = {
        "machine": machine_info(),
        "model": "SmolLM2-135M-Instruct Q4_1 (bundled), llama.cpp, constrained decoding",
        "goals": n,
        "valid_first_try": counts["first try"] / n,
        "valid_after_repair": counts["after repair"] / n,
        "failed": counts["failed"] / n,
        "mean_seconds_per_plan": sum(r["seconds"] for r in rows) / n,
        "plans": rows,
        "main_job": job,
    }
    write_json("planner_validity", doc, to_stdout=args.json)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(counts), [100 * v / n for v in counts.values()], color=["#2a9d8f", "#e9c46a", "#e76f51"])
    ax.set_ylabel("% of plans")
    ax.set_title(f"Plans from the bundled 135M model, {n} goals")
    save_figure(fig, "planner_validity")
    if args.json:
        return
    print_table(
        "planner validity (bundled SmolLM2-135M)",
        ["goal", "outcome", "attempts", "tasks", "repairs", "s"],
        [[r["goal"], r["outcome"], str(r["attempts"]), str(r["tasks"]), str(r["repairs"]), f"{r['seconds']:.1f}"] for r in rows],
        caption=(
            f"valid first try {counts['first try']}/{n}, after repair {counts['after repair']}/{n}, "
            f"failed {counts['failed']}/{n}"
        ),
    )
    print_table(
        "main job",
        ["command", "exit", "wall s", "makespan s", "serial s", "speedup", "utilisation", "planned tasks"],
        [
            [
                job["command"],
                str(job["exit_code"]),
                f"{job['wall_s']:.1f}",
                f"{job['makespan_s'] or 0:.1f}",
                f"{job['serial_time_s'] or 0:.1f}",
                f"{job['speedup'] or 0:.2f}x",
                f"{100 * (job['utilization'] or 0):.0f}%",
                str(job["planned_tasks"]),
            ]
        ],
        caption="goal: under 2 minutes on this 2-core machine after install",
    )


if __name__ == "__main__":
    main()
