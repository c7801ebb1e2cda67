"""Tiny Python tasks used by the example workflows (``call: "paragents._example_tasks:..."``).

They show that a task may be plain code instead of an LLM call: the runtime runs a
callable that takes the :class:`~paragents.runtime.driver.TaskContext` in a worker thread
and passes its return value to the tasks that depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .runtime.driver import TaskContext

__all__ = ["count_lines"]

_PACKAGE = Path(__file__).resolve().parent


def count_lines(ctx: TaskContext) -> dict[str, int]:
    """Line counts of the package's source files named in the task's prompt.

    The prompt lists paths relative to the installed ``paragents`` package, separated by
    whitespace (``core/graph.py runtime/limits.py``); a path that does not exist, or
    leaves the package, counts ``-1``.
    """
    counts: dict[str, int] = {}
    for name in ctx.task.prompt.split():
        path = (_PACKAGE / name).resolve()
        if _PACKAGE in path.parents and path.is_file():
            with path.open(encoding="utf-8") as f:
                counts[name] = sum(1 for _ in f)
        else:
            counts[name] = -1
    return counts
