"""The data that flows through a learned orchestration: queries, candidates, layer states.

Theory of operation
-------------------
A :class:`Query` is one problem (a math word problem or a coding task) with its
reference answer, which operators never see: only scorers read ``reference`` and
``hidden_tests``.  Operators read a :class:`LayerState`, the state the previous layer of
the supernet left: the query, that layer's candidates and its merged answer (none before
the first layer).  An operator returns an :class:`OperatorResult`: its candidates plus
what it spent (calls, prompt and completion tokens, wall time) and ``span_tokens``, the
completion tokens on its own critical path (for an operator whose calls run in
parallel, the longest of them; for one whose calls run in sequence, their sum).

A :class:`Candidate` carries the raw text and the normalised ``answer`` used for
voting (the number for math, the function's source for code), plus test counts when an
operator ran tests on it.

This module is pure data: no I/O, no model calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Candidate", "LayerState", "OperatorResult", "Query", "QueryKind"]

QueryKind = Literal["math", "code"]


@dataclass(frozen=True, slots=True)
class Query:
    """One problem.

    ``tests`` are the tests operators may run (for code: assertions taken from the
    prompt's examples); ``hidden_tests`` and ``reference`` are for scoring only.
    ``entry_point`` names the function a code answer must define.
    """

    id: str
    text: str
    kind: QueryKind = "math"
    reference: str | None = None
    entry_point: str | None = None
    tests: tuple[str, ...] = ()
    hidden_tests: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One proposed answer: ``answer`` is normalised for voting, ``text`` is raw."""

    answer: str
    text: str
    source: str
    passed: int | None = None  # tests this candidate passed, when an operator ran them
    total: int | None = None  # tests run on it


@dataclass(frozen=True, slots=True)
class LayerState:
    """What the previous layer left: its candidates and the merged answer."""

    query: Query
    candidates: tuple[Candidate, ...] = ()
    answer: Candidate | None = None


@dataclass(frozen=True, slots=True)
class OperatorResult:
    """What one operator produced and spent."""

    name: str
    candidates: tuple[Candidate, ...]
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    span_tokens: int = 0
    elapsed_s: float = 0.0
    stop: bool = False  # Early-Stop: end the network here
    notes: tuple[str, ...] = field(default=())
