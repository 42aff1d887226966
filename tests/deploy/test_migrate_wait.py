"""`driftloop migrate --wait`: what the Kubernetes init containers run while the migration Job upgrades the
schema. It must never migrate (or create a database) itself, pass once the schema is at head, and fail with one
line when it is not by the deadline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor import migrations
from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.settings import reset_settings_cache


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'wait.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    yield url
    reset_settings_cache()
    reset_engines()


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return migrations.current_revision(engine)
    finally:
        engine.dispose()


def test_wait_fails_without_creating_a_database(db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["migrate", "--wait", "0"])
    assert result.exit_code == 1
    assert "schema not at head after 0s" in result.output and "no database at" in result.output
    assert not (tmp_path / "wait.db").exists()


def test_wait_fails_on_an_old_schema_and_leaves_it_alone(db_url: str) -> None:
    first = migrations_first_revision()
    migrations.upgrade(db_url, first)
    result = CliRunner().invoke(app, ["migrate", "--wait", "0.5"])
    assert result.exit_code == 1 and f"is at schema revision {first}" in result.output
    assert revision(db_url) == first  # it waited for someone else; it did not upgrade


def test_wait_passes_at_head(db_url: str) -> None:
    migrations.upgrade(db_url)
    result = CliRunner().invoke(app, ["migrate", "--wait", "0"])
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output and revision(db_url) == migrations.head_revision()


def test_wait_rejects_a_negative_deadline(db_url: str) -> None:
    result = CliRunner().invoke(app, ["migrate", "--wait", "-1"])
    assert result.exit_code == 2 and "--wait" in result.output


def migrations_first_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config())
    [base] = script.get_bases()
    return str(base)
