"""verify_webhook against the reference `standardwebhooks` signer (interoperability, not self-consistency)."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from monitor.sdk import WebhookVerificationError, sign_webhook, verify_webhook

PAYLOAD = {"type": "alert.fired", "data": {"rule": "drift", "value": 0.31, "note": "ünïcode"}}
BODY = json.dumps(PAYLOAD, ensure_ascii=False)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def signed_headers(secret: str, body: str, msg_id: str = "msg_1", at: float | None = None) -> dict[str, str]:
    timestamp = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    signature = Webhook(secret).sign(msg_id, timestamp, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def test_reference_signature_verifies_and_payload_is_returned() -> None:
    secret = new_secret()
    headers = signed_headers(secret, BODY)
    assert verify_webhook(secret, headers, BODY.encode()) == PAYLOAD
    assert verify_webhook(secret, headers, BODY) == PAYLOAD  # str body too


def test_our_signature_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    ts = int(time.time())
    headers = {
        "webhook-id": "msg_9",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_webhook(secret, "msg_9", ts, BODY),
    }
    assert Webhook(secret).verify(BODY, headers) == PAYLOAD


def test_header_names_are_case_insensitive() -> None:
    secret = new_secret()
    headers = {k.title(): v for k, v in signed_headers(secret, BODY).items()}
    assert verify_webhook(secret, headers, BODY) == PAYLOAD


def test_any_of_several_signatures_matches_during_secret_rotation() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers(new, BODY)
    old_sig = signed_headers(old, BODY)["webhook-signature"]
    headers["webhook-signature"] = f"v1a,ignored {old_sig} {headers['webhook-signature']}"
    assert verify_webhook(new, headers, BODY) == PAYLOAD
    assert verify_webhook(old, headers, BODY) == PAYLOAD
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook(new_secret(), headers, BODY)


def test_tampered_body_is_refused() -> None:
    secret = new_secret()
    headers = signed_headers(secret, BODY)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook(secret, headers, BODY.replace("0.31", "0.01"))


def test_tampered_id_is_refused() -> None:
    secret = new_secret()
    headers = signed_headers(secret, BODY)
    headers["webhook-id"] = "msg_2"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, headers, BODY)


def test_old_and_future_timestamps_are_refused_within_tolerance_accepted() -> None:
    secret = new_secret()
    now = time.time()
    stale = signed_headers(secret, BODY, at=now - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(secret, stale, BODY, now=now)
    future = signed_headers(secret, BODY, at=now + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify_webhook(secret, future, BODY, now=now)
    assert verify_webhook(secret, signed_headers(secret, BODY, at=now - 290), BODY, now=now) == PAYLOAD
    assert verify_webhook(secret, stale, BODY, now=now, tolerance=600) == PAYLOAD


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_refused(missing: str) -> None:
    secret = new_secret()
    headers = signed_headers(secret, BODY)
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match="missing header"):
        verify_webhook(secret, headers, BODY)


def test_garbage_inputs_raise_the_verification_error_only() -> None:
    secret = new_secret()
    headers = signed_headers(secret, BODY)
    for bad in ({**headers, "webhook-timestamp": "noon"}, {**headers, "webhook-signature": "v1,%%%"}):
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, bad, BODY)
    with pytest.raises(WebhookVerificationError, match="base64"):
        verify_webhook("whsec_***", headers, BODY)
    not_json = "plain text"
    with pytest.raises(WebhookVerificationError, match="not JSON"):
        verify_webhook(secret, signed_headers(secret, not_json), not_json)
