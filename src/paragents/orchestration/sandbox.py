"""Run model-written Python in a separate, fenced-in interpreter.

Theory of operation
-------------------
Operators ask a model for programs (a calculation that prints a number, a function for a
coding task) and must run them.  :func:`run_code` runs one program in a child process
and reports what happened as a :class:`SandboxResult` whose ``status`` is one of
``ok``, ``error``, ``timeout``, ``memory`` or ``forbidden``; :func:`arun_code` is the
same in a worker thread, so the event loop keeps going while programs run.
:func:`arun_tests` runs a program followed by assertions and counts those that pass.

The child.  ``sys.executable -I -B -u -c <guard>`` in a fresh temporary directory (its
working directory, deleted afterwards), in a new session and so a new process group,
with a minimal environment.  ``-I`` ignores ``PYTHON*`` variables, the user's site
directory and the current directory on ``sys.path``; ``-B`` writes no bytecode (a write
the guard would refuse); ``-u`` leaves nothing in buffers, so the output of a program
killed at its timeout is kept.  The program is a file in that directory; stdin, stdout
and stderr are files there too, opened by this process.

Fences, set up by the guard in the child before the program's first line runs:

* Resource limits: ``RLIMIT_AS`` (address space: ``memory_mb``), ``RLIMIT_CPU`` (the
  timeout rounded up plus one second: a backstop, the wall clock below acts first),
  ``RLIMIT_FSIZE`` (:data:`OUTPUT_LIMIT_BYTES`, which caps the output files), no core
  files, and ``RLIMIT_NPROC`` 0, which stops new processes and threads for an ordinary
  user (the kernel does not enforce it for root; the audit hook still refuses spawning).
* An import guard: ``builtins.__import__`` is wrapped so that an import *written by the
  program* of a module in :data:`DENIED_MODULES` (checked on the top-level name, so
  ``import os.path`` and ``from os import path`` count) raises ``SandboxViolation``.
  "Written by the program" means the importing frame's code has a pseudo file name
  (``<program>``, or ``<string>`` for code the program built with ``exec``/``eval``);
  library modules the program imports may still import what they need (``random``
  imports ``os``).  Modules already loaded at start-up (``os``, ``sys``, ``io``) are
  refused the same way, since every ``import`` statement goes through ``__import__``.
* An audit hook (:func:`sys.addaudithook`, which cannot be removed once added) refuses,
  whoever asks: starting or signalling processes, sockets and every network client,
  opening a file for anything but reading, changing files or directories, and changing
  resource limits.  This layer catches what the import guard lets through, such as
  ``random._os.system(...)``.  The environment may change (it is the child's own and
  dies with it), and libraries may load C code with ``ctypes`` (numpy does on import);
  the program itself may not import ``ctypes``.

Any refusal is recorded; when the program ends (even if it caught the exception), the
guard reports the first refusal and the status is ``forbidden``.  A ``MemoryError``
that reaches the top is reported as ``memory``; so is a death by ``SIGKILL`` this module
did not send (the kernel's out-of-memory killer).  Past ``timeout_s`` of wall-clock
time this process kills the whole process group: ``timeout``.

Limits, honestly: this is a best-effort fence against careless model-written code (a
stray ``import os``, a runaway loop, a huge list), not a security boundary.  Code that
sets out to escape can: it can reach the real modules through objects it is handed
(``().__class__.__base__.__subclasses__()``), compile code under a real-looking file
name to pass the import guard, or read any file the user running paragents can read.
The audit hook stops the common ways to act on the world, not every way (``os.write``
on an inherited descriptor is not audited).  Run untrusted code in a container or a VM.
"""

from __future__ import annotations

import ast
import asyncio
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DENIED_MODULES",
    "OUTPUT_LIMIT_BYTES",
    "SandboxResult",
    "SandboxStatus",
    "SuiteResult",
    "arun_code",
    "arun_tests",
    "run_code",
]

SandboxStatus = Literal["ok", "error", "timeout", "memory", "forbidden"]

