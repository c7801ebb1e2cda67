"""Smoke test of ``benchmarks/gpu_allocation.py --quick --json`` (writes no result file)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

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
    assert {p: p.stat().st_mtime_ns for p in results.glob("gpu_allocation.*")} == before
