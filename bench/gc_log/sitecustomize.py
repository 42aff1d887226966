"""Logs every garbage collection of every Python process started with this directory on PYTHONPATH.

    DRIFTLOOP_GC_LOG=/tmp/gclog PYTHONPATH=$PWD:$PWD/bench/gc_log python bench/ingest.py --events 240000
    python bench/gc_log/summary.py /tmp/gclog

Python imports `sitecustomize` at start-up, so the collector's workers (spawned by uvicorn) log too: one file per
process, a line per collection (wall time, generation, milliseconds). bench/gc_log/summary.py prints the two
busiest processes (the collector's workers in a default bench run). Measurement only: nothing in driftloop
imports this.
"""

import gc
import os
import time

_DIR = os.environ.get("DRIFTLOOP_GC_LOG")
_started = [0.0]
_out: list = []


def _log(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    if not _out:
        _out.append(open(os.path.join(_DIR, str(os.getpid())), "a", buffering=1))  # noqa: SIM115 (lives with the process)
    _out[0].write(f"{time.time():.3f} {info['generation']} {took * 1e3:.3f}\n")


if _DIR:
    os.makedirs(_DIR, exist_ok=True)
    gc.callbacks.append(_log)
