"""The alerting API on both backends: rules CRUD and YAML import, endpoints (secret shown once), alerts,
deliveries and redelivery, every route scoped to the key's project."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.projects.service import get_project
from monitor.settings import Settings
from tests.support.factories import make_key
from tests.support.metric_windows import drift_point, finish, write_window
from tests.support.webhook_receiver import Receiver

RULE = {"name": "prompt-drift", "metric": "drift.prompt.mmd", "field": "p_value", "comparator": "<",
        "threshold": 0.01, "actions": [{"type": "webhook", "endpoints": ["oncall"]}]}


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path, local_hooks: Settings) -> Settings:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    return Settings(database_url=url, data_dir=tmp_path / "data", webhook_allow_private=True)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fields(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """422 bodies, FastAPI's or ours, as {field: message}."""
    out = {}
    for d in response.json()["detail"]:
        field = d.get("field") or ".".join(str(p) for p in d["loc"] if p != "body")
        out[field] = d.get("message") or d["msg"]
    return out


def test_rules_crud_and_validation(client: TestClient, session: Session, receiver: Receiver) -> None:
    key = make_key(session)
    session.commit()
    h = auth(key.key)
    missing_endpoint = client.post("/v1/alert-rules", json=RULE, headers=h)
    assert missing_endpoint.status_code == 422
    assert "no webhook endpoint named 'oncall'" in fields(missing_endpoint)["actions[0].endpoints[0]"]
    assert client.post("/v1/webhook-endpoints", json={"name": "oncall", "url": receiver.url},
                       headers=h).status_code == 201
    created = client.post("/v1/alert-rules", json=RULE, headers=h)
    assert created.status_code == 201 and created.json()["cooldown"] == 0 and created.json()["for_windows"] == 1
    assert client.post("/v1/alert-rules", json=RULE, headers=h).status_code == 409
    bad = client.post("/v1/alert-rules", json={**RULE, "name": "x", "threshold": "lots", "metric": "ops.nope"},
                      headers=h)
    assert bad.status_code == 422 and {"threshold", "metric"} <= set(fields(bad))
    changed = client.put("/v1/alert-rules/prompt-drift", json={**RULE, "for_windows": 3, "cooldown": "2h"},
                         headers=h)
    assert changed.status_code == 200 and (changed.json()["for_windows"], changed.json()["cooldown"]) == (3, 7200)
    renamed = client.put("/v1/alert-rules/prompt-drift", json={**RULE, "name": "other"}, headers=h)
    assert renamed.status_code == 422 and "name" in fields(renamed)
    assert [r["name"] for r in client.get("/v1/alert-rules", headers=h).json()] == ["prompt-drift"]
    assert client.get("/v1/alert-rules/prompt-drift", headers=h).json()["for_windows"] == 3
    in_use = client.delete("/v1/webhook-endpoints/oncall", headers=h)
    assert in_use.status_code == 409 and "prompt-drift" in in_use.json()["detail"]
    assert client.delete("/v1/alert-rules/prompt-drift", headers=h).status_code == 204
    assert client.get("/v1/alert-rules/prompt-drift", headers=h).status_code == 404
    assert client.delete("/v1/webhook-endpoints/oncall", headers=h).status_code == 204


def test_yaml_import(client: TestClient, session: Session, receiver: Receiver) -> None:
    key = make_key(session)
    session.commit()
    h = auth(key.key)
    client.post("/v1/webhook-endpoints", json={"name": "oncall", "url": receiver.url}, headers=h)
    text = f"""
project: {key.project_slug}
rules:
  - {{name: drift, metric: drift.prompt.mmd, field: p_value, comparator: "<", threshold: 0.01,
      actions: [{{type: webhook, endpoints: [oncall]}}, {{type: retrain}}]}}
  - {{name: slow, metric: ops.latency_p95, comparator: ">", threshold: 2500, for_windows: 3, cooldown: 1h}}
"""
    post = lambda body, **params: client.post("/v1/alert-rules/import", content=body, params=params,  # noqa: E731
                                              headers={**h, "content-type": "application/yaml"})
    assert post(text, dry_run=True).json() == {"created": ["drift", "slow"], "updated": [], "unchanged": [],
                                               "deleted": [], "dry_run": True, "warnings": []}
    assert client.get("/v1/alert-rules", headers=h).json() == []  # a dry run changes nothing
    assert post(text).json()["created"] == ["drift", "slow"]
    assert post(text).json()["unchanged"] == ["drift", "slow"]
    assert post(text.replace("2500", "3000")).json()["updated"] == ["slow"]
    only_drift = text.split("  - {name: slow")[0]
    assert post(only_drift).json()["unchanged"] == ["drift"]  # without prune, others stay
    assert post(only_drift, prune=True).json()["deleted"] == ["slow"]
    invalid = post(text.replace("threshold: 0.01", "threshold: 7"))
    assert invalid.status_code == 422 and "between 0 and 1" in fields(invalid)["rules[0]"]
    wrong_endpoint = post(text.replace("[oncall]", "[pager]"))
    assert wrong_endpoint.status_code == 422 and "rules[0].actions[0].endpoints[0]" in fields(wrong_endpoint)
    other_project = post(text.replace(f"project: {key.project_slug}", "project: someone-else"))
    assert other_project.status_code == 422 and "someone-else" in fields(other_project)["project"]
    broken = post("rules: [")
    assert broken.status_code == 422 and "not valid YAML" in next(iter(fields(broken).values()))
    assert client.post("/v1/alert-rules/import", content="x" * (600 * 1024), headers=h).status_code == 413


