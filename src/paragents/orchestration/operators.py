"""Reasoning operators: the building blocks a controller runs, several per layer.

Theory of operation
-------------------
An :class:`Operator` turns the state the previous layer left (a
:class:`~paragents.orchestration.state.LayerState`) into new candidate answers, calling
a model through ``llm``, any ``async (Request) -> Completion`` (in the runtime,
``TaskContext.complete``, so admission control and usage accounting apply).  Operators
hold no state between runs; one instance may run in many layers at once.

Every operator handles both kinds of query.  For ``math`` a candidate's ``answer`` is
the normalised number (:func:`~paragents.orchestration.answers.extract_number`, empty
when the text has none); for ``code`` it is the program
(:func:`~paragents.orchestration.answers.extract_code`, completed against the task's
prompt).  A candidate's ``source`` names the operator that wrote its text: operators
that only select or annotate earlier candidates (Self-Consistency, Test) pass their
source on.

Accounting.  :meth:`Operator.run` measures the operator's wall time and wraps ``llm``
in a meter that counts calls and tokens from the Completions and builds
``span_tokens``, the completion tokens on the operator's own critical path: calls made
one after another add up, calls made together (:class:`MultiCoT`'s samples) count as
the longest of them.  Model errors are not caught: they reach the caller, which decides
whether the layer goes on without this operator.

The operators, in the fixed order of :data:`OPERATORS`:

==============  =========================================================================
``generate``    one call: answer directly.
``cot``         one call: reason step by step, then answer.
``multi_cot``   ``samples`` chain-of-thought calls at ``temperature`` > 0, all at once;
                returns every sample.
``sc_ensemble`` picks one of the previous candidates: if tests were run on them, only the
                best pass rate takes part; a strict majority of equal answers (numbers
                compared as numbers, code compared as syntax trees) wins without a
                call, otherwise the model picks one by letter.  With no previous
                candidates it generates.
``self_refine`` critiques the previous answer, then revises it (two calls in sequence);
                with no previous answer it first generates one.
``programmer``  math: asks for a program that prints the answer, runs it in the sandbox
                and takes the number it prints.  Code: asks for the function and runs
                it against the task's public tests.  On failure it asks once more,
                showing the error; a math program that fails twice yields no candidate.
``test``        code: runs every previous candidate against the public tests (setting
                ``passed``/``total``); if none passes them all, it asks the model once to
                fix the best and tests the fix too.  Candidates come back best first.
                Math: asks the model to solve the problem again to check the previous
                answer (the merged one, else the first candidate), which gets
                ``passed=1, total=1`` if the check agrees and ``passed=0`` if not; a
                disagreeing check is added as a candidate, other previous candidates
                pass through.  With nothing to test it generates first; a code task
                without public tests passes its candidates through untouched.
``early_stop``  no call, no candidate: the controller's yes/no gate before a layer,
                which ends the network there; it never runs in a graph.
==============  =========================================================================

The model-facing text lives in ``prompts/*.md`` (:class:`string.Template` files), one
per prompt, plus the answer-format instructions shared by all of them.
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from functools import cache
from importlib import resources
from string import Template
from typing import ClassVar, TypeVar

from paragents.backends.base import Completion, Request
from paragents.orchestration.answers import (
    extract_code,
    extract_number,
    numbers_equal,
)
from paragents.orchestration.sandbox import (
    SandboxResult,
    SuiteResult,
    arun_code,
    arun_tests,
)
from paragents.orchestration.state import Candidate, LayerState, OperatorResult, Query
from paragents.orchestration.voting import best_tested, vote_groups

__all__ = [
    "LLM",
    "OPERATORS",
    "ChainOfThought",
    "EarlyStop",
    "Generate",
    "MultiCoT",
    "Operator",
    "Programmer",
    "SelfConsistency",
    "SelfRefine",
    "Test",
    "default_operators",
]

#: The model, as operators call it.
LLM = Callable[[Request], Awaitable[Completion]]

_T = TypeVar("_T")

#: Characters of an earlier solution (or critique, or error) quoted in a prompt.
_CLIP_CHARS = 1200
#: Tokens for the model's reply when it picks a candidate by letter.
_PICK_TOKENS = 8


class Operator(ABC):
    """One reasoning step.  Subclasses set ``name``, ``description`` and :meth:`_solve`."""

    name: ClassVar[str]
    #: One sentence saying what the operator does, embedded as text for a controller.
    description: ClassVar[str]
    #: Whether running this operator ends the network after its layer.
    stops: ClassVar[bool] = False

    def __init__(self, *, max_tokens: int = 320) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({options})"

    async def run(self, state: LayerState, llm: LLM) -> OperatorResult:
        """Run on ``state``, calling ``llm``; report the candidates and what they cost."""
        meter = _Meter(llm, self.max_tokens)
        started = time.perf_counter()
        candidates = await self._solve(state, meter)
        return OperatorResult(
            name=self.name,
            candidates=tuple(candidates),
            calls=meter.calls,
            prompt_tokens=meter.prompt_tokens,
            completion_tokens=meter.completion_tokens,
            span_tokens=meter.span_tokens,
            elapsed_s=time.perf_counter() - started,
            stop=self.stops,
            notes=tuple(meter.notes),
        )

    @abstractmethod
    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        """The new candidates; every model call goes through ``meter``."""


class Generate(Operator):
    name = "generate"
    description = "Answers the problem directly in one model call, without showing any reasoning."

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        return [await _generate(state.query, meter, self.name)]


class ChainOfThought(Operator):
    name = "cot"
    description = "Reasons through the problem step by step in one model call, then gives a final answer."

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        query = state.query
        text = await meter.ask(_render("cot", question=query.text, format=_format(query)))
        return [_candidate(query, text, self.name)]


class MultiCoT(Operator):
    name = "multi_cot"
    description = "Samples several independent step-by-step solutions in parallel, for voting or selection."

    def __init__(self, *, max_tokens: int = 320, samples: int = 3, temperature: float = 0.7) -> None:
        super().__init__(max_tokens=max_tokens)
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive for sampling, got {temperature}")
        self.samples = samples
        self.temperature = temperature

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        query = state.query
        prompt = _render("cot", question=query.text, format=_format(query))
        texts = await meter.ask_together([prompt] * self.samples, temperature=self.temperature)
        return [_candidate(query, text, self.name) for text in texts]


class SelfConsistency(Operator):
    name = "sc_ensemble"
    description = "Chooses the most consistent answer among the previous candidates, by majority or by asking the model."

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        query = state.query
        pool = best_tested(_previous_all(state))
        if not pool:
            return [await _generate(query, meter, self.name)]
        voters = [candidate for candidate in pool if candidate.answer]
        if not voters:
            meter.note("no previous candidate has an answer; kept the first")
            return [pool[0]]
        groups = vote_groups(query, voters)
        if 2 * len(groups[0]) > len(voters):
            meter.note(f"majority: {len(groups[0])} of {len(voters)} candidates agree")
            return [groups[0][0]]
        first_seen = sorted(groups, key=lambda group: voters.index(group[0]))
        return [await self._pick(query, [group[0] for group in first_seen], groups[0][0], meter)]

    async def _pick(self, query: Query, options: list[Candidate], fallback: Candidate, meter: _Meter) -> Candidate:
        letters = [chr(ord("A") + index) for index in range(len(options))]
        listed = "\n\n".join(f"{letter}) {_shown(query, option)}" for letter, option in zip(letters, options))
        reply = await meter.ask(_render("pick", question=query.text, candidates=listed), max_tokens=_PICK_TOKENS)
        found = re.search(rf"\b([A-{letters[-1]}])\b", reply)
        if found is None:
            meter.note(f"no candidate letter in the model's pick {reply.strip()[:40]!r}; kept the most common")
            return fallback
        return options[letters.index(found.group(1))]


class SelfRefine(Operator):
    name = "self_refine"
    description = "Critiques the previous answer, then writes a revised answer that fixes the mistakes found."

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        query = state.query
        previous = _previous(state) or await _generate(query, meter, self.name)
        solution = _shown(query, previous)
        critique = await meter.ask(_render("critique", question=query.text, solution=solution))
        text = await meter.ask(
            _render("refine", question=query.text, solution=solution, critique=_clip(critique), format=_format(query))
        )
        revised = _candidate(query, text, self.name)
        if not revised.answer:
            meter.note("the revision has no answer; kept the previous one")
            return [previous]
        return [revised]


class Programmer(Operator):
    name = "programmer"
    description = "Writes a Python program for the problem, runs it in a sandbox, and fixes it once if it fails."

    def __init__(self, *, max_tokens: int = 384, timeout_s: float = 5.0) -> None:
        super().__init__(max_tokens=max_tokens)
        self.timeout_s = _positive_timeout(timeout_s)

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        if state.query.kind == "code":
            return [await self._function(state.query, meter)]
        return await self._calculation(state.query, meter)

    async def _calculation(self, query: Query, meter: _Meter) -> list[Candidate]:
        """Math: the number the program prints; one fix if it fails or prints none."""
        form = _render("format_program")
        text = await meter.ask(_render("program_math", question=query.text, format=form))
        for attempt in (1, 2):
            code = extract_code(text)
            result = await arun_code(code, timeout_s=self.timeout_s)
            number = extract_number(result.stdout) if result.ok else None
            if number is not None:
                return [Candidate(answer=number, text=text, source=self.name)]
            meter.note(f"program {attempt} failed: {result.message if not result.ok else 'it printed no number'}")
            if attempt == 1:
                error = _run_error(result)
                text = await meter.ask(_render("fix", question=query.text, code=code, error=error, format=form))
        return []

    async def _function(self, query: Query, meter: _Meter) -> Candidate:
        """Code: the function, run against the public tests; one fix if it fails."""
        text = await meter.ask(_render("program_code", question=query.text, format=_format(query)))
        candidate = _candidate(query, text, self.name)
        suite = await arun_tests(candidate.answer, query.tests, timeout_s=self.timeout_s)
        if not _suite_ok(suite):
            meter.note(f"function passed {suite.passed} of {suite.total} tests ({suite.result.message})")
            candidate = await _fix(query, candidate, suite, meter, self.name)
            suite = await arun_tests(candidate.answer, query.tests, timeout_s=self.timeout_s)
        return _with_counts(candidate, suite)


class Test(Operator):
    name = "test"
    description = "Checks the previous answers: runs code against the examples and repairs it, or re-solves math to verify."

    def __init__(self, *, max_tokens: int = 320, timeout_s: float = 5.0) -> None:
        super().__init__(max_tokens=max_tokens)
        self.timeout_s = _positive_timeout(timeout_s)

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        query = state.query
        if query.kind == "code":
            candidates = _previous_all(state) or [await _generate(query, meter, self.name)]
            return await self._test_code(query, candidates, meter)
        checked = _previous(state) or await _generate(query, meter, self.name)
        others = [candidate for candidate in state.candidates if candidate != checked]
        return await self._verify_math(query, checked, others, meter)

    async def _test_code(self, query: Query, candidates: list[Candidate], meter: _Meter) -> list[Candidate]:
        if not query.tests:
            meter.note("the task has no public tests; candidates passed through")
            return candidates
        suites = await _together(
            arun_tests(candidate.answer, query.tests, timeout_s=self.timeout_s) for candidate in candidates
        )
        tested = [_with_counts(candidate, suite) for candidate, suite in zip(candidates, suites)]
        if not any(_suite_ok(suite) for suite in suites):
            best = max(range(len(suites)), key=lambda index: suites[index].passed)
            meter.note(f"no candidate passes all {len(query.tests)} tests; fixing the best")
            fixed = await _fix(query, candidates[best], suites[best], meter, self.name)
            suite = await arun_tests(fixed.answer, query.tests, timeout_s=self.timeout_s)
            tested.append(_with_counts(fixed, suite))
        return sorted(tested, key=lambda candidate: -(candidate.passed or 0))

    async def _verify_math(
        self, query: Query, checked: Candidate, others: list[Candidate], meter: _Meter
    ) -> list[Candidate]:
        text = await meter.ask(
            _render("verify", question=query.text, solution=_shown(query, checked), format=_format(query))
        )
        check = _candidate(query, text, self.name)
        agrees = numbers_equal(check.answer, checked.answer)
        meter.note(f"the check {'agrees with' if agrees else 'disagrees with'} {checked.answer or 'no answer'}")
        result = [replace(checked, passed=int(agrees), total=1), *others]
        if not agrees and check.answer:
            result.append(check)
        return result


class EarlyStop(Operator):
    name = "early_stop"
    description = "Ends the reasoning network here, keeping the answer the layers before found."
    stops = True

    async def _solve(self, state: LayerState, meter: _Meter) -> list[Candidate]:
        return []


#: The operator classes by name, in the fixed order controllers index them.
OPERATORS: dict[str, type[Operator]] = {
    cls.name: cls
    for cls in (Generate, ChainOfThought, MultiCoT, SelfConsistency, SelfRefine, Programmer, Test, EarlyStop)
}


def default_operators(
    *, max_tokens: int = 320, samples: int = 3, temperature: float = 0.7, timeout_s: float = 5.0
) -> dict[str, Operator]:
    """One instance of each operator, in :data:`OPERATORS` order, sharing these options.

    ``max_tokens`` bounds every reply; ``samples`` and ``temperature`` are
    :class:`MultiCoT`'s; ``timeout_s`` bounds each sandboxed run (:class:`Programmer`,
    :class:`Test`).
    """
    operators = (
        Generate(max_tokens=max_tokens),
        ChainOfThought(max_tokens=max_tokens),
        MultiCoT(max_tokens=max_tokens, samples=samples, temperature=temperature),
        SelfConsistency(max_tokens=max_tokens),
        SelfRefine(max_tokens=max_tokens),
        Programmer(max_tokens=max_tokens, timeout_s=timeout_s),
        Test(max_tokens=max_tokens, timeout_s=timeout_s),
        EarlyStop(max_tokens=max_tokens),
    )
    return {operator.name: operator for operator in operators}


class _Meter:
    """Calls the model for one operator run and keeps its bill and its notes."""

    def __init__(self, llm: LLM, max_tokens: int) -> None:
        self._llm = llm
        self._max_tokens = max_tokens
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.span_tokens = 0
        self.notes: list[str] = []

    async def ask(self, prompt: str, *, max_tokens: int | None = None) -> str:
        """One call, after whatever came before it: its tokens add to the span."""
        completion = await self._llm(Request(prompt=prompt, max_tokens=max_tokens or self._max_tokens))
        self._count(completion)
        self.span_tokens += completion.completion_tokens
        return completion.text

    async def ask_together(self, prompts: Sequence[str], *, temperature: float) -> list[str]:
        """Calls made at the same time: the longest of them adds to the span."""
        requests = [Request(prompt=p, max_tokens=self._max_tokens, temperature=temperature) for p in prompts]
        completions = await _together(self._llm(request) for request in requests)
        for completion in completions:
            self._count(completion)
        self.span_tokens += max((c.completion_tokens for c in completions), default=0)
        return [completion.text for completion in completions]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def _count(self, completion: Completion) -> None:
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens


async def _together(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run the awaitables concurrently in a task group; results in order.

    If one fails, the others are cancelled and the first failure is raised as itself
    (not wrapped in an ExceptionGroup), so callers see the backend's own error.
    """

    async def wrapped(awaitable: Awaitable[_T]) -> _T:
        return await awaitable

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(wrapped(awaitable)) for awaitable in awaitables]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from failures
    return [task.result() for task in tasks]


