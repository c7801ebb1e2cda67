"""Admission control: one limiter per LLM endpoint, shared by every agent that calls it.

Theory of operation
-------------------
An endpoint (a vLLM server, an OpenAI account, the bundled local model) has limits of its
own: how many calls it serves at once, how many requests and tokens it accepts per
minute, and, when overloaded, a Retry-After it asks its clients to honour.  Those limits
belong to the endpoint, not to an agent, so every agent whose backend names the same
``endpoint`` goes through one :class:`EndpointLimiter`; :class:`AdmissionControl` is the
registry that hands them out.

A caller asks with ``async with limiter.admit(tokens=estimate):`` and is admitted at the
first moment all four gates are open together:

- **concurrency** -- fewer than ``max_concurrency`` calls are in flight;
- **requests per minute** -- the request bucket holds one request;
- **tokens per minute** -- the token bucket holds the call's estimated tokens, or is full
  when the call is bigger than the bucket: such a call goes through and leaves the bucket
  in debt, so one big call always passes eventually and pays for itself afterwards;
- **Retry-After** -- the block set by :meth:`EndpointLimiter.retry_after` has passed.

Buckets are token buckets refilled continuously at ``rate / 60`` per second up to a
capacity of ``rate / 60 * burst_s`` (at least one).  They start full.  The token bucket
is charged the estimate at admission; :meth:`EndpointLimiter.settle` corrects it by
``estimated - actual`` once the real usage is known (a refund may admit the next caller at
once, an overrun leaves debt that delays it).

State, all owned by the limiter:

- ``_queue`` -- one future per waiting caller, in arrival order.  Only the head may be
  admitted, so callers are admitted in the order they asked and a big call at the head is
  never overtaken by small ones behind it (no starvation).  A caller's future is resolved
  when it becomes the head.
- ``_wakeup`` -- the head's wake-up future, resolved when something may have opened a
  gate early: a slot released, tokens refunded, limits changed.
- ``_requests`` / ``_tokens`` -- the two buckets (``None`` when that rate is unlimited).
- ``_blocked_until`` -- the clock time before which nobody starts (Retry-After).
- ``_in_flight`` and the counters reported by :meth:`AdmissionControl.stats`.

The head never polls: with every slot taken it waits on ``_wakeup``; with a slot free but
a budget short or a block in force it waits on ``_wakeup`` with a timeout equal to the
computed moment the gates open, then checks again.  A slot and the budget are taken at
the instant of admission with no ``await`` in between, and given back when the ``async
with`` block exits, however it exits; a waiter that is cancelled therefore holds nothing,
and on leaving the queue it hands the head position on, so FIFO order survives it.

This module never calls a model and never sleeps without a deadline or a wake-up.  The
clock passed in must advance with the event loop's time; the default,
:func:`time.monotonic`, is what asyncio itself uses.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace

from ..backends.base import Backend, Completion, Request, estimate_tokens
from ..core.errors import RateLimited

__all__ = ["AdmissionControl", "AdmittedBackend", "EndpointLimiter", "Limits"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Limits:
    """An endpoint's limits; ``None`` means unlimited.

    ``burst_s`` sizes both buckets as seconds' worth of their rate: with
    ``requests_per_minute=600`` and ``burst_s=1.0``, ten requests may start at once after a
    quiet spell, then one every 0.1 s.
    """

    max_concurrency: int | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        for label, rate in (
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
        ):
            if rate is not None and not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"{label} must be a positive number, got {rate}")
        if not (math.isfinite(self.burst_s) and self.burst_s > 0):
            raise ValueError(f"burst_s must be a positive number of seconds, got {self.burst_s}")


class _Bucket:
    """A token bucket refilled continuously.  Its level may go negative: that is debt."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: float, burst_s: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate * burst_s, 1.0)
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now

    def wait_s(self, need: float) -> float:
        """Seconds until the bucket holds ``need`` (or is full, for more than it can hold)."""
        return max(0.0, (min(need, self.capacity) - self.level) / self.rate)


