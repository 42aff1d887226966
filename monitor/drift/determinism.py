"""Bit-identical metric values whatever the process's thread settings.

A multi-threaded BLAS splits a matrix product differently for each thread count, so the same kernel sums
come out different in the last bits (MMD statistics differed in the 9th digit between a Celery worker started
with OMP_NUM_THREADS=1 and the in-process runner with two threads). A re-run task must write the row it wrote
before, so metric code runs with one BLAS thread: parallelism comes from more worker processes instead, which
is how workers scale anyway (docs/drift.md, "Determinism").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from threadpoolctl import threadpool_limits

_F = TypeVar("_F", bound=Callable[..., Any])


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (restored after). About 6 ms to enter: wrap stages and heavy
    detectors, not per-item calls."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def deterministic(func: _F) -> _F:
    """Decorator form of `single_blas_thread`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return func(*args, **kwargs)

    return cast(_F, wrapper)
