"""docs/api.md's curl examples are real requests: each POST/PATCH body in the page is sent to the collector with
a key of the scope the page names, and accepted; the page links the served /docs."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.models import Event, Feedback, Project
from tests.support.factories import make_key
from tests.support.services import repo_root

_CURL = re.compile(r'curl -sS -X (POST|PATCH) "\$DRIFTLOOP_URL(/[^"]+)".*?-d \'(.*?)\'', re.S)


def _examples() -> list[tuple[str, str, dict[str, object]]]:
    page = (repo_root() / "docs" / "api.md").read_text()
    return [(m[1], m[2], json.loads(m[3])) for m in _CURL.finditer(page)]


def test_the_page_links_the_served_reference() -> None:
    page = (repo_root() / "docs" / "api.md").read_text()
    assert "`/docs`" in page and "/openapi.json" in page and "timestamp=" in page


def test_every_curl_example_is_accepted(client: TestClient, session: Session) -> None:
    examples = _examples()
    assert [(m, p.split("?")[0]) for m, p, _ in examples] == [
        ("POST", "/v1/events"), ("POST", "/v1/feedback"), ("POST", "/v1/traces"), ("PATCH", "/v1/project/config")]
    ingest = make_key(session, scopes="ingest")
    admin = make_key(session, ingest.project_slug, scopes="admin")
    session.commit()
    for method, path, body in examples:
        key = admin if path.startswith("/v1/project") else ingest
        r = client.request(method, path, json=body, headers={"Authorization": f"Bearer {key.key}"})
        assert r.status_code == 200, (path, r.text)
        if path == "/v1/traces":
            assert r.json() == {}  # every span accepted (no partialSuccess)
        if path == "/v1/events":
            assert r.json() == {"accepted": 1, "duplicates": 0}
        if path.startswith("/v1/project"):
            assert r.json()["dry_run"] is True and {c["key"] for c in r.json()["changes"]} == {
                "segment_keys", "bias_attribute"}
    session.expire_all()
    pid = session.scalars(select(Project.id).where(Project.slug == ingest.project_slug)).one()
    events = session.scalars(select(Event).where(Event.project_id == pid)).all()
    assert len(events) == 2 and "evt-0001" in {e.client_event_id for e in events}  # the span became an event too
    assert any(e.prompt == "How do I reset my password?" and e.model == "smollm2-135m" for e in events)
    assert session.scalars(select(Feedback).where(Feedback.project_id == pid,
                                                  Feedback.client_feedback_id == "fb-0001")).first() is not None
