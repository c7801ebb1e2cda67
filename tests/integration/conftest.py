"""Fixtures for the backend integration tests: real servers on loopback, nothing mocked.

* ``llama_server`` (session): ``python -m llama_cpp.server`` serving the bundled SmolLM2
  on a free port, started once and stopped at the end of the session.  The fixture waits
  until ``/v1/models`` answers; the server's output goes to a log file whose tail is
  attached to the report of every failed test that used it.
* ``dead_url``: the API root of a loopback port with nothing listening on it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pg_server import postgres_url  # noqa: F401  (a session fixture for tests here)

from paragents.backends.bundled import bundled_model_path

#: How long the llama.cpp server may take to load the model and answer.
SERVER_START_TIMEOUT_S = 120.0
#: Lines of the server's log attached to a failed test's report.
LOG_TAIL_LINES = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picked it, then it was released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dead_url() -> str:
    """An OpenAI-style API root on a loopback port with nothing listening."""
    return f"http://127.0.0.1:{free_port()}/v1"


@dataclass(frozen=True, slots=True)
class LlamaServer:
    """A running ``llama_cpp.server``: its API root, its log and how long it took to start."""

    base_url: str
    log: Path
    start_s: float

    def log_tail(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(bundled_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", log, 0.0)
    try:
        deadline = started + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with status {process.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.base_url}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                waited = f"{SERVER_START_TIMEOUT_S:g} s"
                pytest.fail(f"llama_cpp.server did not answer within {waited}:\n{server.log_tail()}")
            time.sleep(0.1)
        yield LlamaServer(server.base_url, log, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the llama.cpp server's log to the report of a failed test that used it."""
    report = yield
    server = getattr(item, "funcargs", {}).get("llama_server")
    if report.failed and isinstance(server, LlamaServer):
        report.sections.append(("llama_cpp.server log (tail)", server.log_tail()))
    return report
