"""Webhook delivery on both backends, to a real receiver on loopback: retries on a test clock (no sleeping),
Retry-After, 410, redelivery, timeouts, redirects, delivery-time URL checks, secret rotation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import utcnow
from monitor.errors import ConflictError
from monitor.models import Project
from monitor.settings import Settings
from monitor.webhooks.delivery import policy_from
from monitor.webhooks.dispatch import deliver_due
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint, rotate_secret
from monitor.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from monitor.webhooks.outbox import emit_event, redeliver
from tests.support.webhook_receiver import Answer, Receiver


@pytest.fixture
def hook_settings(local_hooks: Settings) -> Settings:
    return local_hooks.model_copy(update={"webhook_backoff_base_seconds": 5.0, "webhook_max_attempts": 4,
                                          "webhook_timeout_seconds": 2.0})


def endpoint(session: Session, project: Project, receiver: Receiver, settings: Settings, **kw: object) -> str:
    spec = EndpointSpec(name=str(kw.pop("name", "rx")), url=receiver.url, **kw)  # type: ignore[arg-type]
    created = create_endpoint(session, project.id, spec, settings=settings)
    session.commit()
    return created.secret


def emit(session: Session, project: Project, settings: Settings, event: str = "alert.firing") -> WebhookDelivery:
    msg_id = emit_event(session, project.id, event, {"n": 1}, settings=settings)
    session.commit()  # the first attempt is made right after this commit (in-process runner)
    session.expire_all()
    message = session.scalars(select(WebhookMessage).where(WebhookMessage.msg_id == msg_id)).one()
    return session.scalars(select(WebhookDelivery).where(WebhookDelivery.message_id == message.id)).one()


def attempts(session: Session, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    session.expire_all()
    return list(session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                                .order_by(WebhookAttempt.attempt)))


def test_500_500_200_three_attempts_one_delivery(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    hook_settings: Settings,
) -> None:
    secret = endpoint(session, project, receiver, hook_settings)
    receiver.answer(500, 500, 200)
    d = emit(session, project, hook_settings)
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 500)
    first_retry = d.next_attempt_at
    assert first_retry is not None
    # Not due yet: a sweep now sends nothing.
    assert deliver_due(factory=session_maker, settings=hook_settings) == []
    assert receiver.count() == 1
    deliver_due(factory=session_maker, settings=hook_settings, now=first_retry)
    session.refresh(d)
    second_retry = d.next_attempt_at
    assert second_retry is not None
    deliver_due(factory=session_maker, settings=hook_settings, now=utcnow() + timedelta(hours=1))
    log = attempts(session, d)
    assert [(a.attempt, a.status_code, a.outcome) for a in log] == [(1, 500, "retry"), (2, 500, "retry"),
                                                                    (3, 200, "succeeded")]
    assert all(a.latency_ms > 0 and a.trigger == "auto" for a in log)
    assert log[0].error is not None and log[0].error.startswith("HTTP 500")
    # The waits follow the schedule (base 5 s, doubling, equal jitter): attempt 1 → [2.5, 5] s, attempt 2 →
    # [5, 10] s after the attempt.
    assert 2.5 <= (first_retry - log[0].started_at).total_seconds() <= 5
    assert 5 <= (second_retry - log[1].started_at).total_seconds() <= 10
    session.refresh(d)
    assert d.status == "succeeded" and d.attempts == 3 and d.delivered_at is not None
    payloads = receiver.verified(secret)  # every request verifies with the standardwebhooks package
    assert len(payloads) == 3 and {r.headers["webhook-id"] for r in receiver.requests} == {
        session.get(WebhookMessage, d.message_id).msg_id}  # type: ignore[union-attr]
    assert payloads[0]["type"] == "alert.firing" and payloads[0]["data"] == {"n": 1}
    # Done is done: another sweep sends nothing more.
    deliver_due(factory=session_maker, settings=hook_settings, now=utcnow() + timedelta(days=1))
    assert receiver.count() == 3


def test_backoff_delays_follow_the_policy(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    hook_settings: Settings,
) -> None:
    endpoint(session, project, receiver, hook_settings)
    receiver.answer(500, 500, 500, 500)
    d = emit(session, project, hook_settings)
    waits = []
    for _ in range(3):
        session.refresh(d)
        log = attempts(session, d)
        assert d.next_attempt_at is not None
        waits.append((d.next_attempt_at - log[-1].started_at).total_seconds())
        deliver_due(factory=session_maker, settings=hook_settings, now=d.next_attempt_at)
    assert 2.5 <= waits[0] <= 5 and 5 <= waits[1] <= 10 and 10 <= waits[2] <= 20
    session.refresh(d)
    assert d.status == "failed" and d.attempts == 4 and d.next_attempt_at is None  # max_attempts = 4
    assert receiver.count() == 4


def test_429_retry_after_is_honoured(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    hook_settings: Settings,
) -> None:
    endpoint(session, project, receiver, hook_settings)
    receiver.answer(Answer(429, {"Retry-After": "120"}), 200)
    d = emit(session, project, hook_settings)
    [first] = attempts(session, d)
    assert first.status_code == 429 and d.next_attempt_at is not None
    # Retry-After is a floor over the backoff, which alone would wait at most 5 s after a first attempt.
    assert policy_from(hook_settings).nominal(1) == 5.0
    assert (d.next_attempt_at - first.started_at).total_seconds() == 120
    deliver_due(factory=session_maker, settings=hook_settings, now=first.started_at + timedelta(seconds=60))
    assert receiver.count() == 1  # not before the receiver asked
    deliver_due(factory=session_maker, settings=hook_settings, now=first.started_at + timedelta(seconds=121))
    assert receiver.count() == 2
    session.refresh(d)
    assert d.status == "succeeded"


def test_410_disables_the_endpoint(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    hook_settings: Settings,
) -> None:
    endpoint(session, project, receiver, hook_settings)
    receiver.answer(500, 410)
    older = emit(session, project, hook_settings)  # 500: scheduled for a retry
    gone = emit(session, project, hook_settings)  # 410
    assert gone.status == "failed" and gone.last_status_code == 410
    ep = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.project_id == project.id)).one()
    assert ep.enabled is False and "410" in (ep.disabled_reason or "")
    # The older delivery's retry is not sent to a disabled endpoint, and new events create no delivery.
    deliver_due(factory=session_maker, settings=hook_settings, now=utcnow() + timedelta(hours=1))
    session.refresh(older)
    assert older.status == "failed" and "disabled" in (older.last_error or "")
    emit_event(session, project.id, "alert.firing", {}, settings=hook_settings)
    session.commit()
    assert receiver.count() == 2
    with pytest.raises(ConflictError, match="disabled"):
        redeliver(session, project.id, older.id, settings=hook_settings)


def test_manual_redelivery_is_one_logged_attempt(
    session: Session, project: Project, receiver: Receiver, hook_settings: Settings,
) -> None:
    secret = endpoint(session, project, receiver, hook_settings)
    d = emit(session, project, hook_settings)
    assert d.status == "succeeded"
    receiver.answer(200, 503)
    redeliver(session, project.id, d.id, settings=hook_settings)
    session.commit()
    redeliver(session, project.id, d.id, settings=hook_settings)  # a failing manual attempt schedules nothing
    session.commit()
    log = attempts(session, d)
    assert [(a.attempt, a.trigger, a.status_code) for a in log] == [(1, "auto", 200), (2, "manual", 200),
                                                                     (3, "manual", 503)]
    session.refresh(d)
    assert d.status == "succeeded" and d.next_attempt_at is None
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # the same message each time
    assert len(receiver.verified(secret)) == 3


def test_timeout_redirect_and_delivery_time_url_check(
    session: Session, session_maker: sessionmaker[Session], project: Project, receiver: Receiver,
    hook_settings: Settings,
) -> None:
    endpoint(session, project, receiver, hook_settings)
    quick = hook_settings.model_copy(update={"webhook_timeout_seconds": 0.3})
    receiver.answer(Answer(hang=True))
    d = emit(session, project, quick)
    assert d.last_error == "timed out after 0.3s" and d.last_status_code is None and d.status == "pending"
    receiver.answer(Answer(302, {"Location": "http://169.254.169.254/"}))
    deliver_due(factory=session_maker, settings=hook_settings, now=utcnow() + timedelta(hours=1))
    session.refresh(d)
    assert d.last_status_code == 302 and d.status == "pending"  # a redirect is a failure, never followed
    # The operator turns private targets off: the next attempt is refused before any request is made.
    strict = hook_settings.model_copy(update={"webhook_allow_private": False})
    before = receiver.count()
    deliver_due(factory=session_maker, settings=strict, now=utcnow() + timedelta(hours=2))
    session.refresh(d)
    assert receiver.count() == before
    assert d.last_error is not None and d.last_error.startswith("not sent:") and "loopback" in d.last_error


def test_rotation_signs_with_both_secrets_during_the_grace_period(
    session: Session, project: Project, receiver: Receiver, hook_settings: Settings,
) -> None:
    old = endpoint(session, project, receiver, hook_settings)
    new = rotate_secret(session, project.id, "rx", settings=hook_settings).secret
    session.commit()
    emit(session, project, hook_settings)
    assert len(receiver.requests[-1].headers["webhook-signature"].split(" ")) == 2
    receiver.verified(old)
    receiver.verified(new)
    newest = rotate_secret(session, project.id, "rx", settings=hook_settings, grace_seconds=0).secret
    session.commit()
    emit(session, project, hook_settings)
    last = receiver.requests[-1]
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    Webhook(newest).verify(last.body, last.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(last.body, last.headers)
    ep = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.project_id == project.id)).one()
    assert newest not in ep.secret_enc and newest.removeprefix("whsec_") not in ep.secret_enc  # encrypted at rest


def test_subscriptions_and_formats(
    session: Session, project: Project, receiver: Receiver, hook_settings: Settings,
) -> None:
    endpoint(session, project, receiver, hook_settings, name="alerts-only", event_types=["alert.*"])
    endpoint(session, project, receiver, hook_settings, name="chat", payload_format="slack",
             event_types=["model.promoted"])
    emit_event(session, project.id, "alert.resolved", {"project": "p"}, settings=hook_settings)
    emit_event(session, project.id, "model.promoted", {"model_version": "v7"}, settings=hook_settings)
    emit_event(session, project.id, "retrain.started", {"job": 1}, settings=hook_settings)  # nobody subscribes
    session.commit()
    assert receiver.count() == 2
    import json

    bodies = [json.loads(r.body) for r in receiver.requests]
    assert bodies[0]["type"] == "alert.resolved"
    line = "driftloop model.promoted: model_version=v7"
    assert bodies[1] == {"text": line, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]}
    with pytest.raises(ValueError, match="unknown event type"):
        emit_event(session, project.id, "alert.exploded", {})


def test_nothing_is_sent_when_the_transaction_rolls_back(
    session: Session, project: Project, receiver: Receiver, hook_settings: Settings,
) -> None:
    endpoint(session, project, receiver, hook_settings)
    emit_event(session, project.id, "alert.firing", {}, settings=hook_settings)
    session.rollback()
    session.commit()
    assert receiver.count() == 0
    assert session.scalars(select(WebhookDelivery).where(WebhookDelivery.project_id == project.id)).all() == []
