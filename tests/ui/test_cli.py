"""`driftloop ui ...`: operators created from the command line can sign in; bad input creates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.settings import Settings, reset_settings_cache
from monitor.ui.accounts import SignInRefused, authenticate
from monitor.ui.models import Operator
from tests.support.ui_seed import PASSWORD


@pytest.fixture
def cli_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    reset_engines()
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
    yield url
    reset_settings_cache()
    reset_engines()


def test_create_operator_from_stdin_and_prompt_then_sign_in(cli_url: str) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["ui", "create-operator", "alice", "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ui", "create-operator", "bob"], input="another password 1\nanother password 1\n")
    assert r.exit_code == 0, r.output
    engine = make_engine(cli_url)
    with Session(engine) as s:
        assert authenticate(s, "alice", PASSWORD, settings=Settings(database_url=cli_url)).username == "alice"
        assert authenticate(s, "bob", "another password 1", settings=Settings(database_url=cli_url))
        assert PASSWORD not in s.scalars(select(Operator.password_hash)).all()
    listed = runner.invoke(app, ["ui", "operators"])
    assert "alice" in listed.output and "bob" in listed.output
    engine.dispose()


def test_bad_input_is_refused_and_creates_nothing(cli_url: str) -> None:
    runner = CliRunner()
    for args, given, message in ((["Alice"], PASSWORD, "username"), (["alice"], "short", "password: at least"),
                                 (["alice"], PASSWORD, None)):
        r = runner.invoke(app, ["ui", "create-operator", *args, "--password-stdin"], input=given + "\n")
        if message is None:
            assert r.exit_code == 0, r.output
        else:
            assert r.exit_code == 1 and message in r.output, r.output
    again = runner.invoke(app, ["ui", "create-operator", "alice", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code == 1 and "already exists" in again.output
    engine = make_engine(cli_url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Operator)) == 1
    engine.dispose()


def test_set_password_and_disable(cli_url: str) -> None:
    runner = CliRunner()
    runner.invoke(app, ["ui", "create-operator", "carol", "--password-stdin"], input=PASSWORD + "\n")
    assert runner.invoke(app, ["ui", "set-password", "carol", "--password-stdin"],
                         input="brand new password\n").exit_code == 0
    assert runner.invoke(app, ["ui", "disable-operator", "carol"]).exit_code == 0
    settings = Settings(database_url=cli_url)
    engine = make_engine(cli_url)
    with Session(engine) as s, pytest.raises(SignInRefused):
        authenticate(s, "carol", "brand new password", settings=settings)
    assert runner.invoke(app, ["ui", "disable-operator", "carol", "--enable"]).exit_code == 0
    with Session(engine) as s:
        assert authenticate(s, "carol", "brand new password", settings=settings).username == "carol"
    missing = runner.invoke(app, ["ui", "set-password", "dave", "--password-stdin"], input="whatever pass 1\n")
    assert missing.exit_code == 1 and "no operator named 'dave'" in missing.output
    engine.dispose()
