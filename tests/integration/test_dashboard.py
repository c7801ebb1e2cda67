"""The dashboard's API on a real uvicorn server on loopback, over a real SQLite store.

A recorded run comes from the real runtime (``arun_recorded`` on the research-report
example with simulated backends).  The live stream is checked against a run that is
being recorded while the test reads it; the access rule against a server with a token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paragents.dashboard import BackgroundServer, DashboardError, check_bind, serve
from paragents.durable import RunSpec, arun_recorded
from paragents.store import open_store
from paragents.workflow import load_workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "research_report.yaml"


def _record(store_path: Path, run_id: str, time_scale: float | None = None) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    if time_scale is not None:  # slow the simulated endpoints down so the run lasts a while
        text = text.replace("    seed: 1\n", f"    seed: 1\n    time_scale: {time_scale}\n")
        text = text.replace("    seed: 2\n", f"    seed: 2\n    time_scale: {time_scale}\n")
    workflow = load_workflow(text)
    spec = RunSpec("workflow", text, str(EXAMPLE))
    with open_store(store_path) as store:
        asyncio.run(arun_recorded(workflow, spec, store, run_id=run_id))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard") / "runs.db"
    _record(path, "recorded")
    return path


@pytest.fixture
def server(recorded: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(store_url=str(recorded)) as running:
        yield running


def test_run_list_and_page_are_served(server: BackgroundServer) -> None:
    runs = httpx.get(server.url + "api/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == ["recorded"]
    assert runs[0]["status"] == "done" and runs[0]["tasks_done"] == runs[0]["tasks_total"] == 13
    page = httpx.get(server.url)
    assert page.status_code == 200 and 'id="graph"' in page.text
    assert httpx.get(server.url + "static/app.js").status_code == 200


def test_run_view_has_graph_states_critical_path_and_report(server: BackgroundServer) -> None:
    view = httpx.get(server.url + "api/runs/recorded").json()
    ids = {t["id"] for t in view["tasks"]}
    assert len(ids) == 13 and {t["state"] for t in view["tasks"]} == {"done"}
    assert ["scope", "research_hardware"] in view["edges"]
    path = view["critical_path"]
    assert path[0] == "scope" and path[-1] == "final_report"
    assert all([u, v] in view["edges"] for u, v in itertools.pairwise(path))
    for task in view["tasks"]:
        assert task["agent"] and 0 <= task["start"] < task["end"] <= view["report"]["makespan_s"] + 1e-9
    report = view["report"]
    assert report["tasks"]["done"] == 13 and report["tokens"]["completion"] > 0
    assert set(report["latency"]) == {"compute_s", "transfer_s", "processing_s"}
    assert view["seq"] >= 13 * 2


def test_events_after_a_sequence_number(server: BackgroundServer) -> None:
    everything = httpx.get(server.url + "api/runs/recorded/events").json()
    seqs = [e["seq"] for e in everything["events"]]
    assert seqs == sorted(seqs) and everything["events"][0]["kind"] == "started"
    tail = httpx.get(server.url + f"api/runs/recorded/events?after={seqs[9]}").json()["events"]
    assert [e["seq"] for e in tail] == seqs[10:]


def test_unknown_run_is_404(server: BackgroundServer) -> None:
    assert httpx.get(server.url + "api/runs/nope").status_code == 404
    assert httpx.get(server.url + "api/runs/nope/stream").status_code == 404


def test_metrics_are_prometheus_text(server: BackgroundServer) -> None:
    text = httpx.get(server.url + "metrics").text
    assert 'paragents_tasks_finished_total{agent="researcher",endpoint="sim://fast-sim"} 4.0' in text
    assert "paragents_queue_length 0.0" in text
    assert "paragents_task_latency_seconds_bucket" in text


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, object]]]:
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def test_stream_delivers_events_of_a_run_while_it_is_recorded(tmp_path: Path) -> None:
    store_path = tmp_path / "live.db"
    open_store(store_path).close()
    recording = threading.Thread(target=_record, args=(store_path, "live", 2.0))
    with BackgroundServer(store_url=str(store_path)) as server:
        recording.start()
        try:
            for _ in range(200):
                if httpx.get(server.url + "api/runs/live").status_code == 200:
                    break
                threading.Event().wait(0.02)
            batches = []
            statuses = []
            with httpx.stream("GET", server.url + "api/runs/live/stream", timeout=60) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for kind, doc in _sse(response.iter_lines()):
                    if kind == "end":
                        assert doc == {"status": "done"}
                        break
                    batches.append(doc["events"])
                    statuses.append(doc["status"])
        finally:
            recording.join(timeout=60)
    assert len(batches) >= 2, "the log arrived in one piece: the run was not followed live"
    assert "running" in statuses
    seqs = [e["seq"] for batch in batches for e in batch]
    assert seqs == list(range(len(seqs)))  # every event once, in order
    kinds = [e["kind"] for batch in batches for e in batch]
    assert kinds.count("finished") == 13


def test_non_loopback_bind_without_token_is_refused(recorded: Path) -> None:
    with pytest.raises(DashboardError, match="without a token"):
        serve(host="0.0.0.0", port=0, store_url=str(recorded))
    with pytest.raises(DashboardError, match="without a token"):
        check_bind("192.168.1.20", None)
    check_bind("0.0.0.0", "s3cret")
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, None)


def test_requests_without_the_token_are_rejected(recorded: Path) -> None:
    with BackgroundServer(store_url=str(recorded), token="s3cret") as server:
        base = f"http://127.0.0.1:{server.port}/"
        for path in ("", "api/runs", "api/runs/recorded", "api/runs/recorded/stream", "metrics"):
            assert httpx.get(base + path).status_code == 401, path
        assert httpx.get(base + "api/runs?token=wrong").status_code == 401
        assert httpx.get(base + "api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(base + "api/runs?token=s3cret").status_code == 200
        assert httpx.get(base + "api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(base + "api/runs", headers={"X-Paragents-Token": "s3cret"}).status_code == 200
        assert server.url.endswith("/?token=s3cret")
