"""Every embedding detector gives bit-identical results whatever the caller's BLAS thread count: a re-run task
must write the row it wrote before (monitor/drift/determinism.py). Without the one-thread limit the permutation
statistics of MMD differ in the last bits between one and two threads (seen on this 2-core machine)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from monitor.drift.registry import available, get_detector
from tests.drift.conftest import unit_gaussian

# (detector, per side, extra parameters): MMD on both of its paths, the others at a window-like size.
CASES = [
    ("mmd", 600, {}),
    ("mmd", 700, {"exact_max_per_side": 0, "n_features": 256}),
    *((name, 400, {}) for name in available("embedding") if name != "mmd"),
]


def _blas_threads() -> int:
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


@pytest.mark.parametrize(("name", "n", "extra"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_results_do_not_depend_on_blas_threads(name: str, n: int, extra: dict[str, int]) -> None:
    # Two threads is the most this machine's BLAS allows (it caps at the core count); CI has two cores.
    assert (os.cpu_count() or 1) >= 2 and _blas_threads() >= 2, "needs two cores to compare thread counts"
    rng = np.random.default_rng(7)
    ref, cur = unit_gaussian(rng, n), unit_gaussian(rng, n, shift=0.3)
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            results.append(get_detector(name)(ref, cur, alpha=0.05, seed=3, **extra).to_dict())
    assert results[0] == results[1]


def test_the_limit_is_lifted_afterwards() -> None:
    before = _blas_threads()
    rng = np.random.default_rng(1)
    get_detector("mmd")(unit_gaussian(rng, 60), unit_gaussian(rng, 60), alpha=0.05, seed=1, n_permutations=50)
    assert _blas_threads() == before
