"""The batched writer that records a live run into a :class:`~paragents.store.RunStore`.

Theory of operation
-------------------
The asyncio runtime must never wait on the database in its hot path, yet a finished
task's result must be durable before its successors are dispatched.  The recorder
reconciles the two with **group commit**:

* :meth:`Recorder.events` and :meth:`Recorder.tasks` only append to an in-memory queue.
* :meth:`Recorder.result` appends too, then awaits the commit of the batch that holds it.
* A batch is everything queued, in arrival order, up to ``max_batch`` items.  It is cut
  ``max_delay`` seconds after the first item of an idle recorder arrived; at once when
  ``max_batch`` items wait or on :meth:`flush`; and, while a batch is being written,
  the moment that write ends.  So a burst of results shares one transaction, and under
  load batches grow instead of queueing up behind one another.  ``max_delay`` is the
  latency one lone result pays on top of its commit; the default, 0, still groups
  everything queued in the same turn of the event loop (a task's chain of successors
  would otherwise wait ``max_delay`` at every link).
* Exactly one batch is in flight at a time, written by :meth:`RunStore.write_batch
  <paragents.store.RunStore.write_batch>` on the recorder's **one** worker thread: no
  database call happens on the event loop, and batches commit in the order they were
  cut.  Because a batch is a prefix of the queue, anything queued before a result is
  committed in the same transaction as the result or an earlier one.

A failed write breaks the recorder: every caller awaiting that batch, and every later
call, gets a :class:`~paragents.store.StoreError` naming the cause (a log with a hole
cannot be continued).  Nothing hangs and nothing is swallowed: an error in a batch of
events alone surfaces at the next :meth:`result`, :meth:`flush` or :meth:`close`.

State (touched only on the event loop's thread):

``_queue``     items waiting for a batch: ``("task", (task, added_by))``,
               ``("event", (seq, event))``, ``("result", (ResultWrite, future))`` and
               ``("barrier", future)`` (a :meth:`flush`; it counts as no item).
``_timer``     the pending ``max_delay`` cut, or None.
``_writing``   True while a batch is in flight.
``_error``     the StoreError that broke the recorder, or None.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.events import Event
from ..core.graph import Task
from .store import ResultWrite, RunStore, StoreError

__all__ = ["Recorder"]

_Item = tuple[str, Any]


class Recorder:
    """Records one run: queue from the event loop, commit in batches on one thread."""

    def __init__(self, store: RunStore, run_id: str, *, max_delay: float = 0.0, max_batch: int = 1000) -> None:
        if max_delay < 0 or max_batch < 1:
            raise ValueError(f"need max_delay >= 0 and max_batch >= 1, got {max_delay} and {max_batch}")
        self.store = store
        self.run_id = run_id
        self.max_delay = max_delay
        self.max_batch = max_batch
        self._queue: deque[_Item] = deque()
        self._pending = 0  # items in _queue that are not barriers
        self._timer: asyncio.TimerHandle | None = None
        self._writing = False
        self._error: StoreError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # ------------------------------------------------------------------- verbs
    async def start(self) -> None:
        """Start the writer thread.  Call once, on the loop that will use the recorder."""
        if self._loop is not None:
            raise StoreError(f"the recorder of run {self.run_id!r} is already started")
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"paragents-recorder-{self.run_id}")

    def events(self, items: Sequence[tuple[int, Event]]) -> None:
        """Queue ``(seq, event)`` pairs of the log for the next batch; never blocks."""
        self._check()
        for item in items:
            self._queue.append(("event", item))
        self._queued(len(items))

    def tasks(self, tasks: Sequence[Task], added_by: str | None) -> None:
        """Queue tasks added to the graph (by ``added_by``, or None at the start)."""
        self._check()
        for task in tasks:
            self._queue.append(("task", (task, added_by)))
        self._queued(len(tasks))

    async def result(
        self, task_id: str, attempt: int, agent: str | None, result: Any, usage: Any, inputs_hash: str
    ) -> bool:
        """Queue a task's result and wait until it is committed; True if it was stored now,
        False if the store already held a result for that task (see ``put_result``)."""
        self._check()
        assert self._loop is not None
        future: asyncio.Future[bool] = self._loop.create_future()
        self._queue.append(("result", (ResultWrite(task_id, attempt, agent, result, usage, inputs_hash), future)))
        self._queued(1)
        return await future

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self._check()
        assert self._loop is not None
        if not self._queue and not self._writing:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.append(("barrier", future))
        self._cut()
        await future

    async def close(self) -> None:
        """Flush, then stop the writer thread.  Raises the error that broke the recorder, if any."""
        if self._closed:
            return
        try:
            if self._loop is not None and self._error is None:
                await self.flush()
        finally:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
        if self._error is not None:
            raise self._error

    # --------------------------------------------------------------- batching
    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._loop is None:
            raise StoreError(f"the recorder of run {self.run_id!r} is not started")
        if self._closed:
            raise StoreError(f"the recorder of run {self.run_id!r} is closed")

    def _queued(self, n: int) -> None:
        self._pending += n
        if self._writing:
            return  # the batch in flight cuts the next one when it ends
        if self._pending >= self.max_batch:
            self._cut()
        elif self._timer is None and self._pending:
            assert self._loop is not None
            self._timer = self._loop.call_later(self.max_delay, self._cut)

    def _cut(self) -> None:
        """Send the next batch to the writer thread, unless one is in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing:
            return
        tasks: list[tuple[Task, str | None]] = []
        events: list[tuple[int, Event]] = []
        results: list[ResultWrite] = []
        waiting: list[asyncio.Future[bool]] = []  # one per result, in order
        barriers: list[asyncio.Future[None]] = []
        taken = 0
        queue = self._queue
        while queue and (taken < self.max_batch or queue[0][0] == "barrier"):
            kind, payload = queue.popleft()
            if kind == "barrier":
                barriers.append(payload)
                continue
            taken += 1
            if kind == "event":
                events.append(payload)
            elif kind == "task":
                tasks.append(payload)
            else:
                results.append(payload[0])
                waiting.append(payload[1])
        self._pending -= taken
        if not taken:  # only flushes, and nothing in flight: all is committed
            _release(barriers)
            return
        assert self._loop is not None and self._executor is not None
        self._writing = True
        write = self._loop.run_in_executor(self._executor, self._write, tasks, events, results)
        write.add_done_callback(lambda done: self._written(done, waiting, barriers))

    def _write(
        self, tasks: list[tuple[Task, str | None]], events: list[tuple[int, Event]], results: list[ResultWrite]
    ) -> list[bool]:
        return self.store.write_batch(self.run_id, tasks=tasks, events=events, results=results)

    def _written(
        self,
        done: asyncio.Future[list[bool]],
        waiting: list[asyncio.Future[bool]],
        barriers: list[asyncio.Future[None]],
    ) -> None:
        """A batch's write ended: wake its waiters, then cut the next batch — at once,
        since what queued meanwhile has waited a whole write already — or break."""
        self._writing = False
        exc = done.exception()
        if exc is None:
            for future, stored in zip(waiting, done.result(), strict=True):
                if not future.done():  # done: its awaiting task was cancelled; the write stands
                    future.set_result(stored)
            _release(barriers)
            if self._queue:
                self._cut()
            return
        if isinstance(exc, StoreError):
            self._error = exc
        else:
            self._error = StoreError(f"recording run {self.run_id!r} failed: {exc!r}")
            self._error.__cause__ = exc
        futures: list[asyncio.Future[Any]] = [*waiting, *barriers]
        for kind, payload in self._queue:
            if kind == "result":
                futures.append(payload[1])
            elif kind == "barrier":
                futures.append(payload)
        self._queue.clear()
        self._pending = 0
        for future in futures:
            if not future.done():
                future.set_exception(self._error)


def _release(barriers: list[asyncio.Future[None]]) -> None:
    for future in barriers:
        if not future.done():
            future.set_result(None)
