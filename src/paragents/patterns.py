"""Parallel patterns that build task graphs: data-parallel map-reduce over a long input.

Theory of operation
-------------------
:func:`map_reduce` splits a long text into chunks that each fit an agent's context,
makes one *map* task per chunk (an LLM task: the instruction plus the chunk), and one
*reduce* join over all of them: an LLM merge by default, or any rule of
:mod:`paragents.aggregate` (``vote``, ``mean``, ``weighted_mean``).  The map tasks have
no inputs, so the scheduler dispatches them all at once onto every agent with the
skill and a free slot; the reduce starts the moment the last chunk is done.

Chunking (:func:`split_text`) cuts at paragraph breaks, then sentence ends, then
spaces, never inside a word, so that each chunk holds at most ``chunk_tokens`` tokens by
the same estimate the backends use; a single word longer than a chunk is cut where it
must be.  Chunks overlap by ``overlap_tokens`` so that a fact split across a boundary
is seen whole by one map task.
"""

from __future__ import annotations

import re

from .aggregate import aggregator, merge_prompt
from .backends.base import estimate_tokens
from .core.errors import WorkflowError
from .core.graph import Task, TaskGraph

__all__ = ["map_reduce", "split_text"]

_CHARS_PER_TOKEN = 4  # the inverse of estimate_tokens' heuristic
_BREAKS = (r"\n\s*\n", r"(?<=[.!?])\s+", r"\s+")


def split_text(text: str, chunk_tokens: int, *, overlap_tokens: int = 0) -> list[str]:
    """``text`` in chunks of at most ``chunk_tokens`` (estimated) tokens, cut at natural breaks."""
    if chunk_tokens < 1:
        raise WorkflowError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise WorkflowError(f"overlap_tokens must be in [0, chunk_tokens), got {overlap_tokens}")
    limit = chunk_tokens * _CHARS_PER_TOKEN
    overlap = overlap_tokens * _CHARS_PER_TOKEN
    text = text.strip()
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + limit, len(text))
        if end < len(text):
            window = text[start:end]
            for pattern in _BREAKS:  # the last natural break in the window, coarsest first
                cuts = [m.end() for m in re.finditer(pattern, window) if m.end() > limit // 2]
                if cuts:
                    end = start + cuts[-1]
                    break
        chunk = text[start:end].strip()
        if chunk:
            chunks.append(chunk)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        while start < end and not text[start - 1].isspace() and overlap:  # start the overlap on a word
            start += 1
    return chunks


def map_reduce(
    text: str,
    *,
    map_instruction: str,
    reduce: str = "merge",
    reduce_instruction: str = "",
    chunk_tokens: int = 512,
    overlap_tokens: int = 0,
    map_skills: frozenset[str] = frozenset(),
    reduce_skills: frozenset[str] = frozenset(),
    prefix: str = "chunk",
    tokens_per_map: int = 0,
) -> TaskGraph:
    """A graph of one map task per chunk of ``text`` and one reduce join over them all."""
    chunks = split_text(text, chunk_tokens, overlap_tokens=overlap_tokens)
    if not chunks:
        raise WorkflowError("map_reduce: the input text is empty")
    width = len(str(len(chunks)))
    maps = [
        Task(
            f"{prefix}{i:0{width}d}",
            prompt=f"{map_instruction.strip()}\n\n{chunk}",
            skills=map_skills,
            duration=1.0 + estimate_tokens(chunk) / 1000,
            tokens=tokens_per_map,
            retries=2,
            meta={"chunk": i},
        )
        for i, chunk in enumerate(chunks)
    ]
    action = aggregator(reduce)
    join = Task(
        "reduce",
        prompt=merge_prompt(reduce_instruction) if action is None else reduce_instruction,
        skills=reduce_skills,
        depends_on=tuple(t.id for t in maps),
        action=action,
        meta={"aggregate": reduce},
    )
    return TaskGraph([*maps, join])