def test_endpoint_secret_is_shown_once_and_never_logged(
    client: TestClient, session: Session, receiver: Receiver, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = make_key(session)
    session.commit()
    h = auth(key.key)
    created = client.post("/v1/webhook-endpoints", json={"name": "rx", "url": receiver.url,
                                                         "event_types": ["alert.*"], "payload_format": "slack"},
                          headers=h)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    rotated = client.post("/v1/webhook-endpoints/rx/rotate-secret", headers=h).json()
    assert rotated["secret"] != secret and rotated["endpoint"]["previous_secret_valid_until"] is not None
    patched = client.patch("/v1/webhook-endpoints/rx", json={"enabled": False}, headers=h).json()
    assert patched["enabled"] is False and patched["disabled_reason"] == "disabled by a user"
    for text in (client.get("/v1/webhook-endpoints", headers=h).text,
                 client.get("/v1/webhook-endpoints/rx", headers=h).text, caplog.text):
        for s in (secret, rotated["secret"]):
            assert s not in text and s.removeprefix("whsec_") not in text
    bad_types = client.post("/v1/webhook-endpoints", json={"name": "y", "url": receiver.url,
                                                           "event_types": ["alert.exploded"]}, headers=h)
    assert bad_types.status_code == 422 and "matches no event type" in fields(bad_types)["event_types"]
    bad_url = client.post("/v1/webhook-endpoints", json={"name": "z", "url": "ftp://x"}, headers=h)
    assert bad_url.status_code == 422 and "scheme" in fields(bad_url)["url"]


def test_private_urls_are_refused_unless_allowed(
    settings: Settings, connection, session_maker: sessionmaker[Session], session: Session,  # type: ignore[no-untyped-def]
) -> None:
    strict = create_app(settings.model_copy(update={"webhook_allow_private": False}), engine=connection.engine)
    strict.state.session_factory = session_maker
    key = make_key(session)
    session.commit()
    with TestClient(strict) as c:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://localhost/x",
                    "http://[::1]/"):
            r = c.post("/v1/webhook-endpoints", json={"name": "x", "url": url}, headers=auth(key.key))
            assert r.status_code == 422 and "DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE" in fields(r)["url"], url


def test_alerts_deliveries_redelivery_and_project_scoping(
    client: TestClient, session: Session, session_maker: sessionmaker[Session], receiver: Receiver,
) -> None:
    key, other = make_key(session), make_key(session)
    session.commit()
    h, o = auth(key.key), auth(other.key)
    secret = client.post("/v1/webhook-endpoints", json={"name": "oncall", "url": receiver.url},
                         headers=h).json()["secret"]
    client.post("/v1/alert-rules", json=RULE, headers=h)
    pid = get_project(session, key.project_slug).id
    receiver.answer(500)
    write_window(session_maker, pid, 0, [drift_point(0.001)])
    finish(session_maker, pid, 0)

    [alert] = client.get("/v1/alerts", headers=h).json()
    assert alert["status"] == "firing" and alert["transitions"][0]["evidence"][0]["p_value"] == 0.001
    assert client.get("/v1/alerts", params={"status": "resolved"}, headers=h).json() == []
    assert client.get("/v1/alerts", params={"status": "exploded"}, headers=h).status_code == 422
    [delivery] = client.get("/v1/webhook-deliveries", headers=h).json()
    assert delivery["status"] == "pending" and delivery["attempt_log"][0]["status_code"] == 500
    again = client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=h)
    assert again.status_code == 202 and again.json()["status"] == "succeeded"
    assert [a["trigger"] for a in again.json()["attempt_log"]] == ["auto", "manual"]
    assert len(receiver.verified(secret)) == 2

    # Another project's key sees and touches none of it.
    for path in ("/v1/alerts", "/v1/alert-rules", "/v1/webhook-endpoints", "/v1/webhook-deliveries",
                 "/v1/alert-actions"):
        assert client.get(path, headers=o).json() == [], path
        assert client.get(path).status_code == 401
    assert client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=o).status_code == 404
    assert client.get("/v1/alert-rules/prompt-drift", headers=o).status_code == 404
    assert client.delete("/v1/webhook-endpoints/oncall", headers=o).status_code == 404
    assert receiver.count() == 2
