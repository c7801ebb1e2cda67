"""Semantic context: each task receives what is relevant to it, within a token budget.

* :mod:`.embedder` — :class:`Embedder`, all-MiniLM-L6-v2 loaded offline once per process.
* :mod:`.store` — :class:`ContextStore` of :class:`Entry` records, searched by cosine
  similarity (numpy when small, faiss past a size threshold).
* :mod:`.assemble` — :func:`assemble`, a task's prompt = direct inputs (always, whole) +
  the most relevant store entries packed under a token budget, with provenance.
* :mod:`.runtime_context` — :class:`RunContext`, the store of one run as the runtime uses
  it (:class:`ContextConfig`: k, threshold, budget).

Importing this package does not import torch, sentence-transformers or faiss; those load
on first use.
"""

from __future__ import annotations

from .assemble import TRUNCATION_MARKER, Assembly, Included, assemble, truncate_to_tokens
from .embedder import Embedder, EmbedderUnavailable, default_model_path
from .runtime_context import ContextConfig, RunContext
from .store import DEFAULT_FAISS_THRESHOLD, ContextError, ContextStore, Entry

__all__ = [
    "Assembly",
    "ContextConfig",
    "ContextError",
    "ContextStore",
    "DEFAULT_FAISS_THRESHOLD",
    "Embedder",
    "EmbedderUnavailable",
    "Entry",
    "Included",
    "RunContext",
    "TRUNCATION_MARKER",
    "assemble",
    "default_model_path",
    "truncate_to_tokens",
]
