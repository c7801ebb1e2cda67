"""``paragents orchestrate train|eval`` run for real in a subprocess on the simulated benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from paragents.orchestration import commands, runner

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "paragents"
SMALL = ("--limit", "30", "--batch", "8")


def orchestrate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "orchestrate", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_command_line_lists_the_runner_benchmarks() -> None:
    assert commands.BENCHMARKS == runner.BENCHMARKS


def test_train_saves_a_controller_that_eval_finds_and_a_second_train_resumes(tmp_path: Path) -> None:
    first = as_json(orchestrate("train", *SMALL, "--steps", "4", "--dir", tmp_path, "--json"))
    assert first["steps"] == 4 and Path(first["controller"]).is_file() and Path(first["checkpoint"]).is_file()
    resumed = as_json(orchestrate("train", *SMALL, "--steps", "6", "--dir", tmp_path, "--json"))
    assert resumed["steps"] == 6  # the history holds the 4 earlier steps and 2 new ones
    result = as_json(orchestrate("eval", *SMALL, "--steps", "6", "--dir", tmp_path, "--json"))
    assert result["queries"] == 30 and 0 <= result["accuracy"] <= 1 and result["cp"] > 0
    assert sum(result["architectures"].values()) == 30


def test_eval_of_a_fixed_architecture_needs_no_training(tmp_path: Path) -> None:
    wide = as_json(orchestrate("eval", *SMALL, "--arch", "cot+programmer", "--dir", tmp_path, "--json"))
    deep = as_json(orchestrate("eval", *SMALL, "--arch", "cot -> programmer", "--dir", tmp_path, "--json"))
    assert wide["architectures"] == {"cot+programmer": 30}
    assert wide["cp"] < deep["cp"]  # the same operators side by side finish sooner


def test_eval_names_the_missing_controller_and_the_unknown_operator(tmp_path: Path) -> None:
    missing = orchestrate("eval", *SMALL, "--seed", "7", "--dir", tmp_path)
    assert missing.returncode == 2 and "no trained controller" in missing.stderr and "Traceback" not in missing.stderr
    unknown = orchestrate("eval", *SMALL, "--arch", "cot -> wizard", "--dir", tmp_path)
    assert unknown.returncode == 2 and "wizard" in unknown.stderr and "Traceback" not in unknown.stderr


def test_gsm_trains_and_evaluates_end_to_end_on_the_bundled_model(tmp_path: Path) -> None:
    real = ("--benchmark", "gsm", "--limit", "2", "--max-tokens", "24", "--dir", tmp_path, "--json")
    trained = as_json(orchestrate("train", *real, "--steps", "1", "--batch", "1"))
    assert trained["steps"] == 1 and trained["final"]["cost_k"] > 0
    result = as_json(orchestrate("eval", *real, "--steps", "1", "--batch", "1"))
    (row,) = result["rows"]
    assert row["query"] == "gsm-02" and row["score"] in (0.0, 1.0) and row["cost_tokens"] > 0 and row["cp_seconds"] > 0
    fixed = as_json(orchestrate("eval", *real, "--arch", "generate"))
    assert fixed["architectures"] == {"generate": 1} and fixed["rows"][0]["cp_tokens"] <= 24
