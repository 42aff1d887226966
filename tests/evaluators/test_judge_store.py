"""Judge budgets and keys in the database (Postgres and SQLite): a budget holds across windows and processes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.evaluators.base import EvaluatorFailed
from monitor.evaluators.judge.keys import delete_judge_key, judge_key, set_judge_key
from monitor.evaluators.judge.models import JudgeKey, JudgeSpend
from monitor.evaluators.judge.spend import SqlLedger
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings
from tests.evaluators.judge_server import judge_server
from tests.evaluators.test_judge import items, judge
from tests.support.factories import unique_slug


@pytest.fixture
def project_id(session: Session) -> int:
    p = get_or_create_project(session, unique_slug())
    session.commit()
    return p.id


def test_budget_holds_across_ledgers_and_resets_next_day(session_maker: sessionmaker[Session], project_id: int) -> None:
    day = [datetime(2026, 12, 4, 23, 0, tzinfo=UTC)]
    a = SqlLedger(session_maker, project_id, "judge", 1000, clock=lambda: day[0])
    b = SqlLedger(session_maker, project_id, "judge", 1000, clock=lambda: day[0])  # another worker
    assert a.reserve(600)
    assert not b.reserve(500)  # would overshoot: refused, nothing reserved
    assert b.reserve(400) and b.spent() == 1000 == a.spent()
    a.settle(600, 100)  # the call used less than reserved
    assert b.spent() == 500 and b.reserve(500)
    day[0] = datetime(2026, 12, 5, 0, 1, tzinfo=UTC)
    assert a.spent() == 0 and a.reserve(900)
    with session_maker() as s:
        rows = s.scalars(select(JudgeSpend).where(JudgeSpend.project_id == project_id)
                         .order_by(JudgeSpend.period)).all()
        assert [(r.period, r.tokens, r.calls) for r in rows] == [("2026-12-04", 1000, 3), ("2026-12-05", 900, 1)]


def test_spent_budget_stops_the_next_window(session_maker: sessionmaker[Session], project_id: int) -> None:
    with judge_server() as server:
        ledger = SqlLedger(session_maker, project_id, "judge", 800)
        first = judge(server.url, ledger=ledger).evaluate(items(10))
        made = len(server.requests)
        assert 0 < made < 10 and sum(r.value is not None for r in first) == made
        # A new evaluator object, as in the next window or another process, reads the same spend.
        again = SqlLedger(session_maker, project_id, "judge", 800)
        with pytest.raises(EvaluatorFailed, match="budget exhausted"):
            judge(server.url, ledger=again).evaluate([it for it in items(40)[20:]])
        assert len(server.requests) == made
        assert again.spent() == 120 * made


def test_judge_keys_sealed_and_never_stored_in_clear(session: Session, settings: Settings, project_id: int) -> None:
    set_judge_key(session, project_id, "openai", "sk-live-123", settings=settings)
    stored = session.scalar(select(JudgeKey.secret_enc).where(JudgeKey.project_id == project_id))
    assert stored and "sk-live-123" not in stored
    assert judge_key(session, project_id, "openai", settings=settings) == "sk-live-123"
    set_judge_key(session, project_id, "openai", "sk-live-456", settings=settings)  # replaced, not duplicated
    assert judge_key(session, project_id, "openai", settings=settings) == "sk-live-456"
    other = settings.model_copy(update={"secret_key": "x" * 40})
    with pytest.raises(ValueError, match="DRIFTLOOP_SECRET_KEY"):
        judge_key(session, project_id, "openai", settings=other)
    with pytest.raises(ValueError, match="printable ASCII"):
        set_judge_key(session, project_id, "bad", "has space", settings=settings)
    assert delete_judge_key(session, project_id, "openai")
    with pytest.raises(LookupError, match="set-judge-key"):
        judge_key(session, project_id, "openai", settings=settings)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_judge_keys_cli_reads_the_key_from_stdin(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from monitor import migrations
    from monitor.cli import app
    from monitor.db import make_engine, session_factory
    from monitor.settings import reset_settings_cache

    url = settings.database_url.replace(".db", "-cli.db")
    migrations.upgrade(url)
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    reset_settings_cache()
    try:
        factory = session_factory(make_engine(url))
        with factory() as s:
            pid = get_or_create_project(s, "judged").id
            s.commit()
        out = CliRunner().invoke(app, ["judge-keys", "set", "vllm", "-p", "judged"], input="sk-from-stdin\n")
        assert out.exit_code == 0, out.output
        assert "sk-from-stdin" not in out.output
        with factory() as s:
            assert judge_key(s, pid, "vllm", settings=settings.model_copy(update={"database_url": url})) == \
                "sk-from-stdin"
        assert CliRunner().invoke(app, ["judge-keys", "delete", "vllm", "-p", "judged"]).exit_code == 0
        assert CliRunner().invoke(app, ["judge-keys", "delete", "vllm", "-p", "judged"]).exit_code != 0
    finally:
        reset_settings_cache()
