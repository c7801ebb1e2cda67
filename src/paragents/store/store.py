"""The durable run store: runs, their graphs, logs and results in SQLite or PostgreSQL.

Theory of operation
-------------------
:func:`open_store` turns what a user typed (nothing, a file path, a ``sqlite:///`` or
``postgresql://`` URL) into a :class:`RunStore` over a SQLAlchemy engine, and brings the
database's schema up to date (:mod:`paragents.store.migrations`).  Every mistake a user
can make there — an unknown scheme, a directory where a file should be, a server that
does not answer, a database written by a newer paragents — ends in one
:class:`StoreError` that names it; so does every database error later, with the run and
the store's URL in the message.

Writes are idempotent, so a writer that retries or a resumed run that re-sends what it
already sent changes nothing: a task is keyed by ``(run_id, task_id)``, an event by
``(run_id, seq)`` (its index in the scheduler's log) and a result by ``(run_id,
task_id)``; each insert is ``ON CONFLICT DO NOTHING``.  A result is therefore stored
once and **never overwritten** — :meth:`RunStore.put_result` says whether this call
stored it.  :meth:`RunStore.write_batch` does any mix of the three in one transaction;
the batched :class:`~paragents.store.recorder.Recorder` uses it for group commit.  Every
write also touches the run's ``updated_at``, which is how a write to an unknown run is
refused.

Durability.  On PostgreSQL a commit is durable as the server is configured
(``synchronous_commit`` on by default).  SQLite runs in WAL mode with
``synchronous=FULL``: the WAL is synced at every commit, so a committed result survives
a killed process *and* a power cut.  ``NORMAL`` would survive a killed process but not
a power cut; with group commit one sync per batch is cheap, so FULL is the default.
Transactions that write start with ``BEGIN IMMEDIATE`` (they take the write lock up
front instead of failing on the upgrade from a read lock), readers use plain ``BEGIN``
and see one snapshot, and a busy timeout lets a second process read and write the same
file while a run records into it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

from sqlalchemy import Connection, Engine, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..core.errors import ParagentsError
from ..core.events import Event
from ..core.graph import Task
from . import schema
from .migrations import MIGRATIONS, Migration, SchemaTooNew, current_version, migrate
from .serialize import (
    decode_result,
    dumps,
    encode_result,
    loads,
    task_from_json,
    task_to_json,
)

__all__ = [
    "ResultRecord",
    "ResultWrite",
    "RunStore",
    "RunSummary",
    "StoreError",
    "StoredRun",
    "TaskRecord",
    "data_directory",
    "default_store_url",
    "open_store",
]

#: SQLite's ``synchronous`` setting (see the module docstring).
SQLITE_SYNCHRONOUS = "FULL"
#: How long a SQLite writer waits for another process's write lock, in seconds.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: How long opening a PostgreSQL store waits for the server, in seconds.
PG_CONNECT_TIMEOUT_S = 10
#: Name of the database file in the user's data directory.
DEFAULT_FILE = "runs.db"

_READ_ONLY = "paragents_read_only"  # execution option: begin a read transaction


class StoreError(ParagentsError):
    """The run store cannot be opened, read or written; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of :meth:`RunStore.list_runs`; ``tasks_done`` counts stored results."""

    run_id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    tasks_total: int
    tasks_done: int
    stop_reason: str | None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task of a stored run: the order it was added in and who added it (None: the start)."""

    seq: int
    added_by: str | None
    task: Task


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A stored result.  With ``is_repr`` the value was not JSON-able and ``result`` is its repr."""

    attempt: int
    agent: str | None
    result: Any
    usage: Any
    inputs_hash: str
    finished_at: float
    is_repr: bool = False


class ResultWrite(NamedTuple):
    """One result for :meth:`RunStore.write_batch`: the arguments of :meth:`RunStore.put_result`."""

    task_id: str
    attempt: int
    agent: str | None
    result: Any
    usage: Mapping[str, Any] | None
    inputs_hash: str


@dataclass(frozen=True, slots=True)
class StoredRun:
    """Everything stored about one run.  ``events`` is the log in order and ``seqs`` the
    index each event was stored under (``0, 1, 2, ...`` for a log without gaps)."""

    run_id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    tasks_total: int
    tasks_done: int
    stop_reason: str | None
    spec: dict[str, Any]
    report: dict[str, Any] | None
    tasks: list[TaskRecord]
    events: list[Event]
    seqs: list[int]
    results: dict[str, ResultRecord]

    @property
    def summary(self) -> RunSummary:
        return RunSummary(
            self.run_id, self.name, self.status, self.created_at, self.updated_at,
            self.tasks_total, self.tasks_done, self.stop_reason,
        )


def data_directory() -> Path:
    """paragents' data directory (not created): ``$PARAGENTS_HOME``, else
    ``$XDG_DATA_HOME/paragents``, else ``~/.local/share/paragents``."""
    home = os.environ.get("PARAGENTS_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "paragents"


def default_store_url() -> str:
    """``sqlite:///`` of ``runs.db`` in the user's data directory, which is created."""
    directory = data_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the data directory {directory}: {exc.strerror or exc}") from exc
    return f"sqlite:///{directory.absolute() / DEFAULT_FILE}"


