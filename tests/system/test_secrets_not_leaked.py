"""Keys and webhook secrets never appear in logs or API responses, except the one response that creates (or
rotates) a webhook secret. A real collector process at debug level with its access log on goes through key use,
bad keys, endpoint creation, rotation and a signed delivery; its log, every response, and this process's log
(the SDK's) are searched for every secret."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from monitor.projects.service import SCOPES, create_key, get_project, revoke_key
from monitor.sdk import Client
from monitor.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from tests.support.collector import CollectorProcess
from tests.support.factories import event_dict, unique_slug
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import running_receiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _forms(secret: str) -> list[str]:
    """The secret and its distinctive part (a key's random tail, a webhook secret's base64 body)."""
    tail = secret.rsplit("_", 1)[-1]
    return [secret, tail]


def test_secrets_stay_out_of_logs_and_responses(
    pg_url: str, pg_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slug = unique_slug("leak")
    with Session(pg_engine) as s:
        key, revoked = create_key(s, slug, scopes=SCOPES), create_key(s, slug, "old", scopes=SCOPES)
        other, app_key = create_key(s, unique_slug("other"), scopes=SCOPES), create_key(s, slug, "app")  # ingest
        revoke_key(s, revoked.prefix)
        project_id = get_project(s, slug).id
        s.commit()
    log = tmp_path / "collector.log"
    collector = CollectorProcess(pg_url, log, serve_args=("--log-level", "debug", "--access-log"),
                                 extra_env={"DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE": "true"})
    responses: list[httpx.Response] = []
    allowed: list[httpx.Response] = []  # the responses whose job is to show a secret once
    caplog.set_level(logging.DEBUG)
    collector.start()
    try:
        with running_receiver() as receiver, httpx.Client(base_url=collector.url, timeout=30) as http:
            def call(method: str, path: str, api_key: str | None = key.key, **kw: object) -> httpx.Response:
                headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
                r = http.request(method, path, headers={**headers, **kw.pop("headers", {})}, **kw)  # type: ignore[arg-type]
                responses.append(r)
                return r

            assert call("POST", "/v1/events", json={"events": [event_dict()]}).status_code == 200
            almost = key.key[:-1] + ("0" if key.key[-1] != "0" else "1")
            assert call("POST", "/v1/events", almost, json={"events": [event_dict()]}).status_code == 401
            assert call("GET", "/v1/alert-rules", revoked.key).status_code == 401
            assert call("GET", "/v1/alert-rules", None, headers={"Authorization": key.key}).status_code == 401
            assert call("GET", "/v1/alert-rules", other.key, headers={"X-Driftloop-Project": slug}).status_code == 403
            refused = call("POST", "/v1/webhook-endpoints", app_key.key, json={"name": "x", "url": receiver.url})
            assert refused.status_code == 403 and "'admin' scope" in refused.text  # a scope refusal, keyless too
            created = call("POST", "/v1/webhook-endpoints", json={"name": "hook", "url": receiver.url})
            assert created.status_code == 201
            allowed.append(responses.pop())
            first_secret = created.json()["secret"]
            for path in ("/v1/webhook-endpoints", "/v1/webhook-endpoints/hook"):
                assert call("GET", path).status_code == 200
            assert call("PATCH", "/v1/webhook-endpoints/hook", json={"description": "x"}).status_code == 200
            rotated = call("POST", "/v1/webhook-endpoints/hook/rotate-secret")
            assert rotated.status_code == 200
            allowed.append(responses.pop())
            second_secret = rotated.json()["secret"]
            assert second_secret != first_secret

            delivery_id = _delivery(pg_engine, project_id)
            assert call("POST", f"/v1/webhook-deliveries/{delivery_id}/redeliver").status_code == 202
            wait_for(lambda: receiver.requests, 30, "the signed delivery")
            sent = receiver.requests[0]
            Webhook(second_secret).verify(sent.body, sent.headers)  # signed with the current secret
            assert call("GET", "/v1/webhook-deliveries").json()[0]["status"] == "succeeded"
            assert call("GET", "/v1/retrain/jobs").status_code == 200

        # The SDK with a revoked key: it warns, but not with the key.
        sdk = Client(collector.url, revoked.key, spool_dir=False, flush_interval=0.01)
        sdk.log("q", "a")
        sdk.flush(timeout=10)
        sdk.close(timeout=5)
        assert sdk.stats.dropped_unauthorized == 1
    finally:
        collector.stop()

    secrets = {name: form for name, value in [("key", key.key), ("revoked key", revoked.key), ("other key", other.key),
                                               ("ingest-only key", app_key.key),
                                               ("almost key", almost), ("first secret", first_secret),
                                               ("second secret", second_secret)] for form in _forms(value)}
    collector_log = log.read_text()
    assert "POST /v1/events" in collector_log  # the access log really was on
    assert "webhook delivery" in collector_log  # and driftloop's own loggers
    our_log = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused the api key" in our_log  # the SDK did log the refusal
    for name, secret in secrets.items():
        assert secret not in collector_log, f"{name} in the collector log"
        assert secret not in our_log, f"{name} in this process's log"
        for r in responses:
            assert secret not in r.text and secret not in str(r.headers), f"{name} in {r.request.url}"
    assert first_secret in allowed[0].text and second_secret in allowed[1].text
    with Session(pg_engine) as s:
        stored = s.scalar(select(WebhookEndpoint.secret_enc).where(WebhookEndpoint.project_id == project_id))
    assert stored and _forms(second_secret)[1] not in stored  # encrypted at rest


def _delivery(engine: Engine, project_id: int) -> int:
    """A delivery row of a made-up alert, for the API's manual redelivery to send."""
    with Session(engine) as s:
        endpoint = s.scalar(select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id))
        assert endpoint is not None
        message = WebhookMessage(msg_id=f"msg_{uuid.uuid4().hex}", project_id=project_id, event_type="alert.firing",
                                 payload={"type": "alert.firing", "data": {}}, created_at=datetime.now(UTC))
        s.add(message)
        s.flush()
        delivery = WebhookDelivery(project_id=project_id, message_id=message.id, endpoint_id=endpoint.id,
                                   status="failed", attempts=1)
        s.add(delivery)
        s.commit()
        return delivery.id
