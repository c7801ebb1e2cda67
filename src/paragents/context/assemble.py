"""Build one task's prompt from its direct inputs and the relevant part of the run so far.

Theory of operation
-------------------
Broadcasting a run's whole history to every task wastes tokens and drowns the signal;
sending only direct inputs starves a task of facts found elsewhere in the graph.
:func:`assemble` does both things the right amount:

1. **Direct inputs always go in, whole.**  The outputs of the tasks this one depends on
   are its contract; they are never ranked, truncated or dropped, even if they alone
   exceed the budget.
2. **Then relevant context, by meaning.**  The task prompt is embedded and the store is
   searched for the ``k`` most similar entries scoring at least ``threshold`` (ties go
   to the more recent entry), skipping the direct inputs and any ``exclude`` ids.
3. **Packed into what is left of the budget**, most relevant first.  An entry that does
   not fit whole is cut at the last sentence boundary that fits and marked
   :data:`TRUNCATION_MARKER`; one of which not even a first sentence (nor
   ``min_entry_tokens``) fits is skipped, and smaller, less relevant ones may still go in.

**The budget rule.**  ``budget_tokens`` bounds the estimated tokens
(:func:`~paragents.backends.base.estimate_tokens`) of the *whole* assembled text: task
prompt, headings, direct inputs and retrieved entries.  The only thing ever allowed over
it is the mandatory part (task prompt plus direct inputs): when that alone exceeds the
budget, nothing is retrieved and the text is exactly the mandatory part.  So always
``assembly.tokens <= max(budget_tokens, assembly.mandatory_tokens)``.

The result, :class:`Assembly`, records every entry that went in and why — ``"direct"``
or ``"relevant"`` with its score, and whether it was truncated — plus candidates that
scored well but did not fit, so a run can log exactly what each agent was shown.

The function is pure apart from the embedder call (pass ``query_vector`` to skip it);
the text layout extends :func:`paragents.runtime.driver.build_prompt`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..backends.base import estimate_tokens
from .store import ContextError, ContextStore, Entry

if TYPE_CHECKING:
    from .embedder import Embedder

__all__ = ["Assembly", "Included", "TRUNCATION_MARKER", "assemble", "truncate_to_tokens"]

TRUNCATION_MARKER = " [...truncated]"
DIRECT_HEADING = "Results of the tasks this one depends on:"
RELATED_HEADING = "Related context from earlier in the run (most relevant first):"

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


class Included(NamedTuple):
    """One entry shown to the task: its id, its relevance score (None for a direct
    input) and why it is there (``"direct"``, ``"relevant"``, ``"relevant, truncated"``)."""

    entry_id: str
    score: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Assembly:
    """The assembled prompt and its provenance.

    ``tokens`` is the estimated size of ``text``; ``mandatory_tokens`` that of the task
    prompt plus direct inputs alone.  ``left_out`` lists ``(entry_id, score)`` of
    retrieved candidates that did not fit the budget.
    """

    text: str
    included: tuple[Included, ...]
    tokens: int
    budget_tokens: int
    mandatory_tokens: int
    left_out: tuple[tuple[str, float], ...] = ()

    def log_record(self) -> dict[str, Any]:
        """A JSON-ready summary for the run's event log."""
        return {
            "tokens": self.tokens,
            "budget_tokens": self.budget_tokens,
            "mandatory_tokens": self.mandatory_tokens,
            "included": [
                {"id": i.entry_id, "score": _round(i.score), "reason": i.reason}
                for i in self.included
            ],
            "left_out": [{"id": eid, "score": round(s, 4)} for eid, s in self.left_out],
        }


def _round(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


def truncate_to_tokens(text: str, max_tokens: int, marker: str = TRUNCATION_MARKER) -> str | None:
    """The longest prefix of ``text`` ending at a sentence boundary that, with ``marker``
    appended, fits in ``max_tokens``; ``text`` itself if it fits whole; None if not
    even its first sentence fits."""
    if estimate_tokens(text) <= max_tokens:
        return text
    best: str | None = None
    for m in _SENTENCE_END.finditer(text):
        candidate = text[: m.start()].rstrip() + marker
        if estimate_tokens(candidate) > max_tokens:
            break
        best = candidate
    return best


def _section(entry_id: str, body: str, note: str = "") -> str:
    return f"## {entry_id}{note}\n{body}"


def assemble(
    task_prompt: str,
    direct_inputs: Mapping[str, Any],
    store: ContextStore,
    *,
    embedder: Embedder | None = None,
    query_vector: np.ndarray | None = None,
    k: int = 5,
    threshold: float = 0.3,
    budget_tokens: int = 2_000,
    exclude: Collection[str] = (),
    where: Callable[[Entry], bool] | None = None,
    min_entry_tokens: int = 16,
) -> Assembly:
    """The prompt for one task: ``task_prompt``, every direct input in full, then up to
    ``k`` relevant store entries packed under ``budget_tokens`` (see the module doc for
    the budget rule).  The query is ``query_vector`` if given, else ``embedder``'s
    vector of ``task_prompt``; with neither and a non-empty store, an error."""
    parts = [task_prompt]
    included: list[Included] = []
    if direct_inputs:
        parts += ["", DIRECT_HEADING]
        for tid, value in direct_inputs.items():
            parts.append(_section(tid, str(value)))
            included.append(Included(tid, None, "direct"))
    mandatory = "\n".join(parts)
    mandatory_tokens = estimate_tokens(mandatory)

    left_out: list[tuple[str, float]] = []
    text = mandatory
    if len(store) and k > 0 and mandatory_tokens < budget_tokens:
        if query_vector is None:
            if embedder is None:
                raise ContextError("assemble() needs an embedder or a query_vector to search the store")
            query_vector = embedder.embed_one(task_prompt)
        skip = set(direct_inputs) | set(exclude)

        def accept(e: Entry) -> bool:
            return e.id not in skip and (where is None or where(e))

        hits = store.search(query_vector, k=k, threshold=threshold, where=accept)
        heading_added = False
        for entry, score in hits:
            prefix = text + ("\n" if heading_added else "\n\n" + RELATED_HEADING + "\n")
            header = _section(entry.id, "", f" (from {entry.producer or 'unknown'}, relevance {score:.2f})")
            room = budget_tokens - estimate_tokens(prefix + header)
            body = truncate_to_tokens(entry.text, room) if room >= min_entry_tokens else None
            if body is None:
                left_out.append((entry.id, score))
                continue
            candidate = prefix + header + body
            if estimate_tokens(candidate) > budget_tokens:  # rounding guard; never expected
                left_out.append((entry.id, score))
                continue
            text = candidate
            heading_added = True
            reason = "relevant" if body == entry.text else "relevant, truncated"
            included.append(Included(entry.id, score, reason))

    return Assembly(
        text=text,
        included=tuple(included),
        tokens=estimate_tokens(text),
        budget_tokens=budget_tokens,
        mandatory_tokens=mandatory_tokens,
        left_out=tuple(left_out),
    )
