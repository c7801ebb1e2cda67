"""Streamed planning: hand out each planned task the moment it can run.

Theory of operation
-------------------
When a planner model streams its answer, the first tasks of the plan are complete long
before the last one is written.  :class:`PlanStream` is fed the text chunk by chunk (as
tokens arrive) and returns, from each :meth:`PlanStream.feed`, the tasks that became
**releasable**: complete (the scanner saw the item's closing brace), read without error
(:class:`~paragents.planner.parse.PlanAssembler` applies the same per-task reading and
repairs as :func:`~paragents.planner.parse.parse_plan`), and with every dependency
either released already or ``external`` (finished work of a running graph).  A runtime
may add a released task to its graph and dispatch it at once, while the model is still
writing the rest of the plan.

A task that depends on an id not seen yet is **held** until that id is released; the
held tasks are looked at again whenever something is released, so tasks come out in an
order where each follows its dependencies.  :meth:`PlanStream.close`, at the end of the
text, runs the whole-plan repairs (unknown dependencies dropped, cycles broken, the
truncation and fallback reading of ``parse_plan``) and returns the tasks still held, in
dependency order.

Why released tasks never change: a released task depends only on released tasks (or
external ids), so none of its dependencies is unknown and it lies on no cycle; the final
repairs leave it exactly as it was released.  ``parse_plan`` runs the same scanner and
reading over the whole text at once, so every chunking of a text gives the plan (or the
error) that ``parse_plan`` gives.

If the text turns out unusable (an item with a type error, no tasks at all), ``close``
raises :class:`~paragents.core.errors.PlanError` even though some tasks may have been
released: deciding what to do with work already started is the caller's business.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from ._scan import ItemScanner
from .parse import Plan, PlanAssembler, PlannedTask

__all__ = ["PlanStream"]


class PlanStream:
    """Incremental plan parser.  ``feed(chunk)`` -> newly releasable tasks; ``close()`` -> the rest.

    Options are :func:`~paragents.planner.parse.parse_plan`'s.
    """

    def __init__(
        self,
        *,
        skills: Mapping[str, str] | Collection[str] = (),
        default_skill: str | None = None,
        max_tasks: int | None = None,
        taken: Collection[str] = (),
        external: Collection[str] = (),
    ) -> None:
        self._assembler = PlanAssembler(
            skills, default_skill=default_skill, max_tasks=max_tasks, taken=taken, external=external
        )
        self._scanner = ItemScanner()
        self._held: list[str] = []
        self._released: set[str] = set()
        self._plan: Plan | None = None

    @property
    def plan(self) -> Plan:
        """The whole repaired plan; available once :meth:`close` has returned."""
        if self._plan is None:
            raise RuntimeError("the plan is known only after close()")
        return self._plan

    def feed(self, chunk: str) -> list[PlannedTask]:
        """Take the next piece of text; return the tasks it made releasable, in order."""
        if self._plan is not None:
            raise RuntimeError("feed() after close()")
        for index, item in self._scanner.feed(chunk):
            task = self._assembler.add_text(index, item)
            if task is not None:
                self._held.append(task.id)
        return self._release(self._assembler.tasks)

    def close(self) -> list[PlannedTask]:
        """End of text: repair the whole plan and return the tasks not released yet.

        Raises :class:`~paragents.core.errors.PlanError` if no valid plan can be made.
        """
        if self._plan is not None:
            raise RuntimeError("close() called twice")
        plan = self._assembler.conclude(self._scanner)
        self._plan = plan
        self._held = [t.id for t in plan.tasks if t.id not in self._released]
        return self._release({t.id: t for t in plan.tasks})

    def _release(self, tasks: Mapping[str, PlannedTask]) -> list[PlannedTask]:
        """Move every held task whose dependencies are all released (or external) out."""
        resolve, external = self._assembler.resolve, self._assembler.is_external
        out: list[PlannedTask] = []
        progress = True
        while progress:
            progress = False
            for tid in list(self._held):
                deps = tuple(resolve(d) for d in tasks[tid].depends_on)
                if all(d in self._released or external(d) for d in deps):
                    self._held.remove(tid)
                    self._released.add(tid)
                    out.append(replace(tasks[tid], depends_on=deps))
                    progress = True
        return out
