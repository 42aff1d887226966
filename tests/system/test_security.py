"""Every route of the app is public by name (PUBLIC_ROUTES) or refuses a visitor without a key or session.
Authentication of every write route, enumerated from the app itself (a new route is covered, or this test
fails until it is): missing, malformed, wrong, revoked and other-project keys are refused with 401/403 and the
database is unchanged; a valid key of another project cannot touch this project's resources.

Scopes, for every keyed route (reads too): each needs the scope of its kind (ingest, read, admin); a key without
it gets a 403 naming the scope and changes nothing; a key with only that scope is served."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.models import Alert
from monitor.alerts.rule_service import create_rule, get_rule
from monitor.alerts.rules import RuleSpec
from monitor.alerts.triage import silence
from monitor.api.app import create_app
from monitor.api.openapi import api_routes, authenticated_routes, required_scope
from monitor.ingest.service import ingest_events
from monitor.models import Base, Event
from monitor.projects.service import (
    SCOPES,
    CreatedKey,
    create_key,
    get_project,
    grants,
    parse_scopes,
    revoke_key,
)
from monitor.schemas import EventIn
from monitor.settings import Settings
from monitor.tables import import_all_tables
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from monitor.webhooks.models import WebhookDelivery, WebhookMessage
from retrain.jobs.service import create_job
from retrain.models import AuditEntry, ModelVersion
from tests.ingest.otlp.build import make_request, make_span
from tests.support.factories import event_dict, make_key
from tests.support.retrain import add_candidate

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Write routes that authenticate otherwise than with a project key, and why.
OTHER_AUTH: dict[str, str] = {
    "/ui/": "the approval UI: an operator session cookie plus a CSRF token (tests/ui/, and the test below)",
}
UI_PUBLIC_WRITES = {"POST /ui/login"}  # signing in is how a session starts
# Every route that answers without a project key or an operator session, and why (README's Security section and
# SECURITY.md list the same). Every other route of the app must refuse a visitor without credentials.
PUBLIC_ROUTES: dict[str, str] = {
    "GET /healthz": "liveness probe",
    "GET /readyz": "readiness probe (load balancers, orchestrators)",
    "GET /metrics": "Prometheus scrape: process and request counters, no project data",
    "GET /openapi.json": "the API description: routes, shapes and scopes, no data",
    "GET /docs": "Swagger UI over /openapi.json",
    "GET /docs/oauth2-redirect": "Swagger UI's OAuth helper page (static)",
    "GET /redoc": "ReDoc over /openapi.json",
    "GET /ui/login": "the sign-in form",
    "POST /ui/login": "signing in is how a session starts",
    "GET /ui/static/{path}": "the UI's stylesheet, shipped with the package",
}

import_all_tables()
_APP = create_app(Settings(database_url="sqlite://"))
WRITE_ROUTES = sorted(
    f"{m} {r.path_format}" for r in api_routes(_APP) for m in (r.methods or ()) if m in WRITE_METHODS
)
KEYED_WRITE_ROUTES = [r for r in WRITE_ROUTES
                      if not any(r.split(" ", 1)[1].startswith(prefix) for prefix in OTHER_AUTH)]
AUTHENTICATED = {f"{m} {r.path_format}" for r in authenticated_routes(_APP) for m in (r.methods or ())}
# Every route a project key opens, reads included, with the scope it declares.
ROUTE_SCOPES = {f"{m} {r.path_format}": required_scope(r.dependant) for r in authenticated_routes(_APP)
                for m in (r.methods or ()) if r.dependant is not None}
KEYED_ROUTES = sorted(ROUTE_SCOPES)
INGEST_ROUTES = {"POST /v1/events", "POST /v1/feedback", "POST /v1/traces"}

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
        "POST /v1/erasure": {"json": {"actor": "mallory", "session_id": "victim-session", "dry_run": True}},
        "PUT /v1/project/config": {"json": {"window_seconds": 1800}},
        "PATCH /v1/project/config": {"json": {"segment_keys": ["region"]}},
        "POST /v1/alerts/{alert_id}/ack": {"json": {"comment": "on it", "actor": "mallory"}},
        "POST /v1/alert-silences": {"json": {"rule": "latency", "minutes": 30, "actor": "mallory"}},
        "POST /v1/alert-silences/{silence_id}/lift": {"json": {"actor": "mallory"}},
    }
    if route.startswith("GET "):
        return examples.get(route, {})  # the path (with the victim's resources) is the whole request
    return examples.get(route)


def test_every_write_route_is_authenticated_and_has_an_example() -> None:
    assert len(WRITE_ROUTES) >= 14
    for route in WRITE_ROUTES:
        if any(route.split(" ", 1)[1].startswith(prefix) for prefix in OTHER_AUTH):
            continue
        assert route in AUTHENTICATED, f"{route} is a write route without a project key"
        assert _example(route) is not None, f"add a valid example request for {route} to this test"


def all_routes(app: FastAPI) -> list[str]:
    """Every "METHOD path" the app serves, flattened through included routers and mounts (HEAD aside: it is
    GET without a body). Mounts (static files) count as GET."""
    out: set[str] = set()
    for c in iter_route_contexts(app.routes):
        methods = getattr(c.original_route, "methods", None) or {"GET"}
        out.update(f"{m} {c.path_format}" for m in methods if m != "HEAD")
    return sorted(out)


def _any_path(route: str) -> str:
    """The route's path with every parameter filled in (no credentials means no resource is ever reached)."""
    return "/".join("1" if part.startswith("{") else part for part in route.split(" ", 1)[1].split("/"))


