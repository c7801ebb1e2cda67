"""From a model's text to a valid plan: tolerant reading, precise errors, safe repairs.

Theory of operation
-------------------
A planner model is asked for ``{"tasks": [{"id", "description", "skill", "depends_on",
"expandable"}, ...]}`` and answers with whatever it manages.  :func:`parse_plan` turns
that text into a :class:`Plan` whose tasks form a DAG, or raises
:class:`~paragents.core.errors.PlanError` with a message precise enough to send back to
the model (``tasks[2].depends_on must be a list of task ids, got 5``).  Three stages:

1. **Finding the tasks.**  :class:`~paragents.planner._scan.ItemScanner` skips prose and
   code fences, finds the task list (under ``"tasks"``, or a bare list) and cuts out
   each item as soon as it is complete, which is also how streamed planning
   (:mod:`paragents.planner.stream`) works: the batch parser runs the same scanner and
   the same reading over the whole text at once, so both always agree.  If the text ends early, the complete
   items are kept and the incomplete one dropped.  When no task list is found, the first
   JSON value in the text is decoded and read leniently (a single task object, tasks
   keyed by id, a plan nested under ``"plan"``), or explained in the error.

2. **Reading each task** (:meth:`PlanAssembler.add`): every field is type-checked, and
   coerced where the intent is unambiguous (a number id, a string ``depends_on``,
   ``"true"`` for a boolean, a field under a common alias such as ``dependencies``).  A
   value that cannot be read is an error naming ``tasks[i].field``; errors are collected
   for all tasks and reported together.  Ids are made unique on arrival: a missing id
   is filled in (``t3``), an exact repeat of a task is dropped, a different task
   reusing an id is renamed (``x_2``), and so is a task whose id is ``taken`` by the
   running graph (references to it in the plan follow the new name).  A skill no agent
   has becomes the closest available one, or the default skill.  Tasks past
   ``max_tasks`` are dropped.  An id or a description over the size limits of
   :mod:`paragents.core.sizes` is an error naming the task; a plan with more than
   ``MAX_TASKS`` tasks is refused at once.

3. **Repairing the graph** (at the end, when every id is known): self-loops and repeated
   dependencies are removed, dependencies on ids that are neither in the plan nor
   ``external`` (finished tasks of a running graph) are dropped, and cycles are broken.
   A cycle is found by depth-first search; on it, the dependency that points furthest
   *forward* in the listing is removed, because models list tasks in the order they
   mean to run them, so "depends on a later task" is the likeliest mistake.

Every repair leaves a human-readable line in :attr:`Plan.repairs`, so a user can see
what the planner changed and a benchmark can count it.  Nothing here performs I/O.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import PlanError
from ..core.graph import Task, TaskGraph
from ..core.sizes import MAX_ID_CHARS, MAX_PROMPT_CHARS, MAX_TASKS, too_long
from ._scan import TASK_LIST_KEYS, ItemScanner

__all__ = ["Plan", "PlanAssembler", "PlannedTask", "parse_plan"]

_MAX_ERRORS_SHOWN = 5
_MAX_JSON_STARTS = 64  # candidate starts tried when no task list was found
_ALIASES: Mapping[str, tuple[str, ...]] = {
    "id": ("task_id", "name"),
    "description": ("prompt", "task", "instruction", "title", "name"),
    "skill": ("agent", "role", "skills"),
    "depends_on": ("dependencies", "deps", "depends", "requires", "after"),
    "expandable": (),
}
_TRUE, _FALSE = ("true", "yes"), ("false", "no")
_OPENER = re.compile(r"[{\[]")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """One task of a plan, as the model described it (after reading and repair)."""

    id: str
    description: str
    skill: str = ""
    depends_on: tuple[str, ...] = ()
    expandable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "skill": self.skill,
            "depends_on": list(self.depends_on),
            "expandable": self.expandable,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid plan: tasks in the model's order, dependencies acyclic, and what was repaired.

    Dependencies name tasks of the plan, or ``external`` ids given to the parser (the
    finished tasks of a running graph, when replanning).
    """

    tasks: list[PlannedTask]
    repairs: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tasks]

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data, in the schema the model was asked for."""
        return {"tasks": [t.to_dict() for t in self.tasks]}

    def to_tasks(
        self,
        *,
        default_duration: float = 1.0,
        default_tokens: int = 0,
        goal: str = "",
        prompt_format: str = "{description}",
        id_prefix: str = "",
        meta: Mapping[str, Any] | None = None,
    ) -> list[Task]:
        """Graph tasks for this plan.

        Each task's prompt is ``prompt_format`` filled with ``description``, ``id``,
        ``skill`` and ``goal``; its skills are ``{skill}`` (none when the skill is empty);
        ``meta`` is ``{"planned": True}`` plus ``meta``.  ``id_prefix`` is put before every
        id of the plan (and dependencies on them), which keeps an expansion's ids unique.
        """
        own = set(self.ids)

        def name(tid: str) -> str:
            return id_prefix + tid if tid in own else tid

        extra = dict(meta or {})
        return [
            Task(
                id=name(t.id),
                prompt=prompt_format.format(description=t.description, id=t.id, skill=t.skill, goal=goal),
                skills=frozenset({t.skill}) if t.skill else frozenset(),
                depends_on=tuple(name(d) for d in t.depends_on),
                duration=default_duration,
                tokens=default_tokens,
                expandable=t.expandable,
                meta={"planned": True, **extra},
            )
            for t in self.tasks
        ]

    def to_graph(self, **options: Any) -> TaskGraph:
        """A :class:`TaskGraph` of :meth:`to_tasks` (``options`` are its keywords)."""
        return TaskGraph(self.to_tasks(**options))


def parse_plan(
    text: str,
    *,
    skills: Mapping[str, str] | Collection[str] = (),
    default_skill: str | None = None,
    max_tasks: int | None = None,
    taken: Collection[str] = (),
    external: Collection[str] = (),
) -> Plan:
    """Read a plan from a model's text, repairing what is safe to repair.

    ``skills`` are the available skills (a mapping's values, agent roles, help to match a
    skill the model misnamed); ``default_skill`` (the first skill unless given) replaces
    a skill that matches none.  ``taken`` ids may not be reused by new tasks;
    ``external`` ids may be depended on (and are taken too).  Raises
    :class:`~paragents.core.errors.PlanError` naming the problem when no valid plan can
    be made.
    """
    assembler = PlanAssembler(
        skills, default_skill=default_skill, max_tasks=max_tasks, taken=taken, external=external
    )
    scanner = ItemScanner()
    for index, item in scanner.feed(text):
        assembler.add_text(index, item)
    return assembler.conclude(scanner)


class PlanAssembler:
    """Reads task items one at a time (stage 2) and repairs the whole plan at the end (stage 3).

    ``tasks`` holds the tasks accepted so far, by their final ids, with dependencies as
    read (not yet checked against the other ids).  :meth:`resolve` maps a dependency to
    the task it means now (following renames of taken ids).
    """

    def __init__(
        self,
        skills: Mapping[str, str] | Collection[str] = (),
        *,
        default_skill: str | None = None,
        max_tasks: int | None = None,
        taken: Collection[str] = (),
        external: Collection[str] = (),
    ) -> None:
        self._skills = list(dict.fromkeys(skills))
        self._roles: Mapping[str, str] = skills if isinstance(skills, Mapping) else {}
        if default_skill is not None and self._skills and default_skill not in self._skills:
            raise ValueError(f"default skill {default_skill!r} is not one of the skills {self._skills}")
        self._default = default_skill if default_skill is not None else (self._skills[0] if self._skills else "")
        if max_tasks is not None and max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, got {max_tasks}")
        self._max_tasks = max_tasks
        self._external = frozenset(external)
        self._taken = frozenset(taken) | self._external
        self.tasks: dict[str, PlannedTask] = {}
        self.repairs: list[str] = []
        self.errors: list[str] = []
        self._first: dict[str, str] = {}  # id as written -> final id of its first task
        self._renames: dict[str, str] = {}  # taken (not external) id -> the plan's task
        self._over = 0  # tasks dropped past max_tasks

    def resolve(self, dep: str) -> str:
        return self._renames.get(dep, dep)

    def is_external(self, dep: str) -> bool:
        return dep in self._external

    # ----------------------------------------------------------- stage 2: items
    def add_text(self, index: int, text: str) -> PlannedTask | None:
        """Decode one item's JSON text and :meth:`add` it."""
        if self._full():
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            detail = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            self.errors.append(f"tasks[{index}] is not valid JSON ({detail}): {_show_text(text)}")
            return None
        return self.add(index, value)

    def add(self, index: int, value: Any) -> PlannedTask | None:
        """Read the task at ``tasks[index]``; the accepted task, or None (dropped, or an error)."""
        if self._full():
            return None
        where = f"tasks[{index}]"
        if len(self.tasks) >= MAX_TASKS:
            raise PlanError(f"the plan has more than {MAX_TASKS:,} tasks, the limit (MAX_TASKS)")
        if not isinstance(value, dict):
            self.errors.append(f"{where} must be a task object, got {_show(value)}")
            return None
        notes: list[str] = []
        errors_before = len(self.errors)
        tid = self._read_id(where, value, notes)
        description = self._read_description(where, value, notes)
        skill = self._read_skill(where, value, notes)
        deps = self._read_deps(where, value, notes)
        expandable = self._read_expandable(where, value, notes)
        if len(self.errors) > errors_before:
            return None
        if tid is None:
            tid = self._fresh(f"t{index + 1}", keep=True)
            notes.append(f"{where} has no id; named it {tid!r}")
            self._first[tid] = tid
        elif tid in self._first:
            twin = self.tasks[self._first[tid]]
            same = (description, skill, expandable) == (twin.description, twin.skill, twin.expandable)
            if same and tuple(self._clean(twin.id, deps, [])) == twin.depends_on:
                self.repairs.append(f"dropped {where}, an exact repeat of task {twin.id!r}")
                return None
            new = self._fresh(tid)
            notes.append(f"{where} reuses the id {tid!r}; renamed it {new!r}")
            tid = new
        elif tid in self._taken:
            new = self._fresh(tid)
            notes.append(f"{where}.id {tid!r} is already taken by another task; renamed it {new!r}")
            if tid not in self._external:
                self._renames[tid] = new
            self._first[tid] = new
            tid = new
        else:
            self._first[tid] = tid
        task = PlannedTask(tid, description, skill, tuple(self._clean(tid, deps, notes)), expandable)
        self.tasks[tid] = task
        self.repairs.extend(notes)
        return task

    def _full(self) -> bool:
        """Whether the plan already has ``max_tasks`` tasks; counts the item it turns away."""
        if self._max_tasks is not None and len(self.tasks) >= self._max_tasks:
            self._over += 1
            return True
        return False

    def _fresh(self, base: str, *, keep: bool = False) -> str:
        """``base`` itself (with ``keep``) or ``base_2``, ``base_3``, ...: the first id not in use."""
        def free(tid: str) -> bool:
            return tid not in self.tasks and tid not in self._taken and tid not in self._first

        if keep and free(base):
            return base
        n = 2
        while not free(f"{base}_{n}"):
            n += 1
        return f"{base}_{n}"

    def _get(self, where: str, value: Mapping[str, Any], name: str, notes: list[str]) -> Any:
        if name in value:
            return value[name]
        for alias in _ALIASES[name]:
            if alias in value:
                notes.append(f"{where}: read {alias!r} as {name!r}")
                return value[alias]
        return _MISSING

    def _read_id(self, where: str, value: Mapping[str, Any], notes: list[str]) -> str | None:
        raw = self._get(where, value, "id", notes)
        if raw is _MISSING or raw is None:
            return None
        if isinstance(raw, int) and not isinstance(raw, bool):
            notes.append(f"{where}.id was the number {raw}; used {str(raw)!r}")
            return str(raw)
        if isinstance(raw, str):
            if len(raw.strip()) > MAX_ID_CHARS:
                self.errors.append(f"{where}: " + too_long("id", len(raw.strip()), MAX_ID_CHARS, "MAX_ID_CHARS"))
                return None
            return raw.strip() or None
        self.errors.append(f"{where}.id must be a string, got {_show(raw)}")
        return None

    def _read_description(self, where: str, value: Mapping[str, Any], notes: list[str]) -> str:
        raw = self._get(where, value, "description", notes)
        if raw is _MISSING or raw is None:
            self.errors.append(f"{where} has no description")
        elif not isinstance(raw, str):
            self.errors.append(f"{where}.description must be a string, got {_show(raw)}")
        elif not raw.strip():
            self.errors.append(f"{where}.description is empty")
        elif len(raw.strip()) > MAX_PROMPT_CHARS:
            length = len(raw.strip())
            self.errors.append(f"{where}: " + too_long("description", length, MAX_PROMPT_CHARS, "MAX_PROMPT_CHARS"))
        else:
            return raw.strip()
        return ""

    def _read_skill(self, where: str, value: Mapping[str, Any], notes: list[str]) -> str:
        raw = self._get(where, value, "skill", notes)
        if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
            named = [s for s in raw if s.strip()]
            if named:
                notes.append(f"{where}.skill was a list; used its first entry {named[0].strip()!r}")
            raw = named[0] if named else None
        if raw is _MISSING or raw is None or (isinstance(raw, str) and not raw.strip()):
            if self._default:
                notes.append(f"{where} has no skill; used the default {self._default!r}")
            return self._default
        if not isinstance(raw, str):
            self.errors.append(f"{where}.skill must be a string, got {_show(raw)}")
            return ""
        skill = raw.strip()
        if not self._skills or skill in self._skills:
            return skill
        match = self._match_skill(skill)
        if match is not None:
            notes.append(f"{where}.skill {skill!r} is not an available skill; used the closest, {match!r}")
            return match
        notes.append(f"{where}.skill {skill!r} is not an available skill; used the default, {self._default!r}")
        return self._default

    def _match_skill(self, given: str) -> str | None:
        """The available skill ``given`` most likely means: same name up to case, a close
        spelling, one name containing the other, or a word of the skill's role."""
        lower = {s.lower(): s for s in self._skills}
        wanted = given.lower()
        if wanted in lower:
            return lower[wanted]
        close = difflib.get_close_matches(wanted, list(lower), n=1, cutoff=0.6)
        if close:
            return lower[close[0]]
        for low, skill in lower.items():
            if low in wanted or wanted in low:
                return skill
        words = {w for w in re.findall(r"\w+", wanted) if len(w) >= 4}
        for skill in self._skills:
            if words & set(re.findall(r"\w+", self._roles.get(skill, "").lower())):
                return skill
        return None

    def _read_deps(self, where: str, value: Mapping[str, Any], notes: list[str]) -> list[str]:
        raw = self._get(where, value, "depends_on", notes)
        if raw is _MISSING or raw is None:
            return []
        if isinstance(raw, str):
            deps = [p.strip() for p in raw.split(",") if p.strip()]
            notes.append(f"{where}.depends_on was the string {raw!r}; read it as {deps!r}")
            return deps
        if isinstance(raw, int) and not isinstance(raw, bool):
            notes.append(f"{where}.depends_on was the number {raw}; read it as [{str(raw)!r}]")
            return [str(raw)]
        if not isinstance(raw, list):
            self.errors.append(f"{where}.depends_on must be a list of task ids, got {_show(raw)}")
            return []
        deps = []
        for k, dep in enumerate(raw):
            if isinstance(dep, int) and not isinstance(dep, bool):
                notes.append(f"{where}.depends_on[{k}] was the number {dep}; used {str(dep)!r}")
                deps.append(str(dep))
            elif isinstance(dep, str) and dep.strip():
                deps.append(dep.strip())
            elif isinstance(dep, str):
                notes.append(f"{where}.depends_on[{k}] was empty; dropped it")
            else:
                self.errors.append(f"{where}.depends_on[{k}] must be a task id, got {_show(dep)}")
        return deps

    def _read_expandable(self, where: str, value: Mapping[str, Any], notes: list[str]) -> bool:
        raw = self._get(where, value, "expandable", notes)
        if raw is _MISSING or raw is None:
            return False
        if isinstance(raw, bool):
            return raw
        word = raw.strip().lower() if isinstance(raw, str) else raw
        if word in _TRUE or word in _FALSE or (type(raw) is int and raw in (0, 1)):
            flag = word in _TRUE or raw == 1
            notes.append(f"{where}.expandable was {_show(raw)}; read it as {str(flag).lower()}")
            return flag
        self.errors.append(f"{where}.expandable must be true or false, got {_show(raw)}")
        return False

    def _clean(
        self, tid: str, deps: Sequence[str], notes: list[str], known: Collection[str] | None = None
    ) -> list[str]:
        """Resolve dependencies; drop self-loops, repeats and (given ``known``) unknown ids."""
        out: list[str] = []
        repeated: list[str] = []
        for dep in deps:
            target = self.resolve(dep)
            if target == tid:
                notes.append(f"removed the dependency of task {tid!r} on itself")
            elif target in out or target in repeated:
                if target not in repeated:  # one note per repeated id, however often
                    repeated.append(target)
                    notes.append(f"removed a repeated dependency of task {tid!r} on {target!r}")
            elif known is not None and target not in known and target not in self._external:
                notes.append(f"dropped the dependency of task {tid!r} on unknown task {dep!r}")
            else:
                out.append(target)
        return out

    # ------------------------------------------------------ stage 3: the whole
    def conclude(self, scanner: ItemScanner) -> Plan:
        """The plan, once ``scanner`` has seen the whole text: stage 1's fallback, then stage 3."""
        text = scanner.text
        if not text.strip():
            raise PlanError("the model returned no text")
        if scanner.found and scanner.partial:
            if not self.tasks and not self.errors:
                raise PlanError(f"the text ends inside tasks[{scanner.index}], before any task is complete")
            self.repairs.append(f"the text ends inside tasks[{scanner.index}] (truncated?); dropped that task")
        elif scanner.found and not scanner.closed:
            self.repairs.append("the text ends before the task list closes (truncated?); kept the complete tasks")
        elif not scanner.found:
            for index, value in enumerate(self._items(_first_json(text))):
                self.add(index, value)
        return self._finish()

    def _items(self, value: Any) -> list[Any]:
        """The task items of a JSON value that holds no task list where the scanner looks."""
        if isinstance(value, list):
            return value
        if not value:
            raise PlanError('the plan is an empty JSON object; expected {"tasks": [...]}')
        for key in TASK_LIST_KEYS:
            if key not in value:
                continue
            inner = value[key]
            if isinstance(inner, list):
                return inner
            if isinstance(inner, dict) and any(k in inner for k in TASK_LIST_KEYS):
                return self._items(inner)
            if isinstance(inner, dict) and inner and all(isinstance(v, dict) for v in inner.values()):
                self.repairs.append(f"{key!r} was an object keyed by task id; read it as a list")
                return [v if "id" in v else {"id": k, **v} for k, v in inner.items()]
            raise PlanError(f"{key!r} must be a list of task objects, got {_show(inner)}")
        if "id" in value or "description" in value:
            self.repairs.append("the plan is a single task object; read it as a one-task plan")
            return [value]
        keys = ", ".join(repr(k) for k in list(value)[:8])
        raise PlanError(f"the plan has no 'tasks' list (its keys are {keys})")

    def _finish(self) -> Plan:
        if self.errors:
            shown = self.errors[:_MAX_ERRORS_SHOWN]
            more = len(self.errors) - len(shown)
            raise PlanError("invalid plan: " + "; ".join(shown) + (f"; and {more} more" if more else ""))
        if not self.tasks:
            raise PlanError("the plan has no tasks")
        if self._over:
            cap = len(self.tasks)
            self.repairs.append(
                f"the plan has {cap + self._over} tasks, more than the limit of {cap}; kept the first {cap}"
            )
        known = self.tasks.keys()
        deps = {tid: self._clean(tid, t.depends_on, self.repairs, known) for tid, t in self.tasks.items()}
        self._break_cycles(deps)
        tasks = [replace(t, depends_on=tuple(deps[t.id])) for t in self.tasks.values()]
        return Plan(tasks, list(self.repairs))

    def _break_cycles(self, deps: dict[str, list[str]]) -> None:
        """Remove one dependency per cycle until none is left (see the module docstring)."""
        position = {tid: i for i, tid in enumerate(deps)}
        while (cycle := _find_cycle(deps)) is not None:
            edges = [(cycle[i], cycle[(i + 1) % len(cycle)]) for i in range(len(cycle))]
            task, dep = max(edges, key=lambda e: position[e[1]] - position[e[0]])
            deps[task].remove(dep)
            # ``cycle`` runs along depends_on; a run goes the other way round.
            run = [cycle[0], *reversed(cycle[1:])]
            first = min(range(len(run)), key=lambda i: position[run[i]])
            run = run[first:] + run[:first]
            shown = " -> ".join([*run, run[0]])
            self.repairs.append(f"broke the cycle {shown} by dropping the dependency of {task!r} on {dep!r}")


