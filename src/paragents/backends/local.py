"""The local backend: llama.cpp in this process, the bundled SmolLM2 by default.

Theory of operation
-------------------
:class:`LocalBackend` answers requests with ``llama_cpp.Llama.create_chat_completion``
on a GGUF file (by default the bundled SmolLM2-135M-Instruct, see
:mod:`paragents.backends.bundled`), so that a fresh install runs a real model with
nothing downloaded and no server to start.

Instances and threads.  The backend owns a pool of ``instances`` model copies and a
:class:`~concurrent.futures.ThreadPoolExecutor` of exactly ``instances`` worker threads.
A call is one job on that executor: the job takes a free copy from the idle queue (there
always is one, since no more jobs run than there are copies), runs the model, and puts
the copy back.  Calls beyond ``instances`` wait in the executor's queue, off the event
loop, so the scheduler keeps dispatching while the model runs.  llama.cpp releases the
GIL while it evaluates, so two copies really compute at the same time; each uses
``threads`` CPU threads (default: the machine's cores divided by ``instances``).  A copy
is loaded lazily, in its worker thread, by the first call that takes it, so constructing
a backend is cheap and a pool that never sees two calls at once loads one copy.

Loading.  llama-cpp-python (with ``verbose=False``) silences a load by pointing the
process's file descriptors 1 and 2 at ``/dev/null`` and back.  Two loads interleaved
would restore each other's ``/dev/null`` and leave stdout and stderr silenced for good,
so every load in the process takes one lock.  While a load runs (a fraction of a second,
once per copy), what other threads print is lost: the redirection is process-wide.

Sharing.  Pools live in a process-wide registry keyed by (resolved model path,
``n_ctx``, ``instances``, ``threads``, ``seed``): two backends built with the same
settings (two agents of one workflow, say) share one pool, so the model is loaded
once and the pool's ``instances`` bound holds for both.  Their default endpoint is the
same too (``local://<file name>``), so the runtime's admission control sees them as one
server.  Each backend holds a reference; :meth:`LocalBackend.aclose` drops it, and the
last one waits for running calls, stops the threads and frees the models.

Measurement.  A call is streamed only when the request asks (``on_text``): then each
sampled token's text is handed to ``on_text`` from the worker thread as it comes, the
completion tokens are the chunks counted and the prompt tokens what else the context
holds; otherwise llama-cpp-python reports the usage.  ``compute_s`` is the time the worker thread spent on the call
(templating, prompt evaluation, sampling, decoding; on a copy's first call, loading it);
``transfer_s = total_s - compute_s`` is the hand-off to and from the thread, plus any
wait for a free copy (about zero when admission control keeps the concurrency at or
below ``instances``).  ``ttft_s`` comes from llama.cpp's own timers, reset before each
call: it is ``total_s`` minus the decoding time of every token after the first
(``t_eval_ms``), that is the time until the first token was sampled, give or take the
per-token Python bookkeeping, which is small next to decoding.

Seeds.  A call at temperature 0 is greedy and passes the backend's ``seed``, as its
copies were loaded with.  A call at a temperature above 0 samples, and gets a fresh seed
drawn from the backend's own :class:`random.Random` seeded with ``seed``: calls that
repeat one prompt (several samples of one question) get different texts, while a run
that makes the same calls in the same order gets the same texts again.  The draw
happens on the event loop, in the order calls arrive, before the call waits for a
model copy.

JSON output.  When ``request.json_schema`` is set, the call passes
``response_format={"type": "json_object", "schema": ...}``, which llama-cpp-python
turns into a grammar, so the text parses as JSON matching the schema (unless
``max_tokens`` cuts it short).

Errors.  Every failure is a :class:`~paragents.core.errors.BackendError` naming the
endpoint: a model that cannot be loaded and a request llama-cpp-python refuses as invalid
(its ``ValueError``: a prompt longer than ``n_ctx``, say) are not retryable; any other
failure inside the model is.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from paragents.backends.base import Completion, Request
from paragents.backends.bundled import bundled_model_path
from paragents.core.errors import BackendError

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LocalBackend"]

#: Serialises model loads process-wide (see "Loading" in the module docstring).
_LOAD_LOCK = threading.Lock()


class LocalBackend:
    """llama.cpp in-process: ``instances`` model copies, each driven by its own worker thread."""

    def __init__(
        self,
        *,
        model_path: str | None = None,
        instances: int = 1,
        threads: int | None = None,
        n_ctx: int = 2048,
        seed: int = 0,
        name: str = "local",
        endpoint: str | None = None,
    ) -> None:
        if instances < 1:
            raise ValueError(f"instances must be at least 1, got {instances}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if n_ctx < 64:
            raise ValueError(f"n_ctx must be at least 64, got {n_ctx}")
        if model_path is None:
            path = bundled_model_path()
        else:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise ValueError(f"model_path {str(path)!r} is not a file")
        self.name = name
        self.model = path.stem
        self.endpoint = endpoint or f"local://{path.name}"
        self._settings = _Settings(
            path=path.resolve(),
            n_ctx=n_ctx,
            instances=instances,
            threads=threads or max(1, (os.cpu_count() or 1) // instances),
            seed=seed,
        )
        self._pool: _Pool | None = _Pool.acquire(self._settings)
        self._seeds = random.Random(seed)  # a fresh seed per sampled call (see "Seeds")

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"LocalBackend(name={self.name!r}, endpoint={self.endpoint!r}, model={self.model!r}, "
            f"instances={s.instances}, threads={s.threads})"
        )

    async def complete(self, request: Request) -> Completion:
        """Run the request on a free model copy in a worker thread; the event loop stays free."""
        pool = self._pool
        if pool is None:
            raise _permanent("the backend is closed", self.endpoint)
        seed = self._seeds.randrange(2**31) if request.temperature > 0 else self._settings.seed
        started = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(pool.executor, pool.generate, request, seed)
        except _LoadError as exc:
            raise _permanent(str(exc), self.endpoint) from exc.__cause__
        except ValueError as exc:  # llama-cpp-python's word for a request the model cannot take
            raise _permanent(f"request rejected by the model: {exc}", self.endpoint) from exc
        except Exception as exc:
            raise BackendError(f"model call failed: {type(exc).__name__}: {exc}", endpoint=self.endpoint) from exc
        total = time.perf_counter() - started
        compute = min(result.model_s, total)
        return Completion(
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            ttft_s=max(0.0, total - result.decode_s),
            total_s=total,
            compute_s=compute,
            transfer_s=total - compute,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Drop this backend's share of the pool; the last share frees the models.  Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.release)


@dataclass(frozen=True, slots=True)
class _Settings:
    """What makes two pools interchangeable: the registry key."""

    path: Path
    n_ctx: int
    instances: int
    threads: int
    seed: int


@dataclass(frozen=True, slots=True)
class _Generated:
    """What a worker thread hands back: the text, exact usage, its time in the job
    (``model_s``, a first call's load included) and llama.cpp's decoding time."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model_s: float
    decode_s: float


class _Copy:
    """One model copy; ``llama`` is ``None`` until the first call that takes it loads it."""

    __slots__ = ("llama",)

    def __init__(self) -> None:
        self.llama: Llama | None = None


class _Pool:
    """``instances`` model copies, an executor with as many threads, and a reference count.

    Invariant: at most ``instances`` jobs run at once (the executor's bound), each holding
    one copy taken from ``_idle``, so ``_idle.get_nowait()`` in a job never finds it empty.
    """

    _registry: ClassVar[dict[_Settings, _Pool]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.executor = ThreadPoolExecutor(max_workers=settings.instances, thread_name_prefix="paragents-local")
        self._copies = [_Copy() for _ in range(settings.instances)]
        self._idle: queue.SimpleQueue[_Copy] = queue.SimpleQueue()
        for copy in self._copies:
            self._idle.put(copy)
        self._refs = 0

    @classmethod
    def acquire(cls, settings: _Settings) -> _Pool:
        with cls._registry_lock:
            pool = cls._registry.get(settings)
            if pool is None:
                pool = cls._registry[settings] = cls(settings)
            pool._refs += 1
            return pool

    def release(self) -> None:
        """Drop one reference; the last one waits for running calls, then frees everything."""
        with self._registry_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            del self._registry[self.settings]
        self.executor.shutdown(wait=True)
        for copy in self._copies:
            if copy.llama is not None:
                copy.llama.close()
                copy.llama = None

    def generate(self, request: Request, seed: int) -> _Generated:
        """Worker-thread job: take a free copy (loading it on first use), run the request
        with ``seed`` for its sampler."""
        started = time.perf_counter()
        copy = self._idle.get_nowait()
        try:
            if copy.llama is None:
                copy.llama = self._load()
            return _run(copy.llama, request, seed, started)
        finally:
            self._idle.put(copy)

    def _load(self) -> Llama:
        from llama_cpp import Llama

        s = self.settings
        try:
            with _LOAD_LOCK:
                return Llama(
                    model_path=str(s.path),
                    n_ctx=s.n_ctx,
                    n_threads=s.threads,
                    n_threads_batch=s.threads,
                    seed=s.seed,
                    verbose=False,
                )
        except Exception as exc:
            raise _LoadError(f"cannot load model {s.path}: {exc}") from exc


def _run(llama: Llama, request: Request, seed: int, started: float) -> _Generated:
    """One chat completion on ``llama``, with llama.cpp's timers reset around it;
    ``started`` is when the job began (before a first call's load)."""
    import llama_cpp

    messages: list[Any] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.prompt})
    options: dict[str, Any] = {}
    if request.json_schema is not None:
        options["response_format"] = {"type": "json_object", "schema": dict(request.json_schema)}
    llama_cpp.llama_perf_context_reset(llama.ctx)
    answer: Any = llama.create_chat_completion(
        messages=messages,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        stop=list(request.stop) or None,
        seed=seed,
        stream=request.on_text is not None,
        **options,
    )
    if request.on_text is None:
        usage = answer["usage"]
        text = answer["choices"][0]["message"]["content"] or ""
        prompt_tokens, completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    else:  # streamed: one chunk per sampled token; the context holds prompt + completion
        parts: list[str] = []
        for chunk in answer:
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                parts.append(piece)
                request.on_text(piece)
        text = "".join(parts)
        completion_tokens = len(parts)
        prompt_tokens = max(llama.n_tokens - completion_tokens, 0)
    model_s = time.perf_counter() - started
    timers = llama_cpp.llama_perf_context(llama.ctx)
    return _Generated(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model_s=model_s,
        decode_s=min(model_s, max(0.0, timers.t_eval_ms / 1000.0)),
    )


class _LoadError(Exception):
    """The model file could not be loaded; the backend turns this into a non-retryable error."""


def _permanent(message: str, endpoint: str) -> BackendError:
    """A BackendError the runtime must not retry: the same call would fail the same way."""
    error = BackendError(message, endpoint=endpoint)
    error.retryable = False
    return error
