"""Voting over candidate answers: which answers are the same, and which candidates count.

Theory of operation
-------------------
Self-Consistency (an operator) and the supernet's layer merge both choose among
candidates the same way, so the rules live here once:

* :func:`vote_key`: answers that mean the same get the same key: numbers compared as
  numbers (``"1,000"`` and ``"1000.0"`` agree), code compared as syntax trees
  (formatting and comments do not matter); text that does not parse is its stripped self;
* :func:`best_tested`: when tests were run on any candidate, only the tested ones with
  the best pass rate take part;
* :func:`vote_groups`: candidates grouped by vote key, largest group first, ties (and
  the members of a group) in first-seen order, so the earliest answer wins a tie.

This module is pure: no model calls, no I/O.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from .answers import normalise_number
from .state import Candidate, Query

__all__ = ["best_tested", "pass_rate", "vote_groups", "vote_key"]


def vote_key(query: Query, answer: str) -> str:
    """The key under which ``answer`` is counted for ``query``."""
    if query.kind == "code":
        try:
            return ast.dump(ast.parse(answer))
        except (SyntaxError, ValueError):
            return answer.strip()
    return normalise_number(answer) or answer.strip()


def pass_rate(candidate: Candidate) -> float:
    """Tests passed over tests run (0 when none were run)."""
    return (candidate.passed or 0) / (candidate.total or 1)


def best_tested(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The tested candidates with the best pass rate; all of them when none was tested."""
    tested = [c for c in candidates if c.total]
    if not tested:
        return list(candidates)
    best = max(pass_rate(c) for c in tested)
    return [c for c in tested if pass_rate(c) == best]


def vote_groups(query: Query, candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Candidates grouped by :func:`vote_key`, the largest group first (stable on ties)."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(vote_key(query, candidate.answer), []).append(candidate)
    return sorted(groups.values(), key=len, reverse=True)
