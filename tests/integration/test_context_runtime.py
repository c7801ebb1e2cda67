"""Semantic context in real runs: every LLM prompt is assembled, and the log says from what."""

from __future__ import annotations

from pathlib import Path

from paragents.runtime.driver import run
from paragents.workflow import load_workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "research_report.yaml"


def test_every_llm_prompt_is_assembled_with_its_direct_inputs_and_logged() -> None:
    wf = load_workflow(EXAMPLE)
    assert wf.context is not None  # on unless a workflow turns it off
    result = run(wf.graph, wf.agents, **wf.run_options())
    assert result.report.tasks["done"] == len(wf.graph)
    logged = {e.task: e.data for e in result.events if e.kind == "context"}
    llm_tasks = [t.id for t in wf.graph if t.action is None]
    assert sorted(logged) == sorted(llm_tasks)
    for tid in llm_tasks:
        direct = {i["id"] for i in logged[tid]["included"] if i["reason"] == "direct"}
        assert direct == set(wf.graph.predecessors(tid))
        assert logged[tid]["tokens"] <= max(logged[tid]["budget_tokens"], logged[tid]["mandatory_tokens"])
    # Later tasks also received relevant work that is not among their direct inputs.
    assert any(i["reason"].startswith("relevant") for data in logged.values() for i in data["included"])


def test_a_workflow_can_turn_context_off_or_tune_it() -> None:
    text = EXAMPLE.read_text()
    off = load_workflow(text + "\ncontext: {enabled: false}\n")
    assert off.context is None
    result = run(off.graph, off.agents, **off.run_options())
    assert not [e for e in result.events if e.kind == "context"]
    tuned = load_workflow(text + "\ncontext: {k: 2, threshold: 0.5, budget_tokens: 800}\n")
    assert tuned.context is not None and (tuned.context.k, tuned.context.budget_tokens) == (2, 800)
