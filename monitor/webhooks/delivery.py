"""Delivering one webhook attempt, and logging it.

`attempt_delivery` is the one service function both runners call: it loads the delivery by id (locked on
Postgres, so two copies of a task cannot send the same attempt), signs and sends once, writes an attempt
row, and moves the delivery on: succeeded, scheduled for a retry (`next_attempt_at`), or failed. It is
safe to run twice: a delivery that is done, or not yet due, is left alone. The caller commits, then (Celery)
queues the next attempt with the returned delay.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.settings import Settings
from monitor.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from monitor.webhooks.pinning import PinnedAddressError, PinnedTransport, is_public
from monitor.webhooks.retry import RETRY_AFTER_STATUSES, RetryPolicy, parse_retry_after
from monitor.webhooks.signing import SecretBox, render_body, webhook_headers
from monitor.webhooks.urls import Resolver, UnsafeURLError, check_url, system_resolver

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 64 * 1024
ERROR_CHARS = 500
# A task that arrives this early (clock skew between hosts) still counts as due.
DUE_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class HttpResult:
    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after: str | None = None


class Sender(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float, *,
                 allow_private: bool) -> HttpResult: ...


def send_http(url: str, body: bytes, headers: dict[str, str], timeout: float, *, allow_private: bool,
              resolve: Resolver = system_resolver) -> HttpResult:
    """POST once through a transport pinned to the address it checked (`monitor/webhooks/pinning.py`, no DNS
    rebinding). Redirects are not followed (a redirect could lead to a private address); proxies from the
    environment are not used, so the address that was checked is the address that is contacted. The start of
    an error reply is kept for the delivery log only when it came from a public address: a reply from an
    internal service (allowed with DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE) is not shown to API readers."""
    start = time.perf_counter()
    transport = PinnedTransport(allow_private=allow_private, resolve=resolve)
    try:
        with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False) as client, \
                client.stream("POST", url, content=body, headers=headers) as response:
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= MAX_RESPONSE_BYTES:
                    break
            latency = (time.perf_counter() - start) * 1000
            error = None
            if not 200 <= response.status_code < 300:
                text = excerpt[:200].decode("utf-8", "replace").strip() if is_public(transport.peer) else ""
                error = f"HTTP {response.status_code}" + (f": {text}" if text else "")
            return HttpResult(response.status_code, latency, error, response.headers.get("retry-after"))
    except httpx.TimeoutException:
        return HttpResult(None, (time.perf_counter() - start) * 1000, f"timed out after {timeout:g}s")
    except httpx.HTTPError as exc:
        if isinstance(exc.__cause__, PinnedAddressError) or isinstance(exc.__context__, PinnedAddressError):
            return HttpResult(None, (time.perf_counter() - start) * 1000, f"not sent: {exc}")
        return HttpResult(None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: int
    attempted: bool
    status: str  # the delivery's status afterwards, or "missing"
    outcome: str | None = None  # succeeded | retry | failed | gone (of this attempt)
    status_code: int | None = None
    retry_in: float | None = None  # seconds until the next automatic attempt
    error: str | None = None


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.webhook_max_attempts, settings.webhook_backoff_base_seconds,
                       settings.webhook_backoff_cap_seconds)


def active_secrets(endpoint: WebhookEndpoint, box: SecretBox, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation grace period lasts."""
    out = [box.open(endpoint.secret_enc)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_enc and expires is not None and expires > now:
        out.append(box.open(endpoint.previous_secret_enc))
    return out


def _locked(session: Session, delivery_id: int) -> WebhookDelivery | None:
    stmt = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def _send(endpoint: WebhookEndpoint, message: WebhookMessage, settings: Settings, now: datetime,
          send: Sender) -> HttpResult:
    try:
        url = check_url(endpoint.url, allow_private=settings.webhook_allow_private)
        body = render_body(message.payload, endpoint.payload_format)
        headers = webhook_headers(message.msg_id, int(now.timestamp()), body,
                                  active_secrets(endpoint, SecretBox(settings.secret_key), now))
    except (UnsafeURLError, ValueError) as exc:
        return HttpResult(None, 0.0, f"not sent: {exc}")
    return send(url, body, headers, settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private)


def attempt_delivery(
    session: Session, delivery_id: int, *, settings: Settings, now: datetime | None = None,
    send: Sender = send_http, rng: random.Random | None = None, manual: bool = False, due_by: datetime | None = None,
) -> AttemptOutcome:
    """One attempt (see the module docstring). `manual` attempts are sent whatever the delivery's state
    (except to a disabled endpoint) and never schedule automatic retries.

    `now` is the attempt's time (signature timestamp, log, retry schedule); `due_by` (default `now`) is the
    time against which "is it due?" is judged, so a sweep with a test clock can attempt early retries while
    signatures still carry the real time.
    """
    now = now or utcnow()
    due_by = due_by or now
    delivery = _locked(session, delivery_id)
    if delivery is None:
        return AttemptOutcome(delivery_id, False, "missing")
    if not manual and (delivery.status != "pending" or (
            delivery.next_attempt_at is not None and delivery.next_attempt_at > due_by + DUE_SLACK)):
        return AttemptOutcome(delivery_id, False, delivery.status)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    message = session.get(WebhookMessage, delivery.message_id)
    assert endpoint is not None and message is not None  # foreign keys
    if not endpoint.enabled:
        if not manual:
            delivery.status, delivery.next_attempt_at, delivery.updated_at = "failed", None, now
            delivery.last_error = f"endpoint {endpoint.name!r} is disabled: {endpoint.disabled_reason or 'by a user'}"
        return AttemptOutcome(delivery_id, False, delivery.status, error=delivery.last_error)

    result = _send(endpoint, message, settings, now, send)
    number = delivery.attempts + 1
    code = result.status_code
    retry_in: float | None = None
    if code is not None and 200 <= code < 300:
        outcome = "succeeded"
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
    elif code == 410:
        # The receiver says this endpoint is gone for good: stop sending to it (Standard Webhooks advice).
        outcome = "gone"
        endpoint.enabled = False
        endpoint.disabled_reason = f"the receiver answered 410 Gone at {now.isoformat()}"
        endpoint.updated_at = now
        delivery.status, delivery.next_attempt_at = "failed", None
    elif manual:
        outcome = "failed"  # a manual attempt leaves any automatic schedule as it was
    else:
        hint = parse_retry_after(result.retry_after, now) if code in RETRY_AFTER_STATUSES else None
        retry_in = policy_from(settings).next_delay(number, (rng or random.Random()).random(), hint)
        if retry_in is None:
            outcome = "failed"
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            outcome = "retry"
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    error = result.error[:ERROR_CHARS] if result.error else None
    session.add(WebhookAttempt(
        delivery_id=delivery.id, attempt=number, trigger="manual" if manual else "auto", started_at=now,
        status_code=code, latency_ms=round(result.latency_ms, 3), error=error, outcome=outcome,
    ))
    delivery.attempts = number
    delivery.last_status_code, delivery.last_error, delivery.updated_at = code, error, now
    session.flush()
    log.info("webhook delivery %s attempt %s to endpoint %s: %s %s", delivery.id, number, endpoint.id,
             outcome, code if code is not None else error)
    return AttemptOutcome(delivery_id, True, delivery.status, outcome, code, retry_in, error)


def due_delivery_ids(session: Session, now: datetime, *, older_than: timedelta = timedelta(0),
                     limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt time has passed (by at least `older_than`)."""
    stmt = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now - older_than)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
