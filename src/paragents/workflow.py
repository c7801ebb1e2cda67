"""YAML workflows: backends, agents, policies and tasks in one file, loaded into runnable objects.

Theory of operation
-------------------
:func:`load_workflow` turns a YAML document (see ``examples/README.md`` for every key)
into a :class:`Workflow`: a validated :class:`~paragents.core.graph.TaskGraph`, the
:class:`~paragents.agents.Agent` list with their backends, the scheduling policies and
the per-endpoint :class:`~paragents.runtime.limits.Limits`, ready to be handed to
``paragents.runtime.driver.run(workflow.graph, workflow.agents, **workflow.run_options())``.
:func:`load_agents` reads a standalone agents file (``backends:`` + ``agents:``) that
may replace a workflow's own agents (``paragents run --agents FILE``).

Loading is strict and happens in one pass, section by section, in the order
``policies`` -> ``backends`` -> ``agents`` -> ``tasks``, so that each section can check
its references to the earlier ones.  Every section is read against a small schema table
(``_TOP``, ``_POLICIES``, ``_AGENT``, ``_TASK``, ...) by :func:`_read`, which rejects
unknown keys (naming them and the allowed ones), missing required keys, wrong types and
out-of-range numbers.  Every problem raises one :class:`~paragents.core.errors.WorkflowError`
whose message names the place, e.g. ``flow.yaml: tasks[3] (id 'draft'): depends_on names
unknown task 'x'``; YAML syntax errors carry their line and column, and duplicate
mapping keys (which PyYAML would silently collapse) are refused the same way.
Graph errors (cycles, self-dependencies) come from ``TaskGraph`` itself and are re-raised
as ``WorkflowError`` with the same prefix, keeping the cycle's ids in order.  The size
limits of :mod:`paragents.core.sizes` (tasks, id and prompt length) are checked per task,
so their messages name the task too.  An optional ``budget:`` section becomes a
:class:`~paragents.core.budget.Budget` handed to the run (``run_options()["budget"]``),
and an optional ``adaptive:`` section an :class:`~paragents.adaptive.AdaptiveConfig`
(``run_options()["adaptive"]``), one sub-section per control, each with ``enabled``.

Backends.  :data:`BACKEND_KINDS` is the single extension point for backend kinds: a kind
is a factory taking keyword parameters plus the endpoint template used when the YAML
sets none.  The parameters a kind accepts, and their types, are read from the factory's
signature (its keyword parameters with defaults, ``name`` excepted), so adding a kind is
one line here.  Each backend's optional ``limits`` are keyed by its ``endpoint``: agents
whose backends share an endpoint share one limiter at run time.  ``backend_override``
(one of :data:`BACKEND_OVERRIDES`) rebuilds every declared backend of another kind as
the override's kind with default parameters, keeping names, limits and explicitly set
endpoints, so agents that shared an endpoint still share one limiter.  An agent without
``backend`` uses the only declared backend; with none declared it uses an implicit
simulated one (``sim://default``).

Tasks with a ``call: "package.module:function"`` run that Python callable (resolved with
:mod:`importlib`; a workflow file's own directory is importable while it loads); tasks
with ``aggregate`` (``vote``, ``mean``, ``weighted_mean``, ``merge``) combine their
inputs as :mod:`paragents.aggregate` says; other tasks are LLM calls on their agent's
backend.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import yaml

from .adaptive.manager import (
    AdaptiveConfig,
    AimdConfig,
    AvoidConfig,
    EstimateConfig,
    HedgeConfig,
    ReplanConfig,
)
from .agents import Agent
from .aggregate import aggregator, merge_prompt
from .backends.base import Backend
from .backends.local import LocalBackend
from .backends.openai import OpenAIBackend
from .backends.simulated import SimulatedBackend
from .context.runtime_context import ContextConfig
from .core.agent_state import WILDCARD
from .core.budget import Budget, BudgetError
from .core.errors import GraphError, WorkflowError
from .core.graph import Task, TaskGraph
from .core.policies import ASSIGN_POLICIES, PRIORITY_POLICIES, Backoff
from .core.sizes import MAX_ID_CHARS, MAX_PROMPT_CHARS, MAX_TASKS, too_long
from .runtime.limits import Limits

__all__ = [
    "BACKEND_KINDS",
    "BACKEND_OVERRIDES",
    "AgentConfig",
    "BackendKind",
    "Workflow",
    "load_agents",
    "load_workflow",
    "resolve_call",
]


_T = TypeVar("_T")


# ---------------------------------------------------------------- public types
@dataclass(frozen=True, slots=True)
class BackendKind:
    """How backends of one ``kind:`` are built.

    ``factory`` is called with keyword arguments only: ``name`` (the backend's key under
    ``backends:``) and the YAML parameters.  ``default_endpoint`` is the endpoint a backend
    gets when its YAML sets none; ``{name}`` is replaced by the backend's name.
    """

    factory: Callable[..., Backend]
    default_endpoint: str | None = None

    def parameters(self) -> dict[str, Any]:
        """The YAML parameters this kind accepts, each with its default value."""
        return {
            p.name: p.default
            for p in inspect.signature(self.factory).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "name" and p.default is not p.empty
        }

    def build(self, name: str, params: Mapping[str, Any]) -> Backend:
        """A backend named ``name`` from already type-checked parameters."""
        args = dict(params)
        if self.default_endpoint is not None and "endpoint" not in args:
            args["endpoint"] = self.default_endpoint.format(name=name)
        return self.factory(name=name, **args)


#: ``kind:`` -> how to build it.  Register new kinds here and nowhere else.
BACKEND_KINDS: dict[str, BackendKind] = {
    "simulated": BackendKind(SimulatedBackend, default_endpoint="sim://{name}"),
    "local": BackendKind(LocalBackend),
    "openai": BackendKind(OpenAIBackend),
}

#: ``backend_override`` value -> the kind every declared backend is rebuilt as.
BACKEND_OVERRIDES: dict[str, str] = {"sim": "simulated", "local": "local", "openai": "openai"}

#: The backend of agents that name none when the workflow declares no backend.
_DEFAULT_BACKEND = ("default", "simulated")
#: Name and slots of the agent a workflow without ``agents:`` gets.
_GENERALIST = ("generalist", 4)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Agents read from a file, with the limits of the endpoints their backends call."""

    agents: list[Agent]
    limits: dict[str, Limits] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workflow:
    """A loaded workflow: everything a driver needs to run it."""

    name: str
    graph: TaskGraph
    agents: list[Agent]
    priority: str = "critical_path"
    assign: str = "earliest_finish"
    aging: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    limits: dict[str, Limits] = field(default_factory=dict)
    seed: int = 0
    description: str = ""
    context: ContextConfig | None = field(default_factory=ContextConfig)
    budget: Budget | None = None
    adaptive: AdaptiveConfig | None = None

    def run_options(self) -> dict[str, Any]:
        """The keyword arguments of ``paragents.runtime.driver.run`` / ``arun`` for this
        workflow (``budget`` only when the workflow sets one)."""
        options = {
            "priority": self.priority,
            "assign": self.assign,
            "aging": self.aging,
            "backoff": self.backoff,
            "limits": self.limits,
            "seed": self.seed,
            "context": self.context,
        }
        if self.budget is not None:
            options["budget"] = self.budget
        if self.adaptive is not None:
            options["adaptive"] = self.adaptive
        return options


