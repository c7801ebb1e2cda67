"""Latency models for the simulator: what one attempt of a task costs in virtual time.

Theory of operation
-------------------
An attempt dispatched by the scheduler goes through up to four stages, each optional:

1. **transfer** — its inputs travel from the agents that produced them.  Every input made
   on *another* agent costs ``Network.rtt_s + bytes / Network.bandwidth_Bps``; inputs
   made on the same agent are free (data locality).  The bytes along an edge come from
   the consumer's ``meta["input_bytes"][producer]`` (the workflow traces carry them);
   absent, ``Network.default_bytes``.
2. **tool** — external work that is not the model (a flight search API, a database):
   ``meta["tool_s"]`` seconds, scaled by the attempt's jitter.  Only for agents on a
   server; for the others ``task.duration`` covers everything.
3. **model call** — when the agent is placed on a :class:`ModelServer`, the call queues
   there until the batch has room (``max_batch``), spends ``ttft_s`` in prefill (time to
   first token, not shared), then decodes its completion tokens *inside the running
   batch*: with ``b`` calls decoding, each advances at ``curve.per_request(b) x
   agent.speed`` tokens/s.  A :class:`ThroughputCurve` is the server's aggregate
   throughput against batch size, so a fuller batch serves more tokens in all but each
   call more slowly — the shape continuous-batching servers (vLLM, TGI, llama.cpp
   server) measure.  The rates are re-evaluated whenever a call joins or leaves
   (processor sharing), so a call's duration is only known when it ends.  The tokens
   are ``task.tokens``, or ``(task.duration - tool_s) x tokens_per_s`` when the task
   gives only a duration (``task.duration`` is the whole task's estimate at speed 1,
   which the scheduler's priorities use).
4. **fixed compute** — an agent on no server runs for ``task.duration / agent.speed``
   (the model of :mod:`paragents.sim.virtual`).  The attempt's jitter scales it too.

Randomness, all from the simulation's one seeded RNG, drawn at dispatch in a fixed
order: the jitter factor (lognormal with mean 1 and coefficient of variation
``jitter_cv``; it scales tool time, tokens and fixed compute), the straggler roll (with
probability ``Faults.straggler_p`` the work is multiplied by ``straggler_factor``), the
failure roll (with probability ``Faults.failure_p`` the attempt fails after a uniform
fraction of its work, and the scheduler retries it by its backoff).  Nothing is drawn
when the knob is zero, so a model without noise consumes no random numbers.

**Rate-limited endpoints.**  An :class:`Endpoint` is an API that accepts
``requests_per_minute`` (a token bucket refilled at that rate, holding ``burst_s``
seconds' worth, at least one request) and answers a request above it with a 429 after
``error_s``, asking the client to wait ``retry_after_s`` (by default, ``None``: the time
until its bucket holds a request again, as real rate limiters compute it).  ``LatencyModel.routes`` maps
agents to endpoints; an attempt of a routed agent first passes the client's own
admission (a concurrency limit that an adaptive manager may set, and the Retry-After
block of the last 429), then the endpoint's bucket; a 429 fails the attempt retryably
with its Retry-After.  What the attempt does once accepted is the stages above.

This module holds the specifications (frozen dataclasses, pure functions); the engine
(:mod:`paragents.sim.engine`) keeps the moving state.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..core.errors import ParagentsError

__all__ = ["Draw", "Endpoint", "Faults", "LatencyModel", "ModelServer", "Network", "ThroughputCurve"]


def lognormal(rng: random.Random, mean: float, cv: float) -> float:
    """A lognormal draw with this ``mean`` and coefficient of variation ``cv`` (``mean``
    itself, drawing nothing, when either is not positive): the one noise shape the
    simulator and its workloads use."""
    if cv <= 0 or mean <= 0:
        return mean
    sigma2 = math.log1p(cv * cv)
    return mean * rng.lognormvariate(-sigma2 / 2, math.sqrt(sigma2))


class LatencyModelError(ParagentsError, ValueError):
    """A latency model's parameters are out of range."""


@dataclass(frozen=True, slots=True)
class ThroughputCurve:
    """Aggregate decode throughput (tokens/s) of a server against its batch size.

    ``points`` are ``(batch, tokens_per_s)`` pairs with increasing batch sizes; between
    them the throughput is interpolated linearly, past the last it stays flat, and batch
    1 must be given.  :meth:`saturating` builds the common concave shape.
    """

    points: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        if not self.points or self.points[0][0] != 1:
            raise LatencyModelError("a throughput curve must start at batch size 1")
        for (b0, _), (b1, _) in zip(self.points, self.points[1:], strict=False):
            if b1 <= b0:
                raise LatencyModelError("throughput curve batch sizes must increase")
        if any(tps <= 0 for _, tps in self.points):
            raise LatencyModelError("throughput must be > 0 tokens/s")

    @classmethod
    def saturating(cls, single: float, peak: float, max_batch: int = 64) -> ThroughputCurve:
        """``aggregate(b) = peak * b / (b + k)`` with ``k = peak / single - 1``: ``single``
        tokens/s for one call, approaching ``peak`` as the batch grows."""
        if not 0 < single <= peak:
            raise LatencyModelError(f"need 0 < single <= peak, got {single} and {peak}")
        k = peak / single - 1.0
        return cls(tuple((b, peak * b / (b + k)) for b in range(1, max_batch + 1)))

    def aggregate(self, batch: int) -> float:
        pts = self.points
        if batch <= 1:
            return pts[0][1]
        for (b0, t0), (b1, t1) in itertools.pairwise(pts):
            if batch <= b1:
                return t0 + (t1 - t0) * (batch - b0) / (b1 - b0)
        return pts[-1][1]

    def per_request(self, batch: int) -> float:
        """Tokens/s each of ``batch`` decoding calls gets."""
        return self.aggregate(batch) / max(batch, 1)


