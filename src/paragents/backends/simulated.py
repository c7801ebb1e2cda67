"""A simulated LLM backend: deterministic text, modelled latency, injected failures.

Theory of operation
-------------------
:class:`SimulatedBackend` stands in for a real model wherever the point is the schedule,
not the words: tests, benchmarks, the examples.  It answers after a modelled delay and
can fail on purpose, and everything it does is reproducible from its ``seed``.

Latency model.  A call producing ``n`` completion tokens, where
``n = min(max_tokens, expected_tokens or max_tokens)``, takes::

    compute  = (ttft_s + n / tokens_per_s) * (1 + u)     u ~ Uniform(-jitter, +jitter)
    transfer = transfer_s
    total    = compute + transfer

every term multiplied by ``time_scale`` (``0.01`` runs a scenario a hundred times
faster; ``0`` answers at once).  ``compute`` is the model's own time (prefill until the
first token, then decoding at ``tokens_per_s``); ``transfer`` is the network and
serialisation around it.  The call sleeps ``total`` with :func:`asyncio.sleep`, and the
:class:`~paragents.backends.base.Completion` reports exactly the modelled, scaled
values (``compute_s``, ``transfer_s``, ``total_s``, and ``ttft_s = transfer + (ttft_s *
(1 + u)) * time_scale``), so two runs with one seed report identical numbers.  Load does
not slow the simulated server down: contention is the limiter's business.

Randomness.  One :class:`random.Random` seeded with ``seed`` makes exactly two draws per
call, in this order: a failure roll, then the jitter.  The sequence of outcomes is
therefore fixed by the seed and the order in which calls start.

Failure injection.  The roll picks at most one outcome, with probabilities
``failure_rate`` (raise :class:`~paragents.core.errors.BackendError`, "injected
failure"), ``rate_limit_rate`` (raise :class:`~paragents.core.errors.RateLimited` with
``retry_after = retry_after_s * time_scale``) and ``timeout_rate`` (sleep the whole
modelled call, then raise :class:`~paragents.core.errors.BackendTimeout`); otherwise the
call succeeds.  An error answer (failure or 429) costs one transfer before it arrives.
Every error names ``endpoint``.

Text.  The answer is derived from the prompt alone: ``"Answer: <first six words>."``
followed by the prompt's words repeated, cut to ``4 * n`` characters, so that
:func:`~paragents.backends.base.estimate_tokens` of the text is exactly ``n``.
``system``, ``temperature``, ``json_schema`` and ``stop`` do not change it.
"""

from __future__ import annotations

import asyncio
import itertools
import random

from paragents.backends.base import Completion, Request, estimate_tokens
from paragents.core.errors import BackendError, BackendTimeout, RateLimited

__all__ = ["SimulatedBackend"]

_CHARS_PER_TOKEN = 4
_HEAD_WORDS = 6


class SimulatedBackend:
    """A backend that sleeps for a modelled latency and answers with deterministic text."""

    def __init__(
        self,
        *,
        name: str = "sim",
        endpoint: str = "sim://local",
        model: str = "simulated",
        ttft_s: float = 0.02,
        tokens_per_s: float = 400.0,
        jitter: float = 0.1,
        transfer_s: float = 0.0,
        failure_rate: float = 0.0,
        rate_limit_rate: float = 0.0,
        retry_after_s: float = 0.05,
        timeout_rate: float = 0.0,
        seed: int = 0,
        time_scale: float = 1.0,
    ) -> None:
        if not tokens_per_s > 0:
            raise ValueError(f"tokens_per_s must be positive, got {tokens_per_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        for label, seconds in (
            ("ttft_s", ttft_s),
            ("transfer_s", transfer_s),
            ("retry_after_s", retry_after_s),
            ("time_scale", time_scale),
        ):
            if not seconds >= 0:
                raise ValueError(f"{label} must be non-negative, got {seconds}")
        rates = (("failure_rate", failure_rate), ("rate_limit_rate", rate_limit_rate), ("timeout_rate", timeout_rate))
        for label, rate in rates:
            if not 0 <= rate <= 1:
                raise ValueError(f"{label} must be a probability in [0, 1], got {rate}")
        if failure_rate + rate_limit_rate + timeout_rate > 1:
            raise ValueError("failure_rate + rate_limit_rate + timeout_rate must not exceed 1")
        self.name = name
        self.endpoint = endpoint
        self.model = model
        self._ttft_s = ttft_s
        self._tokens_per_s = tokens_per_s
        self._jitter = jitter
        self._transfer_s = transfer_s
        self._failure_rate = failure_rate
        self._rate_limit_rate = rate_limit_rate
        self._retry_after_s = retry_after_s
        self._timeout_rate = timeout_rate
        self._time_scale = time_scale
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        return f"SimulatedBackend(name={self.name!r}, endpoint={self.endpoint!r}, model={self.model!r})"

    async def complete(self, request: Request) -> Completion:
        """Sleep the modelled latency, then answer, or raise the injected failure."""
        roll = self._rng.random()
        factor = 1.0 + self._rng.uniform(-self._jitter, self._jitter)
        n = min(request.max_tokens, request.expected_tokens or request.max_tokens)
        first_token = self._ttft_s * factor * self._time_scale
        compute = (self._ttft_s + n / self._tokens_per_s) * factor * self._time_scale
        transfer = self._transfer_s * self._time_scale

        if roll < self._failure_rate:
            await asyncio.sleep(transfer)
            raise BackendError("injected failure", endpoint=self.endpoint)
        if roll < self._failure_rate + self._rate_limit_rate:
            await asyncio.sleep(transfer)
            retry_after = self._retry_after_s * self._time_scale
            raise RateLimited(
                f"rate limited (injected 429), retry after {retry_after:.3g} s",
                retry_after=retry_after,
                endpoint=self.endpoint,
            )
        await asyncio.sleep(compute + transfer)
        if roll < self._failure_rate + self._rate_limit_rate + self._timeout_rate:
            message = f"no answer after {compute + transfer:.3g} s (injected timeout)"
            raise BackendTimeout(message, endpoint=self.endpoint)

        return Completion(
            text=_answer(request.prompt, n),
            prompt_tokens=estimate_tokens(request.system + request.prompt),
            completion_tokens=n,
            ttft_s=transfer + first_token,
            total_s=compute + transfer,
            compute_s=compute,
            transfer_s=transfer,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Nothing to release: the simulated backend holds no connections."""


def _answer(prompt: str, tokens: int) -> str:
    """Deterministic text of exactly ``tokens`` estimated tokens, made of the prompt's words."""
    words = prompt.split() or ["simulated"]
    limit = tokens * _CHARS_PER_TOKEN
    parts = [f"Answer: {' '.join(words[:_HEAD_WORDS])}."]
    length = len(parts[0])
    for word in itertools.cycle(words):
        if length >= limit:
            break
        parts.append(word)
        length += 1 + len(word)
    # Words are joined by single spaces, so stripping drops at most one character and the
    # estimate (four characters a token, rounded up) stays exactly ``tokens``.
    return " ".join(parts)[:limit].rstrip()
