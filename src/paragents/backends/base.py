"""The one protocol every LLM backend implements.

Theory of operation
-------------------
A backend turns a :class:`Request` into a :class:`Completion`, and that is all it does:
it keeps no queue, applies no rate limit and retries nothing.  Admission control
(``paragents.runtime.limits``) and retries belong to the runtime, which groups backends
by their ``endpoint`` string: every backend that names the same endpoint shares one
limiter, because the limits (concurrency, requests and tokens per minute, Retry-After)
are the server's, not the agent's.

A backend reports the latency of each call split the way the run report needs it:
``compute_s`` is the time inside the model (server side), ``transfer_s`` the network
and serialisation around it, ``total_s`` the whole call as the caller saw it, and
``ttft_s`` the time until the first token.  Failures are raised as the
:class:`~paragents.core.errors.BackendError` family (unreachable, rate limited, timed
out), always naming the endpoint.

This module is pure: data types, the protocol and a token estimate, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Backend", "Completion", "Request", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a model.

    ``expected_tokens`` is a hint, not a limit: the simulated backend uses it as the
    completion length, and the runtime's limiter uses it as the tokens-per-minute
    estimate charged before the real usage is known.  ``on_text``, when set, asks for
    streaming: a backend that can stream calls it with each piece of the answer as the
    model produces it (possibly from a worker thread); the Completion still carries the
    whole text.  A backend that cannot stream ignores it.
    """

    prompt: str
    system: str = ""
    max_tokens: int = 256
    temperature: float = 0.0
    json_schema: Mapping[str, Any] | None = None
    stop: tuple[str, ...] = ()
    expected_tokens: int | None = None
    on_text: Callable[[str], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}")
        if self.expected_tokens is not None and self.expected_tokens < 0:
            raise ValueError(f"expected_tokens must be non-negative, got {self.expected_tokens}")


@dataclass(frozen=True, slots=True)
class Completion:
    """The answer to a :class:`Request`, with its token usage and latency split.

    ``transfer_s`` is ``total_s - compute_s`` when the server reports its compute time.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    compute_s: float
    transfer_s: float
    model: str = ""


class Backend(Protocol):
    """What the runtime needs from an LLM client.

    ``endpoint`` is the identity used for shared admission control: agents whose backends
    share an endpoint share one limiter.  ``aclose`` releases connections and processes;
    it is safe to call more than once.
    """

    name: str
    endpoint: str
    model: str

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """Cheap token count: about four characters per token, at least 1 for non-empty text."""
    return (len(text) + 3) // 4
