"""An in-memory store of what a run has produced, searchable by meaning.

Theory of operation
-------------------
Every piece of text a run may later want to show an agent — a task's output, a fact an
agent stated, an input document — becomes one :class:`Entry`: its text, who produced
it, how widely it is visible (``scope``), what kind of thing it is, free-form ``tags``,
its size in (estimated) tokens, a monotonically increasing ``seq`` that orders entries
by recency, and its embedding ``vector`` (unit length, so a dot product is a cosine).

:meth:`ContextStore.search` answers "the ``k`` entries most similar to this query
vector, at or above ``threshold``, among those ``where`` accepts", best first, with
ties broken by recency (the newer entry wins).  Two engines give that one answer:

* below ``faiss_threshold`` entries: an exact numpy dot product over the whole matrix
  (a 1,000 x 384 matrix-vector product is microseconds; nothing to build or maintain);
* from ``faiss_threshold`` entries on: a faiss inner-product index, built once when the
  store crosses the threshold and extended on every later :meth:`add`.  ``index="flat"``
  (the default) is exact, so it returns the same top-k as numpy; ``index="hnsw"`` is
  approximate and faster on very large stores.  faiss returns candidates; the store then
  applies ``where`` and ``threshold`` itself and widens the candidate set until it has
  ``k`` survivors or has seen every entry, so a filter never silently shrinks the answer.

The store owns no model: vectors come in with :meth:`ContextStore.add` (the
:mod:`~paragents.context.embedder` makes them).  It never mutates an entry; ids are
unique and adding one twice is an error.  It is not thread-safe: one driver owns it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..backends.base import estimate_tokens
from ..core.errors import ParagentsError

__all__ = ["ContextError", "ContextStore", "Entry", "Scope", "Kind"]

Scope = Literal["run", "branch", "agent"]
Kind = Literal["output", "fact", "input", "document"]
_SCOPES = frozenset({"run", "branch", "agent"})
_KINDS = frozenset({"output", "fact", "input", "document"})

#: Entries at which the store switches from numpy to a faiss index.
DEFAULT_FAISS_THRESHOLD = 5_000


class ContextError(ParagentsError):
    """The context store or embedder was misused or cannot work (bad vector, duplicate id, no model)."""


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """One searchable piece of a run's context.  ``seq`` grows with each add (recency)."""

    id: str
    text: str
    producer: str
    scope: Scope
    kind: Kind
    tags: frozenset[str]
    tokens: int
    seq: int
    vector: np.ndarray = field(repr=False)


