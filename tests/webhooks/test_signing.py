"""Standard Webhooks interop: what we sign, the `standardwebhooks` package verifies; rotation; payloads."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from monitor.webhooks.signing import SecretBox, envelope, generate_secret, render_body, summary, webhook_headers


def test_secret_format() -> None:
    s = generate_secret()
    assert s.startswith("whsec_") and len(base64.b64decode(s.removeprefix("whsec_"))) == 32
    assert generate_secret() != s


def test_signature_verifies_with_the_standardwebhooks_package() -> None:
    secret = generate_secret()
    body = render_body(envelope("alert.firing", {"x": 1, "text": "café ☕"}, datetime.now(UTC)), "standard")
    headers = webhook_headers("msg_1", int(time.time()), body, [secret])
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    # any change to id, timestamp or body breaks it; so does another secret
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b'"x":1', b'"x":2'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    stale = webhook_headers("msg_1", int(time.time()) - 3600, body, [secret])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, stale)


def test_rotation_sends_one_signature_per_secret_and_each_verifies() -> None:
    new, old = generate_secret(), generate_secret()
    body = b'{"type":"alert.resolved"}'
    headers = webhook_headers("msg_9", int(time.time()), body, [new, old])
    sigs = headers["webhook-signature"].split(" ")
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs)
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)


def test_secret_box_round_trip_and_wrong_key() -> None:
    secret = generate_secret()
    sealed = SecretBox("key one").seal(secret)
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    assert SecretBox("key one").open(sealed) == secret
    with pytest.raises(ValueError, match="DRIFTLOOP_SECRET_KEY"):
        SecretBox("key two").open(sealed)


def test_payloads_standard_and_slack() -> None:
    at = datetime(2026, 11, 20, 5, tzinfo=UTC)
    data = {
        "project": "shop",
        "alert": {"rule": "prompt-drift", "severity": "critical", "metric": "drift.prompt.mmd", "segment": "all"},
        "condition": {"field": "p_value", "comparator": "<", "threshold": 0.01},
        "observed": 0.00042, "window_start": (at - timedelta(hours=1)).isoformat(),
    }
    payload = envelope("alert.firing", data, at)
    standard = json.loads(render_body(payload, "standard"))
    assert standard == {"type": "alert.firing", "timestamp": "2026-11-20T05:00:00Z", "data": data}
    slack = json.loads(render_body(payload, "slack"))
    assert set(slack) == {"text", "blocks"}
    assert "prompt-drift FIRING" in slack["text"] and "p_value=0.00042" in slack["text"] and "< 0.01" in slack["text"]
    assert slack["blocks"][0]["text"]["text"] == slack["text"]
    resolved = summary(envelope("alert.resolved", data, at))
    assert "resolved" in resolved and "FIRING" not in resolved
    other = summary(envelope("model.promoted", {"model_version": "v7", "project": "shop"}, at))
    assert other == "driftloop model.promoted: model_version=v7, project=shop"
    with pytest.raises(ValueError, match="unknown payload format"):
        render_body(payload, "teams")
