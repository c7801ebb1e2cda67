"""Fault injection: a 200-task run against a real loopback server that fails on purpose.

The agents call :class:`~paragents.backends.openai.OpenAIBackend` (streamed and not)
pointed at :class:`faulty_server.FaultyServer`, which answers each request with a normal
completion, a 500, a 429 with Retry-After, an answer past the client's timeout, JSON cut
off half-way, or a dropped connection.  Whatever happens, the run returns; every task is
done (with its result), failed (with an error naming the fault), or cancelled because
an input failed; and with no faults every task is done.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from faulty_server import Faults, FaultyServer

from paragents.agents import Agent
from paragents.backends.base import Request
from paragents.backends.openai import OpenAIBackend
from paragents.core.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    RateLimited,
)
from paragents.core.graph import Task, TaskGraph
from paragents.core.policies import Backoff
from paragents.runtime.driver import RunResult, arun
from paragents.store import check_run, open_store
from paragents.store.recorder import Recorder

#: The client gives up on an answer after this long; the server's slow answers take longer.
CLIENT_TIMEOUT_S = 0.4
#: What a failed task's error says, for each fault the server injects.
FAULT_WORDS = {
    "error_500": r"server error \(500\)",
    "rate_limit": r"rate limited \(429\)",
    "slow": r"no complete answer within|read timeout",
    "truncated": r"malformed JSON",
    "drop": r"connection lost|cannot connect",
}
ANY_FAULT = re.compile("|".join(FAULT_WORDS.values()))


def two_hundred_tasks() -> TaskGraph:
    """150 independent tasks and 50 that each need two of them."""
    tasks = [Task(f"t{i}", prompt=f"task number {i}: say something", retries=3, timeout=5.0) for i in range(150)]
    tasks += [
        Task(f"j{k}", prompt=f"join {k}", depends_on=(f"t{2 * k}", f"t{2 * k + 1}"), retries=3, timeout=5.0)
        for k in range(50)
    ]
    return TaskGraph(tasks)


async def run_against(server: FaultyServer, recorder: Recorder | None = None) -> RunResult:
    agents = [
        Agent(
            f"agent{i}",
            backend=OpenAIBackend(base_url=server.base_url, model="faulty", timeout_s=CLIENT_TIMEOUT_S, stream=i % 2 == 0),
            slots=8,
        )
        for i in range(4)
    ]
    try:
        return await arun(
            two_hundred_tasks(),
            agents,
            backoff=Backoff(base_s=0.01, factor=2.0, max_s=0.1, jitter=0.1),
            seed=7,
            run_id="faulty",
            recorder=recorder,
        )
    finally:
        for agent in agents:
            assert agent.backend is not None
            await agent.backend.aclose()


def check_nothing_is_lost(result: RunResult) -> None:
    report = result.report
    for tid, timing in report.timings.items():
        if timing.state == "done":
            assert isinstance(result.results.get(tid), str) and result.results[tid].startswith("echo: ")
        elif timing.state == "failed":
            assert ANY_FAULT.search(result.errors[tid]), result.errors[tid]
        else:
            assert timing.state == "cancelled", (tid, timing.state)
            assert timing.error is not None and "upstream task" in timing.error
    assert report.tasks["done"] + report.tasks["failed"] + report.tasks["cancelled"] == 200


async def test_a_run_against_a_faulty_server_completes_and_loses_nothing(tmp_path: Path) -> None:
    faults = Faults(error_500=0.1, rate_limit=0.1, slow=0.05, truncated=0.1, drop=0.1, slow_s=1.5)
    started = time.perf_counter()
    store = open_store(tmp_path / "runs.db")
    store.create_run("faulty", "faults", {"kind": "test"})
    with FaultyServer(faults, seed=3) as server:
        result = await run_against(server, Recorder(store, "faulty"))
    assert time.perf_counter() - started < 60
    check_nothing_is_lost(result)
    # The recorded log is consistent and holds every finished result.
    stored = store.load_run("faulty")
    assert check_run(stored) == []
    done = {t for t, timing in result.report.timings.items() if timing.state == "done"}
    assert {t: r.result for t, r in stored.results.items()} == {t: result.results[t] for t in done}
    store.close()
    assert set(server.counts) == {"ok", *FAULT_WORDS}  # every fault was injected
    report = result.report
    assert report.tasks["retried"] > 0
    assert report.tasks["done"] > 150  # with three retries most tasks get through
    # Every kind of fault shows up in the log, by the words of its error.
    logged = " ".join(str(e.data.get("error")) for e in result.events if e.kind in ("retry", "failed") and e.data)
    for fault, words in FAULT_WORDS.items():
        assert re.search(words, logged), fault


async def test_a_run_against_a_healthy_server_is_all_done() -> None:
    with FaultyServer(Faults(), seed=0) as server:
        result = await run_against(server)
    assert set(server.counts) == {"ok"}
    assert result.report.tasks["done"] == 200 and not result.errors
    assert len(result.results) == 200
    check_nothing_is_lost(result)


# ------------------------------------------------------ one request, each fault
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("error_500", BackendError),
        ("rate_limit", RateLimited),
        ("slow", BackendTimeout),
        ("truncated", BackendError),
        ("drop", BackendUnavailable),
    ],
)
async def test_each_fault_is_one_retryable_backend_error(fault: str, error: type[BackendError], stream: bool) -> None:
    with FaultyServer(Faults(**{fault: 1.0}, slow_s=1.0)) as server:
        backend = OpenAIBackend(base_url=server.base_url, timeout_s=CLIENT_TIMEOUT_S, stream=stream)
        for _ in range(2):  # both kinds of drop: before the answer and half-way through it
            with pytest.raises(error) as info:
                await backend.complete(Request(prompt="hello there"))
            assert info.value.retryable
            assert re.search(FAULT_WORDS[fault], str(info.value)), str(info.value)
        await backend.aclose()
    if fault == "rate_limit":
        assert info.value.retry_after == pytest.approx(0.05)  # type: ignore[attr-defined]


@pytest.mark.parametrize("header", ["inf", "nan"])
async def test_a_retry_after_that_is_not_a_finite_number_is_ignored(header: str) -> None:
    # Was: Retry-After "inf" became retry_after=inf, blocking the endpoint (and the task's
    # retry) forever.
    with FaultyServer(Faults(rate_limit=1.0, retry_after_s=float(header))) as server:
        backend = OpenAIBackend(base_url=server.base_url, timeout_s=CLIENT_TIMEOUT_S, stream=False)
        with pytest.raises(RateLimited) as info:
            await backend.complete(Request(prompt="hello"))
        await backend.aclose()
    assert info.value.retry_after is None
