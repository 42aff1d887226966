"""Standard Webhooks: secrets, signatures, headers and message bodies (standard JSON or Slack-compatible).

Signing uses the `standardwebhooks` package, so what we send is what its verifiers (and ours, in the SDK)
accept: `webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per active secret,
space-separated, so receivers keep verifying while a secret is rotated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from standardwebhooks import Webhook

from monitor import __version__

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
EVENT_TYPES = (
    "alert.firing", "alert.resolved", "alert.acknowledged", "alert.silenced", "retrain.started",
    "retrain.finished", "model.promoted", "model.rolled_back",
)
PAYLOAD_FORMATS = ("standard", "slack")


def generate_secret() -> str:
    """A new signing secret, `whsec_` + base64 of 32 random bytes (the Standard Webhooks format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class SecretBox:
    """Encrypts endpoint secrets at rest with a key derived from `DRIFTLOOP_SECRET_KEY`.

    The secret must be recoverable (it signs every message), so it cannot be hashed like an API key. A
    database dump alone does not reveal it; changing DRIFTLOOP_SECRET_KEY makes stored secrets unreadable
    (deliveries then fail with a message saying so, and rotating the endpoint's secret fixes it).
    """

    def __init__(self, secret_key: str):
        digest = hashlib.sha256(b"driftloop webhook secrets\x00" + secret_key.encode("utf-8")).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("ascii")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ValueError(
                "cannot decrypt the endpoint's signing secret (was DRIFTLOOP_SECRET_KEY changed?); rotate the secret"
            ) from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<signature>` entry."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode("utf-8"))


def webhook_headers(msg_id: str, timestamp: int, body: bytes, signing_secrets: Sequence[str]) -> dict[str, str]:
    """The request headers: id, timestamp and one signature per active secret (newest first)."""
    if not signing_secrets:
        raise ValueError("at least one signing secret is needed")
    return {
        "content-type": "application/json",
        "user-agent": f"driftloop-webhooks/{__version__}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in signing_secrets),
    }


def envelope(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The Standard Webhooks payload shape: type, timestamp, data."""
    return {"type": event_type, "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"), "data": data}


def _fmt(x: object) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def summary(payload: dict[str, Any]) -> str:
    """One human line for chat tools."""
    kind, data = payload.get("type", "event"), payload.get("data") or {}
    alert = data.get("alert")
    if kind == "alert.acknowledged" and isinstance(alert, dict):
        ack = data.get("acknowledgement") or {}
        return (f":eyes: {alert.get('rule')} acknowledged by {ack.get('actor')} — {alert.get('metric')}, segment "
                f"{alert.get('segment')}, project {data.get('project')}: {ack.get('comment') or 'no comment'}")[:3000]
    if kind == "alert.silenced":
        sil = data.get("silence") or {}
        return (f":zipper_mouth_face: {sil.get('rule') or 'every rule'} silenced on segments {sil.get('segment')} "
                f"until {sil.get('until')} by {sil.get('actor')}, project {data.get('project')}: "
                f"{sil.get('comment') or 'no comment'}")[:3000]
    if kind in ("alert.firing", "alert.resolved") and isinstance(alert, dict):
        icon = ":rotating_light:" if kind == "alert.firing" else ":white_check_mark:"
        verb = "FIRING" if kind == "alert.firing" else "resolved"
        cond = data.get("condition") or {}
        return (f"{icon} [{alert.get('severity', '')}] {alert.get('rule')} {verb} — {alert.get('metric')} "
                f"{cond.get('field', 'value')}={_fmt(data.get('observed'))} (rule: {cond.get('field', 'value')} "
                f"{cond.get('comparator', '')} {_fmt(cond.get('threshold'))}), segment {alert.get('segment')}, "
                f"window {data.get('window_start')}, project {data.get('project')}")
    details = ", ".join(f"{k}={_fmt(v)}" for k, v in data.items() if isinstance(v, str | int | float))
    return f"driftloop {kind}: {details}"[:3000]


def render_body(payload: dict[str, Any], payload_format: str) -> bytes:
    """The exact bytes that are signed and sent."""
    if payload_format == "slack":
        text = summary(payload)
        body: dict[str, Any] = {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }
    elif payload_format == "standard":
        body = payload
    else:
        raise ValueError(f"unknown payload format {payload_format!r}; use one of {', '.join(PAYLOAD_FORMATS)}")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
