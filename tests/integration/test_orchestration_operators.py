"""Operators on the real bundled SmolLM2, in this process: structure and accounting.

A 135M model is no judge of correctness, so these tests check what an operator owes
its caller whatever the model says: the calls it made, the tokens it counted (equal to
what the backend reported), the span rule (sequential calls add up, parallel ones count
the longest), candidates of the right form, and real concurrency for MultiCoT.  Every
call goes through :class:`Recorder`, which times the real backend call.  Replies are
kept short (``max_tokens`` 24 to 64) so the module runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from paragents.backends.base import Completion, Request
from paragents.backends.local import LocalBackend
from paragents.orchestration import operators as ops
from paragents.orchestration.answers import normalise_number
from paragents.orchestration.datasets import load_humaneval
from paragents.orchestration.state import Candidate, LayerState, OperatorResult, Query

MATH = Query(id="m1", text="A box holds 6 eggs. How many eggs are in 7 boxes?", kind="math", reference="42")


@dataclass
class Recorder:
    """The LLM callable: the real backend's ``complete``, with each call's start and end."""

    backend: LocalBackend
    calls: list[tuple[float, float, Completion]] = field(default_factory=list)

    async def __call__(self, request: Request) -> Completion:
        started = time.perf_counter()
        completion = await self.backend.complete(request)
        self.calls.append((started, time.perf_counter(), completion))
        return completion


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    local = LocalBackend(instances=2)  # two model copies, so two calls can really overlap
    yield local
    asyncio.run(local.aclose())


@pytest.fixture
def recorder(backend: LocalBackend) -> Recorder:
    return Recorder(backend)


@pytest.fixture(scope="module")
def code_query() -> Query:
    return load_humaneval(limit=1)[0]


def assert_bill_matches(result: OperatorResult, recorder: Recorder) -> None:
    """The operator counted exactly the calls and tokens the backend reported."""
    completions = [completion for _, _, completion in recorder.calls]
    assert result.calls == len(completions)
    assert result.prompt_tokens == sum(c.prompt_tokens for c in completions)
    assert result.completion_tokens == sum(c.completion_tokens for c in completions)
    assert 0 <= result.span_tokens <= result.completion_tokens
    busy = max((end for _, end, _ in recorder.calls), default=0) - min((s for s, _, _ in recorder.calls), default=0)
    assert result.elapsed_s >= busy


def test_operators_come_in_the_documented_order_with_descriptions() -> None:
    names = ["generate", "cot", "multi_cot", "sc_ensemble", "self_refine", "programmer", "test", "early_stop"]
    built = ops.default_operators(max_tokens=64, samples=2)
    assert list(ops.OPERATORS) == list(built) == names
    assert all(op.name == name and op.description.endswith(".") for name, op in built.items())
    assert built["multi_cot"].samples == 2  # type: ignore[attr-defined]


async def test_generate_answers_a_math_query_with_a_number(recorder: Recorder) -> None:
    result = await ops.Generate(max_tokens=32).run(LayerState(MATH), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls == 1 and result.span_tokens == result.completion_tokens > 0
    (candidate,) = result.candidates
    assert candidate.source == "generate" and candidate.text
    assert candidate.answer == "" or normalise_number(candidate.answer) == candidate.answer  # a number, or none


async def test_generate_on_code_returns_a_whole_function(recorder: Recorder, code_query: Query) -> None:
    result = await ops.Generate(max_tokens=48).run(LayerState(code_query), recorder)
    assert_bill_matches(result, recorder)
    (candidate,) = result.candidates
    assert f"def {code_query.entry_point}(" in candidate.answer


async def test_multi_cot_samples_really_overlap_and_span_the_longest(recorder: Recorder) -> None:
    result = await ops.MultiCoT(max_tokens=32, samples=2).run(LayerState(MATH), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls == 2 and len(result.candidates) == 2
    assert all(c.source == "multi_cot" for c in result.candidates)
    (start_a, end_a, a), (start_b, end_b, b) = recorder.calls
    assert max(start_a, start_b) < min(end_a, end_b)  # both calls were running at once
    assert result.span_tokens == max(a.completion_tokens, b.completion_tokens) <= result.completion_tokens


async def test_self_refine_without_an_answer_generates_critiques_and_revises_in_sequence(recorder: Recorder) -> None:
    result = await ops.SelfRefine(max_tokens=24).run(LayerState(MATH), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls == 3 and result.span_tokens == result.completion_tokens
    ends = [end for _, end, _ in recorder.calls]
    starts = [start for start, _, _ in recorder.calls]
    assert all(ends[i] <= starts[i + 1] for i in range(2))  # each call waited for the one before
    assert len(result.candidates) == 1


async def test_sc_ensemble_takes_a_clear_majority_without_a_call(recorder: Recorder) -> None:
    previous = (
        Candidate("42", "... The answer is 42.", "cot"),
        Candidate("7", "... The answer is 7.", "cot"),
        Candidate("42", "6 * 7 = 42.0", "generate"),
    )
    result = await ops.SelfConsistency().run(LayerState(MATH, previous), recorder)
    assert result.calls == 0 and result.span_tokens == 0
    assert result.candidates == (previous[0],)


async def test_sc_ensemble_asks_the_model_to_pick_when_there_is_no_majority(recorder: Recorder) -> None:
    previous = (Candidate("42", "6 * 7 = 42", "cot"), Candidate("13", "6 + 7 = 13", "cot"))
    result = await ops.SelfConsistency().run(LayerState(MATH, previous), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls == 1 and result.candidates[0] in previous


async def test_programmer_runs_the_program_and_retries_once_on_failure(recorder: Recorder) -> None:
    result = await ops.Programmer(max_tokens=64, timeout_s=2.0).run(LayerState(MATH), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls in (1, 2) and result.span_tokens == result.completion_tokens
    if result.candidates:
        (candidate,) = result.candidates
        assert normalise_number(candidate.answer) == candidate.answer and candidate.source == "programmer"
    else:  # both programs failed, and the notes say why
        assert result.calls == 2 and len(result.notes) == 2


async def test_programmer_on_code_reports_how_many_public_tests_pass(recorder: Recorder, code_query: Query) -> None:
    result = await ops.Programmer(max_tokens=48, timeout_s=2.0).run(LayerState(code_query), recorder)
    assert_bill_matches(result, recorder)
    (candidate,) = result.candidates
    assert candidate.total == len(code_query.tests) and 0 <= (candidate.passed or 0) <= candidate.total


async def test_test_ranks_code_candidates_by_public_tests_without_a_call(recorder: Recorder, code_query: Query) -> None:
    assert code_query.reference is not None
    broken = Candidate(code_query.text + "    return True\n", "", "generate")
    right = Candidate(code_query.reference, "", "cot")
    result = await ops.Test().run(LayerState(code_query, (broken, right)), recorder)
    assert result.calls == 0
    first, second = result.candidates
    assert first.answer == right.answer and first.passed == first.total == len(code_query.tests)
    assert second.answer == broken.answer and second.passed is not None and second.passed < len(code_query.tests)


async def test_test_asks_once_to_fix_the_best_when_no_candidate_passes(recorder: Recorder, code_query: Query) -> None:
    broken = Candidate(code_query.text + "    return None\n", "", "generate")
    result = await ops.Test(max_tokens=48, timeout_s=2.0).run(LayerState(code_query, (broken,)), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls == 1 and len(result.candidates) == 2
    fixed = next(c for c in result.candidates if c.source == "test")
    assert fixed.total == len(code_query.tests)


async def test_test_verifies_a_math_answer_with_one_call(recorder: Recorder) -> None:
    previous = Candidate("42", "6 * 7 = 42. The answer is 42.", "cot")
    result = await ops.Test(max_tokens=32).run(LayerState(MATH, (previous,), previous), recorder)
    assert_bill_matches(result, recorder)
    assert result.calls == 1
    checked = result.candidates[0]
    assert checked.answer == "42" and checked.total == 1 and checked.passed in (0, 1)


async def test_early_stop_ends_the_network_without_calling_the_model(recorder: Recorder) -> None:
    result = await ops.EarlyStop().run(LayerState(MATH), recorder)
    assert result.stop and result.calls == 0 and result.candidates == () and recorder.calls == []
