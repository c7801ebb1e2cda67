"""Reading answers out of model text: numbers for math, programs for code.

Theory of operation
-------------------
Pure string work, no I/O and no model calls, so that every operator and every scorer
reads answers the same way.

Numbers (:func:`extract_number`).  A number is an optional minus sign, an optional
``$``, then digits, with thousands separators (``1,234``) and a decimal part allowed.
It is normalised to the shortest plain form: no commas or ``$``, no trailing zeros
after the point (``12.50`` -> ``12.5``, ``3.0`` -> ``3``), no ``-0``.  When the text
marks its answer (``\\boxed{X}``, ``#### X``, ``answer is X``, ``answer: X``), the first
number after the last such mark wins; otherwise the last number in the text does.
:func:`normalise_number` normalises text that is one number and nothing else;
:func:`numbers_equal` compares two such answers as numbers, with a small tolerance.

Code (:func:`extract_code`).  The program is the first fenced block (```python or a
bare ```) that defines the entry point, else the first fenced block, else the whole
text.  For a HumanEval-style task (``entry_point`` and the task's ``prompt`` given):

* code that defines ``def <entry_point>(`` is a whole function: the prompt's text
  before its own ``def <entry_point>`` line (imports, helper functions) is put in
  front, so that names like ``List`` resolve and helpers exist;
* code that does not is a body: it is appended to the prompt, indented by four spaces
  unless every line already is.

Either way a top-level ``if __name__ == "__main__":`` block and what follows are cut:
it would run example calls (or wait for input) when the tests import the function.

Tests (:func:`doctest_tests`).  Examples in the prompt become ``assert call ==
expected``: a ``>>> call`` line followed by its output (the next lines up to a blank
line or the next ``>>>``), or a line showing a call and its result with an arrow
(``f(3) ==> 5``, ``f(3) ➞ 5``, ``f(3) == 5``, ``f(3) returns 5``).  An example is kept
only when the call is a call of the entry point on literal arguments and the expected
result is a literal, so prose (``f(x) = 1 + x``) and examples that need other
functions are skipped.
"""

from __future__ import annotations

import ast
import math
import re
from decimal import Decimal

__all__ = ["doctest_tests", "extract_code", "extract_number", "normalise_number", "numbers_equal"]