#: Modules a program may not import, by top-level name.  Grouped by what they give:
#: the interpreter's insides, the operating system and files, processes and
#: concurrency, the network, and serialisation that can run arbitrary code.
DENIED_MODULES: frozenset[str] = frozenset(
    {
        # the interpreter: its state, its import machinery, its memory
        "sys", "builtins", "importlib", "imp", "_imp", "inspect", "gc", "code", "codeop",
        "runpy", "pkgutil", "zipimport", "site", "atexit", "faulthandler", "ctypes",
        "_ctypes", "cffi", "_frozen_importlib", "_frozen_importlib_external",
        # the operating system and files
        "os", "posix", "nt", "io", "_io", "pathlib", "shutil", "tempfile", "glob",
        "fileinput", "resource", "signal", "_signal", "fcntl", "mmap", "termios", "tty",
        "pty", "platform", "sysconfig",
        # processes and concurrency
        "subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing",
        "threading", "_thread", "concurrent", "asyncio", "select", "selectors",
        # the network
        "socket", "_socket", "ssl", "_ssl", "socketserver", "http", "urllib", "urllib3",
        "requests", "httpx", "aiohttp", "ftplib", "smtplib", "poplib", "imaplib",
        "telnetlib", "xmlrpc", "webbrowser",
        # serialisation that runs code
        "pickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
    }
)  # fmt: skip

#: Each output file (stdout, stderr) may grow to this size; a longer write fails.
OUTPUT_LIMIT_BYTES = 1 << 20
#: Characters of stdout and of stderr kept in a :class:`SandboxResult`.
KEPT_OUTPUT_CHARS = 16_000

