"""The run store against real databases: a SQLite file and a PostgreSQL server on loopback.

Every store test runs twice, once per database (``store_url``): a fresh SQLite file in
``tmp_path``, or a fresh database on the session's PostgreSQL server (``postgres_url``
from ``tests/pg_server.py``).  Nothing is mocked; inconsistent runs for ``check_run`` are
written by hand, through the store.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, inspect

from paragents.core.events import Event
from paragents.core.graph import Task
from paragents.store import (
    Recorder,
    RunStore,
    StoreError,
    check_run,
    default_store_url,
    inputs_hash,
    open_store,
    resumable,
    schema,
    task_from_json,
    task_to_json,
)
from paragents.store.migrations import MIGRATIONS, Migration, migrate

# ------------------------------------------------------------------------ fixtures


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    server: str = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    with open_store(store_url) as s:
        yield s


def commits(store: RunStore) -> list[int]:
    """A list that grows by one at every commit on ``store``'s engine."""
    seen: list[int] = []
    event.listen(store.engine, "commit", lambda conn: seen.append(1))
    return seen


def diamond() -> list[Task]:
    return [
        Task("a", prompt="start"),
        Task("b", depends_on=("a",), skills={"code"}),
        Task("c", depends_on=("a",)),
        Task("d", depends_on=("b", "c")),
    ]


def clean_log() -> list[Event]:
    """The log of a diamond run in which every task finished on agent w."""
    log = [Event(0.0, "started", data={"tasks": 4, "agents": {"w": 2}})]
    t = 0.0
    for tid in "abcd":
        log.append(Event(t, "dispatched", tid, "w", 1, {"ready_at": t}))
        t += 1.0
        log.append(Event(t, "finished", tid, "w", 1, {"compute_s": 1.0}))
    return log


def record(store: RunStore, run_id: str, log: list[Event], results: list[str], status: str = "done",
           tasks: list[Task] | None = None) -> None:
    """Write a run by hand: the diamond's tasks, ``log`` and results for ``results`` (attempt 1)."""
    store.create_run(run_id, "hand-made", {"kind": "test"})
    store.add_tasks(run_id, diamond() if tasks is None else tasks, None)
    store.append_events(run_id, list(enumerate(log)))
    for tid in results:
        store.put_result(run_id, tid, 1, "w", f"result of {tid}", None, inputs_hash({}))
    store.set_status(run_id, status)


# ---------------------------------------------------------------------- round trip


def test_run_round_trips_tasks_events_and_results(store: RunStore) -> None:
    store.create_run("r1", "diamond", {"kind": "workflow", "source": "tasks: []", "options": {"seed": 3}})
    store.add_tasks("r1", diamond(), None)
    store.add_tasks("r1", [Task("e", depends_on=("d",), meta={"why": "expansion"})], added_by="d")
    log = clean_log()
    store.append_events("r1", list(enumerate(log)))
    usage = {"compute_s": 1.5, "prompt_tokens": 10}
    assert store.put_result("r1", "a", 1, "w", {"text": "hi", "scores": [1, 2.5]}, usage, inputs_hash({}))
    store.finish_run("r1", "stopped", {"makespan_s": 4.0}, "budget: tokens")

    run = store.load_run("r1")
    assert (run.run_id, run.name, run.status, run.stop_reason) == ("r1", "diamond", "stopped", "budget: tokens")
    assert run.spec == {"kind": "workflow", "source": "tasks: []", "options": {"seed": 3}}
    assert run.report == {"makespan_s": 4.0}
    assert [r.task for r in run.tasks] == [*diamond(), Task("e", depends_on=("d",))]
    assert run.tasks[-1].added_by == "d" and run.tasks[-1].task.meta == {"why": "expansion"}
    assert [r.seq for r in run.tasks] == sorted(r.seq for r in run.tasks)
    assert run.events == log and run.seqs == list(range(len(log)))
    stored = run.results["a"]
    assert (stored.attempt, stored.agent, stored.result, stored.usage) == (1, "w", {"text": "hi", "scores": [1, 2.5]}, usage)
    assert stored.inputs_hash == inputs_hash({}) and not stored.is_repr and stored.finished_at >= run.created_at
    assert (run.tasks_total, run.tasks_done) == (5, 1)
    assert run.created_at <= run.updated_at