def test_every_route_is_public_by_name_or_refuses_a_visitor_without_credentials(
    client: TestClient, session: Session
) -> None:
    routes = all_routes(client.app)  # type: ignore[arg-type]  # the app as create_app() mounts it
    assert set(PUBLIC_ROUTES) <= set(routes), "a public route listed here no longer exists"
    assert len(routes) >= 50 and {"GET /v1/metrics/catalog", "GET /ui/p/{slug}/models"} <= set(routes)
    before = _snapshot(session)
    answered: dict[str, int] = {}
    for route in routes:
        if route in PUBLIC_ROUTES:
            continue
        method = route.split(" ", 1)[0]
        r = client.request(method, _any_path(route), follow_redirects=False)
        if route.split(" ", 1)[1].startswith("/ui/"):  # the approval UI: sent to sign in, or refused
            ok = r.status_code in (401, 403) or (r.status_code == 303
                                                 and r.headers["location"].startswith("/ui/login"))
        else:
            ok = r.status_code == 401 and r.headers.get("WWW-Authenticate") == "Bearer"
        if not ok:
            answered[route] = r.status_code
    assert answered == {}, "routes that do not refuse a visitor without a key or session: require one, or list " \
                           "the route in PUBLIC_ROUTES with the reason it is public"
    assert _snapshot(session) == before
    # The public routes do answer a visitor; signing in without a form nonce gets the sign-in form back.
    for route in PUBLIC_ROUTES:
        method, path = route.split(" ", 1)
        r = client.request(method, path.replace("{path}", "style.css"), follow_redirects=False)
        assert (r.status_code == 200) if method == "GET" else 'name="nonce"' in r.text, (route, r.status_code)


