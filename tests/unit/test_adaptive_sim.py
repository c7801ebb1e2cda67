"""The three adaptive effects in the simulator, on fixed seeds, with wide margins."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "adaptive.py"
sys.path.insert(0, str(_PATH.parent))
_spec = importlib.util.spec_from_file_location("bench_adaptive_scenarios", _PATH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SEEDS = (0, 1, 2)


def test_hedging_cuts_the_p99_task_latency_of_stragglers_with_few_extra_calls() -> None:
    off = [bench.straggler_run(s, False, 60) for s in SEEDS]
    on = [bench.straggler_run(s, True, 60) for s in SEEDS]
    p99_off = statistics.fmean(r["p99_latency_s"] for r in off)
    p99_on = statistics.fmean(r["p99_latency_s"] for r in on)
    assert p99_on < 0.85 * p99_off
    assert all(0 < r["extra_calls"] <= 0.10 for r in on)


def test_aimd_keeps_429s_from_failing_tasks_and_throughput_near_the_limit() -> None:
    off = [bench.rate_limit_run(s, False, 400) for s in SEEDS]
    on = [bench.rate_limit_run(s, True, 400) for s in SEEDS]
    # Without AIMD the endpoint answers a storm of 429s; throttled retries absorb most of
    # it, but not all.  With AIMD few 429s are sent and none fails a task.
    assert sum(r["failed_429"] for r in off) > 0
    assert all(r["failed_429"] == 0 for r in on)
    assert all(r["responses_429"] < 0.2 * o["responses_429"] for r, o in zip(on, off, strict=True))
    assert statistics.fmean(r["throughput_vs_R"] for r in on) > 0.7


def test_online_reestimation_does_not_lengthen_a_misestimated_run() -> None:
    fixed = [bench.misestimate_run(s, False)["makespan_s"] for s in SEEDS]
    learned = [bench.misestimate_run(s, True) for s in SEEDS]
    assert all(r["reestimates"] >= 1 for r in learned)
    assert statistics.fmean(r["makespan_s"] for r in learned) < statistics.fmean(fixed)
