"""The CLI against a real database: migrate, keys create/list/revoke, version."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.projects.service import authenticate
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
        caller = authenticate(s, key)
        assert caller is not None and caller.project.slug == "shop"
        assert caller.scopes == ("ingest",)  # least privilege unless asked: what an application needs
    listed = runner.invoke(app, ["keys", "list"])
    assert "shop" in listed.output and key not in listed.output  # only the prefix is ever shown again
    assert "ingest" in listed.output
    prefix = key.rsplit("_", 1)[0]
    assert runner.invoke(app, ["keys", "revoke", prefix]).exit_code == 0
    with Session(engine) as s:
        assert authenticate(s, key) is None
    missing = runner.invoke(app, ["keys", "revoke", "dl_00000000"])
    assert missing.exit_code == 1 and "no API key" in missing.output
    bad = runner.invoke(app, ["keys", "create", "Not A Slug"])
    assert bad.exit_code == 1 and "slug" in bad.output
    engine.dispose()


def _created_key(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_keys_create_with_scopes(cli_env: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    repeated = runner.invoke(app, ["keys", "create", "shop", "--scope", "admin", "--scope", "ingest"])
    comma = runner.invoke(app, ["keys", "create", "shop", "--name", "ops", "-s", "read,admin"])
    assert repeated.exit_code == 0 and comma.exit_code == 0, repeated.output + comma.output
    assert "scopes: ingest admin" in repeated.output and "scopes: read admin" in comma.output
    engine = make_engine(cli_env)
    with Session(engine) as s:
        for output, scopes in ((repeated.output, ("ingest", "admin")), (comma.output, ("read", "admin"))):
            caller = authenticate(s, _created_key(output))
            assert caller is not None and caller.scopes == scopes
    engine.dispose()
    listed = runner.invoke(app, ["keys", "list", "--project", "shop"], terminal_width=200)
    assert "ingest admin" in listed.output and "read admin" in listed.output
    for bad, message in ((["--scope", "root"], "unknown scope(s) 'root'"), (["--scope", ""], "at least one scope")):
        refused = runner.invoke(app, ["keys", "create", "refused", *bad])
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert "ingest, read, admin" in refused.output  # the valid names, so the fix is obvious
    assert "refused" not in runner.invoke(app, ["keys", "list"], terminal_width=200).output  # nothing created


def test_version_and_downgrade(cli_env: str) -> None:
    runner = CliRunner()
    assert "driftloop" in runner.invoke(app, ["version"]).output
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    down = runner.invoke(app, ["migrate", "base", "--down"])
    assert down.exit_code == 0 and "downgraded to base" in down.output
