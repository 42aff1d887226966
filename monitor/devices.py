"""Where models run: `cuda` when a CUDA GPU is usable, else `cpu` (the one place that decides, for the
embedding model and the LLM alike)."""

from __future__ import annotations


def pick_device(preference: str = "auto") -> str:
    """`preference` unless it is `auto`; then `cuda` when usable, else `cpu` (never `mps`: its op coverage is
    too uneven to trust). torch is imported on use: this module is imported by light code paths too."""
    if preference != "auto":
        return preference
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
