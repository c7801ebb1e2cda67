"""Endpoint limits enforced cluster-wide: one small limiter actor, leases by id.

Theory of operation
-------------------
An endpoint's limits (concurrency, requests and tokens per minute, Retry-After) belong to
the server, so on a cluster every agent actor that calls the same endpoint must pass
through one gate, wherever it runs.  :class:`EndpointGate` is that gate: one async Ray
actor per run, pinned to the driver's node (losing a worker node never loses the
limiter), holding a :class:`~paragents.runtime.limits.AdmissionControl` -- the very
limiters the asyncio runtime uses, with their FIFO admission, token buckets and debt.

The local runtime holds a slot for the body of an ``async with``; across processes that
becomes a *lease*: :meth:`EndpointGate.acquire` enters the limiter's admission and keeps
it under a lease id chosen by the caller, :meth:`EndpointGate.release` leaves it (after
recording a Retry-After, so that nobody slips in first, exactly as
:class:`~paragents.runtime.limits.AdmittedBackend` does) and settles the token estimate
with the real usage.  Leases can be lost two ways, and both are handled here:

* the caller gives up while still waiting (its attempt was cancelled):
  :meth:`EndpointGate.abandon` releases the lease if it was granted, or marks it so that
  it is released the moment it is granted;
* the holder dies (its actor or node is lost): the driver calls
  :meth:`EndpointGate.release_holder` with the holder's name, which does the same for
  every lease that holder had or was waiting for.

:class:`GatedBackend` is the caller's side, used inside agent actors and remote tasks:
a backend whose every call takes a lease first.  Endpoints without limits skip the gate
entirely (no round trip), which is why callers are told which endpoints are limited.

State (all in the actor): ``_held`` lease id -> (holder, endpoint, estimate, the
admission context), ``_waiting`` lease id -> holder for leases not yet granted,
``_abandoned`` ids to release as soon as they are granted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import ray

from ..backends.base import Backend, Completion, Request, estimate_tokens
from ..core.errors import RateLimited
from ..runtime.limits import AdmissionControl, Limits

__all__ = ["EndpointGate", "GateClient", "GatedBackend"]


class _Lease:
    __slots__ = ("admission", "endpoint", "estimate", "holder")

    def __init__(
        self,
        holder: str,
        endpoint: str,
        estimate: int,
        admission: AbstractAsyncContextManager[None],
    ) -> None:
        self.holder = holder
        self.endpoint = endpoint
        self.estimate = estimate
        self.admission = admission


@ray.remote(num_cpus=0, max_restarts=0)
class EndpointGate:
    """The run's limiter actor: admission per endpoint, shared by every actor of the run."""

    def __init__(self, limits: Mapping[str, Limits]) -> None:
        self._admission = AdmissionControl(limits)
        self._held: dict[str, _Lease] = {}
        self._waiting: dict[str, str] = {}
        self._abandoned: set[str] = set()

    async def acquire(
        self, lease: str, holder: str, endpoint: str, tokens: int
    ) -> None:
        """Wait for admission to ``endpoint`` for a call of ``tokens`` estimated tokens."""
        admission = self._admission.for_endpoint(endpoint).admit(tokens)
        self._waiting[lease] = holder
        try:
            await admission.__aenter__()
        finally:
            self._waiting.pop(lease, None)
        self._held[lease] = _Lease(holder, endpoint, tokens, admission)
        if lease in self._abandoned:
            self._abandoned.discard(lease)
            await self.release(lease)

    async def release(
        self, lease: str, actual: int | None = None, retry_after: float | None = None
    ) -> None:
        """End a lease: block the endpoint for ``retry_after`` first (a 429 arrived), give
        the slot back, settle the token estimate with ``actual`` when the call succeeded."""
        held = self._held.pop(lease, None)
        if held is None:
            return
        limiter = self._admission.for_endpoint(held.endpoint)
        if retry_after:
            limiter.retry_after(retry_after)
        await held.admission.__aexit__(None, None, None)
        if actual is not None:
            limiter.settle(held.estimate, actual)

    async def abandon(self, lease: str) -> None:
        """The caller gave up: release the lease now, or as soon as it is granted."""
        if lease in self._held:
            await self.release(lease)
        else:
            self._abandoned.add(lease)

    async def release_holder(self, holder: str) -> int:
        """The holder is gone: release its leases, held or awaited.  Returns how many."""
        mine = [lease for lease, held in self._held.items() if held.holder == holder]
        waiting = [lease for lease, h in self._waiting.items() if h == holder]
        self._abandoned.update(waiting)
        for lease in mine:
            await self.release(lease)
        return len(mine) + len(waiting)

    def stats(self) -> dict[str, dict[str, float]]:
        """Per endpoint: admitted, peak_in_flight, throttled_s, retry_after_events."""
        return self._admission.stats()


class GateClient:
    """What a caller needs to reach the gate: its handle, the endpoints it limits, and
    the caller's name (the holder of its leases)."""

    def __init__(self, gate: Any, limited: frozenset[str], holder: str) -> None:
        self.gate = gate
        self.limited = limited
        self.holder = holder

    def admitted(self, backend: Backend) -> GatedBackend:
        """``backend`` with every call admitted by the gate (what ``TaskContext.complete``
        asks its ``admission`` for)."""
        return GatedBackend(backend, self)


class GatedBackend:
    """A backend whose calls take a lease from the run's gate when its endpoint is limited.

    Mirrors :class:`~paragents.runtime.limits.AdmittedBackend`: the estimate charged is
    the prompt's tokens plus the expected completion, a ``RateLimited`` answer blocks the
    endpoint for its Retry-After before the slot is released, and ``timeout`` bounds the
    call, not the wait for admission.
    """

    def __init__(self, backend: Backend, client: GateClient) -> None:
        self.backend = backend
        self.client = client
        self.name = backend.name
        self.endpoint = backend.endpoint
        self.model = backend.model

    async def complete(
        self, request: Request, *, timeout: float | None = None
    ) -> Completion:
        if self.endpoint not in self.client.limited:
            return await self._call(request, timeout)
        gate = self.client.gate
        estimate = estimate_tokens(request.system + request.prompt) + (
            request.expected_tokens or request.max_tokens
        )
        lease = uuid.uuid4().hex
        try:
            await gate.acquire.remote(
                lease, self.client.holder, self.endpoint, estimate
            )
        except BaseException:
            gate.abandon.remote(lease)
            raise
        try:
            completion = await self._call(request, timeout)
        except RateLimited as exc:
            gate.release.remote(lease, None, exc.retry_after)
            raise
        except BaseException:
            gate.release.remote(lease)
            raise
        gate.release.remote(
            lease, completion.prompt_tokens + completion.completion_tokens
        )
        return completion

    async def _call(self, request: Request, timeout: float | None) -> Completion:
        if timeout is None:
            return await self.backend.complete(request)
        async with asyncio.timeout(timeout):
            return await self.backend.complete(request)

    async def aclose(self) -> None:
        await self.backend.aclose()
