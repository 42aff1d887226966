"""Tests that run real Celery workers: settings (this test's database, its own Redis key prefix), and a worker
process started, and killed, by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.settings import Settings, reset_settings_cache
from monitor.worker.app import celery_app, reconfigure
from tests.support.waiting import wait_for


@contextmanager
def celery_settings(monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, key_prefix: str, *,
                    redis_db: int = 7, extra: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Set the environment (for this process and, through the returned dict, its workers) and point the Celery
    app at it; settings are re-read afterwards. Keys are prefixed per test: nothing shared, nothing to flush."""
    env = {
        "DRIFTLOOP_DATABASE_URL": pg_url,
        "DRIFTLOOP_REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/{redis_db}",
        "DRIFTLOOP_CELERY_KEY_PREFIX": key_prefix,
        "DRIFTLOOP_RUNNER": "celery",
        **(extra or {}),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    reconfigure(Settings())
    try:
        yield env
    finally:
        reset_settings_cache()


def start_worker(env: dict[str, str], log: Path, queues: str = "default,gpu") -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "celery", "-A", "monitor.worker.app", "worker", "-Q", queues, "-c", "1",
           "--pool", "prefork", "-n", f"w{time.monotonic_ns()}@%h", "--without-gossip", "--without-mingle",
           "--loglevel", "INFO"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent)
    try:
        wait_for(lambda: proc.poll() is not None or celery_app.control.ping(timeout=0.5), 90, "the worker to answer")
        assert proc.poll() is None, log.read_text()[-3000:]
    except BaseException:
        kill_worker(proc)  # a worker that never answered must not outlive the test and steal later tasks
        raise
    return proc


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process dies (killed, timed out), so does the worker, so no
    stray worker keeps consuming the shared broker's queues and steals a later run's tasks."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def kill_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
