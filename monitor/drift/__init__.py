"""Drift detectors: pure functions from arrays to `DriftResult`, looked up by name in a registry.

Importing the package registers the built-in detectors (Evidently itself is imported lazily, on
first use of an `evidently_*` detector, because it takes seconds to import).
"""

from monitor.drift import classifier as _classifier  # noqa: F401  (registers "classifier")
from monitor.drift import evidently_methods as _evidently  # noqa: F401  (registers "evidently_*")
from monitor.drift import knn as _knn  # noqa: F401  (registers "knn")
from monitor.drift import mmd as _mmd  # noqa: F401  (registers "mmd")
from monitor.drift import univariate as _univariate  # noqa: F401  (registers "ks", "psi")
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
