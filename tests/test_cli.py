"""The CLI against a real database: migrate, keys create/list/revoke, version."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.services.projects import authenticate
from monitor.settings import reset_settings_cache


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    yield url  # type: ignore[misc]
    reset_settings_cache()
    reset_engines()


def test_keys_lifecycle(cli_env: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    created = runner.invoke(app, ["keys", "create", "shop", "--name", "web"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("dl_")
    engine = make_engine(cli_env)
    with Session(engine) as s:
        project = authenticate(s, key)
        assert project is not None and project.slug == "shop"
    listed = runner.invoke(app, ["keys", "list"])
    assert "shop" in listed.output and key not in listed.output  # only the prefix is ever shown again
    prefix = key.rsplit("_", 1)[0]
    assert runner.invoke(app, ["keys", "revoke", prefix]).exit_code == 0
    with Session(engine) as s:
        assert authenticate(s, key) is None
    missing = runner.invoke(app, ["keys", "revoke", "dl_00000000"])
    assert missing.exit_code == 1 and "no API key" in missing.output
    bad = runner.invoke(app, ["keys", "create", "Not A Slug"])
    assert bad.exit_code == 1 and "slug" in bad.output
    engine.dispose()


def test_version_and_downgrade(cli_env: str) -> None:
    runner = CliRunner()
    assert "driftloop" in runner.invoke(app, ["version"]).output
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    down = runner.invoke(app, ["migrate", "base", "--down"])
    assert down.exit_code == 0 and "downgraded to base" in down.output