def _find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle along ``deps`` (each id depends on the next, the last on the first), or None."""
    colour: dict[str, int] = {}  # 1 = on the path, 2 = explored
    for start in deps:
        if start in colour:
            continue
        colour[start] = 1
        path = [start]
        stack = [iter(deps[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                colour[path.pop()] = 2
            elif nxt in deps and colour.get(nxt) == 1:
                return path[path.index(nxt) :]
            elif nxt in deps and nxt not in colour:
                colour[nxt] = 1
                path.append(nxt)
                stack.append(iter(deps[nxt]))
    return None


def _first_json(text: str) -> Any:
    """The first JSON object or list in ``text``; a PlanError saying why there is none."""
    decoder = json.JSONDecoder()
    problem = ""
    for n, match in enumerate(_OPENER.finditer(text)):
        if n == _MAX_JSON_STARTS:
            break
        try:
            return decoder.raw_decode(text, match.start())[0]
        except json.JSONDecodeError as exc:
            problem = problem or f"{exc.msg} at character {exc.pos}"
        except (ValueError, RecursionError) as exc:
            problem = problem or str(exc) or type(exc).__name__
    if not problem:
        raise PlanError(f"no JSON plan in the text: {_show_text(text)}")
    raise PlanError(f"the plan is not valid JSON ({problem}): {_show_text(text)}")


def _show(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: a string in quotes, anything else as JSON."""
    try:
        shown = repr(value) if isinstance(value, str) else json.dumps(value)
    except (ValueError, RecursionError):
        shown = f"a {type(value).__name__}"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _show_text(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
