"""A missing, unmigrated or unreachable database (or Redis, with the Celery runner) is one line on stderr naming
what is wrong and the fix, exit code 1, and no file created: read commands used to create ./driftloop.db and
then print a ~190-line `no such table` traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (["metrics", "shop"], ["alerts", "list", "-p", "shop"], ["keys", "create", "shop"], ["run"],
            ["projects", "config", "show", "shop"])


def _driftloop(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # A real process from its entry point, in an empty working directory: what a new user types.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    clean.update(env, PYTHONPATH=str(ROOT), COLUMNS="60")  # narrow: the message must still be one line
    return subprocess.run([sys.executable, "-c", "from monitor.cli import main; main()", *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=120)


def _one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return lines[0]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_missing_default_database_is_one_line_and_creates_no_file(args: list[str], tmp_path: Path) -> None:
    line = _one_line_error(_driftloop(args, tmp_path))
    assert "no database at driftloop.db" in line and "driftloop migrate" in line and "DRIFTLOOP_DATABASE_URL" in line
    assert list(tmp_path.iterdir()) == []  # nothing created: not the file, not its -wal or -shm


def test_unmigrated_and_outdated_sqlite_say_migrate(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    line = _one_line_error(_driftloop(["alerts", "list", "-p", "shop"], tmp_path,
                                      DRIFTLOOP_DATABASE_URL=f"sqlite:///{empty}"))
    assert "has no driftloop tables" in line and "run `driftloop migrate`" in line
    old = tmp_path / "old.db"
    url = f"sqlite:///{old}"
    assert _driftloop(["migrate", "0006"], tmp_path, DRIFTLOOP_DATABASE_URL=url).returncode == 0
    line = _one_line_error(_driftloop(["metrics", "shop"], tmp_path, DRIFTLOOP_DATABASE_URL=url))
    assert "schema revision 0006" in line and "run `driftloop migrate`" in line
    # The fix the line names works.
    assert _driftloop(["migrate"], tmp_path, DRIFTLOOP_DATABASE_URL=url).returncode == 0
    ok = _driftloop(["projects", "list"], tmp_path, DRIFTLOOP_DATABASE_URL=url)
    assert ok.returncode == 0, ok.stderr


def test_unreachable_postgres_and_redis_are_one_line(tmp_path: Path) -> None:
    pg = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    line = _one_line_error(_driftloop(["metrics", "shop"], tmp_path, DRIFTLOOP_DATABASE_URL=pg))
    assert "cannot reach Postgres" in line and "DRIFTLOOP_DATABASE_URL" in line
    db = tmp_path / "ok.db"
    url = f"sqlite:///{db}"
    assert _driftloop(["migrate"], tmp_path, DRIFTLOOP_DATABASE_URL=url).returncode == 0
    line = _one_line_error(_driftloop(["alerts", "list", "-p", "shop"], tmp_path, DRIFTLOOP_DATABASE_URL=url,
                                      DRIFTLOOP_RUNNER="celery",
                                      DRIFTLOOP_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert "cannot reach Redis" in line and "DRIFTLOOP_REDIS_URL" in line and "DRIFTLOOP_RUNNER=inprocess" in line


def test_help_needs_no_database(tmp_path: Path) -> None:
    out = _driftloop(["keys", "create", "--help"], tmp_path)
    assert out.returncode == 0 and "Create an API key" in out.stdout
    assert list(tmp_path.iterdir()) == []