@dataclass(frozen=True, slots=True)
class ModelServer:
    """One model server (a GPU, a replica) that agents placed on it share."""

    name: str
    curve: ThroughputCurve
    max_batch: int = 16
    ttft_s: float = 0.2

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise LatencyModelError(f"server {self.name!r}: max_batch must be >= 1")
        if self.ttft_s < 0:
            raise LatencyModelError(f"server {self.name!r}: ttft_s must be >= 0")


@dataclass(frozen=True, slots=True)
class Network:
    bandwidth_Bps: float = 100e6
    rtt_s: float = 0.001
    default_bytes: float = 0.0

    def __post_init__(self) -> None:
        if self.bandwidth_Bps <= 0 or self.rtt_s < 0 or self.default_bytes < 0:
            raise LatencyModelError("network needs bandwidth > 0, rtt >= 0, default_bytes >= 0")

    def cost(self, nbytes: float) -> float:
        return self.rtt_s + nbytes / self.bandwidth_Bps


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An API with a requests-per-minute limit that answers 429 above it (see the docstring)."""

    name: str
    requests_per_minute: float
    burst_s: float = 1.0
    retry_after_s: float | None = None
    error_s: float = 0.05

    def __post_init__(self) -> None:
        if not (self.requests_per_minute > 0 and self.burst_s > 0):
            raise LatencyModelError(f"endpoint {self.name!r}: requests_per_minute and burst_s must be > 0")
        if (self.retry_after_s is not None and self.retry_after_s < 0) or self.error_s < 0:
            raise LatencyModelError(f"endpoint {self.name!r}: retry_after_s and error_s must be >= 0")

    @property
    def capacity(self) -> float:
        """Requests the bucket holds when full."""
        return max(self.requests_per_minute / 60.0 * self.burst_s, 1.0)


@dataclass(frozen=True, slots=True)
class Faults:
    failure_p: float = 0.0
    straggler_p: float = 0.0
    straggler_factor: float = 4.0

    def __post_init__(self) -> None:
        if not (0 <= self.failure_p < 1 and 0 <= self.straggler_p <= 1):
            raise LatencyModelError("failure_p must be in [0, 1), straggler_p in [0, 1]")
        if self.straggler_factor < 1:
            raise LatencyModelError("straggler_factor must be >= 1")


@dataclass(frozen=True, slots=True)
class Draw:
    """The random outcome of one attempt."""

    scale: float = 1.0  # jitter x straggler factor applied to the work
    fail_at: float | None = None  # fraction of the work after which it fails
    straggler: bool = False


_NO_DRAW = Draw()


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Everything that decides how long attempts take (see the module docstring)."""

    servers: tuple[ModelServer, ...] = ()
    placement: Mapping[str, str] = field(default_factory=dict)  # agent name -> server name
    tokens_per_s: float = 40.0  # converts a task's duration into completion tokens
    network: Network | None = None
    jitter_cv: float = 0.0
    faults: Faults = Faults()
    endpoints: tuple[Endpoint, ...] = ()
    routes: Mapping[str, str] = field(default_factory=dict)  # agent name -> endpoint name

    def __post_init__(self) -> None:
        eps = [e.name for e in self.endpoints]
        if len(set(eps)) != len(eps):
            raise LatencyModelError(f"duplicate endpoint names in {eps}")
        lost = sorted(set(self.routes.values()) - set(eps))
        if lost:
            raise LatencyModelError(f"agents routed to unknown endpoints: {', '.join(lost)}")
        object.__setattr__(self, "routes", MappingProxyType(dict(self.routes)))
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise LatencyModelError(f"duplicate server names in {names}")
        unknown = sorted(set(self.placement.values()) - set(names))
        if unknown:
            raise LatencyModelError(f"agents placed on unknown servers: {', '.join(unknown)}")
        if self.tokens_per_s <= 0 or self.jitter_cv < 0 or not math.isfinite(self.jitter_cv):
            raise LatencyModelError("tokens_per_s must be > 0 and jitter_cv >= 0")
        object.__setattr__(self, "placement", MappingProxyType(dict(self.placement)))

    @classmethod
    def shared_server(
        cls, agents: list[str], server: ModelServer, **kw: object
    ) -> LatencyModel:
        """Every agent in ``agents`` on the one ``server``."""
        return cls(servers=(server,), placement={a: server.name for a in agents}, **kw)  # type: ignore[arg-type]

    @classmethod
    def replicas(cls, agents: list[str], server: ModelServer, **kw: object) -> LatencyModel:
        """Each agent on its own copy of ``server`` (named after the agent)."""
        servers = tuple(
            ModelServer(f"{a}:{server.name}", server.curve, server.max_batch, server.ttft_s) for a in agents
        )
        return cls(servers=servers, placement={a: s.name for a, s in zip(agents, servers, strict=True)}, **kw)  # type: ignore[arg-type]

    def draw(self, rng: random.Random) -> Draw:
        """The attempt's jitter, straggler and failure outcome (see the docstring's order)."""
        f = self.faults
        if self.jitter_cv == 0 and f.straggler_p == 0 and f.failure_p == 0:
            return _NO_DRAW
        scale = lognormal(rng, 1.0, self.jitter_cv)
        straggler = f.straggler_p > 0 and rng.random() < f.straggler_p
        if straggler:
            scale *= f.straggler_factor
        fail_at = rng.uniform(0.05, 0.95) if f.failure_p > 0 and rng.random() < f.failure_p else None
        return Draw(scale, fail_at, straggler)
