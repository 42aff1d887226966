"""`driftloop models …`, `driftloop retrain start|status` against a real SQLite file, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines, session_factory
from monitor.llm import LoadedLM
from monitor.models import Project
from monitor.settings import Settings, reset_settings_cache
from retrain.serving import lm_cache
from tests.support.retrain import add_candidate, seed_feedback


@pytest.fixture
def cli_env(tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DRIFTLOOP_DATABASE_URL": url, "DRIFTLOOP_DATA_DIR": str(tmp_path / "data"),
           "DRIFTLOOP_BASE_MODEL": str(tiny_dir), "DRIFTLOOP_DEVICE": "cpu", "DRIFTLOOP_RETRAIN_MIN_EXAMPLES": "8",
           "DRIFTLOOP_RETRAIN_MAX_STEPS": "2", "DRIFTLOOP_RETRAIN_BATCH_SIZE": "4",
           "DRIFTLOOP_RETRAIN_EVAL_MAX_NEW_TOKENS": "4", "DRIFTLOOP_RETRAIN_PROBE_TEMPLATES": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    reset_engines()
    yield url
    reset_settings_cache()
    reset_engines()


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_models_commands(cli_env: str) -> None:
    run("migrate")
    run("keys", "create", "shop")
    engine = make_engine(cli_env)
    with session_factory(engine)() as s:
        pid = s.scalars(select(Project.id).where(Project.slug == "shop")).one()
        add_candidate(s, pid, passing=True)
        add_candidate(s, pid, passing=False)
        s.commit()
    engine.dispose()

    listed = run("models", "list", "-p", "shop")
    assert "v2" in listed and "failed" in listed and "passed" in listed
    blocked = run("models", "promote", "v2", "-p", "shop", "--reason", "go", code=1)
    assert "failed its evaluation gates" in blocked
    assert "champion: v2 (was v0)" in run("models", "promote", "v2", "-p", "shop", "--override",
                                          "--reason", "known scorer false positive", "--actor", "ops:dana")
    shown = json.loads(run("models", "show", "v2", "-p", "shop", "--json"))
    assert shown["aliases"] == ["champion"]
    assert shown["audit"][0]["action"] == "promote_override" and shown["audit"][0]["actor"] == "ops:dana"
    # --actor is a label; the principal is the OS user who ran the command
    assert shown["audit"][0]["principal"]["kind"] == "cli"
    assert "by CLI user" in run("models", "show", "v2", "-p", "shop")
    assert "toxicity_rate" in run("models", "show", "champion", "-p", "shop")
    assert "v1 is now rejected" in run("models", "reject", "v1", "-p", "shop", "--reason", "stale")
    assert "champion: v0 (was v2)" in run("models", "rollback", "champion", "-p", "shop", "--reason", "bad")
    assert "no model version 'v7'" in run("models", "show", "v7", "-p", "shop", code=1)
    assert "no project" in run("models", "list", "-p", "nope", code=1).lower()


def test_retrain_start_and_status(cli_env: str, tiny: LoadedLM) -> None:
    run("migrate")
    run("keys", "create", "shop")
    engine = make_engine(cli_env)
    with session_factory(engine)() as s:
        pid = s.scalars(select(Project.id).where(Project.slug == "shop")).one()
        seed_feedback(s, pid, 16)
        s.commit()
    engine.dispose()
    lm_cache.provide(str(Settings().base_model), Settings(), tiny)

    bad = run("retrain", "start", "-p", "shop", "--params", '{"lora": {"steps": 2}}', code=1)
    assert "unknown retrain.lora keys ['steps']" in bad
    out = run("retrain", "start", "-p", "shop", "--params", '{"eval": {"similarity": false}}')
    assert "job 1: succeeded" in out and "registered v1 as challenger" in out
    status = run("retrain", "status", "-p", "shop", "--once")
    assert "job 1" in status and "succeeded" in status and "100%" in status
    assert json.loads(run("models", "list", "-p", "shop", "--json"))["aliases"] == {"champion": "v0",
                                                                                  "challenger": "v1"}