def open_store(
    url_or_path: str | os.PathLike[str] | None = None, *, migrations: Sequence[Migration] = MIGRATIONS
) -> RunStore:
    """Open (creating or upgrading it) the store at a file path or URL; None: the default.

    Accepted: a path to a SQLite file (its directory must exist), ``sqlite:///PATH``,
    ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` (also ``postgres://`` and
    ``postgresql+psycopg://``; the driver is psycopg 3).  ``migrations`` is for tests and
    tools; the default is every migration this version knows.
    """
    target = default_store_url() if url_or_path is None else url_or_path
    if isinstance(target, str) and "://" in target:
        engine, display = _engine_for_url(target)
    else:
        engine, display = _sqlite_engine(_sqlite_path(os.fspath(target)))
    store = RunStore(engine, display)
    try:
        store._migrate(migrations)
    except BaseException:
        engine.dispose()
        raise
    return store


def _sqlite_path(raw: str) -> Path:
    if not raw or raw == ":memory:":
        raise StoreError("an in-memory SQLite database is not a durable store: give a file path")
    path = Path(raw).expanduser().absolute()
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file (did you mean {path / DEFAULT_FILE}?)")
    if not path.parent.is_dir():
        raise StoreError(f"cannot create {path}: directory {path.parent} does not exist")
    return path


def _engine_for_url(raw: str) -> tuple[Engine, str]:
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse store URL {raw!r}: {exc}") from None
    backend, _, driver = url.drivername.partition("+")
    supported = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg"), "postgres": ("", "psycopg")}
    if backend in supported and driver not in supported[backend]:
        raise StoreError(f"store URL {_mask(url)!r}: driver {driver!r} is not supported; use {backend}://")
    if backend == "sqlite":
        return _sqlite_engine(_sqlite_path(url.database or ""))
    if backend in ("postgresql", "postgres"):
        return _pg_engine(url)
    raise StoreError(
        f"unknown store URL scheme {url.drivername!r} in {_mask(url)!r}: "
        "give a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def _mask(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _sqlite_engine(path: Path) -> tuple[Engine, str]:
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

    return engine, f"sqlite:///{path}"


def _pg_engine(url: URL) -> tuple[Engine, str]:
    display = _mask(url.set(drivername="postgresql"))
    engine = create_engine(
        url.set(drivername="postgresql+psycopg"), connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}
    )
    return engine, display