def test_reappends_change_nothing_and_a_result_is_never_overwritten(store: RunStore) -> None:
    store.create_run("r", "n", {})
    store.add_tasks("r", diamond(), None)
    store.add_tasks("r", [Task("a", prompt="another definition")], added_by="x")
    log = clean_log()
    store.append_events("r", list(enumerate(log[:4])))
    store.append_events("r", list(enumerate(log)))  # overlaps the first append
    store.append_events("r", [(0, Event(99.0, "bogus"))])
    assert store.put_result("r", "a", 1, "w", "first", None, "h1") is True
    assert store.put_result("r", "a", 2, "v", "second", None, "h2") is False
    run = store.load_run("r")
    assert run.events == log
    assert [r.task.prompt for r in run.tasks if r.task.id == "a"] == ["start"]
    assert (run.results["a"].result, run.results["a"].attempt) == ("first", 1)


def test_write_batch_writes_everything_at_once_and_reports_each_result(store: RunStore) -> None:
    from paragents.store import ResultWrite

    store.create_run("r", "n", {})
    seen = commits(store)
    stored = store.write_batch(
        "r",
        tasks=[(t, None) for t in diamond()],
        events=list(enumerate(clean_log())),
        results=[ResultWrite("a", 1, "w", 1, None, "h"), ResultWrite("a", 1, "w", 2, None, "h"),
                 ResultWrite("b", 1, "w", 3, None, "h")],
    )
    assert stored == [True, False, True] and len(seen) == 1
    run = store.load_run("r")
    assert {t: r.result for t, r in run.results.items()} == {"a": 1, "b": 3}
    assert len(run.tasks) == 4 and len(run.events) == 9


def test_a_result_json_cannot_hold_is_stored_as_its_repr_with_a_flag(store: RunStore) -> None:
    store.create_run("r", "n", {})
    store.put_result("r", "a", 1, "w", {1, 2}, None, "h")
    store.put_result("r", "b", 1, "w", ("tuple", 1), None, "h")
    run = store.load_run("r")
    assert (run.results["a"].result, run.results["a"].is_repr) == ("{1, 2}", True)
    assert (run.results["b"].result, run.results["b"].is_repr) == (["tuple", 1], False)


def test_create_run_refuses_an_id_that_exists(store: RunStore) -> None:
    store.create_run("r", "n", {})
    with pytest.raises(StoreError, match="run 'r' already exists in"):
        store.create_run("r", "other", {})


def test_writes_to_an_unknown_run_are_refused(store: RunStore) -> None:
    for write in (
        lambda: store.append_events("ghost", [(0, Event(0.0, "started"))]),
        lambda: store.add_tasks("ghost", diamond(), None),
        lambda: store.put_result("ghost", "a", 1, "w", 1, None, "h"),
        lambda: store.finish_run("ghost", "done", None),
        lambda: store.set_status("ghost", "failed"),
    ):
        with pytest.raises(StoreError, match=f"no run 'ghost' in {store.url}"):
            write()


def test_statuses_are_checked(store: RunStore) -> None:
    store.create_run("r", "n", {})
    with pytest.raises(StoreError, match="unknown run status 'finished'; expected one of crashed, done"):
        store.set_status("r", "finished")
    store.set_status("r", "interrupted")
    assert store.load_run("r").status == "interrupted"


def test_list_runs_is_newest_first_with_task_counts(store: RunStore) -> None:
    for i in range(5):
        store.create_run(f"r{i}", f"run {i}", {})
    store.add_tasks("r3", diamond(), None)
    store.put_result("r3", "a", 1, "w", "x", None, "h")
    store.put_result("r3", "b", 1, "w", "y", None, "h")
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["r4", "r3", "r2", "r1", "r0"]
    assert (runs[1].tasks_total, runs[1].tasks_done, runs[1].status) == (4, 2, "running")
    assert [r.run_id for r in store.list_runs(limit=2)] == ["r4", "r3"]


