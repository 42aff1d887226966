"""Webhook endpoints of a project: create (the secret is returned this once), change, rotate, delete.

Session first, never commits. URLs are checked for safety here and again before every delivery.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.models import AlertRule
from monitor.alerts.rules import Name
from monitor.db import utcnow
from monitor.errors import ConflictError, FieldError, NotFoundError
from monitor.schemas import NulFreeModel
from monitor.settings import Settings
from monitor.webhooks.models import WebhookEndpoint
from monitor.webhooks.signing import EVENT_TYPES, SecretBox, generate_secret
from monitor.webhooks.urls import MAX_URL_CHARS, UnsafeURLError, check_url

PayloadFormat = Literal["standard", "slack"]


def _event_patterns(patterns: list[str]) -> list[str]:
    for p in patterns:
        if not any(fnmatch.fnmatchcase(t, p) for t in EVENT_TYPES):
            raise ValueError(f"{p!r} matches no event type; known: {', '.join(EVENT_TYPES)} (globs like alert.*)")
    return sorted(set(patterns))


class EndpointSpec(NulFreeModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    url: str = Field(max_length=MAX_URL_CHARS)
    description: str = Field("", max_length=1000)
    event_types: list[str] = Field(default_factory=list, max_length=20,
                                   description="Event types or globs (alert.*); empty: every type.")
    payload_format: PayloadFormat = "standard"
    enabled: bool = True

    _patterns = field_validator("event_types")(_event_patterns)


class EndpointPatch(NulFreeModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=MAX_URL_CHARS)
    description: str | None = Field(None, max_length=1000)
    event_types: list[str] | None = Field(None, max_length=20)
    payload_format: PayloadFormat | None = None
    enabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _patterns(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _event_patterns(v)


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def endpoint_view(e: WebhookEndpoint, now: datetime | None = None) -> dict[str, Any]:
    """Everything about an endpoint except its secrets."""
    now = now or utcnow()
    rotating = bool(e.previous_secret_enc and e.previous_secret_expires_at and e.previous_secret_expires_at > now)
    return {
        "id": e.id, "name": e.name, "url": e.url, "description": e.description, "event_types": e.event_types,
        "payload_format": e.payload_format, "enabled": e.enabled, "disabled_reason": e.disabled_reason,
        "previous_secret_valid_until": e.previous_secret_expires_at.isoformat() if rotating and
        e.previous_secret_expires_at else None,
        "created_at": e.created_at.isoformat(), "updated_at": e.updated_at.isoformat(),
    }


def _safe_url(url: str, settings: Settings) -> str:
    try:
        return check_url(url, allow_private=settings.webhook_allow_private)
    except UnsafeURLError as exc:
        raise FieldError("url", str(exc)) from None


def list_endpoints(session: Session, project_id: int) -> list[WebhookEndpoint]:
    return list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id).order_by(WebhookEndpoint.name)))


def get_endpoint(session: Session, project_id: int, name: str) -> WebhookEndpoint:
    e = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id,
                                                     WebhookEndpoint.name == name))
    if e is None:
        raise NotFoundError(f"no webhook endpoint named {name!r} in this project")
    return e


def create_endpoint(session: Session, project_id: int, spec: EndpointSpec, *, settings: Settings) -> EndpointWithSecret:
    if session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.project_id == project_id,
                                                       WebhookEndpoint.name == spec.name)):
        raise ConflictError(f"a webhook endpoint named {spec.name!r} already exists")
    url = _safe_url(spec.url, settings)
    secret = generate_secret()
    now = utcnow()
    e = WebhookEndpoint(
        project_id=project_id, name=spec.name, url=url, description=spec.description, event_types=spec.event_types,
        payload_format=spec.payload_format, enabled=spec.enabled,
        secret_enc=SecretBox(settings.secret_key).seal(secret), created_at=now, updated_at=now,
    )
    session.add(e)
    session.flush()
    return EndpointWithSecret(e, secret)


def update_endpoint(session: Session, project_id: int, name: str, patch: EndpointPatch, *,
                    settings: Settings) -> WebhookEndpoint:
    e = get_endpoint(session, project_id, name)
    if patch.url is not None:
        e.url = _safe_url(patch.url, settings)
    if patch.description is not None:
        e.description = patch.description
    if patch.event_types is not None:
        e.event_types = patch.event_types
    if patch.payload_format is not None:
        e.payload_format = patch.payload_format
    if patch.enabled is not None:
        e.enabled = patch.enabled
        e.disabled_reason = None if patch.enabled else "disabled by a user"
    e.updated_at = utcnow()
    session.flush()
    return e


def rotate_secret(session: Session, project_id: int, name: str, *, settings: Settings,
                  grace_seconds: int | None = None) -> EndpointWithSecret:
    """A new secret (returned once). The old one keeps signing for the grace period, so receivers can switch
    without missing a message: during it every message carries both signatures."""
    e = get_endpoint(session, project_id, name)
    box = SecretBox(settings.secret_key)
    grace = settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
    now = utcnow()
    secret = generate_secret()
    e.previous_secret_enc = e.secret_enc if grace > 0 else None
    e.previous_secret_expires_at = now + timedelta(seconds=grace) if grace > 0 else None
    e.secret_enc = box.seal(secret)
    e.updated_at = now
    session.flush()
    return EndpointWithSecret(e, secret)


def delete_endpoint(session: Session, project_id: int, name: str) -> None:
    """Refused while a rule sends to it (the rule would silently lose its receiver)."""
    e = get_endpoint(session, project_id, name)
    users = [r.name for r in session.scalars(select(AlertRule).where(AlertRule.project_id == project_id))
             if any(a.get("type") == "webhook" and name in a.get("endpoints", []) for a in r.actions)]
    if users:
        raise ConflictError(f"endpoint {name!r} is used by alert rule(s) {', '.join(sorted(users))}; "
                            "change those rules first")
    session.delete(e)
    session.flush()
