"""Smoke test of ``benchmarks/makespan.py --quick``: the paragents side and the lower
bounds only (saga's HEFT, CPOP and optimum run in the full benchmark, ``make bench``)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "makespan.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("makespan_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_one_json_document_and_writes_no_results(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark()
    results = BENCH.parent / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("makespan.*")}
    assert bench.main(["--quick", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # exactly one document: json.loads refuses trailing text
    assert doc["quick"] is True
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("makespan.*")} == before
    pairs = len(doc["config"]["priorities"]) * len(doc["config"]["assigns"])
    assert [r["name"] for r in doc["traces"]] == list(bench.QUICK_TRACES)
    for row in [*doc["traces"], *doc["layered"]]:
        assert len(row["paragents_s"]) == pairs == 24
        assert all(m >= row["lower_bound_s"] - 1e-9 for m in row["paragents_s"].values())
        assert row["best_over_lb"] >= 1.0 - 1e-9
        assert "heft_s" not in row  # saga is not run in quick mode
    assert doc["traces_summary"]["fixed_pair"] in doc["traces"][0]["paragents_s"]
    assert len(doc["small"]) == 3 and doc["small_summary"] == {}


def test_saga_schedules_are_checked_independently() -> None:
    bench = load_benchmark()
    from paragents.core.graph import Task, TaskGraph

    graph = TaskGraph([Task("a", duration=2.0), Task("b", duration=4.0, depends_on=("a",))])
    good = {"makespan": 3.0, "schedule": [["a", "a1", 0.0, 1.0], ["b", "a1", 1.0, 3.0]]}
    assert bench.verify(graph, (1.0, 2.0), good, "ok") == 3.0
    early = {"makespan": 2.5, "schedule": [["a", "a1", 0.0, 1.0], ["b", "a0", 0.5, 4.5]]}
    with pytest.raises(AssertionError, match="before input"):
        bench.verify(graph, (1.0, 2.0), {**early, "makespan": 4.5}, "early")
    wrong = {"makespan": 2.0, "schedule": good["schedule"]}
    with pytest.raises(AssertionError, match="saga says makespan"):
        bench.verify(graph, (1.0, 2.0), wrong, "wrong")
