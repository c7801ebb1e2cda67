"""``paragents runs show RUN_ID --html/--png``: the static report of a recorded run, through
the real console script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "paragents"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "research_report.yaml"


def _paragents(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def test_html_report_is_self_contained_with_one_node_per_task(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    ran = _paragents("run", EXAMPLE, "--store", store, "--run-id", "shared", "--json")
    assert ran.returncode == 0, ran.stderr
    html, png = tmp_path / "report.html", tmp_path / "gantt.png"
    shown = _paragents("runs", "show", "shared", "--store", store, "--html", html, "--png", png, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run_id"] == "shared"

    text = html.read_text(encoding="utf-8")
    assert not re.search(r"(?:src|href)\s*=\s*[\"'](?!data:|\?|#)", text), "refers to another file"
    # the SVG namespace is a name, not an address: nothing else may look like a URL
    assert not re.search(r"https?://", text.replace("http://www.w3.org/2000/svg", "")), "refers to the network"
    assert "<style>" in text and "window.PARAGENTS_REPORT = " in text
    embedded = re.search(r"window\.PARAGENTS_REPORT = (\{.*?\});</script>", text, re.DOTALL)
    assert embedded is not None
    data = json.loads(embedded.group(1))
    tasks = [t["id"] for t in data["view"]["tasks"]]
    assert len(tasks) == len(set(tasks)) == 13
    assert data["view"]["critical_path"][-1] == "final_report"
    assert data["events"][0]["kind"] == "started"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_html_report_of_an_unknown_run_is_one_error_line(tmp_path: Path) -> None:
    shown = _paragents("runs", "show", "nope", "--store", tmp_path / "runs.db", "--html", tmp_path / "r.html")
    assert shown.returncode == 2
    assert shown.stderr.startswith("error: ") and "nope" in shown.stderr
    assert not (tmp_path / "r.html").exists()
