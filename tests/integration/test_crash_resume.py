"""Crash and resume for real: ``paragents run`` killed with SIGKILL, ``runs resume`` finishes it.

A 50-task workflow on a deterministic simulated backend runs in a subprocess that
records to a store; the test watches the store and kills the process once a number of
results (drawn from the seed) are durable.  ``paragents runs resume`` must then finish
the run: every task done, no task that had a stored result dispatched again, the final
results equal to an uninterrupted run's, and ``runs check`` consistent.  The same runs
against PostgreSQL, with a server of the test's own.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_cli import ROOT, SCRIPT

from paragents.store import open_store

N_TASKS = 50


def workflow_yaml() -> str:
    """Five layers of ten tasks; each task depends on two of the layer before."""
    rng = random.Random(0)
    lines = [
        "name: crash-test",
        "policies: {priority: critical_path, assign: earliest_finish, seed: 0}",
        "backends:",
        "  sim: {kind: simulated, ttft_s: 0.01, tokens_per_s: 400, jitter: 0.0, seed: 1}",  # a run of ~2.5 s
        "context: {enabled: false}  # each task sees only its inputs: results are a function of them",
        "agents:",
        "  - {name: a, backend: sim, slots: 3}",
        "  - {name: b, backend: sim, slots: 3}",
        "tasks:",
    ]
    for layer in range(5):
        for i in range(10):
            tid = f"t{layer}_{i}"
            deps = [f"t{layer - 1}_{j}" for j in rng.sample(range(10), 2)] if layer else []
            lines.append(f"  - {{id: {tid}, prompt: 'Step {tid} of the job', tokens: {rng.randint(40, 160)},"
                         f" depends_on: [{', '.join(deps)}]}}")
    return "\n".join(lines) + "\n"


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def results_in(url: str, run_id: str) -> int:
    """How many results are durable (a reader on its own connection, as another process)."""
    try:
        with open_store(url) as store:
            return len(store.load_run(run_id).results)
    except Exception:  # the run row may not exist yet
        return 0


def kill_after(args: list[str], ready: Callable[[], bool], deadline_s: float = 60) -> int:
    proc = subprocess.Popen([str(SCRIPT), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and proc.poll() is None and not ready():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "crash.yaml"
    path.write_text(workflow_yaml())
    return path


@pytest.fixture(scope="module")
def uninterrupted(workflow: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    proc = cli("run", workflow, "--no-store", "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["tasks"]["done"] == N_TASKS
    return doc


def crash_and_resume(url: str, workflow: Path, uninterrupted: dict[str, Any], seed: int) -> None:
    run_id = f"crash{seed}"
    target = random.Random(seed).randint(3, N_TASKS - 10)
    code = kill_after(["run", str(workflow), "--store", url, "--run-id", run_id, "--json"],
                      lambda: results_in(url, run_id) >= target)
    assert code == -signal.SIGKILL
    with open_store(url) as store:
        before = store.load_run(run_id)
    finished_before = set(before.results)
    assert target <= len(finished_before) < N_TASKS, len(finished_before)
    assert before.status == "running"  # nobody told the store the run ended

    proc = cli("runs", "resume", run_id, "--store", url, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tasks"]["done"] == N_TASKS
    assert doc["results"] == uninterrupted["results"]

    with open_store(url) as store:
        after = store.load_run(run_id)
    assert after.status == "done" and set(after.results) == set(uninterrupted["results"])
    resumed_at = max(i for i, e in enumerate(after.events) if e.kind == "started")
    again = {e.task for e in after.events[resumed_at:] if e.kind == "dispatched"}
    assert not again & finished_before, f"finished tasks ran twice: {sorted(again & finished_before)}"
    assert {e.task for e in after.events[resumed_at:] if e.kind == "restored"} == finished_before
    check = cli("runs", "check", run_id, "--store", url)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkilled_run_resumes_to_the_uninterrupted_result_sqlite(
    seed: int, workflow: Path, uninterrupted: dict[str, Any], tmp_path: Path
) -> None:
    crash_and_resume(str(tmp_path / "runs.db"), workflow, uninterrupted, seed)


@pytest.mark.parametrize("seed", [4, 5])
def test_sigkilled_run_resumes_to_the_uninterrupted_result_postgresql(
    seed: int, workflow: Path, uninterrupted: dict[str, Any], postgres_url: str
) -> None:
    crash_and_resume(postgres_url, workflow, uninterrupted, seed)


def test_runs_list_and_show_describe_recorded_runs(workflow: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    assert cli("run", workflow, "--store", url, "--run-id", "whole").returncode == 0
    listed = json.loads(cli("runs", "list", "--store", url, "--json").stdout)
    assert [r["run_id"] for r in listed["runs"]] == ["whole"]
    assert listed["runs"][0]["status"] == "done" and listed["runs"][0]["tasks_done"] == N_TASKS
    shown = json.loads(cli("runs", "show", "whole", "--store", url, "--json").stdout)
    assert shown["tasks"]["done"] == N_TASKS and len(shown["results"]) == N_TASKS
    assert sqlite3.connect(tmp_path / "runs.db").execute("select count(*) from results").fetchone()[0] == N_TASKS


def test_unknown_run_and_bad_store_are_one_clear_error(tmp_path: Path) -> None:
    from test_cli import assert_one_error_line

    assert_one_error_line(cli("runs", "show", "nope", "--store", str(tmp_path / "x.db")), "no run 'nope'")
    assert_one_error_line(cli("runs", "list", "--store", "mysql://h/db"), "mysql")


def test_a_token_budget_stops_the_run_and_the_store_says_which(workflow: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    proc = cli("run", workflow, "--store", url, "--run-id", "capped", "--max-tokens", "2000", "--json")
    assert proc.returncode == 1, proc.stderr  # not every task is done
    doc = json.loads(proc.stdout)
    assert doc["stopped"]["budget"] == "max_tokens" and doc["stopped"]["limit"] == 2000
    assert 0 < doc["tasks"]["done"] < N_TASKS and doc["tasks"]["cancelled"] > 0
    listed = json.loads(cli("runs", "list", "--store", url, "--json").stdout)["runs"]
    assert listed[0]["status"] == "stopped" and "max_tokens" in listed[0]["stop_reason"]
    assert cli("runs", "check", "capped", "--store", url).returncode == 0
    bad = cli("run", workflow, "--no-store", "--max-tokens", "0")
    assert bad.returncode == 2 and "max_tokens must be a positive integer" in bad.stderr
