"""Aggregation rules at joins, alone and inside a real run."""

from __future__ import annotations

import pytest

from paragents.aggregate import AggregationError, majority_vote, mean, merge_prompt, weighted_mean
from paragents.core.errors import WorkflowError
from paragents.runtime.driver import run
from paragents.workflow import load_workflow


def test_vote_normalises_text_and_breaks_ties_by_first_seen() -> None:
    assert majority_vote(["Paris.", "paris", " London", "PARIS "]) == "Paris."
    assert majority_vote(["a", "b", "b", "a"]) == "a"
    assert majority_vote([None, 3, 3, 4]) == 3


def test_vote_with_nothing_to_count_fails_clearly() -> None:
    with pytest.raises(AggregationError, match="no answers"):
        majority_vote([None, None])


def test_means_skip_what_is_not_a_number() -> None:
    assert mean([1, "2", "1,000", None, "n/a"]) == pytest.approx((1 + 2 + 1000) / 3)
    assert weighted_mean([10, 20, "x"], [1.0, 3.0, 5.0]) == pytest.approx(17.5)
    with pytest.raises(AggregationError, match="no numeric answers"):
        mean(["n/a", None])


def test_merge_prompt_carries_the_instruction() -> None:
    text = merge_prompt("Answer in one paragraph.")
    assert "Merge them into one final answer" in text and text.endswith("Answer in one paragraph.")


WORKFLOW = """
name: estimates
agents:
  - {name: careful, slots: 2, reliability: 1.0}
  - {name: sloppy, slots: 2, reliability: 0.25}
tasks:
  - {id: a, call: "tests_helpers_aggregate:ten", agent: careful}
  - {id: b, call: "tests_helpers_aggregate:ten", agent: careful}
  - {id: c, call: "tests_helpers_aggregate:forty", agent: sloppy}
  - {id: vote, aggregate: vote, depends_on: [a, b, c]}
  - {id: avg, aggregate: mean, depends_on: [a, b, c]}
  - {id: wavg, aggregate: weighted_mean, depends_on: [a, b, c]}
"""


def test_joins_aggregate_their_inputs_in_a_real_run(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tests_helpers_aggregate.py").write_text("def ten():\n    return 10\n\ndef forty():\n    return 40\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wf = load_workflow(WORKFLOW)
    result = run(wf.graph, wf.agents, **wf.run_options())
    assert result.results["vote"] == 10
    assert result.results["avg"] == pytest.approx(20.0)
    assert result.results["wavg"] == pytest.approx((10 + 10 + 40 * 0.25) / 2.25)


def test_unknown_aggregate_is_refused_with_the_choices() -> None:
    with pytest.raises(WorkflowError, match=r"tasks\[0\] \(id 'j'\): unknown aggregate 'median'; valid: vote, mean"):
        load_workflow("tasks:\n  - {id: j, aggregate: median}\n")


def test_merge_join_is_an_llm_task_with_the_merge_prompt() -> None:
    wf = load_workflow(
        "tasks:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y}\n"
        "  - {id: m, aggregate: merge, prompt: Be brief., depends_on: [a, b]}\n"
    )
    merge = wf.graph["m"]
    assert merge.action is None and "Merge them" in merge.prompt and merge.prompt.endswith("Be brief.")
    result = run(wf.graph, wf.agents, **wf.run_options())
    assert result.report.tasks["done"] == 3
