"""Tasks and the task graph: a DAG that may grow while it runs.

Theory of operation
-------------------
A :class:`Task` is an immutable description of one unit of work: what to do (a prompt,
or an opaque ``action`` that only a driver interprets), which skills it needs, what it
depends on, and the estimates the scheduler plans with (``duration`` in seconds on an
agent of speed 1, ``tokens``).  The core never looks inside ``action``.

A :class:`TaskGraph` holds tasks and their dependency edges.  It is the only place where
the structure of the work lives, and it keeps one invariant: **it is always a DAG whose
edges name known tasks**.  Every mutation goes through :meth:`TaskGraph.add`, which
validates the whole batch before touching any state, so a refused batch leaves the graph
as it was.  Duplicate ids, unknown dependencies, self-loops and cycles are refused with a
:class:`~paragents.core.errors.GraphError` that names the offending ids (for a cycle, the
ids on it, in order).  So is a batch that would break a size limit of
:mod:`~paragents.core.sizes` (tasks, edges, id and prompt length).

Growth while running (expansion, streamed planning) uses the same verb.  Whether the
*target* of a new edge has already started is not the graph's business: the scheduler,
which knows task states, refuses edges into started tasks before it calls :meth:`add`.

State held here:

``_tasks``   id -> Task, in insertion order.
``_preds``   id -> list of ids it depends on (its inputs).
``_succs``   id -> list of ids that depend on it.
``_order``   a cached topological order, dropped on every mutation.
``_n_edges`` the number of edges (for the size limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import CycleError, GraphError
from .sizes import MAX_EDGES, MAX_ID_CHARS, MAX_PROMPT_CHARS, MAX_TASKS, too_long

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = ["Task", "TaskGraph"]


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work.  Immutable: derive a changed copy with :meth:`evolve`.

    ``duration`` is the planning estimate in seconds on an agent of speed 1; ``priority``
    is the user's hint (higher runs sooner under the ``user`` policy); ``retries`` is how
    many times a failed attempt may be retried; ``timeout`` bounds one attempt; ``agent``
    pins the task to one agent by name; ``action`` is opaque to the core (a callable, a
    tool name, ...); ``meta`` carries anything else a driver or a user wants to keep.
    """

    id: str
    prompt: str = ""
    skills: frozenset[str] = frozenset()
    depends_on: tuple[str, ...] = ()
    duration: float = 1.0
    tokens: int = 0
    priority: float = 0.0
    retries: int = 0
    timeout: float | None = None
    agent: str | None = None
    expandable: bool = False
    action: Any = field(default=None, compare=False)
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise GraphError(f"task id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.skills, frozenset):
            object.__setattr__(self, "skills", frozenset(self.skills))
        if not isinstance(self.depends_on, tuple):
            object.__setattr__(self, "depends_on", tuple(self.depends_on))
        if self.duration < 0:
            raise GraphError(f"task {self.id!r}: duration must be >= 0, got {self.duration}")
        if self.retries < 0:
            raise GraphError(f"task {self.id!r}: retries must be >= 0, got {self.retries}")
        if self.timeout is not None and self.timeout <= 0:
            raise GraphError(f"task {self.id!r}: timeout must be > 0, got {self.timeout}")

    def evolve(self, **changes: Any) -> Task:
        """A copy of this task with some fields changed."""
        return replace(self, **changes)


class TaskGraph:
    """A validated DAG of tasks that may grow.  ``TaskGraph(tasks)`` validates at once."""

    __slots__ = ("_tasks", "_preds", "_succs", "_order", "_version", "_n_edges")

    def __init__(self, tasks: Iterable[Task] = (), edges: Iterable[tuple[str, str]] = ()) -> None:
        self._tasks: dict[str, Task] = {}
        self._preds: dict[str, list[str]] = {}
        self._succs: dict[str, list[str]] = {}
        self._order: list[str] | None = None
        self._version = 0
        self._n_edges = 0
        self.add(tasks, edges)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __getitem__(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise GraphError(f"unknown task {task_id!r}") from None

    @property
    def ids(self) -> list[str]:
        return list(self._tasks)

    @property
    def version(self) -> int:
        """Increases with every mutation; policies use it to know when to recompute."""
        return self._version

    def predecessors(self, task_id: str) -> Sequence[str]:
        return self._preds[task_id]

    def successors(self, task_id: str) -> Sequence[str]:
        return self._succs[task_id]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(p, t) for t, ps in self._preds.items() for p in ps]

    def sources(self) -> list[str]:
        return [t for t, ps in self._preds.items() if not ps]

    def sinks(self) -> list[str]:
        return [t for t, ss in self._succs.items() if not ss]

    def topological_order(self) -> list[str]:
        """Kahn's order, stable in insertion order; cached until the next mutation."""
        if self._order is None:
            indeg = {t: len(ps) for t, ps in self._preds.items()}
            order = [t for t, d in indeg.items() if d == 0]
            succs = self._succs
            i = 0
            while i < len(order):
                for s in succs[order[i]]:
                    indeg[s] -= 1
                    if indeg[s] == 0:
                        order.append(s)
                i += 1
            self._order = order
        return self._order

    # ----------------------------------------------------------------- mutation
    def add(self, tasks: Iterable[Task] = (), edges: Iterable[tuple[str, str]] = ()) -> list[str]:
        """Add tasks (with their ``depends_on``) and extra edges ``(before, after)`` at once.

        The batch is validated as a whole (dependencies may point forward within it) and
        applied only if valid.  Returns the ids added, in order.
        """
        new = list(tasks)
        extra = [(str(u), str(v)) for u, v in edges]
        new_ids: dict[str, Task] = {}
        for task in new:
            if not isinstance(task, Task):
                raise GraphError(f"expected a Task, got {type(task).__name__}")
            if task.id in self._tasks or task.id in new_ids:
                raise GraphError(f"duplicate task id {task.id!r}")
            if len(task.id) > MAX_ID_CHARS:
                raise GraphError(too_long(f"task id {task.id[:40]!r}...", len(task.id), MAX_ID_CHARS, "MAX_ID_CHARS"))
            if isinstance(task.prompt, str) and len(task.prompt) > MAX_PROMPT_CHARS:
                what = f"task {task.id!r}: prompt"
                raise GraphError(too_long(what, len(task.prompt), MAX_PROMPT_CHARS, "MAX_PROMPT_CHARS"))
            new_ids[task.id] = task
        if len(self._tasks) + len(new_ids) > MAX_TASKS:
            total = len(self._tasks) + len(new_ids)
            raise GraphError(f"the graph would hold {total:,} tasks, more than the limit of {MAX_TASKS:,} (MAX_TASKS)")
        known = self._tasks.keys() | new_ids.keys()
        pairs: list[tuple[str, str]] = []
        seen_pairs: set[tuple[str, str]] = set()
        for task in new:
            for dep in task.depends_on:
                if dep == task.id:
                    raise CycleError([task.id])
                if dep not in known:
                    raise GraphError(f"task {task.id!r} depends on unknown task {dep!r}")
                if (dep, task.id) not in seen_pairs:
                    seen_pairs.add((dep, task.id))
                    pairs.append((dep, task.id))
        for u, v in extra:
            for end in (u, v):
                if end not in known:
                    raise GraphError(f"edge {u!r} -> {v!r} names unknown task {end!r}")
            if u == v:
                raise CycleError([u])
            if (u, v) not in seen_pairs and u not in self._preds.get(v, ()):
                seen_pairs.add((u, v))
                pairs.append((u, v))
        # A cycle needs an edge that ends in an existing task or among the new ones;
        # new tasks have no successors yet, so only those edges need a search.
        if self._n_edges + len(pairs) > MAX_EDGES:
            total = self._n_edges + len(pairs)
            raise GraphError(f"the graph would hold {total:,} edges, more than the limit of {MAX_EDGES:,} (MAX_EDGES)")
        risky = [(u, v) for u, v in pairs if v in self._tasks or u in new_ids]
        if risky:
            self._check_acyclic(new_ids, pairs)
        for tid, task in new_ids.items():
            self._tasks[tid] = task
            self._preds[tid] = []
            self._succs[tid] = []
        for u, v in pairs:
            self._preds[v].append(u)
            self._succs[u].append(v)
        self._n_edges += len(pairs)
        self._order = None
        self._version += 1
        return list(new_ids)

    def _check_acyclic(self, new_ids: Mapping[str, Task], pairs: Sequence[tuple[str, str]]) -> None:
        """Refuse the batch if the graph plus ``pairs`` has a cycle; name the cycle."""
        succs: dict[str, list[str]] = {}
        for u, v in pairs:
            succs.setdefault(u, []).append(v)

        def out(node: str) -> Iterable[str]:
            yield from self._succs.get(node, ())
            yield from succs.get(node, ())

        # Only nodes touched by new edges can lie on a new cycle: DFS from them.
        starts = {u for u, _ in pairs}
        colour: dict[str, int] = {}  # 1 = on stack, 2 = done
        for start in starts:
            if colour.get(start):
                continue
            stack: list[tuple[str, Iterator[str]]] = [(start, iter(out(start)))]
            path = [start]
            colour[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    colour[node] = 2
                    continue
                state = colour.get(nxt, 0)
                if state == 1:
                    raise CycleError(path[path.index(nxt):])
                if state == 0:
                    colour[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, iter(out(nxt))))

    def replace_task(self, task: Task) -> None:
        """Swap a task for an updated copy with the same id and dependencies (re-estimation)."""
        old = self[task.id]
        if tuple(old.depends_on) != tuple(task.depends_on):
            raise GraphError(f"task {task.id!r}: replace_task cannot change dependencies")
        self._tasks[task.id] = task
        self._version += 1

    # ------------------------------------------------------------------- export
    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` with each node's ``task`` and ``duration`` attributes."""
        import networkx as nx

        g = nx.DiGraph()
        for tid, task in self._tasks.items():
            g.add_node(tid, task=task, duration=task.duration)
        g.add_edges_from(self.edges)
        return g

    def __repr__(self) -> str:
        return f"TaskGraph({len(self._tasks)} tasks, {sum(map(len, self._preds.values()))} edges)"
