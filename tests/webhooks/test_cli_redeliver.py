"""`driftloop webhooks redeliver` reports the attempt it made, not the delivery's old status: a refused or
failed attempt exits 1 (it used to print "succeeded" and exit 0 when the attempt was refused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import make_engine, reset_engines
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings, reset_settings_cache
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from monitor.webhooks.models import WebhookAttempt, WebhookDelivery
from monitor.webhooks.outbox import emit_event
from tests.support.webhook_receiver import Receiver

RUN = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'hooks.db'}"
    monkeypatch.setenv("DRIFTLOOP_DATABASE_URL", url)
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("DRIFTLOOP_WEBHOOK_TIMEOUT_SECONDS", "5")
    reset_settings_cache()
    reset_engines()
    assert RUN.invoke(app, ["migrate"]).exit_code == 0
    yield url
    reset_settings_cache()
    reset_engines()


def _delivered(url: str, receiver: Receiver) -> int:
    """A delivery to the loopback receiver that succeeded (private targets allowed at the time)."""
    engine = make_engine(url)
    settings = Settings(database_url=url, webhook_allow_private=True, webhook_timeout_seconds=5)
    with Session(engine) as s:
        p = get_or_create_project(s, "shop")
        pid = p.id
        create_endpoint(s, pid, EndpointSpec(name="rx", url=receiver.url), settings=settings)
        s.commit()
    from monitor.db import session_scope

    with session_scope(engine) as s:
        emit_event(s, pid, "alert.firing", {"n": 1}, settings=settings)
    with Session(engine) as s:
        d = s.scalars(select(WebhookDelivery)).one()
        assert d.status == "succeeded"
        delivery_id = d.id
    engine.dispose()
    return delivery_id


def test_redeliver_exit_code_follows_the_attempt(db: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    delivery_id = _delivered(db, receiver)
    ok = RUN.invoke(app, ["webhooks", "redeliver", str(delivery_id), "-p", "shop"])
    assert ok.exit_code == 0 and "attempt 2 succeeded (200)" in ok.output, ok.output
    receiver.answer(503)
    failed = RUN.invoke(app, ["webhooks", "redeliver", str(delivery_id), "-p", "shop"])
    assert failed.exit_code == 1 and "attempt 3 failed (503)" in failed.output, failed.output
    # Local mode refuses private targets without DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE: the attempt is refused.
    monkeypatch.delenv("DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE")
    reset_settings_cache()
    before = receiver.count()
    refused = RUN.invoke(app, ["webhooks", "redeliver", str(delivery_id), "-p", "shop"])
    assert refused.exit_code == 1, refused.output
    assert "attempt 4 failed" in refused.output and "succeeded" not in refused.output
    assert receiver.count() == before  # nothing was sent
    engine = make_engine(db)
    with Session(engine) as s:
        assert s.get(WebhookDelivery, delivery_id).status == "succeeded"  # type: ignore[union-attr]
        last = s.scalars(select(WebhookAttempt).order_by(WebhookAttempt.attempt.desc())).first()
        assert last is not None and last.outcome == "failed" and last.trigger == "manual"
    engine.dispose()
