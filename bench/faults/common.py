"""What every fault script shares: the servers, a fresh database, a project key, and the report.

A script says what it did and what it found, line by line, then checks each promise; `Report.exit_code` is
non-zero when one was broken, so `python -m bench.faults` (and CI, through tests/system/test_faults.py) fails.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Child processes (collector, Celery workers) must run this checkout's code too.
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

import pytest  # noqa: E402  (wait_for reports a timeout with pytest.fail; the scripts catch it as a broken promise)
from sqlalchemy.orm import Session  # noqa: E402

from monitor import migrations  # noqa: E402
from monitor.db import make_engine, reset_engines  # noqa: E402
from monitor.projects.service import CreatedKey, create_key  # noqa: E402
from monitor.settings import Settings, environment  # noqa: E402
from monitor.worker.app import reconfigure  # noqa: E402
from tests.support import services  # noqa: E402

Timeout = pytest.fail.Exception  # what tests.support.waiting.wait_for raises when its deadline passes


@dataclass
class Report:
    """Lines of what a script did and found, and the verdict on each promise it checks."""

    name: str
    broken: list[str] = field(default_factory=list)
    checked: int = 0
    started: float = field(default_factory=time.monotonic)

    def did(self, text: str) -> None:
        self._say("did  ", text)

    def found(self, text: str) -> None:
        self._say("found", text)

    def check(self, ok: bool, promise: str, evidence: str) -> bool:
        self.checked += 1
        self._say("KEPT " if ok else "BROKEN", f"{promise} — {evidence}")
        if not ok:
            self.broken.append(promise)
        return ok

    def fail(self, text: str) -> None:
        """The script could not finish (a wait ran out, a part did not start): that breaks its promise too."""
        self.broken.append(text)
        self._say("BROKEN", text)

    def _say(self, tag: str, text: str) -> None:
        print(f"[{self.name} {time.monotonic() - self.started:7.1f}s] {tag} {text}", flush=True)

    def finish(self) -> int:
        verdict = "all promises kept" if not self.broken else f"{len(self.broken)} broken: {'; '.join(self.broken)}"
        print(f"[{self.name}] {self.checked} checks, {verdict}", flush=True)
        return 1 if self.broken else 0


def cpu_model() -> str:
    """The CPU model as the kernel reports it (so a recorded run names its machine), or "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.machine()} ({cpu_model()}), {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(Postgres admin URL, Redis URL): the ones the tests use, or throwaways started for the duration."""
    throwaways = services.Throwaways()
    try:
        yield services.resolve(throwaways)
    finally:
        throwaways.stop()


@contextmanager
def fresh_database(admin_url: str, purpose: str) -> Iterator[str]:
    """A new migrated database named after this checkout (two checkouts never share one); dropped after."""
    name = f"driftloop_fault_{purpose}_{services.checkout_tag()}"
    url = services.recreate_database(admin_url, name)
    migrations.upgrade(url)
    try:
        yield url
    finally:
        services.drop_database(admin_url, name)


def new_key(database_url: str, slug: str) -> CreatedKey:
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            key = create_key(s, slug, scopes="ingest")  # the scripts only send events, as an application does
            s.commit()
            return key
    finally:
        engine.dispose()


def percentile_ms(samples_ns: list[int], q: float) -> float:
    if not samples_ns:
        return 0.0
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] / 1e6


@contextmanager
def celery_environment(db_url: str, redis_url: str, data_dir: Path, extra: dict[str, str]) -> Iterator[dict[str, str]]:
    """Settings for this process and its workers: Celery runner, this run's own Redis key prefix."""
    env = {"DRIFTLOOP_DATABASE_URL": db_url, "DRIFTLOOP_REDIS_URL": redis_url, "DRIFTLOOP_RUNNER": "celery",
           "DRIFTLOOP_CELERY_KEY_PREFIX": f"driftloop-fault-{services.checkout_tag()}-{uuid.uuid4().hex[:8]}:",
           "DRIFTLOOP_CELERY_VISIBILITY_TIMEOUT": "5", "DRIFTLOOP_DATA_DIR": str(data_dir),
           "DRIFTLOOP_DEVICE": "cpu", "DRIFTLOOP_RETRAIN_ON_ALERT": "false", "OMP_NUM_THREADS": "1", **extra}
    with environment(env):
        reset_engines()
        reconfigure(Settings())
        try:
            yield env
        finally:
            reset_engines()


def worker_env(env: dict[str, str], name: str) -> dict[str, str]:
    """The worker's database connections carry its name, so pg_stat_activity shows what it is doing."""
    return {**env, "DRIFTLOOP_DATABASE_URL": f"{env['DRIFTLOOP_DATABASE_URL']}?application_name={name}"}
