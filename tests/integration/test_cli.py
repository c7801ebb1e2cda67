"""The ``paragents`` console script, run for real in a subprocess on the example workflows."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paragents.workflow import load_agents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPT = Path(sys.executable).parent / "paragents"

#: The run report's JSON keys that DESIGN.md makes a public contract.
CONTRACT_KEYS = {
    "run_id", "makespan_s", "critical_path_s", "lower_bound_s", "serial_time_s", "speedup",
    "utilization", "agents", "tasks", "latency", "tokens", "cost",
}


def paragents(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2, nothing on stdout, exactly one ``error:`` line on stderr naming every fragment."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def run_json(*args: str | Path) -> dict[str, Any]:
    proc = paragents("run", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)  # the whole of stdout is one document
    return doc


@pytest.fixture(scope="module")
def research_run() -> dict[str, Any]:
    return run_json(EXAMPLES / "research_report.yaml")


def test_run_json_keeps_the_report_contract(research_run: dict[str, Any]) -> None:
    doc = research_run
    assert CONTRACT_KEYS <= doc.keys()
    assert doc["tasks"]["total"] == doc["tasks"]["done"] == 13
    assert doc["tasks"]["failed"] == 0
    assert set(doc["agents"]) == {"researcher", "analyst", "writer", "critic"}
    for row in doc["agents"].values():
        assert {"utilization", "tasks", "busy_s"} <= row.keys()
    assert set(doc["latency"]) >= {"compute_s", "transfer_s", "processing_s"}
    assert set(doc["tokens"]) >= {"prompt", "completion"}
    assert 0 < doc["utilization"] <= 1
    assert doc["lower_bound_s"] <= doc["makespan_s"] + 1e-6
    assert doc["critical_path_s"] <= doc["lower_bound_s"] + 1e-9
    assert doc["answer"] == doc["results"]["final_report"]
    assert doc["errors"] == {}


def test_run_json_carries_results_of_python_tasks() -> None:
    doc = run_json(EXAMPLES / "code_review.yaml")

    assert doc["tasks"]["done"] == doc["tasks"]["total"] == 11
    counts = doc["results"]["measure"]
    files = {"core/graph.py", "core/scheduler.py", "core/analysis.py", "runtime/limits.py", "backends/simulated.py"}
    assert set(counts) == files
    assert all(n > 0 for n in counts.values())
    assert isinstance(doc["answer"], str) and doc["answer"]


def test_run_prints_a_report_without_json() -> None:
    proc = paragents("run", EXAMPLES / "code_review.yaml", "--backend", "sim")

    assert proc.returncode == 0, proc.stderr
    for label in ("makespan", "critical path", "lower bound", "speedup", "utilisation", "reviewer", "answer"):
        assert label in proc.stdout
    assert "11/11 done" in proc.stderr  # the progress view, on stderr


def test_options_override_the_workflows_policies() -> None:
    doc = run_json(EXAMPLES / "code_review.yaml", "--priority", "fifo", "--assign", "round_robin", "--seed", "5")
    assert doc["tasks"]["done"] == 11


def test_agents_file_replaces_the_workflows_agents(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(
        "backends:\n"
        "  box: {kind: simulated, tokens_per_s: 2000, limits: {max_concurrency: 3}}\n"
        "agents:\n"
        "  - {name: solo, skills: ['*'], backend: box, slots: 3}\n"
    )
    doc = run_json(EXAMPLES / "research_report.yaml", "--agents", team)

    assert list(doc["agents"]) == ["solo"]
    assert doc["agents"]["solo"]["tasks"] == 13


def test_failed_task_exits_1_and_keeps_finished_work(tmp_path: Path) -> None:
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text(
        "policies: {retry: {base_s: 0.01}}\n"
        "backends:\n"
        "  ok: {kind: simulated, ttft_s: 0.01, tokens_per_s: 5000}\n"
        "  down: {kind: simulated, failure_rate: 1.0}\n"
        "agents:\n"
        "  - {name: steady, skills: [a], backend: ok}\n"
        "  - {name: broken, skills: [b], backend: down}\n"
        "tasks:\n"
        "  - {id: first, skills: [a]}\n"
        "  - {id: doomed, skills: [b], retries: 1}\n"
        "  - {id: after, skills: [a], depends_on: [first, doomed]}\n"
    )
    proc = paragents("run", flaky, "--json")

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    counts = {k: doc["tasks"][k] for k in ("total", "done", "failed", "cancelled", "retried")}
    assert counts == {"total": 3, "done": 1, "failed": 1, "cancelled": 1, "retried": 1}
    assert set(doc["results"]) == {"first"}
    assert doc["errors"] == {"doomed": "sim://down: injected failure"}


def test_graph_json_names_the_critical_path() -> None:
    proc = paragents("graph", EXAMPLES / "research_report.yaml", "--json")

    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["critical_path"][0] == "scope" and doc["critical_path"][-1] == "final_report"
    assert doc["critical_path_s"] == pytest.approx(sum(
        row["duration_s"] for row in doc["per_task"] if row["id"] in doc["critical_path"]
    ))
    assert 0 < doc["lower_bound_s"] <= doc["critical_path_s"]
    assert len(doc["per_task"]) == doc["tasks"] == 13
    by_id = {row["id"]: row for row in doc["per_task"]}
    assert all(by_id[t]["critical"] for t in doc["critical_path"])
    assert by_id["research_regulation"]["slack_s"] > 0


def test_graph_prints_tables() -> None:
    proc = paragents("graph", EXAMPLES / "code_review.yaml")

    assert proc.returncode == 0, proc.stderr
    assert "measure -> plan_review -> review_scheduler" in proc.stdout
    assert "lower bound" in proc.stdout


def test_bad_yaml_exits_2_with_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\ntasks:\n  - {id: a, depends_on: [b\n")

    line = assert_one_error_line(paragents("run", bad), "bad.yaml", "invalid YAML at line 4")
    assert line == assert_one_error_line(paragents("graph", bad))


def test_cyclic_workflow_exits_2_naming_the_cycle(tmp_path: Path) -> None:
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text(
        "tasks:\n"
        "  - {id: draft, depends_on: [review]}\n"
        "  - {id: review, depends_on: [edit]}\n"
        "  - {id: edit, depends_on: [draft]}\n"
    )
    line = assert_one_error_line(paragents("run", cyclic, "--json"), "cycle in task graph")
    assert all(t in line for t in ("draft", "review", "edit"))


def test_unknown_key_exits_2_naming_it(tmp_path: Path) -> None:
    wf = tmp_path / "typo.yaml"
    wf.write_text("tasks:\n  - {id: a, dependson: []}\n")
    assert_one_error_line(paragents("graph", wf), "tasks[0] (id 'a'): unknown key 'dependson'; allowed:")


def test_missing_file_exits_2() -> None:
    assert_one_error_line(paragents("run", "missing/workflow.yaml"), "no such workflow file: 'missing/workflow.yaml'")
    assert_one_error_line(paragents("graph", "nothing.yaml"), "no such file: 'nothing.yaml'")


def test_plan_command_prints_a_valid_plan_from_the_bundled_model() -> None:
    proc = paragents("plan", "Write a short guide to composting", "--max-tasks", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    ids = [t["id"] for t in doc["tasks"]]
    assert 1 <= len(ids) <= 4 and doc["attempts"] >= 1
    assert all(dep in ids for t in doc["tasks"] for dep in t["depends_on"])


def test_team_command_prints_the_default_team_that_loads(tmp_path: Path) -> None:
    proc = paragents("team")
    assert proc.returncode == 0
    team = tmp_path / "team.yaml"
    team.write_text(proc.stdout)
    names = [a.name for a in load_agents(team).agents]
    assert names == ["planner", "researcher", "analyst", "writer", "critic"]


def test_usage_errors_exit_2() -> None:
    proc = paragents("run", EXAMPLES / "code_review.yaml", "--priority", "fastest")
    assert proc.returncode == 2
    assert "fastest" in proc.stderr and "Traceback" not in proc.stderr


def test_version() -> None:
    proc = paragents("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("paragents, version ")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery is POSIX")
def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path) -> None:
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        "backends:\n  slow: {kind: simulated, ttft_s: 60}\n"
        "tasks:\n  - {id: wait, prompt: wait}\n  - {id: after, depends_on: [wait]}\n"
    )
    proc = subprocess.Popen(
        [str(SCRIPT), "run", str(slow)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start background jobs with SIGINT ignored; the child must see it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=3)  # still running after start-up: the run is waiting on the model
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted"