def _reason(exc: BaseException) -> str:
    """The driver's message on one line, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None)
    return " ".join(str(orig if orig is not None else exc).split())


class RunStore:
    """Runs, their graphs, logs and results in one database.  Use :func:`open_store`.

    ``url`` names the database (a password masked); ``engine`` is the SQLAlchemy engine.
    Methods are safe to call from several threads; each write is one transaction.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._closed = False
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # ------------------------------------------------------------------ plumbing
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.url!r})"

    def close(self) -> None:
        """Release the database connections.  The store cannot be used afterwards."""
        self._closed = True
        self.engine.dispose()

    @contextmanager
    def _transaction(self, doing: str, *, write: bool) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"cannot {doing}: the store {self.url} is closed")
        try:
            with self.engine.connect() as conn:
                if not write:
                    options: dict[str, Any] = {_READ_ONLY: True}
                    if conn.dialect.name == "postgresql":
                        options["isolation_level"] = "REPEATABLE READ"  # one snapshot
                    conn.execution_options(**options)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {doing} in {self.url}: {_reason(exc)}") from exc

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    found = current_version(conn)
            if found != len(migrations):
                with self.engine.begin() as conn:
                    migrate(conn, migrations)
        except SchemaTooNew as exc:
            raise StoreError(
                f"{self.url} has schema version {exc.found}, newer than this paragents knows "
                f"(up to {exc.known}): upgrade paragents to open it"
            ) from None
        except SQLAlchemyError as exc:
            if self.engine.dialect.name == "postgresql":
                raise StoreError(f"cannot connect to {self.url}: {_reason(exc)}") from None
            raise StoreError(f"cannot open the SQLite database {self.url}: {_reason(exc)}") from None

    def _no_run(self, run_id: str) -> StoreError:
        return StoreError(f"no run {run_id!r} in {self.url}")

    # -------------------------------------------------------------------- writing
    def create_run(self, run_id: str, name: str, spec: Mapping[str, Any]) -> None:
        """Start recording a run (status ``running``); an error if ``run_id`` exists."""
        now = time.time()
        row = {"run_id": run_id, "name": name, "created_at": now, "updated_at": now,
               "status": "running", "spec": dumps(dict(spec))}
        with self._transaction(f"create run {run_id!r}", write=True) as conn:
            stmt = self._insert(schema.runs).values(row).on_conflict_do_nothing().returning(schema.runs.c.run_id)
            if conn.execute(stmt).first() is None:
                raise StoreError(f"run {run_id!r} already exists in {self.url}")

    def add_tasks(self, run_id: str, tasks: Sequence[Task], added_by: str | None) -> None:
        """Record tasks added to the run's graph (by ``added_by``'s expansion, or None)."""
        self.write_batch(run_id, tasks=[(t, added_by) for t in tasks])

    def append_events(self, run_id: str, events: Sequence[tuple[int, Event]]) -> None:
        """Record ``(seq, event)`` pairs of the run's log; a seq already stored is skipped."""
        self.write_batch(run_id, events=events)

    def put_result(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        agent: str | None,
        result: Any,
        usage: Mapping[str, Any] | None,
        inputs_hash: str,
    ) -> bool:
        """Store a task's result; True if stored now, False if one was stored before (kept)."""
        return self.write_batch(run_id, results=[ResultWrite(task_id, attempt, agent, result, usage, inputs_hash)])[0]

    def write_batch(
        self,
        run_id: str,
        *,
        tasks: Sequence[tuple[Task, str | None]] = (),
        events: Sequence[tuple[int, Event]] = (),
        results: Sequence[ResultWrite] = (),
    ) -> list[bool]:
        """Tasks ``(task, added_by)``, events ``(seq, event)`` and results in ONE transaction.

        Returns, for each result in order, whether it was stored now (False: a result for
        that task existed, and was kept).
        """
        with self._transaction(f"write run {run_id!r}", write=True) as conn:
            now = time.time()
            touched = conn.execute(
                update(schema.runs).where(schema.runs.c.run_id == run_id).values(updated_at=now)
            ).rowcount
            if not touched:
                raise self._no_run(run_id)
            if tasks:
                self._insert_tasks(conn, run_id, tasks)
            if events:
                conn.execute(
                    self._insert(schema.events).on_conflict_do_nothing(),
                    [
                        {"run_id": run_id, "seq": seq, "time": e.time, "kind": e.kind, "task": e.task,
                         "agent": e.agent, "attempt": e.attempt, "data": None if e.data is None else dumps(e.data)}
                        for seq, e in events
                    ],
                )
            return self._insert_results(conn, run_id, results, now) if results else []

    def _insert_tasks(self, conn: Connection, run_id: str, tasks: Sequence[tuple[Task, str | None]]) -> None:
        last = conn.execute(
            select(func.coalesce(func.max(schema.tasks.c.seq), -1)).where(schema.tasks.c.run_id == run_id)
        ).scalar_one()
        conn.execute(
            self._insert(schema.tasks).on_conflict_do_nothing(),
            [
                {"run_id": run_id, "task_id": task.id, "seq": last + 1 + i, "added_by": added_by,
                 "definition": dumps(task_to_json(task))}
                for i, (task, added_by) in enumerate(tasks)
            ],
        )

    def _insert_results(self, conn: Connection, run_id: str, results: Sequence[ResultWrite], now: float) -> list[bool]:
        rows = []
        for r in results:
            text, is_repr = encode_result(r.result)
            rows.append(
                {"run_id": run_id, "task_id": r.task_id, "attempt": r.attempt, "agent": r.agent, "result": text,
                 "result_is_repr": is_repr, "usage": None if r.usage is None else dumps(r.usage),
                 "inputs_hash": r.inputs_hash, "finished_at": now}
            )
        stmt = self._insert(schema.results).on_conflict_do_nothing().returning(schema.results.c.task_id)
        stored = set(conn.execute(stmt, rows).scalars())
        out = []
        for r in results:  # a task named twice in one batch: its first result is the one stored
            out.append(r.task_id in stored)
            stored.discard(r.task_id)
        return out

    def finish_run(
        self, run_id: str, status: str, report: Mapping[str, Any] | None, stop_reason: str | None = None
    ) -> None:
        """Record how the run ended: its status, report and (for ``stopped``) why."""
        values = {"status": _checked(status), "report": None if report is None else dumps(dict(report)),
                  "stop_reason": stop_reason}
        self._update_run(run_id, f"finish run {run_id!r}", values)

    def set_status(self, run_id: str, status: str) -> None:
        """Change the run's status (``running`` again when it is resumed, say)."""
        self._update_run(run_id, f"set the status of run {run_id!r}", {"status": _checked(status)})

    def _update_run(self, run_id: str, doing: str, values: dict[str, Any]) -> None:
        with self._transaction(doing, write=True) as conn:
            stmt = update(schema.runs).where(schema.runs.c.run_id == run_id)
            if not conn.execute(stmt.values(updated_at=time.time(), **values)).rowcount:
                raise self._no_run(run_id)

    # -------------------------------------------------------------------- reading
    def list_runs(self, limit: int = 50) -> list[RunSummary]:
        """The ``limit`` most recently created runs, newest first."""
        r = schema.runs
        total = select(func.count()).where(schema.tasks.c.run_id == r.c.run_id).scalar_subquery()
        done = select(func.count()).where(schema.results.c.run_id == r.c.run_id).scalar_subquery()
        stmt = (
            select(r.c.run_id, r.c.name, r.c.status, r.c.created_at, r.c.updated_at, total, done, r.c.stop_reason)
            .order_by(r.c.created_at.desc(), r.c.run_id.desc())
            .limit(max(limit, 0))
        )
        with self._transaction("list runs", write=False) as conn:
            return [RunSummary(*row) for row in conn.execute(stmt)]

    def load_run(self, run_id: str) -> StoredRun:
        """Everything stored about ``run_id``; a :class:`StoreError` for an unknown id."""
        with self._transaction(f"read run {run_id!r}", write=False) as conn:
            run = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).one_or_none()
            if run is None:
                raise self._no_run(run_id)
            t, e, r = schema.tasks, schema.events, schema.results
            task_rows = conn.execute(select(t).where(t.c.run_id == run_id).order_by(t.c.seq)).all()
            event_rows = conn.execute(select(e).where(e.c.run_id == run_id).order_by(e.c.seq)).all()
            result_rows = conn.execute(select(r).where(r.c.run_id == run_id)).all()
        tasks = []
        for row in task_rows:
            try:
                task = task_from_json(loads(row.definition))
            except (ValueError, TypeError, ParagentsError) as exc:
                where = f"run {run_id!r} in {self.url}"
                raise StoreError(f"{where}: task {row.task_id!r} has a bad definition: {exc}") from exc
            tasks.append(TaskRecord(row.seq, row.added_by, task))
        results = {
            row.task_id: ResultRecord(row.attempt, row.agent, decode_result(row.result), loads(row.usage),
                                      row.inputs_hash, row.finished_at, bool(row.result_is_repr))
            for row in result_rows
        }
        return StoredRun(
            run_id=run.run_id,
            name=run.name,
            status=run.status,
            created_at=run.created_at,
            updated_at=run.updated_at,
            tasks_total=len(tasks),
            tasks_done=len(results),
            stop_reason=run.stop_reason,
            spec=loads(run.spec),
            report=loads(run.report),
            tasks=tasks,
            events=[Event(row.time, row.kind, row.task, row.agent, row.attempt, loads(row.data)) for row in event_rows],
            seqs=[row.seq for row in event_rows],
            results=results,
        )


def _checked(status: str) -> str:
    if status not in schema.STATUSES:
        raise StoreError(f"unknown run status {status!r}; expected one of {', '.join(sorted(schema.STATUSES))}")
    return status