def bearer(key: CreatedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


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
        job = create_job(session, self.project.id, created_by="test", settings=settings)
        job.status = "failed"  # finished: the project's one-job-at-a-time limit lets POST /v1/retrain through
        rule = get_rule(session, self.project.id, "latency")
        now = datetime.now(UTC)
        alert = Alert(project_id=self.project.id, rule_id=rule.id, rule_name=rule.name, metric=rule.metric,
                      segment="all", severity="warning", status="firing", started_window=now, last_window=now)
        session.add(alert)
        session.flush()
        muted = silence(session, self.project, rule="latency", until=now + timedelta(hours=1), actor="test")
        ingest_events(session, self.project.id, [EventIn.model_validate(event_dict())])
        event_id = session.scalars(select(Event.id).where(Event.project_id == self.project.id)).first()
        self.path_values = {"delivery_id": str(delivery.id), "version": self.version, "decision": "approve",
                            "job_id": str(job.id), "alert_id": str(alert.id), "silence_id": str(muted.id),
                            "event_id": str(event_id)}
        # One key per scope, holding that scope alone.
        self.scoped: dict[str, CreatedKey] = {
            scope: make_key(session, self.key.project_slug, name=scope, scopes=scope) for scope in SCOPES}
        session.commit()

    def send(self, client: TestClient, route: str, credentials: dict[str, str]) -> Any:
        """The route's example request, with these credential headers."""
        example = _example(route)
        assert example is not None, f"add a valid example request for {route} to this test"
        return client.request(route.split(" ", 1)[0], self.path(route),
                              headers={**example.get("headers", {}), **credentials},
                              **{k: v for k, v in example.items() if k != "headers"})

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
def victim(session: Session, monkeypatch: pytest.MonkeyPatch) -> Victim:
    # POST /v1/retrain queues a job for the serial runner; training it (in the runner's thread, on the test's one
    # shared connection, while the test goes on sending requests) is not what these tests are about.
    monkeypatch.setattr("retrain.api.submit", lambda job_id, **_: None)
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
        r = victim.send(client, route, credentials(victim))
        assert r.status_code == expected, (route, r.status_code, r.text[:200])
        if expected == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"
        assert victim.key.key not in r.text and victim.other.key not in r.text  # never echoed
    assert _snapshot(session) == before


def test_the_examples_are_accepted_with_the_right_scope(client: TestClient, session: Session, victim: Victim) -> None:
    # The refusals here mean something only if the same requests succeed with a valid key holding nothing but
    # the route's scope (and reads with an admin key too: admin includes read).
    statuses: dict[str, int] = {}
    for route in sorted(KEYED_ROUTES, key=lambda r: (not r.startswith("GET"), r.startswith("DELETE"))):
        # Reads first (nothing is deleted yet), deletes last so the resources exist for the other writes.
        statuses[route] = victim.send(client, route, bearer(victim.scoped[ROUTE_SCOPES[route] or ""])).status_code
        if ROUTE_SCOPES[route] == "read":
            statuses[f"{route} (admin key)"] = victim.send(client, route, bearer(victim.scoped["admin"])).status_code
    assert {r: s for r, s in statuses.items() if not 200 <= s < 300} == {}
    assert len(statuses) > len(KEYED_ROUTES)


def _expected_scope(route: str) -> str:
    if route in INGEST_ROUTES:
        return "ingest"
    return "read" if route.startswith("GET ") else "admin"


def test_every_keyed_route_needs_the_scope_of_its_kind() -> None:
    # ingest: what an application sends; read: every GET; admin: every other write. A new route must pick one
    # of IngestProject/ReaderProject/AdminProject (monitor/api/deps.py), and the right one.
    assert len(KEYED_ROUTES) >= 28 and set(KEYED_ROUTES) >= INGEST_ROUTES
    assert set(KEYED_WRITE_ROUTES) <= set(KEYED_ROUTES)
    assert {r: s for r, s in ROUTE_SCOPES.items() if s != _expected_scope(r)} == {}
    spec = _APP.openapi()
    for route, scope in ROUTE_SCOPES.items():
        method, path = route.split(" ", 1)
        operation = spec["paths"][path][method.lower()]
        assert operation["x-driftloop-scope"] == scope, route  # clients can read what a key needs
        assert f"`{scope}` scope" in operation["description"], route


def test_a_key_without_the_routes_scope_is_refused_and_changes_nothing(
    client: TestClient, session: Session, victim: Victim
) -> None:
    before = _snapshot(session)
    refused: list[tuple[str, str]] = []
    for route in KEYED_ROUTES:
        needed = ROUTE_SCOPES[route] or ""
        for held, key in victim.scoped.items():
            if grants([held], needed):
                continue
            r = victim.send(client, route, bearer(key))
            assert r.status_code == 403, (route, held, r.status_code, r.text[:200])
            detail = r.json()["detail"]
            # Which scope, what the key has, and the command that makes a key with it.
            assert f"lacks the '{needed}' scope" in detail and f"its scopes: {held}" in detail, detail
            assert f"driftloop keys create {victim.key.project_slug} --scope {needed}" in detail, detail
            assert key.key not in r.text
            refused.append((route, held))
    assert _snapshot(session) == before
    # Each route refused every key that lacks its scope: read routes the ingest key, the others two keys each.
    assert len(refused) == sum(1 if s == "read" else 2 for s in ROUTE_SCOPES.values())


def test_an_applications_ingest_key_cannot_approve_a_model_or_create_a_webhook(
    client: TestClient, session: Session, victim: Victim
) -> None:
    # The key an app embeds (`driftloop keys create PROJECT`, default scope) leaks with any pod; it must not reach
    # the model registry or point webhooks (with the project's alerts and model events) at an attacker.
    app_key = create_key(session, victim.key.project_slug, "app-pod")
    session.commit()
    assert app_key.scopes == ("ingest",)
    auth = {"Authorization": f"Bearer {app_key.key}"}
    approve = client.post(f"/v1/models/{victim.version}/approve", headers=auth,
                          json={"actor": "mallory", "reason": "ship it", "override": True})
    promote = client.post(f"/v1/models/{victim.version}/promote", headers=auth, json={"actor": "mallory"})
    hook = client.post("/v1/webhook-endpoints", headers=auth,
                       json={"name": "exfiltrate", "url": "https://93.184.215.14/collect"})
    for r in (approve, promote, hook):
        assert r.status_code == 403, r.text
        assert "'admin' scope" in r.json()["detail"]
    session.expire_all()
    version = session.scalars(select(ModelVersion).where(ModelVersion.project_id == victim.project.id,
                                                         ModelVersion.name == victim.version)).one()
    assert version.status == "candidate"
    assert not session.scalars(select(AuditEntry).where(AuditEntry.actor == "mallory")).all()
    assert client.get("/v1/webhook-endpoints/exfiltrate", headers={
        "Authorization": f"Bearer {victim.scoped['read'].key}"}).status_code == 404
    # ... while it still does its job.
    assert client.post("/v1/events", json={"events": [event_dict()]}, headers=auth).status_code == 200


@pytest.mark.parametrize(("given", "parsed"), [
    ("ingest", ("ingest",)),
    ("admin,ingest", ("ingest", "admin")),
    (" READ  admin ", ("read", "admin")),
    (["read", "ingest,read"], ("ingest", "read")),
])
def test_scope_names_parse_to_a_canonical_tuple(given: Any, parsed: tuple[str, ...]) -> None:
    assert parse_scopes(given) == parsed


@pytest.mark.parametrize(("given", "message"), [
    ("root", "unknown scope(s) 'root': choose from ingest, read, admin"),
    ("ingest,write", "unknown scope(s) 'write'"),
    ("", "at least one scope"),
    ([], "at least one scope"),
])
def test_unknown_or_missing_scopes_are_refused_and_create_nothing(
    session: Session, given: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        create_key(session, "never-created", scopes=given)
    session.expire_all()
    with pytest.raises(LookupError):
        get_project(session, "never-created")


def test_admin_includes_read_and_nothing_else() -> None:
    assert grants(["admin"], "admin") and grants(["admin"], "read")
    assert not grants(["admin"], "ingest") and not grants(["read"], "admin") and not grants(["ingest"], "read")
    assert not grants(["superuser"], "read") and not grants([], "ingest")  # unknown names grant nothing


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
    for route in KEYED_WRITE_ROUTES:
        r = victim.send(client, route, bearer(victim.other))
        assert r.status_code < 500, (route, r.text[:200])
        if "{" in route:  # A's resource, addressed by name or id: for B it does not exist
            assert r.status_code == 404, (route, r.status_code, r.text[:200])
    assert _project_rows(session, victim.project.id) == before
