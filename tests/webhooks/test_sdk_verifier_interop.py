"""What the alert sender signs, the SDK's one-call verifier accepts — including during secret rotation."""

from __future__ import annotations

import json
import time

import pytest

from monitor.sdk import WebhookVerificationError, verify_webhook
from monitor.webhooks.signing import generate_secret, render_body, webhook_headers


def test_sender_and_sdk_verifier_agree() -> None:
    old, new = generate_secret(), generate_secret()
    body = render_body({"type": "alert.firing", "data": {"rule": "drift", "value": 0.2}}, "standard")
    headers = webhook_headers("msg_1", int(time.time()), body, [new, old])
    for secret in (old, new):
        assert verify_webhook(secret, headers, body)["type"] == "alert.firing"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(generate_secret(), headers, body)
    tampered = json.dumps({"type": "alert.resolved"}).encode()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new, headers, tampered)
