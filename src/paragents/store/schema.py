"""The run store's tables, as SQLAlchemy Core objects: the shape every query is written against.

Theory of operation
-------------------
This module describes the **latest** schema and nothing else; it never creates a table.
Databases are created and upgraded by :mod:`paragents.store.migrations`, whose numbered
steps are frozen DDL.  The two must agree, and a test reflects a freshly migrated
database and compares it with :data:`metadata` — so a new column goes here *and* into a
new migration, never into an old one.

The same schema serves SQLite and PostgreSQL, so it uses only portable types: text,
integers, double-precision floats and booleans.  Structured values (a run's spec and
report, an event's data, a task's definition, a result, its usage) are **JSON text**
written by :mod:`paragents.store.serialize`, not a database JSON type: both databases
store and return them byte for byte.  Times are seconds since the epoch (``time.time()``)
except ``events.time``, which is the run's own clock as the scheduler logged it.

Tables (``run_id`` ties each row to its run; every foreign key points at ``runs``):

``runs``            one row per run: ``status`` (see :data:`STATUSES`), ``spec`` (what is
                    needed to rebuild the run; opaque to the store), ``report`` (the run
                    report once it ended), ``stop_reason``.
``tasks``           the graph as it grew: one row per task with ``seq`` (increasing in
                    the order tasks were added; gaps are possible), ``added_by`` (the
                    parent that expanded into it, or null) and ``definition`` (the task's
                    storable fields, see :func:`~paragents.store.serialize.task_to_json`).
``events``          the scheduler's log: ``seq`` is the event's index in it, from 0, so
                    the log is rebuilt in order and a re-append of the same index is a
                    no-op.
``results``         one row per finished task — ``(run_id, task_id)`` is the idempotency
                    key: a result is stored once and never overwritten.  ``result`` is the
                    JSON of the value, or the JSON string of its ``repr()`` when the
                    value is not JSON-able (``result_is_repr`` is then true).
                    ``inputs_hash`` identifies the inputs it was computed from.
``schema_version``  one row per applied migration.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

__all__ = [
    "FINISHED_STATUSES",
    "STATUSES",
    "UNFINISHED_STATUSES",
    "events",
    "metadata",
    "results",
    "runs",
    "schema_version",
    "tasks",
]

#: Statuses of a run that has ended on its own: nothing of it runs or will run again.
#: ``done`` every task finished; ``failed`` some task failed or was cancelled;
#: ``stopped`` a budget or deadline stopped it (``stop_reason`` says which).
FINISHED_STATUSES = frozenset({"done", "failed", "stopped"})
#: Statuses of a run that did not end on its own and may be resumed.  ``running`` it is
#: being recorded — or its process died without a word (SIGKILL, power loss), which looks
#: the same; ``interrupted`` its process was stopped (Ctrl-C, an exception) and said so;
#: ``crashed`` a tool found it ``running`` with its process gone.
UNFINISHED_STATUSES = frozenset({"running", "interrupted", "crashed"})
#: Every status a run may have.
STATUSES = FINISHED_STATUSES | UNFINISHED_STATUSES

metadata = MetaData()


def _run_id() -> Column[str]:
    return Column("run_id", Text, ForeignKey("runs.run_id"), primary_key=True)


runs = Table(
    "runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("status", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("report", Text),
    Column("stop_reason", Text),
    Index("runs_created_at", "created_at"),
)

tasks = Table(
    "tasks",
    metadata,
    _run_id(),
    Column("task_id", Text, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("added_by", Text),
    Column("definition", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    _run_id(),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time", Double, nullable=False),
    Column("kind", Text, nullable=False),
    Column("task", Text),
    Column("agent", Text),
    Column("attempt", Integer, nullable=False),
    Column("data", Text),
)

results = Table(
    "results",
    metadata,
    _run_id(),
    Column("task_id", Text, primary_key=True),
    Column("attempt", Integer, nullable=False),
    Column("agent", Text),
    Column("result", Text, nullable=False),
    Column("result_is_repr", Boolean, nullable=False),
    Column("usage", Text),
    Column("inputs_hash", Text, nullable=False),
    Column("finished_at", Double, nullable=False),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Double, nullable=False),
)
