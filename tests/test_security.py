"""Authentication of every write route, enumerated from the app itself (a new route is covered, or this test
fails until it is): missing, malformed, wrong, revoked and other-project keys are refused with 401/403 and the
database is unchanged; a valid key of another project cannot touch this project's resources."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.endpoint_service import EndpointSpec, create_endpoint
from monitor.alerts.models import WebhookDelivery, WebhookMessage
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.api.app import create_app
from monitor.api.openapi import api_routes, authenticated_routes
from monitor.models import Base
from monitor.services.projects import get_project, revoke_key
from monitor.settings import Settings
from monitor.tables import import_all_tables
from tests.factories import event_dict, make_key
from tests.otlp.build import make_request, make_span
from tests.retrain.helpers import add_candidate

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Write routes that authenticate otherwise than with a project key, and why.
OTHER_AUTH: dict[str, str] = {
    "/ui/": "the approval UI: an operator session cookie plus a CSRF token (tests/ui/, and the test below)",
}
UI_PUBLIC_WRITES = {"POST /ui/login"}  # signing in is how a session starts

import_all_tables()
_APP = create_app(Settings(database_url="sqlite://"))
WRITE_ROUTES = sorted(
    f"{m} {r.path_format}" for r in api_routes(_APP) for m in (r.methods or ()) if m in WRITE_METHODS
)
KEYED_WRITE_ROUTES = [r for r in WRITE_ROUTES
                      if not any(r.split(" ", 1)[1].startswith(prefix) for prefix in OTHER_AUTH)]
AUTHENTICATED = {f"{m} {r.path_format}" for r in authenticated_routes(_APP) for m in (r.methods or ())}

RULE = {"name": "latency", "metric": "ops.latency_p95", "comparator": ">", "threshold": 2500}
YAML_RULES = "rules:\n  - {name: slow, metric: ops.latency_p95, comparator: '>', threshold: 2500}\n"
SPAN = make_request(make_span("chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                                       "gen_ai.prompt.0.content": "hi", "gen_ai.completion.0.content": "hello"}))


def _example(route: str) -> dict[str, Any] | None:
    """A request that a valid key of the owning project would have had accepted."""
    examples: dict[str, dict[str, Any]] = {
        "POST /v1/events": {"json": {"events": [event_dict()]}},
        "POST /v1/feedback": {"json": {"feedback": [{"feedback_id": "f1", "event_id": "e1", "score": 1}]}},
        "POST /v1/traces": {"content": SPAN.SerializeToString(),
                            "headers": {"Content-Type": "application/x-protobuf"}},
        "POST /v1/alert-rules": {"json": {**RULE, "name": "another"}},
        "PUT /v1/alert-rules/{name}": {"json": {**RULE, "threshold": 10}},
        "DELETE /v1/alert-rules/{name}": {},
        "POST /v1/alert-rules/import": {"content": YAML_RULES, "headers": {"Content-Type": "application/yaml"}},
        "POST /v1/webhook-endpoints": {"json": {"name": "second", "url": "https://93.184.215.14/hook"}},
        "PATCH /v1/webhook-endpoints/{name}": {"json": {"description": "changed"}},
        "POST /v1/webhook-endpoints/{name}/rotate-secret": {},
        "DELETE /v1/webhook-endpoints/{name}": {},
        "POST /v1/webhook-deliveries/{delivery_id}/redeliver": {},
        "POST /v1/models/{version}/{decision}": {"json": {"actor": "mallory", "reason": "r", "override": True}},
        "POST /v1/retrain": {"json": {"actor": "mallory"}},
    }
    return examples.get(route)


def test_every_write_route_is_authenticated_and_has_an_example() -> None:
    assert len(WRITE_ROUTES) >= 14
    for route in WRITE_ROUTES:
        if any(route.split(" ", 1)[1].startswith(prefix) for prefix in OTHER_AUTH):
            continue
        assert route in AUTHENTICATED, f"{route} is a write route without a project key"
        assert _example(route) is not None, f"add a valid example request for {route} to this test"


class Victim:
    """Project A with one of everything a write route can touch; project B, another tenant."""

    def __init__(self, session: Session) -> None:
        self.key = make_key(session)
        self.revoked = make_key(session, self.key.project_slug, name="old")
        revoke_key(session, self.revoked.prefix)
        self.other = make_key(session)
        self.project = get_project(session, self.key.project_slug)
        settings = Settings(webhook_allow_private=False)
        create_rule(session, self.project.id, RuleSpec.model_validate(RULE))
        hook = create_endpoint(session, self.project.id,
                               EndpointSpec(name="hook", url="https://93.184.215.14/hook"), settings=settings)
        message = WebhookMessage(msg_id=uuid.uuid4().hex, project_id=self.project.id, event_type="alert.firing",
                                 payload={}, created_at=datetime.now(UTC))
        session.add(message)
        session.flush()
        delivery = WebhookDelivery(project_id=self.project.id, message_id=message.id, endpoint_id=hook.endpoint.id,
                                   status="failed", attempts=1)
        session.add(delivery)
        session.flush()
        self.version = add_candidate(session, self.project.id, passing=True).name
        self.path_values = {"delivery_id": str(delivery.id), "version": self.version, "decision": "approve"}
        session.commit()

    def path(self, route: str) -> str:
        """The route's path with this project's resources filled in."""
        out = route.split(" ", 1)[1]
        names = {"/v1/webhook-endpoints/": "hook", "/v1/alert-rules/": "latency"}
        for prefix, name in names.items():
            if out.startswith(prefix):
                out = out.replace("{name}", name)
        for param, value in self.path_values.items():
            out = out.replace("{" + param + "}", value)
        assert "{" not in out, f"no value for a path parameter of {route}"
        return out


@pytest.fixture
def victim(session: Session) -> Victim:
    return Victim(session)


def _snapshot(session: Session) -> dict[str, Any]:
    """Every row of every table (ordered), so any change anywhere shows."""
    session.expire_all()
    return {table.name: [tuple(str(v) for v in row) for row in session.execute(
        select(*table.columns).order_by(*table.primary_key.columns))] for table in Base.metadata.sorted_tables}


def test_every_ui_write_route_refuses_a_visitor_without_a_session(client: TestClient, session: Session,
                                                                  victim: Victim) -> None:
    key = victim.key
    ui_writes = [r for r in WRITE_ROUTES if r.split(" ", 1)[1].startswith("/ui/") and r not in UI_PUBLIC_WRITES]
    assert ui_writes, "the UI has decision routes; none found"
    before = _snapshot(session)
    for route in ui_writes:
        method, path = route.split(" ", 1)
        url = path.replace("{project}", key.project_slug).replace("{version}", "v1")
        url = "/".join("1" if part.startswith("{") else part for part in url.split("/"))
        # A project key is no UI credential: with or without it, the visitor is sent to sign in.
        for headers in ({}, {"Authorization": f"Bearer {key.key}"}):
            r = client.request(method, url, data={"comment": "x", "reason": "x", "csrf_token": "x"},
                               headers=headers, follow_redirects=False)
            assert r.status_code in (303, 401, 403), (route, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"].startswith("/ui/login"), route
    assert _snapshot(session) == before


BAD_CREDENTIALS = {
    "missing": lambda v: {},
    "malformed: no scheme": lambda v: {"Authorization": v.key.key},
    "malformed: basic": lambda v: {"Authorization": f"Basic {v.key.key}"},
    "malformed: empty bearer": lambda v: {"Authorization": "Bearer "},
    "wrong": lambda v: {"Authorization": f"Bearer dl_{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex}"},
    "almost right": lambda v: {"Authorization": f"Bearer {v.key.key[:-1]}{'0' if v.key.key[-1] != '0' else '1'}"},
    "revoked": lambda v: {"Authorization": f"Bearer {v.revoked.key}"},
    "other project's key, naming this project": lambda v: {"Authorization": f"Bearer {v.other.key}",
                                                           "X-Driftloop-Project": v.key.project_slug},
}


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_write_routes_refuse_bad_credentials_and_change_nothing(
    client: TestClient, session: Session, victim: Victim, credentials: Any
) -> None:
    before = _snapshot(session)
    expected = 403 if "X-Driftloop-Project" in credentials(victim) else 401
    for route in KEYED_WRITE_ROUTES:
        example = _example(route)
        assert example is not None
        method = route.split(" ", 1)[0]
        headers = {**example.get("headers", {}), **credentials(victim)}
        r = client.request(method, victim.path(route), headers=headers,
                           **{k: v for k, v in example.items() if k != "headers"})
        assert r.status_code == expected, (route, r.status_code, r.text[:200])
        if expected == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"
        assert victim.key.key not in r.text and victim.other.key not in r.text  # never echoed
    assert _snapshot(session) == before


def test_the_examples_are_accepted_with_the_right_key(client: TestClient, session: Session, victim: Victim) -> None:
    # The refusals above mean something only if the same requests succeed with a valid key.
    auth = {"Authorization": f"Bearer {victim.key.key}"}
    statuses = {}
    for route in KEYED_WRITE_ROUTES:
        if route.startswith("DELETE"):
            continue  # run after the others, below, so the resources exist for them
        example = _example(route) or {}
        r = client.request(route.split(" ", 1)[0], victim.path(route),
                           headers={**example.get("headers", {}), **auth},
                           **{k: v for k, v in example.items() if k != "headers"})
        statuses[route] = r.status_code
    for route in KEYED_WRITE_ROUTES:
        if route.startswith("DELETE"):
            statuses[route] = client.delete(victim.path(route), headers=auth).status_code
    assert {r: s for r, s in statuses.items() if not 200 <= s < 300} == {}


def _project_rows(session: Session, project_id: int) -> dict[str, Any]:
    session.expire_all()
    out: dict[str, Any] = {}
    for table in Base.metadata.sorted_tables:
        if "project_id" in table.columns:
            rows = session.execute(select(*table.columns).where(table.c.project_id == project_id)
                                   .order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(str(v) for v in row) for row in rows]
    return out


def test_another_projects_valid_key_cannot_touch_this_projects_resources(
    client: TestClient, session: Session, victim: Victim
) -> None:
    before = _project_rows(session, victim.project.id)
    auth = {"Authorization": f"Bearer {victim.other.key}"}
    for route in KEYED_WRITE_ROUTES:
        example = _example(route) or {}
        r = client.request(route.split(" ", 1)[0], victim.path(route),
                           headers={**example.get("headers", {}), **auth},
                           **{k: v for k, v in example.items() if k != "headers"})
        assert r.status_code < 500, (route, r.text[:200])
        if "{" in route:  # A's resource, addressed by name or id: for B it does not exist
            assert r.status_code == 404, (route, r.status_code, r.text[:200])
    assert _project_rows(session, victim.project.id) == before
