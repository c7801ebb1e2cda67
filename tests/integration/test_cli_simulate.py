"""``paragents simulate`` and ``paragents bench``, run for real in a subprocess."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_cli import CONTRACT_KEYS, EXAMPLES, assert_one_error_line, paragents


def simulate_json(*args: str) -> dict[str, Any]:
    proc = paragents("simulate", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_one_request_on_a_shared_server_reports_the_contract_and_the_server() -> None:
    doc = simulate_json("complex", "--agents", "4")
    assert CONTRACT_KEYS <= doc.keys()
    assert doc["tasks"]["total"] == doc["tasks"]["done"] == 16
    assert doc["servers"]["gpu"]["calls"] == 16
    assert doc["makespan_s"] >= doc["lower_bound_s"] > 0


def test_a_request_stream_is_reproduced_by_its_seed() -> None:
    args = ("stream", "-p", "count=20", "-p", "jitter=0.3", "-p", "failures=0.05", "--seed", "3")
    first, again = simulate_json(*args), simulate_json(*args)
    assert first["requests"]["completed"] == 20
    assert first["makespan_s"] == again["makespan_s"]
    assert first["requests"] == again["requests"]
    other = simulate_json(*args[:-1], "4")
    assert other["makespan_s"] != first["makespan_s"]


def test_policies_change_a_trace_schedule_and_never_beat_the_lower_bound() -> None:
    speeds = ("--speeds", "1,1,2,2,4,4,8,8")
    fifo = simulate_json("pegasus:epigenomics", *speeds, "--priority", "fifo", "--assign", "round_robin")
    best = simulate_json("pegasus:epigenomics", *speeds, "--priority", "critical_path", "--assign", "earliest_finish")
    assert fifo["tasks"]["done"] == best["tasks"]["done"] == 41
    assert best["makespan_s"] < fifo["makespan_s"]
    assert best["makespan_s"] >= best["lower_bound_s"] * (1 - 1e-9)


def test_a_workflow_file_simulates_with_its_own_agents() -> None:
    doc = simulate_json(str(EXAMPLES / "research_report.yaml"))
    assert doc["tasks"]["done"] == 13
    assert {a["name"] for a in doc["pool"]} == {"researcher", "analyst", "writer", "critic"}
    assert doc["workload"].endswith("research_report.yaml")


def test_serverless_reports_latency_percentiles_and_sla_for_an_allocator() -> None:
    doc = simulate_json("serverless", "--allocator", "adaptive", "-p", "duration=3")
    assert doc["allocator"] == "adaptive"
    overall = doc["overall"]
    assert overall["completed"] > 0 and overall["p99_s"] >= overall["p95_s"] >= 0
    assert set(doc["agents"]) == {"coordinator", "nlp", "vision", "reasoning"}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("nonsense",), ("unknown workload 'nonsense'",)),
        (("stream", "-p", "speed=3"), ("unknown parameter 'speed'", "rate")),
        (("stream", "-p", "rate=fast"), ("rate='fast'",)),
        (("layered", "-p", "server=gpu9"), ("server='gpu9'",)),
        (("pegasus:nope",), ("pegasus:nope",)),
        (("complex", "--allocator", "lp"), ("serverless workload only",)),
        (("serverless", "--allocator", "magic"), ("unknown allocator 'magic'",)),
        (("complex", "--speeds", "1,x"), ("--speeds",)),
    ],
)
def test_bad_input_is_one_clear_error(args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_one_error_line(paragents("simulate", *args), *fragments)


def test_bench_runs_a_benchmark_script_and_refuses_unknown_names() -> None:
    proc = paragents("bench", "dyntask", "--quick", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["benchmark"] == "dyntask" and set(doc["execution"]) == {"simple", "medium", "complex"}
    assert_one_error_line(paragents("bench", "nope"), "unknown benchmark 'nope'", "dyntask")


def test_injected_failures_are_retried_unless_retries_are_off() -> None:
    args = ("layered", "-p", "width=10", "-p", "depth=6", "-p", "failures=0.1", "--seed", "1")
    retried = simulate_json(*args)
    assert retried["tasks"]["done"] == 60 and retried["tasks"]["retried"] > 0
    no_retry = simulate_json(*args, "-p", "retries=0")
    assert no_retry["tasks"]["failed"] > 0 and no_retry["tasks"]["done"] < 60