_PROGRAM_FILE = "program.py"
_MARKER = "@@paragents-sandbox@@"
_FORBIDDEN_EXIT = 86
_MEMORY_EXIT = 87
_ENV = {
    "PATH": os.defpath,
    "LANG": "C.UTF-8",
    # Numeric libraries start no thread pools (threads count against RLIMIT_NPROC).
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# The guard runs in the child as ``python -c``.  It is source text because the child
# must not import paragents (slow, and a large surface); the call ``_main(config)`` is
# appended with the configuration as a Python literal.  Everything the guard needs is
# imported before the fences go up.
_GUARD = r'''
import builtins, linecache, os, resource, sys, traceback, types


class SandboxViolation(Exception):
    """The program tried something the sandbox refuses."""


_BLOCKED_EVENTS = (
    ("starting or signalling a process", ("os.system", "os.exec", "os.spawn",
        "os.posix_spawn", "os.fork", "os.startfile", "os.kill", "subprocess.", "pty.")),
    ("network access", ("socket.", "http.client.", "urllib.", "ftplib.", "smtplib.",
        "poplib.", "imaplib.", "nntplib.", "telnetlib.", "webbrowser.")),
    ("changing files", ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod",
        "os.chown", "os.chflags", "os.lchflags", "os.link", "os.symlink", "os.truncate",
        "os.utime", "os.setxattr", "os.removexattr", "shutil.")),
    ("changing resource limits", ("resource.",)),
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _from_program(frame):
    name = frame.f_code.co_filename
    return name.startswith("<") and not name.startswith("<frozen ")


def _print_error(exc, hidden):
    """Print the exception with the program's frames only (no guard, no _main)."""
    frames = [(f, n) for f, n in traceback.walk_tb(exc.__traceback__.tb_next) if f.f_code not in hidden]
    if frames:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(traceback.StackSummary.extract(frames).format()), end="", file=sys.stderr)
    print("".join(traceback.format_exception_only(type(exc), exc)), end="", file=sys.stderr)


def _main(config):
    with open(config["program"], encoding="utf-8") as file:
        source = file.read()
    violations = []

    def deny(message):
        violations.append(message)
        raise SandboxViolation(message)

    denied = frozenset(config["denied"])
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        top = name.partition(".")[0]
        if level == 0 and top in denied and _from_program(sys._getframe(1)):
            deny(f"import of {top!r} is not allowed")
        return real_import(name, globals, locals, fromlist, level)

    def audit(event, args):
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS:
                deny(f"opening {path!r} for writing is not allowed")
            return
        for what, prefixes in _BLOCKED_EVENTS:
            if event.startswith(prefixes):
                deny(f"{what} ({event}) is not allowed")

    linecache.cache["<program>"] = (len(source), None, source.splitlines(True), "<program>")
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    for name, soft, hard in config["limits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    builtins.__import__ = guarded_import
    sys.addaudithook(audit)

    status, memory = 0, False
    try:
        exec(compile(source, "<program>", "exec"), module.__dict__)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except MemoryError:
        memory = True
    except BaseException as exc:
        _print_error(exc, {deny.__code__, guarded_import.__code__, audit.__code__})
        status = 1
    if violations:
        print(f"\n{config['marker']} forbidden {violations[0]}", file=sys.stderr)
        status = config["forbidden_exit"]
    elif memory:
        print(f"\n{config['marker']} memory MemoryError", file=sys.stderr)
        status = config["memory_exit"]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
'''


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How one program run ended.

    ``stdout`` and ``stderr`` are cut to :data:`KEPT_OUTPUT_CHARS` each (the end is
    kept, with a note of what was dropped); ``returncode`` is negative for a signal;
    ``message`` names the cause in a few words ("timed out after 2 s", "import of 'os'
    is not allowed", or the exception's last line).
    """

    status: SandboxStatus
    stdout: str
    stderr: str
    returncode: int
    elapsed_s: float
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """A program run against assertions: how many passed, and why the others failed.

    ``failures`` holds one line per failing assertion (``assert f(1) == 2  # got 3``),
    or the run's message when the program itself did not get as far as the tests.
    """

    passed: int
    total: int
    failures: tuple[str, ...]
    result: SandboxResult

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total


def run_code(code: str, *, timeout_s: float = 5.0, memory_mb: int = 512, stdin: str = "") -> SandboxResult:
    """Run ``code`` as a program in a fenced child interpreter (see the module docstring)."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be at least 64, got {memory_mb}")
    with tempfile.TemporaryDirectory(prefix="paragents-sandbox-") as tmp:
        workdir = Path(tmp)
        (workdir / _PROGRAM_FILE).write_text(code, encoding="utf-8")
        (workdir / "stdin").write_text(stdin, encoding="utf-8")
        command = [sys.executable, "-I", "-B", "-u", "-c", _guard_source(timeout_s, memory_mb)]
        with (
            open(workdir / "stdin", "rb") as stdin_file,
            open(workdir / "stdout", "wb") as stdout_file,
            open(workdir / "stderr", "wb") as stderr_file,
        ):
            started = time.perf_counter()
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=_ENV,
                stdin=stdin_file,
                stdout=stdout_file,
                stderr=stderr_file,
                start_new_session=True,
            )
            timed_out = _wait(process, timeout_s)
            elapsed = time.perf_counter() - started
        stdout, stdout_full = _read_output(workdir / "stdout")
        stderr, stderr_full = _read_output(workdir / "stderr")
    return _classify(
        process.returncode,
        stdout,
        stderr,
        elapsed,
        timed_out=timed_out,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        output_full=stdout_full or stderr_full,
    )


async def arun_code(
    code: str, *, timeout_s: float = 5.0, memory_mb: int = 512, stdin: str = ""
) -> SandboxResult:
    """:func:`run_code` in a worker thread.

    Cancelling the caller does not stop the program early: it runs to its end or its
    timeout in the thread, which bounds the wait.
    """
    return await asyncio.to_thread(run_code, code, timeout_s=timeout_s, memory_mb=memory_mb, stdin=stdin)


async def arun_tests(
    code: str, tests: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512
) -> SuiteResult:
    """Run ``code`` then each statement of ``tests`` (assertions), in one sandboxed program.

    Each test runs on its own: one failing does not stop the rest.  A program that does
    not reach the tests (syntax error, forbidden import, timeout) passes none of them.
    """
    tests = tuple(tests)
    result = await arun_code(_suite_program(code, tests), timeout_s=timeout_s, memory_mb=memory_mb)
    failures = _suite_failures(result.stdout)
    if failures is None:
        return SuiteResult(0, len(tests), (f"the program failed before the tests: {result.message}",), result)
    return SuiteResult(len(tests) - len(failures), len(tests), failures, result)


def _guard_source(timeout_s: float, memory_mb: int) -> str:
    cpu_s = math.ceil(timeout_s) + 1
    config = {
        "program": _PROGRAM_FILE,
        "denied": sorted(DENIED_MODULES),
        "marker": _MARKER,
        "forbidden_exit": _FORBIDDEN_EXIT,
        "memory_exit": _MEMORY_EXIT,
        "limits": [
            ("RLIMIT_AS", memory_mb << 20, memory_mb << 20),
            ("RLIMIT_CPU", cpu_s, cpu_s + 1),
            ("RLIMIT_FSIZE", OUTPUT_LIMIT_BYTES, OUTPUT_LIMIT_BYTES),
            ("RLIMIT_CORE", 0, 0),
            ("RLIMIT_NPROC", 0, 0),
        ],
    }
    return f"{_GUARD}\n_main({config!r})\n"


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the child; past the timeout kill its whole group.  True if it timed out."""
    try:
        process.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    try:  # also sweeps up anything the program left behind in its group
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    return timed_out


def _read_output(path: Path) -> tuple[str, bool]:
    """The file's text cut to its last :data:`KEPT_OUTPUT_CHARS`, and whether it hit the cap."""
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    if len(text) > KEPT_OUTPUT_CHARS:
        dropped = len(text) - KEPT_OUTPUT_CHARS
        text = f"[... {dropped} characters dropped ...]\n{text[-KEPT_OUTPUT_CHARS:]}"
    return text, len(data) >= OUTPUT_LIMIT_BYTES


def _classify(
    returncode: int,
    stdout: str,
    stderr: str,
    elapsed: float,
    *,
    timed_out: bool,
    timeout_s: float,
    memory_mb: int,
    output_full: bool,
) -> SandboxResult:
    """Turn the child's exit into a status and a message naming the cause."""
    stderr, marked = _split_marker(stderr)

    def result(status: SandboxStatus, message: str) -> SandboxResult:
        return SandboxResult(status, stdout, stderr, returncode, elapsed, message)

    if timed_out:
        return result("timeout", f"timed out after {timeout_s:g} s")
    if marked is not None and marked[0] == "forbidden" and returncode == _FORBIDDEN_EXIT:
        return result("forbidden", marked[1])
    if marked is not None and marked[0] == "memory" and returncode == _MEMORY_EXIT:
        return result("memory", f"ran out of memory (limit {memory_mb} MiB)")
    if returncode == -signal.SIGXCPU:
        return result("timeout", f"used up its CPU time limit of {math.ceil(timeout_s) + 1} s")
    if returncode == -signal.SIGKILL:  # not sent by us: the kernel's out-of-memory killer
        return result("memory", f"killed by SIGKILL, most likely out of memory (limit {memory_mb} MiB)")
    if output_full:
        return result("error", f"output exceeded the limit of {OUTPUT_LIMIT_BYTES} bytes")
    if returncode < 0:
        return result("error", f"killed by signal {signal.Signals(-returncode).name}")
    if returncode != 0:
        return result("error", _last_line(stderr) or f"exited with status {returncode}")
    return result("ok", "exited normally")


def _split_marker(stderr: str) -> tuple[str, tuple[str, str] | None]:
    """Remove the guard's report line from stderr; return it as (kind, message)."""
    head, found, tail = stderr.rpartition(f"\n{_MARKER} ")
    if not found:
        return stderr, None
    kind, _, message = tail.strip().partition(" ")
    return head, (kind, message)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# A program under test: the code, then each assertion in turn.  A failure is described
# by its exception or, for ``assert A == B``, by the value ``A`` had.  The report is one
# line on stdout, after the marker, as a Python literal.
_SUITE = '''

def __paragents_why(test, exc):
    import ast
    try:
        node = ast.parse(test).body[0]
        if isinstance(exc, AssertionError) and isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
            left = ast.Expression(node.test.left)
            return "got " + repr(eval(compile(left, "<string>", "eval"), globals()))[:200]
    except Exception:
        pass
    return (type(exc).__name__ + ": " + str(exc))[:200]


def __paragents_suite(tests):
    failures = []
    for test in tests:
        try:
            exec(test, globals())
        except Exception as exc:
            failures.append(test + "  # " + __paragents_why(test, exc))
    print("\\n{marker}", repr(failures))


__paragents_suite({tests!r})
'''


def _suite_program(code: str, tests: tuple[str, ...]) -> str:
    return code + _SUITE.format(marker=_MARKER, tests=list(tests))


def _suite_failures(stdout: str) -> tuple[str, ...] | None:
    """The failing tests the suite reported, or None when it reported nothing."""
    _, found, tail = stdout.rpartition(f"\n{_MARKER} ")
    if not found:
        return None
    try:
        failures = ast.literal_eval(tail.strip())
    except (ValueError, SyntaxError):
        return None
    return tuple(str(failure) for failure in failures)
