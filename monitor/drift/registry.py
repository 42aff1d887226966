"""Name → detector registry, in the spirit of evidently's `stattests` registry.

Every detector has the same call shape so the pipeline can run whichever a monitor is configured
with: `(reference, current, *, alpha, seed, **params) -> DriftResult`. Detectors come in two kinds
because they take differently shaped input: `embedding` detectors take 2-D arrays (rows = items),
`scalar` detectors take 1-D series (lengths, latencies, token counts).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from monitor.drift.determinism import deterministic
from monitor.drift.result import DriftResult

DetectorKind = Literal["embedding", "scalar"]
KINDS: tuple[DetectorKind, ...] = ("embedding", "scalar")


Detector = Callable[..., DriftResult]
"""`(reference, current, *, alpha: float, seed: int | None, **params) -> DriftResult`. Spelled as
Callable[..., ...] because each detector adds its own keyword parameters, which a Protocol with
`**params` would reject."""

_F = TypeVar("_F", bound=Detector)


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    kind: DetectorKind
    func: Detector
    description: str


# The registry is the one deliberate module-level table: it is filled by the decorators below when the
# detector modules are imported, and read-only afterwards, so detectors themselves stay pure. The built-in
# modules are listed here and imported on the first lookup (`_table`), so the table is complete before
# anyone reads it, and a process that never looks a detector up never pays for scikit-learn and SciPy.
_REGISTRY: dict[str, DetectorSpec] = {}
BUILTIN_MODULES = (
    "monitor.drift.classifier",  # "classifier"
    "monitor.drift.evidently_methods",  # "evidently_*"
    "monitor.drift.knn",  # "knn"
    "monitor.drift.knn_strat",  # "knn_strat"
    "monitor.drift.mmd",  # "mmd"
    "monitor.drift.novelty",  # "novelty"
    "monitor.drift.univariate",  # "ks", "psi"
)
_loaded = False
_loading = threading.Lock()


def _table() -> dict[str, DetectorSpec]:
    """The registry with every built-in detector in it (imported once, on first use; thread-safe)."""
    global _loaded
    if not _loaded:
        with _loading:
            if not _loaded:
                for name in BUILTIN_MODULES:
                    importlib.import_module(name)
                _loaded = True
    return _REGISTRY


def register(name: str, *, kind: DetectorKind, description: str = "") -> Callable[[_F], _F]:
    """Decorator: register `func` under `name`. Re-registering a name with another function is an error.

    Embedding detectors are returned wrapped to run with one BLAS thread, so their results are bit-identical
    whatever the caller's thread settings (`monitor.drift.determinism`); scalar detectors do no matrix products
    and stay unwrapped (entering the limit costs ~6 ms, too much per scalar series)."""
    if kind not in KINDS:
        raise ValueError(f"unknown detector kind {kind!r}; expected one of {KINDS}")

    def decorator(func: _F) -> _F:
        existing = _REGISTRY.get(name)
        original = getattr(existing.func, "__wrapped__", existing.func) if existing is not None else None
        if existing is not None and original is not func:
            raise ValueError(f"drift detector {name!r} is already registered ({existing.func!r})")
        doc_lines = (func.__doc__ or "").strip().splitlines()
        summary = description or (doc_lines[0] if doc_lines else "")
        wrapped = deterministic(func) if kind == "embedding" else func
        _REGISTRY[name] = DetectorSpec(name=name, kind=kind, func=wrapped, description=summary)
        return wrapped

    return decorator


def get_spec(name: str) -> DetectorSpec:
    """The registration record for `name` (kind, function, description)."""
    table = _table()
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "(none)"
        raise KeyError(f"unknown drift detector {name!r}; known detectors: {known}") from None


def get_detector(name: str) -> Detector:
    """The detector callable registered under `name`; KeyError listing the known names otherwise."""
    return get_spec(name).func


def available(kind: DetectorKind | None = None) -> tuple[str, ...]:
    """Sorted names of registered detectors, optionally only those of one kind."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown detector kind {kind!r}; expected one of {KINDS}")
    return tuple(sorted(n for n, s in _table().items() if kind is None or s.kind == kind))
