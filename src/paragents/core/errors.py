"""The one exception hierarchy of paragents.

Every error a user can cause derives from :class:`ParagentsError`, so the command line
can turn any of them into one clear message and a non-zero exit.  The names say what
happened (as httpx's do): a graph that is not a DAG, a plan that does not parse, an
endpoint that is down or rate limited, a budget that ran out.  This module is pure
(no I/O) so every layer, the core included, may raise these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class ParagentsError(Exception):
    """Base of every error paragents raises on purpose."""


class GraphError(ParagentsError):
    """The task graph is malformed: a duplicate id, an unknown dependency, a cycle."""


class CycleError(GraphError):
    """Adding these tasks or edges would close a cycle; ``cycle`` lists its ids in order."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]]) if self.cycle else "?"
        super().__init__(f"cycle in task graph: {path}")


class SchedulingError(ParagentsError):
    """The scheduler was asked something it cannot do (no capable agent, illegal transition)."""


class WorkflowError(ParagentsError):
    """A workflow file or argument is invalid; the message names the place and the cause."""


class PlanError(ParagentsError):
    """A plan produced by a planner could not be turned into a valid task graph."""


class BudgetExceeded(ParagentsError):
    """A run budget (tokens, cost, tasks, deadline) was reached."""


class TaskTimeout(ParagentsError):
    """A task ran past its timeout."""


class BackendError(ParagentsError):
    """An LLM backend call failed.  ``retryable`` tells the runtime whether to try again."""

    retryable: bool = True

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: {message}" if endpoint else message)


class BackendUnavailable(BackendError):
    """The endpoint could not be reached (connection refused, DNS, closed socket)."""


class BackendTimeout(BackendError):
    """The endpoint did not answer in time."""


class RateLimited(BackendError):
    """The endpoint answered 429; ``retry_after`` is the delay it asked for, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, endpoint: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message, endpoint=endpoint)


class NoBackend(BackendError):
    """A task needs a model and its agent has none: trying again cannot help."""

    retryable = False


class Failure(NamedTuple):
    """How a driver reports an exception an attempt raised: the message (a paragents
    error's own words, else the exception's type and text), whether it may be retried,
    and the Retry-After the endpoint asked for."""

    message: str
    retryable: bool
    retry_after: float | None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        message = str(exc) if isinstance(exc, ParagentsError) else f"{type(exc).__name__}: {exc}"
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return cls(message, bool(getattr(exc, "retryable", True)), retry_after)