def test_load_run_of_an_unknown_id_names_it_and_the_store(store: RunStore) -> None:
    with pytest.raises(StoreError) as info:
        store.load_run("x")
    assert str(info.value) == f"no run 'x' in {store.url}"


def test_a_closed_store_says_so(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.list_runs()


# --------------------------------------------------------------------- serialising


def test_every_storable_task_field_round_trips() -> None:
    task = Task(
        "t", prompt="p", skills={"b", "a"}, depends_on=("x", "y"), duration=2.5, tokens=7, priority=-1.0,
        retries=3, timeout=9.0, agent="w", expandable=True, action=print, meta={"k": [1, {"n": None}]},
    )
    data = task_to_json(task)
    assert "action" not in data and data["skills"] == ["a", "b"] and data["depends_on"] == ["x", "y"]
    back = task_from_json(data)
    assert back == task and back.meta == task.meta and back.action is None
    assert task_from_json({"id": "bare", "from_a_newer_version": 1}) == Task("bare")


def test_inputs_hash_is_canonical() -> None:
    one = inputs_hash({"a": {"x": 1, "y": [1, 2]}, "b": "text"})
    assert one == inputs_hash({"b": "text", "a": {"y": [1, 2], "x": 1}})
    assert one != inputs_hash({"a": {"x": 1, "y": [2, 1]}, "b": "text"})
    assert len(one) == 64 and int(one, 16) >= 0


# ------------------------------------------------------------------------ check_run


def test_a_consistent_run_passes_the_check(store: RunStore) -> None:
    record(store, "ok", clean_log(), list("abcd"))
    run = store.load_run("ok")
    assert check_run(run) == [] and resumable(run) == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_check_finds_every_kind_of_inconsistency(store: RunStore) -> None:
    log = clean_log()
    cases: dict[str, tuple[list[Event], list[str], str, list[Task] | None]] = {
        "open attempt in a finished run": (log[:-1], list("abc"), "done", None),
        "finish never dispatched": ([*log[:7], log[8]], list("abcd"), "done", None),
        "dispatched twice": ([*log[:2], log[1], *log[2:]], list("abcd"), "done", None),
        "finished without result": (log, list("abc"), "done", None),
        "result without finished": (log[:7], list("abcd"), "failed", None),
        "unknown task": ([*log, Event(9.0, "cancelled", "ghost", data={"reason": "?"})], list("abcd"), "done", None),
        "cycle": (log, list("abcd"), "done", [Task("a", depends_on=("d",)), *diamond()[1:]]),
        "cycle through an added edge": ([*log, Event(9.0, "added", data={"tasks": [], "edges": [["d", "a"]]})],
                                        list("abcd"), "done", None),
        "restored without result": ([*log, Event(9.0, "started"), Event(9.0, "restored", "d")], list("abc"), "done", None),
    }
    expected = {
        "open attempt in a finished run": ["task 'd' attempt 1 was dispatched to agent 'w' and never ended (the run is done)"],
        "finish never dispatched": ["event #7: finished of task 'd' attempt 1, which was not running"],
        "dispatched twice": ["event #2: task 'a' dispatched (attempt 1) while attempt 1 was still running"],
        "finished without result": ["task 'd' finished but has no stored result"],
        "result without finished": ["task 'd' has a stored result but no 'finished' or 'restored' event (the run is failed)"],
        "unknown task": ["event #9 (cancelled) names task 'ghost', which is not among the run's tasks"],
        "cycle": ["task graph: cycle in task graph: "],
        "cycle through an added edge": ["task graph: cycle in task graph: "],
        "restored without result": ["task 'd' was restored but has no stored result"],
    }
    for i, (name, (events, results, status, tasks)) in enumerate(cases.items()):
        record(store, f"r{i}", events, results, status, tasks)
        problems = check_run(store.load_run(f"r{i}"))
        want = expected[name]
        assert len(problems) == len(want) and all(p.startswith(w) for p, w in zip(problems, want, strict=True)), (
            name, problems
        )


def test_check_finds_a_gap_in_the_log_and_an_attempt_result_mismatch(store: RunStore) -> None:
    log = clean_log()
    record(store, "gap", [], list("abcd"))
    store.append_events("gap", [(i, e) for i, e in enumerate(log) if i != 3])
    assert check_run(store.load_run("gap")) == [
        "the log skips from event #2 to #4",
        "event #4: finished of task 'b' attempt 1, which was not running",
    ]
    record(store, "retried", [*log[:8], Event(7.0, "retry", "d", "w", 1, {"error": "x"}),
                              Event(8.0, "dispatched", "d", "w", 2), Event(9.0, "finished", "d", "w", 2)],
           list("abcd"))
    assert check_run(store.load_run("retried")) == ["task 'd' finished in attempt 2 but its result is from attempt 1"]


def test_work_a_crash_left_open_is_resumable_not_a_problem(store: RunStore) -> None:
    log = clean_log()
    record(store, "cut", log[:8], list("abcd"), status="running")  # d's result committed, its finish not logged
    run = store.load_run("cut")
    assert check_run(run) == []
    assert resumable(run) == [
        "task 'd' attempt 1 was dispatched to agent 'w' and never ended",
        "task 'd' has a stored result but no 'finished' or 'restored' event",
    ]
    # The resume: a new life restores a, b, c, d from their results and the log goes on.
    life2 = [Event(7.0, "started", data={"tasks": 4}), *(Event(7.0, "restored", t) for t in "abcd")]
    store.append_events("cut", list(enumerate(life2, start=8)))
    store.finish_run("cut", "done", {})
    run = store.load_run("cut")
    assert check_run(run) == [] and resumable(run) == []


# ----------------------------------------------------------------------- migrations


def test_a_new_database_is_migrated_to_the_latest_schema_which_matches_the_tables(store: RunStore) -> None:
    insp = inspect(store.engine)
    with store.engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version FROM schema_version ORDER BY version").scalars().all()
    assert versions == [m.version for m in MIGRATIONS]
    for table in schema.metadata.sorted_tables:
        columns = {c["name"] for c in insp.get_columns(table.name)}
        assert columns == set(table.columns.keys()), table.name
        assert set(insp.get_pk_constraint(table.name)["constrained_columns"]) == {c.name for c in table.primary_key}


def test_a_later_migration_is_applied_once_and_a_newer_database_is_refused(store_url: str) -> None:
    applied: list[str] = []
    extra = Migration(len(MIGRATIONS) + 1, "test: notes", ("CREATE TABLE notes (run_id TEXT, body TEXT)",
                                                           lambda conn: applied.append("data step")))
    newer = [*MIGRATIONS, extra]
    open_store(store_url).close()  # at the released version
    with open_store(store_url, migrations=newer) as store:
        assert inspect(store.engine).has_table("notes")
    open_store(store_url, migrations=newer).close()
    assert applied == ["data step"]
    with pytest.raises(StoreError) as info:
        open_store(store_url)
    known = len(MIGRATIONS)
    assert f"has schema version {known + 1}, newer than this paragents knows (up to {known})" in str(info.value)
    assert "upgrade paragents" in str(info.value)


def test_a_fresh_database_runs_every_migration_in_order(tmp_path: Path) -> None:
    order: list[int] = []
    steps = [Migration(m.version, m.description, (*m.steps, lambda c, v=m.version: order.append(v))) for m in MIGRATIONS]
    extra = Migration(len(steps) + 1, "test", (lambda c: order.append(len(steps) + 1),))
    open_store(tmp_path / "new.db", migrations=[*steps, extra]).close()
    assert order == list(range(1, len(steps) + 2))


def test_migrations_must_be_numbered_in_order(store: RunStore) -> None:
    with store.engine.begin() as conn, pytest.raises(ValueError, match=r"numbered 1, 2, \.\.\. in order, got \[1, 3\]"):
        migrate(conn, [MIGRATIONS[0], Migration(3, "skip", ())])


# ------------------------------------------------------------------------- recorder


async def test_concurrent_results_share_few_transactions(store: RunStore) -> None:
    store.create_run("r", "n", {})
    recorder = Recorder(store, "r")
    await recorder.start()
    recorder.tasks([Task(f"t{i}") for i in range(1000)], None)
    recorder.events([(i, Event(float(i), "finished", f"t{i}", "w", 1)) for i in range(1000)])
    await recorder.flush()
    seen = commits(store)

    async def finish(i: int) -> bool:
        await asyncio.sleep(0)
        return await recorder.result(f"t{i}", 1, "w", i, {"compute_s": 0.1}, inputs_hash({}))

    stored = await asyncio.gather(*(finish(i) for i in range(1000)))
    transactions = len(seen)
    await recorder.close()
    assert all(stored) and transactions <= 3, transactions
    run = store.load_run("r")
    assert len(run.results) == 1000 and len(run.tasks) == 1000 and run.seqs == list(range(1000))


async def test_max_batch_bounds_a_transaction_and_order_is_kept(store: RunStore) -> None:
    store.create_run("r", "n", {})
    recorder = Recorder(store, "r", max_batch=10, max_delay=0.05)
    await recorder.start()
    seen = commits(store)
    waits = []
    for i in range(25):
        recorder.events([(i, Event(float(i), "finished", None))])
        waits.append(recorder.result(f"t{i}", 1, "w", i, None, "h"))
    waits.append(recorder.result("t0", 2, "w", "again", None, "h"))
    stored = await asyncio.gather(*waits)
    await recorder.flush()
    assert stored == [True] * 25 + [False]
    assert 6 <= len(seen) <= 8  # 51 items, at most 10 a batch
    assert store.load_run("r").seqs == list(range(25))
    await recorder.close()


async def test_a_result_is_readable_elsewhere_as_soon_as_its_await_returns(store: RunStore, store_url: str) -> None:
    store.create_run("r", "n", {})
    recorder = Recorder(store, "r", max_delay=0.2)  # a long delay: the events wait for the result's commit
    await recorder.start()
    recorder.events([(0, Event(0.0, "dispatched", "a", "w", 1))])
    assert await recorder.result("a", 1, "w", {"answer": 42}, None, "h") is True
    with open_store(store_url) as other:  # a second engine: its own connection
        run = other.load_run("r")
        assert run.results["a"].result == {"answer": 42} and len(run.events) == 1
    reader = (
        "import sys\nfrom paragents.store import open_store\n"
        "with open_store(sys.argv[1]) as s:\n    print(s.load_run('r').results['a'].result['answer'])"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", reader, store_url, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0 and out.decode().strip() == "42"
    await recorder.close()


async def test_a_writer_error_surfaces_in_every_waiting_call(store: RunStore) -> None:
    recorder = Recorder(store, "never-created")
    await recorder.start()
    recorder.events([(0, Event(0.0, "started"))])
    results = await asyncio.gather(
        recorder.result("a", 1, "w", 1, None, "h"), recorder.result("b", 1, "w", 2, None, "h"), return_exceptions=True
    )
    assert all(isinstance(r, StoreError) and "no run 'never-created'" in str(r) for r in results)
    with pytest.raises(StoreError, match="no run 'never-created'"):
        recorder.events([(1, Event(1.0, "started"))])
    with pytest.raises(StoreError, match="no run 'never-created'"):
        await recorder.close()


async def test_an_error_in_a_batch_of_events_alone_surfaces_at_flush(store: RunStore) -> None:
    recorder = Recorder(store, "never-created", max_delay=0.0)
    await recorder.start()
    recorder.events([(0, Event(0.0, "started"))])
    with pytest.raises(StoreError, match="no run 'never-created'"):
        await recorder.flush()
    with pytest.raises(StoreError, match="no run 'never-created'"):
        await recorder.close()


async def test_recorder_writes_off_the_event_loop(store: RunStore) -> None:
    store.create_run("r", "n", {})
    threads: set[str] = set()
    event.listen(store.engine, "commit", lambda conn: threads.add(threading.current_thread().name))
    recorder = Recorder(store, "r")
    await recorder.start()
    await recorder.result("a", 1, "w", 1, None, "h")
    await recorder.close()
    assert len(threads) == 1 and threading.current_thread().name not in threads


# ------------------------------------------------------------------ opening stores


def test_open_store_errors_name_the_problem(tmp_path: Path) -> None:
    cases: list[tuple[Any, str]] = [
        ("mysql://root@localhost/runs", "unknown store URL scheme 'mysql' in 'mysql://root@localhost/runs'"),
        (tmp_path, f"{tmp_path} is a directory, not a database file"),
        (tmp_path / "missing" / "runs.db", f"directory {tmp_path / 'missing'} does not exist"),
        ("sqlite://", "an in-memory SQLite database is not a durable store"),
        ("postgresql+asyncpg://u@h/db", "driver 'asyncpg' is not supported"),
    ]
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, not at all" * 100)
    cases.append((garbage, f"cannot open the SQLite database sqlite:///{garbage}: file is not a database"))
    for target, message in cases:
        with pytest.raises(StoreError) as info:
            open_store(target)
        assert message in str(info.value), (target, str(info.value))


def test_an_unreachable_postgres_server_is_named_with_the_password_masked() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(StoreError) as info:
            open_store(f"postgresql://me:secret@127.0.0.1:{port}/runs")
    message = str(info.value)
    assert message.startswith(f"cannot connect to postgresql://me:***@127.0.0.1:{port}/runs: ")
    assert "refused" in message and "secret" not in message


def test_postgres_urls_use_psycopg_whatever_their_spelling(postgres_url: str) -> None:
    rest = postgres_url.split("://", 1)[1]
    for scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        with open_store(f"{scheme}://{rest}") as store:
            assert store.engine.dialect.driver == "psycopg" and store.url == postgres_url


def test_default_store_is_runs_db_in_the_users_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARAGENTS_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_url() == f"sqlite:///{tmp_path / 'xdg' / 'paragents' / 'runs.db'}"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_store_url() == f"sqlite:///{tmp_path / 'home' / '.local' / 'share' / 'paragents' / 'runs.db'}"
    monkeypatch.setenv("PARAGENTS_HOME", str(tmp_path / "ph"))
    with open_store() as store:
        assert store.url == f"sqlite:///{tmp_path / 'ph' / 'runs.db'}"
        assert (tmp_path / "ph" / "runs.db").exists()


def test_a_sqlite_store_is_usable_from_a_second_process_while_one_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with open_store(path) as store:
        store.create_run("r", "n", {})
        with store.engine.begin() as conn:  # holds the write lock
            conn.exec_driver_sql("UPDATE runs SET name = 'renamed'")
            reader = "import sys\nfrom paragents.store import open_store\nprint(open_store(sys.argv[1]).list_runs()[0].name)"
            out = subprocess.run([sys.executable, "-c", reader, str(path)], capture_output=True, text=True, check=True)
            assert out.stdout.strip() == "n"  # WAL: the reader sees the last commit, without waiting
            writer = (
                "import sys\nfrom paragents.store import open_store\ns = open_store(sys.argv[1])\n"
                "print('writing', flush=True)\ns.set_status('r', 'done')"
            )
            late = subprocess.Popen([sys.executable, "-c", writer, str(path)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            assert late.stdout is not None and late.stdout.readline().strip() == "writing"
            time.sleep(0.2)  # it now waits for the lock held here
        assert late.wait(timeout=30) == 0, late.stderr.read() if late.stderr else ""
        summary = store.list_runs()[0]
        assert (summary.name, summary.status) == ("renamed", "done")
