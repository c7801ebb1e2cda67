"""Smoke test of benchmarks/adaptive.py: the quick run prints one JSON document."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "adaptive.py"


def test_quick_json_names_each_scenario_and_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(_PATH.parent))
    spec = importlib.util.spec_from_file_location("bench_adaptive_smoke", _PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sc = doc["scenarios"]
    assert set(sc) == {"stragglers", "rate_limit", "misestimation"}
    assert {"p99_latency_s", "makespan_s", "extra_calls"} <= set(sc["stragglers"]["hedging"])
    assert {"throughput_rpm", "failed_429"} <= set(sc["rate_limit"]["aimd"])
    assert "makespan_s" in sc["misestimation"]["reestimated"]
