"""Verify driftloop's signed webhooks (the Standard Webhooks scheme) in the receiving app. Stdlib only.

    payload = verify_webhook(secret, request.headers, await request.body())

Unlike the rest of the SDK this *does* raise (`WebhookVerificationError`): the receiving app must
answer 4xx to a forged or replayed request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

_SECRET_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh driftloop webhook."""


def _secret_key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    else:
        encoded = secret.removeprefix(_SECRET_PREFIX)
        try:
            # Tolerate missing padding, as the reference implementation does.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("the webhook secret is not valid base64 after 'whsec_'") from None
    if not key:
        raise WebhookVerificationError("the webhook secret is empty")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    if not value:
        raise WebhookVerificationError(f"missing header {name}")
    return str(value)


def sign_webhook(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `v1,<base64>` signature for one message (what the sender puts in `webhook-signature`)."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    to_sign = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(_secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_webhook(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """Check the Standard Webhooks signature and timestamp; return the parsed JSON payload.

    `secret` is the `whsec_<base64>` string shown when the webhook was created (or the raw key bytes).
    Any of several space-separated `v1,<sig>` signatures may match (secret rotation). The timestamp
    must be within `tolerance` seconds of `now` (default: the current time) in either direction, so a
    captured request cannot be replayed later. Raises `WebhookVerificationError` on any failure.
    """
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("message timestamp too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("message timestamp too new")

    expected = sign_webhook(secret, msg_id, timestamp, body).split(",", 1)[1].encode("ascii")
    matched = False
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        # Compare every v1 entry (no early exit) so timing does not reveal which one matched.
        if version == "v1" and hmac.compare_digest(signature.encode("ascii", "replace"), expected):
            matched = True
    if not matched:
        raise WebhookVerificationError("no matching signature")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the signed body is not a JSON object")
    return payload
