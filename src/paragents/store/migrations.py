"""Numbered schema migrations, applied in order when a store is opened.

Theory of operation
-------------------
A database's schema version is the highest ``version`` in its ``schema_version`` table
(0 when the table does not exist: a new, empty database).  :data:`MIGRATIONS` lists the
steps from version 0 upwards; :func:`migrate` applies every step above the database's
version, in order, each recorded in ``schema_version`` in the same transaction, so a
database is always at exactly one version and a crash mid-upgrade leaves it at the old
one.  A database at a version above the newest this code knows was written by a newer
paragents: :func:`migrate` refuses it with :class:`SchemaTooNew` rather than guess.

A migration's steps are **frozen**: once released, a step is never edited, because
databases in the field were built by it.  Steps are DDL strings written in the SQL that
SQLite and PostgreSQL share, or functions of a :class:`~sqlalchemy.engine.Connection`
for data migrations.  Adding version 2 means three things::

    Migration(2, "runs.owner", ("ALTER TABLE runs ADD COLUMN owner TEXT",)),

appended to :data:`MIGRATIONS`, the same column in :mod:`paragents.store.schema`, and
nothing else — the test that compares a migrated database with the schema checks they
agree.

The caller holds a write transaction (on SQLite ``BEGIN IMMEDIATE``); on PostgreSQL
:func:`migrate` also takes a transaction-scoped advisory lock, so two processes opening
a new database at once apply each step once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, inspect, select, text

from .schema import schema_version

__all__ = ["LATEST", "MIGRATIONS", "Migration", "SchemaTooNew", "current_version", "migrate"]

Step = str | Callable[[Connection], None]

#: Key of the PostgreSQL advisory lock held while migrating ("paragent" in ASCII).
_PG_LOCK_KEY = 0x70617261_67656E74


@dataclass(frozen=True, slots=True)
class Migration:
    """Step ``version - 1`` -> ``version``: DDL strings and/or functions, run in order."""

    version: int
    description: str
    steps: tuple[Step, ...]


#: Every migration, oldest first.  Append; never edit a released one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, tasks, events and results",
        (
            """CREATE TABLE runs (
                run_id TEXT NOT NULL PRIMARY KEY,
                name TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                spec TEXT NOT NULL,
                report TEXT,
                stop_reason TEXT
            )""",
            "CREATE INDEX runs_created_at ON runs (created_at)",
            """CREATE TABLE tasks (
                run_id TEXT NOT NULL REFERENCES runs (run_id),
                task_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                added_by TEXT,
                definition TEXT NOT NULL,
                PRIMARY KEY (run_id, task_id)
            )""",
            """CREATE TABLE events (
                run_id TEXT NOT NULL REFERENCES runs (run_id),
                seq INTEGER NOT NULL,
                time DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL,
                task TEXT,
                agent TEXT,
                attempt INTEGER NOT NULL,
                data TEXT,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE results (
                run_id TEXT NOT NULL REFERENCES runs (run_id),
                task_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                agent TEXT,
                result TEXT NOT NULL,
                result_is_repr BOOLEAN NOT NULL,
                usage TEXT,
                inputs_hash TEXT NOT NULL,
                finished_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (run_id, task_id)
            )""",
        ),
    ),
)

#: The schema version this code writes and reads.
LATEST = MIGRATIONS[-1].version


class SchemaTooNew(Exception):
    """The database's schema is newer than every migration this code knows."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(f"schema version {found}, newer than {known}")


def current_version(conn: Connection) -> int:
    """The database's schema version; 0 for a database without a ``schema_version`` table."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    return int(conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one())


def migrate(conn: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Bring the database up to the last of ``migrations``; the versions applied, in order.

    Call it inside a write transaction.  Raises :class:`SchemaTooNew` for a database
    newer than ``migrations`` and :class:`ValueError` when ``migrations`` are not numbered
    1, 2, 3, ... in order (a programming error).
    """
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, ... in order, got {numbers}")
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER NOT NULL PRIMARY KEY,"
            " description TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
    )
    found = current_version(conn)
    if found > len(migrations):
        raise SchemaTooNew(found, len(migrations))
    applied: list[int] = []
    for migration in migrations[found:]:
        for step in migration.steps:
            if isinstance(step, str):
                conn.execute(text(step))
            else:
                step(conn)
        conn.execute(
            insert(schema_version).values(
                version=migration.version, description=migration.description, applied_at=time.time()
            )
        )
        applied.append(migration.version)
    return applied
