"""The dashboard in a real browser: headless Chromium watches a workflow run live.

A workflow of 20 simulated tasks (five layers of four, each task ~0.4 s, two slots) runs
in a subprocess through the real ``paragents run`` command, recording into a SQLite
store; the dashboard serves that store on a loopback port; Chromium (Debian's
``chromium`` + ``chromium-driver``, installed by ``make install``) opens the run's page
while it runs.  The assertions are on the DOM only — node count and each node's
``data-state`` — never on pixels; a screenshot is saved next to the test's files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paragents.dashboard import BackgroundServer
from paragents.store import StoreError, open_store

webdriver = pytest.importorskip("selenium.webdriver")

SCRIPT = Path(sys.executable).parent / "paragents"
LAYERS, WIDTH = 5, 4
N_TASKS = LAYERS * WIDTH


def _workflow() -> str:
    lines = [
        "name: browser-demo",
        "backends:",
        "  sim: {kind: simulated, ttft_s: 0.0, tokens_per_s: 100, jitter: 0.0, seed: 1}",
        "agents:",
        "  - {name: worker, skills: [work], backend: sim, slots: 2, max_tokens: 64}",
        "tasks:",
    ]
    for layer in range(LAYERS):
        for i in range(WIDTH):
            deps = [f"t{layer - 1}{j}" for j in range(WIDTH)] if layer else []
            lines.append(f"  - {{id: t{layer}{i}, prompt: step {layer} part {i}, skills: [work], tokens: 40, "
                         f"duration: 0.4, depends_on: [{', '.join(deps)}]}}")
    return "\n".join(lines) + "\n"


def _browser() -> webdriver.Chrome:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are not installed: run `make install` (it installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def _states(browser: webdriver.Chrome) -> dict[str, str]:
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#graph g.node')]"
        ".map(n => [n.dataset.task, n.dataset.state]))"
    )


def _wait_for_run(store_path: Path, run_id: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None or proc.returncode == 0, proc.communicate()
        if store_path.exists():
            try:
                with open_store(store_path) as store:
                    if store.load_run(run_id).tasks:
                        return
            except StoreError:
                pass
        time.sleep(0.05)
    pytest.fail(f"run {run_id} never appeared in {store_path}")


def test_browser_sees_nodes_change_state_during_a_running_workflow(tmp_path: Path) -> None:
    workflow = tmp_path / "browser.yaml"
    workflow.write_text(_workflow(), encoding="utf-8")
    store_path = tmp_path / "runs.db"
    open_store(store_path).close()  # the dashboard and the run share one (migrated) file
    run_id = "browser-run"
    browser = _browser()
    try:
        with BackgroundServer(store_url=str(store_path)) as server:
            proc = subprocess.Popen(
                [str(SCRIPT), "run", str(workflow), "--store", str(store_path), "--run-id", run_id, "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            try:
                _wait_for_run(store_path, run_id, proc)
                browser.get(f"{server.url}?run={run_id}")
                seen: dict[str, set[str]] = {}
                deadline = time.monotonic() + 60
                states: dict[str, str] = {}
                while time.monotonic() < deadline:
                    states = _states(browser)
                    for task, state in states.items():
                        seen.setdefault(task, set()).add(state)
                    status = browser.execute_script("return document.getElementById('status').dataset.status")
                    if len(states) == N_TASKS and status == "done" and set(states.values()) == {"done"}:
                        break
                    time.sleep(0.05)
                browser.save_screenshot(str(tmp_path / "dashboard.png"))
                assert proc.wait(timeout=60) == 0, proc.communicate()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        browser.quit()

    assert len(states) == N_TASKS, states
    assert set(states.values()) == {"done"}, states
    changed = [t for t, s in seen.items() if "done" in s and s & {"pending", "ready", "running"}]
    assert changed, f"no node was seen changing state live: {seen}"
    assert (tmp_path / "dashboard.png").stat().st_size > 0
