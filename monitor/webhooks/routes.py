"""Webhook endpoints (the secret is shown once), the delivery log, and manual redelivery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from monitor.alerts.rules import NAME_PATTERN
from monitor.api.deps import AdminProject, ReaderProject, ReadSessionDep, RowId, SessionDep
from monitor.settings import Settings
from monitor.webhooks.endpoints import (
    EndpointPatch,
    EndpointSpec,
    create_endpoint,
    delete_endpoint,
    endpoint_view,
    get_endpoint,
    list_endpoints,
    rotate_secret,
    update_endpoint,
)
from monitor.webhooks.models import WebhookEndpoint, WebhookMessage
from monitor.webhooks.outbox import attempts_of, delivery_dict, get_delivery, list_deliveries, redeliver
from monitor.webhooks.signing import EVENT_TYPES

router = APIRouter(prefix="/v1", tags=["webhooks"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class EndpointCreated(BaseModel):
    endpoint: dict[str, Any]
    secret: str = Field(description="The signing secret (whsec_…). Shown only now; store it in the receiver.")


@router.get("/webhook-endpoints", summary="The project's webhook endpoints (never their secrets)")
def get_endpoints(session: ReadSessionDep, project: ReaderProject) -> list[dict[str, Any]]:
    return [endpoint_view(e) for e in list_endpoints(session, project.id)]


@router.post("/webhook-endpoints", status_code=201, summary="Create an endpoint; the response holds its secret once")
def post_endpoint(spec: EndpointSpec, request: Request, session: SessionDep, project: AdminProject) -> EndpointCreated:
    created = create_endpoint(session, project.id, spec, settings=_settings(request))
    session.commit()
    return EndpointCreated(endpoint=endpoint_view(created.endpoint), secret=created.secret)


@router.get("/webhook-endpoints/{name}", summary="One endpoint (without its secret)")
def get_one_endpoint(name: str, session: ReadSessionDep, project: ReaderProject) -> dict[str, Any]:
    return endpoint_view(get_endpoint(session, project.id, name))


@router.patch("/webhook-endpoints/{name}", summary="Change an endpoint (url, event types, format, enabled)")
def patch_endpoint(name: str, patch: EndpointPatch, request: Request, session: SessionDep,
                   project: AdminProject) -> dict[str, Any]:
    endpoint = update_endpoint(session, project.id, name, patch, settings=_settings(request))
    session.commit()
    return endpoint_view(endpoint)


@router.post("/webhook-endpoints/{name}/rotate-secret",
             summary="A new secret (shown once); the old one keeps signing during the grace period")
def post_rotate(name: str, request: Request, session: SessionDep, project: AdminProject,
                grace_seconds: Annotated[int | None, Query(ge=0, le=30 * 86_400)] = None) -> EndpointCreated:
    rotated = rotate_secret(session, project.id, name, settings=_settings(request), grace_seconds=grace_seconds)
    session.commit()
    return EndpointCreated(endpoint=endpoint_view(rotated.endpoint), secret=rotated.secret)


@router.delete("/webhook-endpoints/{name}", status_code=204, summary="Delete an endpoint no rule sends to")
def remove_endpoint(name: str, session: SessionDep, project: AdminProject) -> Response:
    delete_endpoint(session, project.id, name)
    session.commit()
    return Response(status_code=204)


@router.get("/webhook-deliveries", summary="The delivery log, newest first, with every attempt")
def get_deliveries(
    session: ReadSessionDep, project: ReaderProject,
    endpoint: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    delivery_status: Annotated[str | None, Query(alias="status", pattern="^(pending|succeeded|failed)$")] = None,
    event_type: Annotated[str | None, Query(pattern="^(" + "|".join(t.replace(".", r"\.") for t in EVENT_TYPES)
                                             + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    rows = list_deliveries(session, project.id, endpoint=endpoint, status=delivery_status, event_type=event_type,
                           limit=limit)
    attempts = attempts_of(session, [d.id for d, _, _ in rows])
    return [delivery_dict(d, m, e, attempts[d.id]) for d, m, e in rows]


@router.post("/webhook-deliveries/{delivery_id}/redeliver", status_code=202,
             summary="Send a delivery again now (one manual attempt, logged like the others)")
def post_redeliver(delivery_id: RowId, request: Request, session: SessionDep, project: AdminProject) -> dict[str, Any]:
    redeliver(session, project.id, delivery_id, settings=_settings(request))
    session.commit()  # in-process, the attempt is made right after this commit; with Celery it is queued
    session.expire_all()
    d = get_delivery(session, project.id, delivery_id)
    m, e = session.get(WebhookMessage, d.message_id), session.get(WebhookEndpoint, d.endpoint_id)
    assert m is not None and e is not None
    return delivery_dict(d, m, e, attempts_of(session, [d.id])[d.id])
