"""Smoke test of ``benchmarks/gpu_allocation.py --quick --json`` (writes no result file)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from paragents.sim.serverless import ServerlessAgent

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_allocation.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_allocation_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_quick_json_run_prints_one_document_with_every_allocator_and_ratio(bench, capsys):
    results = BENCH.parent / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("gpu_allocation.*")}
    assert bench.main(["--quick", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["benchmark"] == "gpu_allocation"
    assert {"machine", "config", "goals", "results", "wall_s"} <= set(doc)
    assert doc["config"]["quick"] is True
    assert len(doc["results"]) == len(doc["config"]["loads"])
    for res in doc["results"]:
        assert set(res["allocators"]) == set(bench.ALLOCATORS)
        for cell in res["allocators"].values():
            assert {
                "mean_s",
                "p95_s",
                "p99_s",
                "throughput_rps",
                "cost_gpu_s",
                "utilization",
                "sla_violations",
                "cold_starts",
            } <= set(cell)
        assert {"rr_mean_reduction", "throughput_ratio", "p99_ratio"} <= set(res["ratios"])
        assert set(res["ideal"]) == set(bench.IDEALS)
        for name, cell in res["ideal"].items():
            assert cell["mean_s"] > 0 and cell["p99_s"] > 0
            assert f"rr_mean_reduction_{name}" in res["ratios"]
    assert {p: p.stat().st_mtime_ns for p in results.glob("gpu_allocation.*")} == before


# A slow agent (10 requests/s on the whole GPU) with one request of 0.1 GPU-seconds at
# t = 0, a fast one (100/s) with one of 0.01 at t = 0.01.  Each has a minimum of 0.5.
AGENTS = (
    ServerlessAgent("fast", 0.5, 1, 100.0, 0.0),
    ServerlessAgent("slow", 0.5, 1, 10.0, 0.0),
)
TRACES = {"fast": ((0.01,), (0.01,)), "slow": ((0.0,), (0.1,))}


def test_the_ideal_server_preempts_for_the_faster_agent(bench):
    # Slow alone until 0.01 (0.09 left); fast takes the whole GPU until 0.02; slow ends
    # at 0.11.
    latencies = bench.ideal_latencies(AGENTS, TRACES, minimums=False)
    assert latencies == pytest.approx([0.01, 0.11])


def test_the_ideal_server_with_minimums_shares_while_both_have_work(bench):
    # Slow alone at the whole GPU until 0.01 (0.09 left); then 0.5 each: fast ends at
    # 0.03 (latency 0.02), slow has 0.08 left and ends alone at 0.11.
    latencies = bench.ideal_latencies(AGENTS, TRACES, minimums=True)
    assert latencies == pytest.approx([0.02, 0.11])