def _positive_timeout(timeout_s: float) -> float:
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    return timeout_s


@cache
def _template(name: str) -> Template:
    text = resources.files("paragents").joinpath(f"orchestration/prompts/{name}.md").read_text(encoding="utf-8")
    return Template(text.strip())


def _render(name: str, **values: str) -> str:
    return _template(name).substitute(values)


def _format(query: Query) -> str:
    """The answer-format instruction for the query's kind."""
    if query.kind == "code":
        return _render("format_code", entry_point=query.entry_point or "the function")
    return _render("format_math")


def _candidate(query: Query, text: str, source: str) -> Candidate:
    """A candidate from model text: the number (math) or the completed program (code)."""
    if query.kind == "code":
        return Candidate(answer=extract_code(text, query.entry_point, prompt=query.text), text=text, source=source)
    return Candidate(answer=extract_number(text) or "", text=text, source=source)


async def _generate(query: Query, meter: _Meter, source: str) -> Candidate:
    text = await meter.ask(_render("generate", question=query.text, format=_format(query)))
    return _candidate(query, text, source)


def _previous(state: LayerState) -> Candidate | None:
    """The previous layer's merged answer, else its first candidate."""
    if state.answer is not None:
        return state.answer
    return state.candidates[0] if state.candidates else None


def _previous_all(state: LayerState) -> list[Candidate]:
    """The previous layer's candidates, else its merged answer alone."""
    if state.candidates:
        return list(state.candidates)
    return [state.answer] if state.answer is not None else []


