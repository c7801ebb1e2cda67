"""Map-reduce over a long input: chunking, and the chunks processed in parallel."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paragents.agents import Agent
from paragents.backends.base import estimate_tokens
from paragents.backends.simulated import SimulatedBackend
from paragents.patterns import map_reduce, split_text
from paragents.runtime.driver import run

DOC = "\n\n".join(
    f"Section {i}. " + " ".join(f"Sentence {i}.{j} says something about topic {i}." for j in range(6)) for i in range(8)
)


def test_chunks_fit_the_budget_and_cut_at_paragraphs_when_they_can() -> None:
    chunks = split_text(DOC, 120)
    assert len(chunks) > 1
    assert all(estimate_tokens(c) <= 120 for c in chunks)
    assert all(c.startswith("Section") for c in chunks)  # every cut fell on a paragraph break
    assert " ".join(chunks).split() == DOC.split()


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    chunks = split_text(DOC, 60, overlap_tokens=15)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.split()[0] in before.split()[-20:]


@given(st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=30), min_size=1, max_size=200), st.integers(2, 64))
def test_any_text_is_chunked_within_budget_without_losing_a_word(words: list[str], budget: int) -> None:
    text = " ".join(words)
    chunks = split_text(text, budget)
    assert "".join("".join(chunks).split()) == "".join(text.split())
    assert all(estimate_tokens(c) <= budget for c in chunks)


def test_map_tasks_run_in_parallel_and_the_reduce_waits_for_all() -> None:
    backend = SimulatedBackend(ttft_s=0.02, tokens_per_s=2000)
    agents = [Agent(f"reader{i}", skills={"read"}, backend=backend, slots=2) for i in range(3)]
    agents.append(Agent("editor", skills={"write"}, backend=backend))
    graph = map_reduce(
        DOC,
        map_instruction="List the facts in this part.",
        reduce_instruction="One summary.",
        chunk_tokens=100,
        map_skills=frozenset({"read"}),
        reduce_skills=frozenset({"write"}),
        tokens_per_map=20,
    )
    maps = [t.id for t in graph if t.id != "reduce"]
    result = run(graph, agents)
    ev = result.events
    dispatched = [i for i, e in enumerate(ev) if e.kind == "dispatched" and e.task in maps]
    finished = [i for i, e in enumerate(ev) if e.kind == "finished" and e.task in maps]
    assert len(maps) >= 4 and result.report.tasks["done"] == len(maps) + 1
    in_flight_at_once = sum(1 for i in dispatched if i < min(finished))
    assert in_flight_at_once == min(len(maps), 6)  # every reader slot took a chunk at once
    assert {e.agent for e in ev if e.kind == "dispatched" and e.task in maps} == {"reader0", "reader1", "reader2"}
    assert isinstance(result.answer, str) and "One summary." in graph["reduce"].prompt