class ContextStore:
    """Entries plus their vectors; :meth:`search` finds the most similar ones.

    ``dim`` is fixed by the first vector added when not given.  ``faiss_threshold`` is
    the size at which a faiss index takes over from numpy (``None``: never);
    ``index`` is ``"flat"`` (exact) or ``"hnsw"`` (approximate).
    """

    def __init__(
        self,
        *,
        dim: int | None = None,
        faiss_threshold: int | None = DEFAULT_FAISS_THRESHOLD,
        index: Literal["flat", "hnsw"] = "flat",
    ) -> None:
        if index not in ("flat", "hnsw"):
            raise ContextError(f"unknown index kind {index!r}: expected 'flat' or 'hnsw'")
        self.dim = dim
        self.faiss_threshold = faiss_threshold
        self.index_kind = index
        self._entries: list[Entry] = []
        self._by_id: dict[str, Entry] = {}
        self._matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._seqs = np.zeros(0, dtype=np.int64)
        self._seq = itertools.count()
        self._faiss: Any = None  # the faiss index, once built
        self._faiss_count = 0  # how many rows of _matrix it holds

    # -- contents -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._by_id

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def get(self, entry_id: str) -> Entry:
        try:
            return self._by_id[entry_id]
        except KeyError:
            raise ContextError(f"no context entry {entry_id!r}") from None

    @property
    def uses_faiss(self) -> bool:
        """Whether searches currently go through the faiss index."""
        return self._faiss is not None

    def add(
        self,
        id: str,
        text: str,
        vector: np.ndarray | Iterable[float],
        *,
        producer: str = "",
        scope: Scope = "run",
        kind: Kind = "output",
        tags: Iterable[str] = (),
        tokens: int | None = None,
    ) -> Entry:
        """Add one entry; ``vector`` is normalised here.  Returns the stored :class:`Entry`."""
        if id in self._by_id:
            raise ContextError(f"context entry {id!r} already exists")
        if scope not in _SCOPES:
            raise ContextError(f"entry {id!r}: scope {scope!r} is not one of {sorted(_SCOPES)}")
        if kind not in _KINDS:
            raise ContextError(f"entry {id!r}: kind {kind!r} is not one of {sorted(_KINDS)}")
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self.dim is None:
            self.dim = int(vec.shape[0])
            self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        if vec.shape[0] != self.dim:
            raise ContextError(f"entry {id!r}: vector has {vec.shape[0]} dimensions, the store {self.dim}")
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise ContextError(f"entry {id!r}: vector is zero or not finite")
        vec = vec / norm
        vec.setflags(write=False)
        entry = Entry(
            id=id,
            text=text,
            producer=producer,
            scope=scope,
            kind=kind,
            tags=frozenset(tags),
            tokens=estimate_tokens(text) if tokens is None else tokens,
            seq=next(self._seq),
            vector=vec,
        )
        self._append_row(vec, entry.seq)
        self._entries.append(entry)
        self._by_id[id] = entry
        self._sync_faiss()
        return entry

    def _append_row(self, vec: np.ndarray, seq: int) -> None:
        n = len(self._entries)
        if n == self._matrix.shape[0]:  # grow by doubling: amortised O(1) adds
            cap = max(64, 2 * n)
            grown = np.zeros((cap, self.dim or 0), dtype=np.float32)
            grown[:n] = self._matrix[:n]
            self._matrix = grown
            seqs = np.zeros(cap, dtype=np.int64)
            seqs[:n] = self._seqs[:n]
            self._seqs = seqs
        self._matrix[n] = vec
        self._seqs[n] = seq

    def _sync_faiss(self) -> None:
        n = len(self._entries)
        if self._faiss is None:
            if self.faiss_threshold is None or n < self.faiss_threshold:
                return
            import faiss  # imported only when a store is big enough to need it

            if self.index_kind == "hnsw":
                self._faiss = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
                self._faiss.hnsw.efSearch = 128
            else:
                self._faiss = faiss.IndexFlatIP(self.dim)
        if self._faiss_count < n:
            self._faiss.add(np.ascontiguousarray(self._matrix[self._faiss_count : n]))
            self._faiss_count = n

    # -- search ---------------------------------------------------------------------

    def search(
        self,
        query_vector: np.ndarray | Iterable[float],
        k: int = 5,
        threshold: float | None = None,
        where: Callable[[Entry], bool] | None = None,
    ) -> list[tuple[Entry, float]]:
        """The ``k`` entries most similar to ``query_vector`` (cosine), best first.

        Only entries scoring at least ``threshold`` (when given) and accepted by
        ``where`` (when given) qualify; equal scores go to the more recent entry.
        """
        n = len(self._entries)
        if k <= 0 or n == 0:
            return []
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ContextError(f"query vector has {q.shape[0]} dimensions, the store {self.dim}")
        norm = float(np.linalg.norm(q))
        if norm == 0.0 or not np.isfinite(norm):
            raise ContextError("query vector is zero or not finite")
        q = q / norm
        if self._faiss is not None:
            return self._search_faiss(q, k, threshold, where)
        return self._search_numpy(q, k, threshold, where)

    def _rank(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[Entry, float]]:
        # Sort by score descending, then seq descending (recency breaks ties).
        order = np.lexsort((-self._seqs[rows], -scores))[:k]
        return [(self._entries[int(rows[i])], float(scores[i])) for i in order]

    def _search_numpy(
        self, q: np.ndarray, k: int, threshold: float | None, where: Callable[[Entry], bool] | None
    ) -> list[tuple[Entry, float]]:
        n = len(self._entries)
        scores = self._matrix[:n] @ q
        keep = np.ones(n, dtype=bool) if threshold is None else scores >= threshold
        if where is not None:
            for i in np.flatnonzero(keep):
                if not where(self._entries[i]):
                    keep[i] = False
        rows = np.flatnonzero(keep)
        return self._rank(rows, scores[rows], k)

    def _search_faiss(
        self, q: np.ndarray, k: int, threshold: float | None, where: Callable[[Entry], bool] | None
    ) -> list[tuple[Entry, float]]:
        n = len(self._entries)
        want = min(n, max(4 * k, 32))
        qq = q.reshape(1, -1)
        while True:
            scores, rows = self._faiss.search(qq, want)
            valid = rows[0] >= 0
            rows_, scores_ = rows[0][valid], scores[0][valid]
            keep = np.ones(len(rows_), dtype=bool) if threshold is None else scores_ >= threshold
            for j in np.flatnonzero(keep):
                if where is not None and not where(self._entries[int(rows_[j])]):
                    keep[j] = False
            # Enough survivors, or the candidates already reach below the threshold
            # (so nothing further down can qualify), or every entry was seen.
            below = threshold is not None and len(scores_) > 0 and scores_[-1] < threshold
            if int(keep.sum()) >= k or below or want >= n:
                # Rescore exactly with the stored vectors so both engines agree on scores.
                sel = rows_[keep].astype(np.int64)
                exact = self._matrix[sel] @ q
                return self._rank(sel, exact, k)
            want = min(n, want * 4)