def _shown(query: Query, candidate: Candidate) -> str:
    """A candidate as quoted in a prompt: the code for code, the end of the text for math."""
    if query.kind == "code":
        return f"```python\n{_clip(candidate.answer)}\n```"
    return _clip(candidate.text, keep_end=True)


def _clip(text: str, *, keep_end: bool = False) -> str:
    text = text.strip()
    if len(text) <= _CLIP_CHARS:
        return text
    return "..." + text[-_CLIP_CHARS:] if keep_end else text[:_CLIP_CHARS] + "..."


def _run_error(result: SandboxResult) -> str:
    """What to tell the model about a failed calculation program."""
    if result.ok:
        return f"it printed no number; its output was:\n{_clip(result.stdout, keep_end=True)}"
    if result.status == "error" and result.stderr.strip():
        return _clip(result.stderr, keep_end=True)
    return result.message


def _suite_ok(suite: SuiteResult) -> bool:
    return suite.result.ok and suite.passed == suite.total


def _suite_error(suite: SuiteResult) -> str:
    """What to tell the model about a function that failed its tests."""
    if not suite.result.ok:
        return _run_error(suite.result)
    return _clip("\n".join(suite.failures)) or "the tests failed"


async def _fix(query: Query, candidate: Candidate, suite: SuiteResult, meter: _Meter, source: str) -> Candidate:
    """Ask the model once to repair a function, showing how it failed."""
    text = await meter.ask(
        _render("fix", question=query.text, code=candidate.answer, error=_suite_error(suite), format=_format(query))
    )
    return _candidate(query, text, source)


def _with_counts(candidate: Candidate, suite: SuiteResult) -> Candidate:
    if suite.total == 0:
        return candidate
    return replace(candidate, passed=suite.passed, total=suite.total)

