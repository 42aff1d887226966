"""`driftloop demo --production`: the same demo on PostgreSQL + Redis + a Celery worker of its own.

The demo refuses to start unless `DRIFTLOOP_DATABASE_URL` names a reachable PostgreSQL database and
`DRIFTLOOP_REDIS_URL` a reachable Redis. Each run gets a fresh project slug (re-running on the same database
just adds a project) and its own Celery key prefix (`DRIFTLOOP_CELERY_KEY_PREFIX` + `demo-<run>:`), so the
worker it starts never takes another deployment's tasks, and no worker of that deployment takes the demo's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from monitor.demo.report import wait_until
from monitor.settings import Settings

WORKER_QUEUES = "default,gpu"
WORKER_START_SECONDS = 120.0
WORKER_STOP_SECONDS = 30.0


class DemoConfigError(RuntimeError):
    """The demo cannot run as asked; the message says what to configure."""


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"


def check_production(settings: Settings) -> None:
    """Refuse (DemoConfigError) unless PostgreSQL and Redis are configured and answer."""
    if settings.is_sqlite or not settings.database_url.startswith("postgresql"):
        raise DemoConfigError(
            f"--production needs DRIFTLOOP_DATABASE_URL to name a PostgreSQL database "
            f"(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/driftloop); it is {redact(settings.database_url)}")
    from monitor.db import make_engine

    engine = make_engine(settings.database_url, pool_pre_ping=False, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        raise DemoConfigError(f"--production: PostgreSQL at {redact(settings.database_url)} does not answer "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    finally:
        engine.dispose()
    import redis

    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:
        raise DemoConfigError(f"--production: Redis at {redact(settings.redis_url)} (DRIFTLOOP_REDIS_URL) does not "
                              f"answer ({type(exc).__name__}: {exc})") from None


def run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def _die_with_parent() -> None:
    """Runs in the worker before exec (Linux): if the demo is killed, its worker goes too, instead of staying
    behind and consuming the demo's queues."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the demo still stops its worker at the end, just not when it is killed


@contextmanager
def celery_worker(env: dict[str, str], log_path: Path, *, concurrency: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker for the demo's queues, started with `env` on top of this process's environment; stopped
    (warm, then killed after WORKER_STOP_SECONDS) when the block ends. The caller's Celery app must already be
    configured with the same broker and key prefix (it pings the worker)."""
    from monitor.worker.app import celery_app

    cmd = [sys.executable, "-m", "celery", "-A", "monitor.worker.app", "worker", "-Q", WORKER_QUEUES,
           "-c", str(concurrency), "--pool", "prefork", "-n", f"driftloop-demo-{uuid.uuid4().hex[:8]}@%h",
           "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    full_env = {**os.environ, **env}
    # Each pool process gets its share of the cores: OpenMP threads beyond that spin against each other at every
    # barrier (measured: 2 threads per process on 2 busy cores made matrix products >10x slower than 1).
    full_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // concurrency)))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        answered = wait_until(lambda: proc.poll() is not None or celery_app.control.ping(timeout=0.5),
                              WORKER_START_SECONDS, interval=0.5)
        if proc.poll() is not None or not answered:
            raise DemoConfigError(f"the demo's Celery worker did not start; see {log_path}")
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown: the running task finishes or is re-queued
    try:
        proc.wait(timeout=WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