# ------------------------------------------------------------------ the schema
#: Schema defaults: the key must be given / if absent, the constructor's default applies.
_REQUIRED: Any = object()
_OMIT: Any = object()


class _F(NamedTuple):
    """One key of a section: its kind, its default, whether null is allowed, its range."""

    kind: str
    default: Any = _OMIT
    nullable: bool = False
    low: float | None = None
    strict: bool = False  # ``low`` is exclusive
    high: float | None = None


#: kind -> (test of a non-null value, what the message says it must be).
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "names": (lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v), "a list of names"),
    "mapping": (lambda v: isinstance(v, Mapping), "a mapping"),
    "list": (lambda v: isinstance(v, list), "a list"),
}

_TOP = {
    "name": _F("str"),
    "description": _F("str", ""),
    "policies": _F("mapping", {}),
    "backends": _F("mapping", {}),
    "agents": _F("list", None, nullable=True),
    "tasks": _F("list", _REQUIRED),
    "context": _F("mapping", {}),
    "budget": _F("mapping", None, nullable=True),
    "adaptive": _F("mapping", None, nullable=True),
}
_ADAPTIVE = {
    "period_s": _F("number", low=0, strict=True),
    "concurrency": _F("mapping", {}),
    "estimates": _F("mapping", {}),
    "hedging": _F("mapping", {}),
    "avoid": _F("mapping", {}),
    "replan": _F("mapping", {}),
}
#: The ``adaptive:`` sub-sections: the config class each builds, and its keys.
_CONTROLS: dict[str, tuple[type, dict[str, _F]]] = {
    "concurrency": (AimdConfig, {
        "enabled": _F("bool"), "initial": _F("int", low=1), "ceiling": _F("int", low=1), "floor": _F("int", low=1),
        "increase": _F("number", low=0, strict=True), "decrease": _F("number", low=0, strict=True, high=0.99),
        "latency_target_s": _F("number", nullable=True, low=0, strict=True), "cooldown_s": _F("number", low=0),
    }),
    "estimates": (EstimateConfig, {
        "enabled": _F("bool"), "alpha": _F("number", low=0, strict=True, high=1),
        "tolerance": _F("number", low=0), "min_samples": _F("int", low=1),
    }),
    "hedging": (HedgeConfig, {
        "enabled": _F("bool"), "quantile": _F("number", low=0, strict=True, high=0.999),
        "factor": _F("number", low=0, strict=True), "budget": _F("number", low=0, high=1), "min_samples": _F("int", low=1),
        "cold_factor": _F("number", low=1),
    }),
    "avoid": (AvoidConfig, {
        "enabled": _F("bool"), "slow_factor": _F("number", low=1), "error_rate": _F("number", low=0, high=1),
        "min_samples": _F("int", low=1), "probation_s": _F("number", low=0),
    }),
    "replan": (ReplanConfig, {"enabled": _F("bool"), "after_failures": _F("int", low=1)}),
}
_BUDGET = {
    "max_tokens": _F("int", None, nullable=True, low=1),
    "max_cost": _F("number", None, nullable=True, low=0, strict=True),
    "max_tasks": _F("int", None, nullable=True, low=1),
    "deadline_s": _F("number", None, nullable=True, low=0, strict=True),
}
_CONTEXT = {
    "enabled": _F("bool", True),
    "k": _F("int", low=0),
    "threshold": _F("number", low=-1, high=1),
    "budget_tokens": _F("int", low=1),
}
_AGENTS_FILE = {"backends": _F("mapping", {}), "agents": _F("list", _REQUIRED)}
_POLICIES = {
    "priority": _F("str", "critical_path"),
    "assign": _F("str", "earliest_finish"),
    "aging": _F("number", 0.0, low=0),
    "seed": _F("int", 0),
    "retry": _F("mapping", {}),
}
_RETRY = {
    "base_s": _F("number", low=0),
    "factor": _F("number", low=1),
    "max_s": _F("number", low=0),
    "jitter": _F("number", low=0, high=1),
}
_LIMITS = {
    "max_concurrency": _F("int", nullable=True, low=1),
    "requests_per_minute": _F("number", nullable=True, low=0, strict=True),
    "tokens_per_minute": _F("number", nullable=True, low=0, strict=True),
    "burst_s": _F("number", low=0, strict=True),
}
_AGENT = {
    "name": _F("str", _REQUIRED),
    "role": _F("str"),
    "skills": _F("names"),
    "backend": _F("str", None, nullable=True),
    "slots": _F("int", low=1),
    "speed": _F("number", low=0, strict=True),
    "system_prompt": _F("str"),
    "cost_per_1k_tokens": _F("number", low=0),
    "max_tokens": _F("int", low=1),
    "reliability": _F("number", low=0, high=1),
}
_TASK = {
    "id": _F("str", _REQUIRED),
    "prompt": _F("str"),
    "skills": _F("names", ()),
    "depends_on": _F("names", ()),
    "duration": _F("number", low=0),
    "tokens": _F("int", low=0),
    "priority": _F("number"),
    "retries": _F("int", low=0),
    "timeout": _F("number", nullable=True, low=0, strict=True),
    "agent": _F("str", None, nullable=True),
    "expandable": _F("bool"),
    "call": _F("str", None, nullable=True),
    "aggregate": _F("str", None, nullable=True),
}


