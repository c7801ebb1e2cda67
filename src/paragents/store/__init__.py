"""The durable run store: every run's graph, log and results, in SQLite or PostgreSQL.

A run recorded here can be listed, shown, checked and resumed after a crash.
:func:`open_store` opens one (a file path, ``sqlite:///PATH``, ``postgresql://...``, or
None for ``runs.db`` in the user's data directory); :class:`RunStore` reads and writes
it; :class:`~paragents.store.recorder.Recorder` writes a live run in batches, off the
event loop; :func:`check_run` tells whether a stored run is consistent.  The modules
behind this one: ``schema`` (tables), ``migrations`` (schema versions), ``store`` (the
store), ``serialize`` (JSON encodings), ``recorder`` (group commit), ``check``
(consistency rules).
"""

from .check import check_run, resumable
from .recorder import Recorder
from .schema import FINISHED_STATUSES, STATUSES, UNFINISHED_STATUSES
from .serialize import inputs_hash, task_from_json, task_to_json
from .store import (
    ResultRecord,
    ResultWrite,
    RunStore,
    RunSummary,
    StoredRun,
    StoreError,
    TaskRecord,
    default_store_url,
    open_store,
)

__all__ = [
    "FINISHED_STATUSES",
    "STATUSES",
    "UNFINISHED_STATUSES",
    "Recorder",
    "ResultRecord",
    "ResultWrite",
    "RunStore",
    "RunSummary",
    "StoreError",
    "StoredRun",
    "TaskRecord",
    "check_run",
    "default_store_url",
    "inputs_hash",
    "open_store",
    "resumable",
    "task_from_json",
    "task_to_json",
]
