"""Drift detectors: pure functions from arrays to `DriftResult`, looked up by name in a registry.

The built-in detectors are an explicit list (`registry.BUILTIN_MODULES`), imported on the first lookup, not
by importing this package: the classifier detector pulls in scikit-learn and SciPy (seconds), and every
`driftloop` command, even `--help`, passes through code that imports this package. Evidently itself is
imported later still, on first use of an `evidently_*` detector.
"""

from monitor.drift.registry import DetectorSpec, available, get_detector, get_spec, register
from monitor.drift.result import DriftResult, InsufficientDataError

__all__ = [
    "DetectorSpec",
    "DriftResult",
    "InsufficientDataError",
    "available",
    "get_detector",
    "get_spec",
    "register",
]
