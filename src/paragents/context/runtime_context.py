"""The context of one run: what its tasks have produced, and each LLM task's prompt from it.

Theory of operation
-------------------
:class:`RunContext` is what the asyncio runtime holds when context assembly is on
(:class:`ContextConfig`).  Every finished task's text result is embedded and added to
the run's :class:`~paragents.context.store.ContextStore` (producer: the agent that made
it); every LLM task's prompt is built by :func:`~paragents.context.assemble.assemble`:
its direct inputs in full, then the most relevant other entries of the run, within the
token budget.  What went into each prompt (ids, scores, reasons) is returned for the
run's event log.  Embedding runs in a worker thread so the event loop keeps
dispatching; the runtime warms the model up (:meth:`RunContext.warm`) before its clock
starts, so loading it is not counted as any task's time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .assemble import Assembly, assemble
from .embedder import Embedder
from .store import ContextStore

__all__ = ["ContextConfig", "RunContext"]


@dataclass(frozen=True, slots=True)
class ContextConfig:
    """How LLM prompts are assembled: ``k`` relevant entries above ``threshold``, the whole
    prompt within ``budget_tokens`` (direct inputs always whole)."""

    k: int = 5
    threshold: float = 0.3
    budget_tokens: int = 2000


class RunContext:
    def __init__(self, config: ContextConfig) -> None:
        self.config = config
        self.store = ContextStore()
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()  # the store is written from worker threads

    def _embed(self, text: str) -> Any:
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder.embed_one(text)

    def _add(self, task_id: str, text: str, producer: str) -> None:
        vector = self._embed(text)
        with self._lock:
            if task_id not in self.store:
                self.store.add(task_id, text, vector, producer=producer, scope="run", kind="output")

    def _assemble(self, prompt: str, inputs: Mapping[str, Any]) -> Assembly:
        query = self._embed(prompt)
        with self._lock:
            c = self.config
            return assemble(
                prompt,
                inputs,
                self.store,
                query_vector=query,
                k=c.k,
                threshold=c.threshold,
                budget_tokens=c.budget_tokens,
            )

    async def warm(self) -> None:
        """Load the embedding model now (in a worker thread), not inside the first task."""
        await asyncio.to_thread(self._embed, "")

    async def record(self, task_id: str, result: Any, producer: str) -> None:
        """Keep a finished task's text result for the tasks that come after it."""
        if isinstance(result, str) and result.strip():
            await asyncio.to_thread(self._add, task_id, result, producer)

    async def prompt(self, prompt: str, inputs: Mapping[str, Any]) -> Assembly:
        """The assembled prompt of a task, and what went into it."""
        return await asyncio.to_thread(self._assemble, prompt, inputs)