_NUMBER = re.compile(r"(?<![\w.])(-)?\$?(\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_ANSWER_MARK = re.compile(r"\\boxed\{|####|\banswer\s*(?:is|:|=)", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:python3|python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
#: How examples written on one line separate the call from its result, tried in order.
_INLINE_SEPARATORS = ("==>", "=>", "\u279e", "->", "\u2192", "==", "should return", "returns", " = ")
_MAIN_GUARD = re.compile(r"^if\s+__name__\s*==\s*['\"]__main__['\"]\s*:", re.MULTILINE)


def extract_number(text: str) -> str | None:
    """The answer's number, normalised (see the module docstring), or None if there is none."""
    marks = list(_ANSWER_MARK.finditer(text))
    if marks:
        after = _NUMBER.search(text, marks[-1].end())
        if after is not None:
            return _normalise(after)
    numbers = list(_NUMBER.finditer(text))
    return _normalise(numbers[-1]) if numbers else None


def normalise_number(text: str) -> str | None:
    """``text`` as a normalised number when it is one (``"$1,200.00"`` -> ``"1200"``), else None."""
    match = _NUMBER.fullmatch(text.strip())
    return _normalise(match) if match is not None else None


def numbers_equal(a: str | None, b: str | None, *, tolerance: float = 1e-6) -> bool:
    """Whether two answers are the same number (relative or absolute ``tolerance``).

    Either side may be raw text of one number (``"$1,200"``); anything that is not a
    number compares unequal, and so does None.
    """
    x, y = _as_float(a), _as_float(b)
    if x is None or y is None:
        return False
    return math.isclose(x, y, rel_tol=tolerance, abs_tol=tolerance)


def extract_code(text: str, entry_point: str | None = None, *, prompt: str = "") -> str:
    """The program in ``text``, completed against a HumanEval ``prompt`` when one is given."""
    code = _fenced_block(text, entry_point).strip("\n")
    code = _MAIN_GUARD.split(code, maxsplit=1)[0].rstrip()
    if entry_point is None or not prompt:
        return code + "\n"
    if _defines(code, entry_point):
        return _preamble(prompt, entry_point) + code + "\n"
    return prompt.rstrip("\n") + "\n" + _as_body(code) + "\n"


def doctest_tests(prompt: str, entry_point: str) -> tuple[str, ...]:
    """``assert call == expected`` for each example of ``entry_point`` in ``prompt``."""
    tests: list[str] = []
    for call, expected in [*_doctest_examples(prompt), *_inline_examples(prompt, entry_point)]:
        test = _assertion(call, expected, entry_point)
        if test is not None and test not in tests:
            tests.append(test)
    return tuple(tests)


def _normalise(match: re.Match[str]) -> str:
    sign, digits = match.group(1) or "", match.group(2).replace(",", "")
    value = Decimal(sign + digits)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _as_float(text: str | None) -> float | None:
    number = normalise_number(text) if text is not None else None
    return float(number) if number is not None else None


def _fenced_block(text: str, entry_point: str | None) -> str:
    blocks = [match.group(1) for match in _FENCE.finditer(text)]
    if not blocks:
        return text
    if entry_point is not None:
        for block in blocks:
            if _defines(block, entry_point):
                return block
    return blocks[0]


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None


def _preamble(prompt: str, entry_point: str) -> str:
    """The prompt's text before its ``def entry_point`` line: imports and helpers."""
    match = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", prompt, re.MULTILINE)
    return prompt[: match.start()] if match is not None else ""


def _as_body(code: str) -> str:
    lines = code.splitlines()
    if all(line.startswith((" ", "\t")) for line in lines if line.strip()):
        return code
    return "\n".join("    " + line if line.strip() else line for line in lines)


def _doctest_examples(prompt: str) -> list[tuple[str, str]]:
    """(call, expected output) for each ``>>> call`` line followed by its output lines."""
    examples: list[tuple[str, str]] = []
    lines = [line.strip() for line in prompt.splitlines()]
    for index, line in enumerate(lines):
        if not line.startswith(">>>"):
            continue
        expected = []
        for following in lines[index + 1 :]:
            if not following or following.startswith((">>>", '"""', "'''")):
                break
            expected.append(following)
        if expected:
            examples.append((line[3:].strip(), " ".join(expected)))
    return examples


def _inline_examples(prompt: str, entry_point: str) -> list[tuple[str, str]]:
    """(call, expected) for each line that shows ``entry_point(...) <arrow> expected``."""
    examples: list[tuple[str, str]] = []
    start = re.compile(rf"(?<![\w.]){re.escape(entry_point)}\(")
    for line in prompt.splitlines():
        found = start.search(line)
        if found is None or line.lstrip().startswith("def "):
            continue
        example = line[found.start() :]
        for separator in _INLINE_SEPARATORS:
            call, sep, expected = example.partition(separator)
            if sep:
                examples.append((call, expected.split("#")[0].strip().rstrip(".")))
                break
    return examples


def _assertion(call: str, expected: str, entry_point: str) -> str | None:
    """The assertion, when ``call`` calls ``entry_point`` on literals and ``expected`` is one."""
    try:
        call_node = ast.parse(call.strip(), mode="eval").body
        expected_node = ast.parse(expected.strip(), mode="eval").body
        ast.literal_eval(expected_node)
        if not (isinstance(call_node, ast.Call) and isinstance(call_node.func, ast.Name)):
            return None
        for argument in [*call_node.args, *(keyword.value for keyword in call_node.keywords)]:
            ast.literal_eval(argument)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None
    if call_node.func.id != entry_point:
        return None
    return f"assert {ast.unparse(call_node)} == {ast.unparse(expected_node)}"