#: Python type name -> schema kind, for backend parameters.
_SCALARS = {"bool": "bool", "int": "int", "float": "number", "str": "str"}


def _annotated(kind_name: str, key: str) -> str | None:
    """A backend parameter's schema kind from the first type its annotation names
    (``"int | None"`` -> int); None (anything goes) for an annotation that names no scalar."""
    annotation = inspect.signature(BACKEND_KINDS[kind_name].factory).parameters[key].annotation
    first = annotation.split("|")[0].strip() if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return _SCALARS.get(first)


def _describe(value: Any) -> str:
    """``value`` as a message shows it: its YAML type, then its text, shortened."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind.get(type(value), type(value).__name__)} {text}"


def _check(value: Any, f: _F, where: str, key: str) -> Any:
    """``value`` if it fits ``f`` (numbers as float, names as a list); else a WorkflowError."""
    if value is None:
        if f.nullable:
            return None
        raise WorkflowError(f"{where}: {key} must be {_KINDS[f.kind][1]}, got null")
    test, expected = _KINDS[f.kind]
    if not test(value):
        raise WorkflowError(f"{where}: {key} must be {expected}, got {_describe(value)}")
    if f.kind in ("int", "number"):
        if f.low is not None and not (value > f.low if f.strict else value >= f.low):
            raise WorkflowError(f"{where}: {key} must be {'>' if f.strict else '>='} {f.low:g}, got {value}")
        if f.high is not None and not value <= f.high:
            raise WorkflowError(f"{where}: {key} must be <= {f.high:g}, got {value}")
        if f.kind == "number":
            return float(value)
    return value


def _mapping(raw: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(raw, Mapping):
        raise WorkflowError(f"{where}: expected a mapping of keys, got {_describe(raw)}")
    return raw


def _reject_unknown(raw: Mapping[Any, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise WorkflowError(f"{where}: unknown key{plural} {names}; allowed: {', '.join(allowed)}")


def _read(raw: Any, spec: Mapping[str, _F], where: str) -> dict[str, Any]:
    """Check one section against its schema; return its values, defaults filled in
    (keys whose default is ``_OMIT`` are left out, so the constructor's default applies)."""
    section = _mapping(raw, where)
    _reject_unknown(section, list(spec), where)
    out: dict[str, Any] = {}
    for key, f in spec.items():
        if key in section:
            out[key] = _check(section[key], f, where, key)
        elif f.default is _REQUIRED:
            raise WorkflowError(f"{where}: missing required key {key!r}")
        elif f.default is not _OMIT:
            out[key] = f.default
    return out


def _choices(names: Mapping[str, Any] | Sequence[str]) -> str:
    return ", ".join(sorted(names)) or "none"


# ---------------------------------------------------------------- YAML reading
class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a mapping that repeats a key is an error, not a silent overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed document"
        context = ""
        if exc.context and exc.problem and exc.context_mark is not None:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise WorkflowError(f"invalid YAML{at}: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise WorkflowError("invalid YAML: the document is nested too deeply") from None


def _source(path_or_text: str | Path) -> tuple[str, Path | None]:
    """The document's text and, when it came from a file, the file's path.

    A :class:`~pathlib.Path`, or a string without a newline, is a file path; a string
    with a newline is the YAML text itself.
    """
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return path_or_text, None
    path = Path(path_or_text)
    try:
        return path.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise WorkflowError(f"no such file: {str(path)!r}") from None
    except UnicodeDecodeError:
        raise WorkflowError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise WorkflowError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL byte or an unencodable character in the path
        raise WorkflowError(f"invalid file path {str(path)[:80]!r}: {exc}") from None


def _labelled(path: Path | None, build: Callable[[], _T]) -> _T:
    """Run ``build``; prefix any WorkflowError with the file it came from."""
    try:
        return build()
    except WorkflowError as exc:
        if path is None:
            raise
        raise WorkflowError(f"{path}: {exc}") from exc


# ------------------------------------------------------------------- sections
class _Backends:
    """The declared backends by name, the limits of their endpoints, and the default one."""

    def __init__(self, raw: Mapping[Any, Any], override: str | None) -> None:
        self.by_name: dict[str, Backend] = {}
        self.limits: dict[str, Limits] = {}
        limits_from: dict[str, str] = {}
        self._target = target = BACKEND_OVERRIDES[override] if override is not None else None
        for name, spec in raw.items():
            if not isinstance(name, str) or not name:
                raise WorkflowError(f"backends: backend names must be non-empty strings, got {_describe(name)}")
            where = f"backends.{name}"
            kind_name, params, limits = self._read_spec(spec, where)
            if target is not None and kind_name != target:
                keep = "endpoint" in params and "endpoint" in BACKEND_KINDS[target].parameters()
                kind_name, params = target, ({"endpoint": params["endpoint"]} if keep else {})
            try:
                backend = BACKEND_KINDS[kind_name].build(name, params)
            except (TypeError, ValueError) as exc:
                raise WorkflowError(f"{where}: {exc}") from None
            self.by_name[name] = backend
            if limits is not None:
                endpoint = backend.endpoint
                if endpoint in self.limits and self.limits[endpoint] != limits:
                    raise WorkflowError(
                        f"{where}: endpoint {endpoint!r} already has different limits "
                        f"(from backends.{limits_from[endpoint]}); set them once"
                    )
                self.limits[endpoint] = limits
                limits_from[endpoint] = name

    @staticmethod
    def _read_spec(spec: Any, where: str) -> tuple[str, dict[str, Any], Limits | None]:
        section = _mapping(spec, where)
        if "kind" not in section:
            raise WorkflowError(f"{where}: missing required key 'kind' (one of: {_choices(BACKEND_KINDS)})")
        kind_name = _check(section["kind"], _F("str"), where, "kind")
        if kind_name not in BACKEND_KINDS:
            raise WorkflowError(f"{where}: unknown kind {kind_name!r}; valid: {_choices(BACKEND_KINDS)}")
        defaults = BACKEND_KINDS[kind_name].parameters()
        _reject_unknown(section, ["kind", "limits", *defaults], where)
        params: dict[str, Any] = {}
        for key, value in section.items():
            if key in ("kind", "limits"):
                continue
            # The type a parameter takes is the type of its default; a parameter whose
            # default is None takes what its annotation names first (``str | None``) or null.
            default = defaults[key]
            kind = _SCALARS.get(type(default).__name__) if default is not None else _annotated(kind_name, key)
            params[key] = value if kind is None else _check(value, _F(kind, nullable=default is None), where, key)
        limits = None
        if section.get("limits") is not None:
            try:
                limits = Limits(**_read(section["limits"], _LIMITS, f"{where}.limits"))
            except ValueError as exc:
                raise WorkflowError(f"{where}.limits: {exc}") from None
        return kind_name, params, limits

    def default(self, where: str) -> Backend:
        """The backend of an agent that names none."""
        if len(self.by_name) == 1:
            return next(iter(self.by_name.values()))
        if not self.by_name:
            name, kind = _DEFAULT_BACKEND
            backend = BACKEND_KINDS[self._target or kind].build(name, {})
            self.by_name[name] = backend
            return backend
        raise WorkflowError(
            f"{where}: backend is required when several backends are declared ({_choices(self.by_name)})"
        )

    def get(self, name: str, where: str) -> Backend:
        try:
            return self.by_name[name]
        except KeyError:
            raise WorkflowError(
                f"{where}: backend names unknown backend {name!r}; declared: {_choices(self.by_name)}"
            ) from None


def _agents(raw: list[Any], backends: _Backends) -> list[Agent]:
    if not raw:
        raise WorkflowError("agents: the list is empty; list at least one agent or leave out the key")
    agents: list[Agent] = []
    first: dict[str, int] = {}
    for i, spec in enumerate(raw):
        name = spec.get("name") if isinstance(spec, Mapping) else None
        where = f"agents[{i}]" + (f" (name {name!r})" if isinstance(name, str) else "")
        values = _read(spec, _AGENT, where)
        if values["name"] in first:
            raise WorkflowError(f"{where}: duplicate agent name (first at agents[{first[values['name']]}])")
        first[values["name"]] = i
        backend_name = values.pop("backend")
        backend = backends.default(where) if backend_name is None else backends.get(backend_name, where)
        if "skills" in values:
            values["skills"] = frozenset(values["skills"])
        agents.append(Agent(backend=backend, **values))
    return agents


def _generalist(backends: _Backends) -> list[Agent]:
    name, slots = _GENERALIST
    return [Agent(name=name, role=name, backend=backends.default("agents"), slots=slots)]


def resolve_call(spec: str, *, search: Path | None = None) -> Callable[..., Any]:
    """The callable named by ``"package.module:function"`` (``function`` may be dotted).

    ``search``, when given, is put first on ``sys.path`` while the module is imported.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise WorkflowError(f"call must look like 'package.module:function', got {spec!r}")
    added = search is not None and str(search) not in sys.path
    if added:
        sys.path.insert(0, str(search))
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import failure of user code is the user's to fix
        raise WorkflowError(f"call {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    finally:
        if added:
            sys.path.remove(str(search))
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise WorkflowError(f"call {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise WorkflowError(f"call {spec!r}: {attr!r} is not callable")
    return obj


def _budget(raw: Any) -> Budget | None:
    """The run budget of a ``budget:`` section (None when absent or with no limit set)."""
    if raw is None:
        return None
    values = _read(raw, _BUDGET, "budget")
    if all(v is None for v in values.values()):
        return None
    try:
        return Budget(**values)
    except BudgetError as exc:  # what the schema cannot say: an infinite number
        raise WorkflowError(f"budget: {exc}") from None


def _adaptive(raw: Any) -> AdaptiveConfig | None:
    """The adaptive manager's config of an ``adaptive:`` section (None when absent)."""
    if raw is None:
        return None
    values = _read(raw, _ADAPTIVE, "adaptive")
    controls = {}
    for key, (cls, spec) in _CONTROLS.items():
        where = f"adaptive.{key}"
        controls[key] = cls(**_read(values.pop(key), spec, where))
        c = controls[key]
        if isinstance(c, AimdConfig) and not c.floor <= c.initial <= c.ceiling:
            raise WorkflowError(f"{where}: need floor <= initial <= ceiling, got {c.floor}, {c.initial}, {c.ceiling}")
    return AdaptiveConfig(**values, **controls)


def _check_sizes(values: Mapping[str, Any], where: str) -> None:
    """A task's id and prompt within the limits of :mod:`paragents.core.sizes`."""
    tid, prompt = values["id"], values.get("prompt", "")
    if len(tid) > MAX_ID_CHARS:
        raise WorkflowError(f"{where}: " + too_long("id", len(tid), MAX_ID_CHARS, "MAX_ID_CHARS"))
    if len(prompt) > MAX_PROMPT_CHARS:
        raise WorkflowError(f"{where}: " + too_long("prompt", len(prompt), MAX_PROMPT_CHARS, "MAX_PROMPT_CHARS"))


def _tasks(raw: list[Any], agents: Sequence[Agent], search: Path | None) -> list[Task]:
    if not raw:
        raise WorkflowError("tasks: the list is empty; a workflow needs at least one task")
    if len(raw) > MAX_TASKS:
        raise WorkflowError(f"tasks: {len(raw):,} tasks, more than the limit of {MAX_TASKS:,} (MAX_TASKS)")
    read: list[tuple[str, dict[str, Any]]] = []
    first: dict[str, int] = {}
    for i, spec in enumerate(raw):
        tid = spec.get("id") if isinstance(spec, Mapping) else None
        where = f"tasks[{i}]" + (f" (id {tid!r})" if isinstance(tid, str) else "")
        values = _read(spec, _TASK, where)
        if not values["id"]:
            raise WorkflowError(f"{where}: id must be a non-empty string")
        _check_sizes(values, where)
        if values["id"] in first:
            raise WorkflowError(f"{where}: duplicate task id (first at tasks[{first[values['id']]}])")
        first[values["id"]] = i
        read.append((where, values))
    by_name = {a.name: a for a in agents}
    tasks: list[Task] = []
    for where, values in read:
        for dep in values["depends_on"]:
            if dep not in first:
                raise WorkflowError(f"{where}: depends_on names unknown task {dep!r}")
        skills = frozenset(values.pop("skills"))
        pin = values["agent"]
        if pin is not None and pin not in by_name:
            raise WorkflowError(f"{where}: agent names unknown agent {pin!r}; agents: {_choices(by_name)}")
        capable = [a for a in agents if (pin is None or a.name == pin) and (WILDCARD in a.skills or skills <= a.skills)]
        if not capable:
            need = ", ".join(sorted(skills))
            offered = "; ".join(f"{a.name}: {', '.join(sorted(a.skills)) or 'none'}" for a in agents)
            who = f"pinned agent {pin!r} lacks" if pin is not None else "no agent has"
            raise WorkflowError(f"{where}: {who} the skills {need} (agents' skills: {offered})")
        call = values.pop("call")
        kind = values.pop("aggregate")
        action = None
        try:
            if call is not None and kind is not None:
                raise WorkflowError("a task takes either call or aggregate, not both")
            if call is not None:
                action = resolve_call(call, search=search)
            elif kind is not None:
                action = aggregator(kind)
                if action is None:  # an LLM merge: the merge prompt, with the task's own as instruction
                    values["prompt"] = merge_prompt(values.get("prompt", ""))
        except WorkflowError as exc:
            raise WorkflowError(f"{where}: {exc}") from None
        meta = {"call": call} if call else {"aggregate": kind} if kind else {}
        tasks.append(Task(skills=skills, action=action, meta=meta, **values))
    return tasks


def _build(
    data: Any, path: Path | None, override: str | None, agents: AgentConfig | None
) -> Workflow:
    top = _read(data, _TOP, "top level")
    policies = _read(top["policies"], _POLICIES, "policies")
    for key, known in (("priority", PRIORITY_POLICIES), ("assign", ASSIGN_POLICIES)):
        if policies[key] not in known:
            raise WorkflowError(f"policies: unknown {key} policy {policies[key]!r}; valid: {_choices(known)}")
    backoff = Backoff(**_read(policies["retry"], _RETRY, "policies.retry"))
    context = _read(top["context"], _CONTEXT, "context")
    budget = _budget(top["budget"])
    adaptive = _adaptive(top["adaptive"])
    backends = _Backends(top["backends"], override)
    limits = dict(backends.limits)
    if agents is not None:
        team = list(agents.agents)
        limits.update(agents.limits)
    elif top["agents"] is None:
        team = _generalist(backends)
    else:
        team = _agents(top["agents"], backends)
    tasks = _tasks(top["tasks"], team, path.parent if path is not None else None)
    try:
        graph = TaskGraph(tasks)
    except GraphError as exc:
        raise WorkflowError(f"tasks: {exc}") from exc
    return Workflow(
        name=top.get("name") or (path.stem if path is not None else "workflow"),
        graph=graph,
        agents=team,
        priority=policies["priority"],
        assign=policies["assign"],
        aging=policies["aging"],
        backoff=backoff,
        limits=limits,
        seed=policies["seed"],
        description=top["description"],
        context=ContextConfig(**context) if context.pop("enabled") else None,
        budget=budget,
        adaptive=adaptive,
    )


def _check_override(override: str | None) -> None:
    if override is not None and override not in BACKEND_OVERRIDES:
        raise WorkflowError(f"unknown backend override {override!r}; valid: {_choices(BACKEND_OVERRIDES)}")


# --------------------------------------------------------------------- loaders
def load_workflow(
    path_or_text: str | Path,
    *,
    backend_override: str | None = None,
    agents: AgentConfig | None = None,
) -> Workflow:
    """Load and validate a workflow from a file path or from YAML text.

    A :class:`~pathlib.Path`, or a string without a newline, is read as a file; a string
    containing a newline is the YAML itself.  ``backend_override`` (``"sim"``) swaps every
    backend for a simulated one; ``agents`` (from :func:`load_agents`) replaces the
    workflow's own agents, and its limits take precedence.  Raises
    :class:`~paragents.core.errors.WorkflowError` naming the file, the place and the cause.
    """
    _check_override(backend_override)
    text, path = _source(path_or_text)
    return _labelled(path, lambda: _build(_parse(text), path, backend_override, agents))


def load_agents(path_or_text: str | Path, *, backend_override: str | None = None) -> AgentConfig:
    """Load a standalone agents file: ``backends:`` (optional) and ``agents:`` (required)."""
    _check_override(backend_override)
    text, path = _source(path_or_text)

    def build() -> AgentConfig:
        top = _read(_parse(text), _AGENTS_FILE, "top level")
        backends = _Backends(top["backends"], backend_override)
        return AgentConfig(_agents(top["agents"], backends), dict(backends.limits))

    return _labelled(path, build)
