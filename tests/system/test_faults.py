"""The fault scripts (bench/faults/) in their quick variants, as CI's proof that the promises in RELIABILITY.md
hold: collector down, one of several collectors behind nginx SIGKILLed, Postgres restarted, Celery workers
SIGKILLed mid-task, a webhook receiver down. One test per script (through `python -m bench.faults --only`), so
one can be run alone: `pytest tests/system/test_faults.py -k collector_kill`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.faults import SCRIPTS
from tests.support.services import repo_root

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_fault_script_keeps_every_promise(name: str, _servers: tuple[str, str]) -> None:
    admin, redis_url = _servers
    env = {**os.environ, "DRIFTLOOP_TEST_DATABASE_URL": admin, "DRIFTLOOP_TEST_REDIS_URL": redis_url}
    run = subprocess.run([sys.executable, "-m", "bench.faults", "--quick", "--only", name], cwd=repo_root(), env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-8000:]
    summaries = [line for line in out.splitlines() if line.startswith(f"[{name}] ") and " checks, " in line]
    assert len(summaries) == 1, f"{name} did not report:\n{out[-4000:]}"
    assert summaries[0].endswith("all promises kept"), summaries[0]
    assert "BROKEN" not in out, out[-8000:]
