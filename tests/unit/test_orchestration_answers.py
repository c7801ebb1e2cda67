"""Reading answers: numbers from reasoning text, programs from replies, tests from prompts."""

from __future__ import annotations

import pytest

from paragents.orchestration.answers import (
    doctest_tests,
    extract_code,
    extract_number,
    normalise_number,
    numbers_equal,
)
from paragents.orchestration.datasets import load_humaneval
from paragents.orchestration.sandbox import run_code

PROMPT = '''from typing import List


def helper(x: int) -> int:
    return x


def add_all(xs: List[int]) -> int:
    """Add the numbers.
    >>> add_all([1, 2])
    3
    >>> add_all([])
    0
    """
'''


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 42.", "42"),
        ("So 3 + 4 = 7, and the answer is: $1,250.", "1250"),
        ("#### 1,234", "1234"),
        ("First 12.50, then 3.0, so \\boxed{25}", "25"),
        ("Answer: 7\nStep 2: 9 more", "7"),
        ("He has 3 apples, then 5, then 11", "11"),
        ("The temperature fell to -5", "-5"),
        ("Between 3-4 apples", "4"),
        ("It costs 12.50 dollars", "12.5"),
        ("Exactly 3.000", "3"),
        ("half is .5", "0.5"),
        ("-0.0", "0"),
        ("No digits at all.", None),
    ],
)
def test_extract_number(text: str, number: str | None) -> None:
    assert extract_number(text) == number


def test_normalise_number_takes_only_a_whole_number() -> None:
    assert normalise_number(" $1,200.00 ") == "1200"
    assert normalise_number("12 apples") is None


def test_numbers_equal_compares_numbers_not_strings() -> None:
    assert numbers_equal("18", "$18.00")
    assert numbers_equal("1,000", "1000.0000001")
    assert not numbers_equal("18", "19")
    assert not numbers_equal(None, "1") and not numbers_equal("", "1") and not numbers_equal("x", "x")


def test_extract_code_takes_the_fenced_block_that_defines_the_entry_point() -> None:
    text = "Example:\n```\nprint(1)\n```\nSolution:\n```python\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(text, "f") == "def f(x):\n    return x\n"
    assert extract_code(text) == "print(1)\n"  # no entry point: the first block
    assert extract_code("x = 1\nprint(x)") == "x = 1\nprint(x)\n"  # no fence: the whole text


def test_extract_code_puts_the_prompts_imports_and_helpers_before_a_whole_function() -> None:
    reply = "```python\ndef add_all(xs: List[int]) -> int:\n    return sum(map(helper, xs))\n```"
    code = extract_code(reply, "add_all", prompt=PROMPT)
    assert code.startswith("from typing import List\n\n\ndef helper(x: int) -> int:")
    assert code.endswith("def add_all(xs: List[int]) -> int:\n    return sum(map(helper, xs))\n")
    assert run_code(code + "\nprint(add_all([1, 2]))").stdout == "3\n"  # it runs as completed


@pytest.mark.parametrize("body", ["return sum(xs)", "    return sum(xs)"])
def test_extract_code_appends_a_bare_body_to_the_prompt_indented(body: str) -> None:
    code = extract_code(f"```python\n{body}\n```", "add_all", prompt=PROMPT)
    assert code == PROMPT.rstrip("\n") + "\n    return sum(xs)\n"


def test_extract_code_drops_a_main_block() -> None:
    reply = "```python\ndef f():\n    return 1\n\nif __name__ == '__main__':\n    print(f(input()))\n```"
    assert extract_code(reply, "f") == "def f():\n    return 1\n"


def test_doctest_tests_from_a_real_humaneval_prompt() -> None:
    query = load_humaneval(limit=1)[0]
    assert query.entry_point == "has_close_elements"
    assert doctest_tests(query.text, query.entry_point) == (
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
    )


def test_doctest_tests_read_arrow_examples_and_skip_what_does_not_parse() -> None:
    prompt = '''def fly(q, w):
    """Example:
    fly([1, 2], 5) \u279e False
    fly([3], 5) ==> True
    fly(x, 5) => True
    fly([1], 2) -> 1 + 1 = 2
    >>> fly([9], 9)
    True
    >>> fly([9], 1)
    not a literal
    """
'''
    assert doctest_tests(prompt, "fly") == (
        "assert fly([9], 9) == True",
        "assert fly([1, 2], 5) == False",
        "assert fly([3], 5) == True",
    )


def test_doctest_tests_ignore_other_functions() -> None:
    assert doctest_tests(PROMPT, "helper") == ()
    assert doctest_tests(PROMPT, "add_all") == ("assert add_all([1, 2]) == 3", "assert add_all([]) == 0")