def _rebucket(old: _Bucket | None, per_minute: float | None, burst_s: float, now: float) -> _Bucket | None:
    """A bucket for a new rate that keeps the old one's level (debt included), capped."""
    if per_minute is None:
        return None
    bucket = _Bucket(per_minute, burst_s, now)
    if old is not None:
        old.refill(now)
        bucket.level = min(old.level, bucket.capacity)
    return bucket


class EndpointLimiter:
    """Admission control for one endpoint; see the module docstring for how it works."""

    def __init__(self, endpoint: str, limits: Limits, *, clock: Clock = time.monotonic) -> None:
        self.endpoint = endpoint
        self._clock = clock
        self._limits = limits
        now = clock()
        self._requests = _rebucket(None, limits.requests_per_minute, limits.burst_s, now)
        self._tokens = _rebucket(None, limits.tokens_per_minute, limits.burst_s, now)
        self._blocked_until = -math.inf
        self._queue: deque[asyncio.Future[None]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._in_flight = 0
        self._peak_in_flight = 0
        self._admitted = 0
        self._throttled_s = 0.0
        self._retry_after_events = 0

    def __repr__(self) -> str:
        return f"EndpointLimiter({self.endpoint!r}, {self._limits!r}, in_flight={self._in_flight})"

    @property
    def limits(self) -> Limits:
        """The limits in force.  Assigning new ones applies them at once: bucket levels
        carry over (debt included), capped at the new capacity, and the head waiter
        re-checks its gates."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        now = self._clock()
        self._requests = _rebucket(self._requests, limits.requests_per_minute, limits.burst_s, now)
        self._tokens = _rebucket(self._tokens, limits.tokens_per_minute, limits.burst_s, now)
        self._limits = limits
        self._wake_head()

    def set_concurrency(self, limit: int | None) -> None:
        """Change only the concurrency limit (an adaptive controller's knob); the buckets
        and their levels stay as they are, and the head waiter re-checks its gates."""
        self._limits = replace(self._limits, max_concurrency=limit)
        self._wake_head()

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet finished."""
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        return self._peak_in_flight

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def throttled_s(self) -> float:
        """Total seconds callers spent waiting for admission (cancelled waiters included)."""
        return self._throttled_s

    @property
    def retry_after_events(self) -> int:
        return self._retry_after_events

    def admit(self, tokens: int = 0) -> AbstractAsyncContextManager[None]:
        """Wait for a slot, the request and token budget and any Retry-After block; hold
        the slot for the body of the ``async with``.  ``tokens`` is the call's estimate."""
        if tokens < 0:
            raise ValueError(f"tokens must be non-negative, got {tokens}")
        return self._admission(tokens)

    def retry_after(self, seconds: float) -> None:
        """A 429 arrived: nobody starts a request here before ``now + seconds``."""
        if not seconds >= 0:
            raise ValueError(f"retry_after must be a non-negative number of seconds, got {seconds}")
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        self._retry_after_events += 1

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket by ``estimated - actual`` once the real usage is known."""
        if estimated < 0 or actual < 0:
            raise ValueError(f"token counts must be non-negative, got estimated={estimated}, actual={actual}")
        if self._tokens is None:
            return
        self._tokens.refill(self._clock())
        self._tokens.level = min(self._tokens.capacity, self._tokens.level + estimated - actual)
        if actual < estimated:
            self._wake_head()

    @asynccontextmanager
    async def _admission(self, tokens: int) -> AsyncIterator[None]:
        await self._acquire(tokens)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._wake_head()

    async def _acquire(self, tokens: int) -> None:
        loop = asyncio.get_running_loop()
        arrived = self._clock()
        turn: asyncio.Future[None] = loop.create_future()
        self._queue.append(turn)
        try:
            if self._queue[0] is not turn:
                await turn
            while True:
                delay: float | None = None
                if self._slot_free():
                    delay = self._budget_wait_s(tokens, self._clock())
                    if delay <= 0:
                        break
                self._wakeup = loop.create_future()
                await asyncio.wait((self._wakeup,), timeout=delay)
            self._take(tokens)
        finally:
            self._throttled_s += self._clock() - arrived
            self._leave(turn)

    def _slot_free(self) -> bool:
        cap = self._limits.max_concurrency
        return cap is None or self._in_flight < cap

    def _budget_wait_s(self, tokens: int, now: float) -> float:
        wait = self._blocked_until - now
        if self._requests is not None:
            self._requests.refill(now)
            wait = max(wait, self._requests.wait_s(1))
        if self._tokens is not None:
            self._tokens.refill(now)
            wait = max(wait, self._tokens.wait_s(tokens))
        return wait

    def _take(self, tokens: int) -> None:
        if self._requests is not None:
            self._requests.level -= 1
        if self._tokens is not None:
            self._tokens.level -= tokens
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        self._admitted += 1

    def _leave(self, turn: asyncio.Future[None]) -> None:
        """Remove a caller from the queue; if it was the head, make the next one head."""
        was_head = self._queue[0] is turn
        self._queue.remove(turn)
        if not was_head:
            return
        self._wakeup = None
        if self._queue and not self._queue[0].done():
            self._queue[0].set_result(None)

    def _wake_head(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class AdmissionControl:
    """Registry: one EndpointLimiter per endpoint, created on first use with that
    endpoint's Limits (default: unlimited)."""

    def __init__(self, limits: Mapping[str, Limits] | None = None, *, clock: Clock = time.monotonic) -> None:
        self._limits: dict[str, Limits] = dict(limits or {})
        self._clock = clock
        self._limiters: dict[str, EndpointLimiter] = {}

    def admitted(self, backend: Backend) -> AdmittedBackend:
        """``backend`` with every call admitted by its endpoint's limiter."""
        return AdmittedBackend(backend, self.for_endpoint(backend.endpoint))

    def for_endpoint(self, endpoint: str) -> EndpointLimiter:
        limiter = self._limiters.get(endpoint)
        if limiter is None:
            limiter = EndpointLimiter(endpoint, self._limits.get(endpoint, Limits()), clock=self._clock)
            self._limiters[endpoint] = limiter
        return limiter

    def set_limits(self, endpoint: str, limits: Limits) -> None:
        """Set an endpoint's limits; a limiter already in use switches to them at once."""
        self._limits[endpoint] = limits
        if endpoint in self._limiters:
            self._limiters[endpoint].limits = limits

    def stats(self) -> dict[str, dict[str, float]]:
        """Per endpoint used so far: admitted, peak_in_flight, throttled_s, retry_after_events."""
        return {
            endpoint: {
                "admitted": limiter.admitted,
                "peak_in_flight": limiter.peak_in_flight,
                "throttled_s": limiter.throttled_s,
                "retry_after_events": limiter.retry_after_events,
            }
            for endpoint, limiter in self._limiters.items()
        }


class AdmittedBackend:
    """A backend whose every call goes through its endpoint's limiter.

    The call waits for admission, runs, and settles the token estimate with the real
    usage; a ``RateLimited`` answer blocks the endpoint for its Retry-After *before*
    the slot is released, so the next caller in line cannot slip in first.  ``timeout``
    bounds the call itself, not the wait for admission.
    """

    def __init__(self, backend: Backend, limiter: EndpointLimiter) -> None:
        self.backend = backend
        self.limiter = limiter
        self.name = backend.name
        self.endpoint = backend.endpoint
        self.model = backend.model

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion:
        estimate = estimate_tokens(request.system + request.prompt) + (request.expected_tokens or request.max_tokens)
        async with self.limiter.admit(estimate):
            try:
                if timeout is None:
                    completion = await self.backend.complete(request)
                else:
                    async with asyncio.timeout(timeout):
                        completion = await self.backend.complete(request)
            except RateLimited as exc:
                if exc.retry_after:
                    self.limiter.retry_after(exc.retry_after)
                raise
        self.limiter.settle(estimate, completion.prompt_tokens + completion.completion_tokens)
        return completion

    async def aclose(self) -> None:
        await self.backend.aclose()
