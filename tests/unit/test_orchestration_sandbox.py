"""The sandbox: real child interpreters, real limits, real HumanEval tests.

Each run starts a Python process (tens of milliseconds); the timeout test waits half a
second, the longest any test here waits.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from paragents.orchestration.datasets import load_humaneval, score
from paragents.orchestration.sandbox import (
    KEPT_OUTPUT_CHARS,
    arun_code,
    arun_tests,
    run_code,
)
from paragents.orchestration.state import Candidate


def test_output_of_a_program_is_captured() -> None:
    result = run_code("print(6 * 7)")
    assert result.status == "ok" and result.ok
    assert result.stdout == "42\n" and result.stderr == "" and result.returncode == 0
    assert 0 < result.elapsed_s < 5


def test_stdin_is_given_to_the_program() -> None:
    assert run_code("print(input()[::-1])", stdin="abc\n").stdout == "cba\n"


def test_runaway_loop_is_killed_at_the_timeout_with_its_process_group() -> None:
    # Field 5 of /proc/self/stat is the process group; reading files is allowed.
    code = "print(open('/proc/self/stat').read().split()[4], flush=True)\nwhile True:\n    pass\n"
    result = run_code(code, timeout_s=0.5)
    assert result.status == "timeout" and result.message == "timed out after 0.5 s"
    assert 0.5 <= result.elapsed_s < 1.5
    group = int(result.stdout)
    assert group != os.getpgrp()  # its own group, so the kill reached nothing of ours
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


@pytest.mark.parametrize(
    ("code", "module"),
    [
        ("import os", "os"),
        ("import subprocess", "subprocess"),
        ("__import__('socket')", "socket"),
        ("from os import path", "os"),
        ("import os.path", "os"),
        ("exec('import sys', {})", "sys"),
    ],
)
def test_denied_imports_are_refused_and_named(code: str, module: str) -> None:
    result = run_code(code)
    assert result.status == "forbidden"
    assert result.message == f"import of {module!r} is not allowed"
    assert "<program>" in result.stderr and "guarded_import" not in result.stderr  # the program's frames only


def test_refusal_counts_even_when_the_program_catches_it() -> None:
    result = run_code("try:\n    import os\nexcept Exception:\n    pass\nprint('done')")
    assert result.status == "forbidden" and result.stdout == "done\n"


def test_spawning_through_a_module_that_holds_os_is_refused_by_the_audit_hook() -> None:
    result = run_code("import random\nrandom._os.system('echo escaped')")
    assert result.status == "forbidden" and "os.system" in result.message
    assert "escaped" not in result.stdout


def test_writing_a_file_is_refused_and_reading_one_is_not() -> None:
    written = run_code("open('out.txt', 'w').write('x')")
    assert written.status == "forbidden"
    assert written.message == "opening 'out.txt' for writing is not allowed"
    read = run_code("print(open('/proc/self/stat').read().split()[0].isdigit())")
    assert read.status == "ok" and read.stdout == "True\n"


@pytest.mark.parametrize("code", ["x = bytearray(2 ** 36)", "x = []\nwhile True:\n    x.append(' ' * 1_000_000)"])
def test_allocating_too_much_memory_is_reported_as_memory(code: str) -> None:
    result = run_code(code, memory_mb=128)
    assert result.status == "memory" and result.message == "ran out of memory (limit 128 MiB)"


def test_everyday_standard_library_imports_work() -> None:
    modules = (
        "math re itertools collections functools heapq typing string fractions decimal "
        "statistics hashlib bisect random copy operator dataclasses enum json datetime"
    )
    code = f"import {', '.join(modules.split())}\nfrom typing import List\nprint(statistics.mean([1, 2]))"
    result = run_code(code)
    assert result.status == "ok", result.stderr
    assert result.stdout == "1.5\n"


def test_an_exception_is_an_error_named_by_its_last_line() -> None:
    result = run_code("def f():\n    return 1 / 0\n\nf()")
    assert result.status == "error" and result.returncode == 1
    assert result.message == "ZeroDivisionError: division by zero"
    assert 'File "<program>", line 2, in f' in result.stderr


def test_a_syntax_error_is_an_error() -> None:
    result = run_code("def f(:\n    pass")
    assert result.status == "error" and result.message.startswith("SyntaxError")


def test_endless_output_hits_the_output_limit_and_is_cut() -> None:
    result = run_code("while True:\n    print('x' * 10_000)")
    assert result.status == "error" and result.message.startswith("output exceeded")
    assert len(result.stdout) < KEPT_OUTPUT_CHARS + 100 and result.stdout.startswith("[...")


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        run_code("pass", timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        run_code("pass", memory_mb=1)


async def test_async_runs_overlap() -> None:
    started = time.perf_counter()
    results = await asyncio.gather(*(arun_code("import time\ntime.sleep(0.3)") for _ in range(3)))
    assert all(result.ok for result in results)
    assert time.perf_counter() - started < 0.85  # three 0.3 s programs, not one after another


async def test_tests_are_counted_one_by_one_with_the_reason_of_each_failure() -> None:
    suite = await arun_tests(
        "def inc(x):\n    return x + 1\n",
        ["assert inc(1) == 2", "assert inc(2) == 5", "assert dec(1) == 0"],
    )
    assert (suite.passed, suite.total, suite.all_passed) == (1, 3, False)
    assert suite.failures == ("assert inc(2) == 5  # got 3", "assert dec(1) == 0  # NameError: name 'dec' is not defined")


async def test_a_program_that_never_reaches_its_tests_passes_none() -> None:
    suite = await arun_tests("import os\ndef inc(x):\n    return x + 1\n", ["assert inc(1) == 2"])
    assert (suite.passed, suite.total) == (0, 1)
    assert suite.result.status == "forbidden" and "import of 'os'" in suite.failures[0]


def test_humaneval_canonical_solution_passes_its_hidden_tests_and_a_wrong_one_fails() -> None:
    query = load_humaneval(limit=1)[0]
    assert query.reference is not None
    assert score(query, Candidate(answer=query.reference, text="", source="reference")) == 1.0
    wrong = query.text + "    return False\n"
    assert score(query, Candidate(answer=wrong, text="", source="wrong")) == 0.0
