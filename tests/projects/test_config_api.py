"""The project's settings over HTTP: read with the read scope, change with admin (audited, dry-run, recompute),
the per-project catalog, and rule warnings for metrics the project does not compute."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.support.factories import make_key


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_read_change_and_audit(client: TestClient, session: Session) -> None:
    admin = make_key(session, scopes="admin")
    reader = make_key(session, admin.project_slug, scopes="read")
    session.commit()
    got = client.get("/v1/project/config", headers=_h(reader.key))
    assert got.status_code == 200 and got.json()["stored"] == {}
    assert got.json()["config"]["reference"] == {"kind": "first_n", "n": 1000, "model_version": None}
    assert client.put("/v1/project/config", json={"window_seconds": 1800},
                      headers=_h(reader.key)).status_code == 403  # changing needs admin
    dry = client.patch("/v1/project/config?dry_run=true", json={"window_seconds": 1800}, headers=_h(admin.key))
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert dry.json()["changes"] == [{"key": "window_seconds", "before": 3600, "after": 1800}]
    assert dry.json()["recompute"]["rebucket"] is True and dry.json()["change_id"] is None
    assert client.get("/v1/project/config", headers=_h(reader.key)).json()["stored"] == {}
    done = client.patch("/v1/project/config", json={"segment_keys": ["region"], "bias_attribute": "region"},
                        headers=_h(admin.key))
    assert done.status_code == 200 and done.json()["change_id"] is not None, done.text
    assert done.json()["recompute"]["families"] == ["bias", "drift", "eval", "feedback", "ops", "safety"]
    put = client.put("/v1/project/config", json={"segment_keys": ["region"]}, headers=_h(admin.key))
    assert put.json()["changes"] == [{"key": "bias_attribute", "before": "region", "after": None}]  # PUT replaces
    history = client.get("/v1/project/config/history", headers=_h(reader.key)).json()
    assert [h["source"] for h in history] == ["api", "api"]
    assert history[0]["actor"] == f"api key {admin.prefix}"
    summary = client.get("/v1/project", headers=_h(reader.key)).json()
    assert summary["slug"] == admin.project_slug and summary["settings_changed"] == ["segment_keys"]


def test_invalid_settings_are_a_422_naming_the_field(client: TestClient, session: Session) -> None:
    admin = make_key(session, scopes="admin")
    session.commit()
    bad = client.patch("/v1/project/config", json={"window_seconds": 10, "reference": {"kind": "first_n", "n": 5}},
                       headers=_h(admin.key))
    assert bad.status_code == 422, bad.text
    fields = {p["field"] for p in bad.json()["detail"]}
    assert fields == {"window_seconds", "reference.n"}
    unknown = client.patch("/v1/project/config", json={"windw": 1}, headers=_h(admin.key))
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "windw"
    assert client.get("/v1/project/config/history", headers=_h(admin.key)).json() == []


def test_catalog_says_what_the_project_computes_and_rules_get_warnings(client: TestClient, session: Session) -> None:
    admin = make_key(session, scopes="admin")
    session.commit()
    assert client.get("/v1/metrics/catalog").status_code == 401  # a read like the others
    catalog = {m["name"]: m for m in client.get("/v1/metrics/catalog", headers=_h(admin.key)).json()}
    assert catalog["drift.prompt.mmd"]["computed"] is True
    assert catalog["drift.prompt.classifier"]["computed"] is False
    assert "drift_methods" in catalog["drift.prompt.classifier"]["note"]
    assert catalog["bias.toxicity_rate.gap"]["computed"] is False and "bias_attribute" in \
        catalog["bias.toxicity_rate.gap"]["note"]
    assert catalog["safety.toxicity_rate.response"]["computed"] is True
    rule = {"name": "clf", "metric": "drift.prompt.classifier", "field": "flagged", "comparator": "==",
            "threshold": 1}
    made = client.post("/v1/alert-rules", json=rule, headers=_h(admin.key))
    assert made.status_code == 201, made.text
    assert len(made.json()["warnings"]) == 1 and "cannot fire" in made.json()["warnings"][0]
    fine = client.post("/v1/alert-rules", json={**rule, "name": "mmd", "metric": "drift.prompt.mmd"},
                       headers=_h(admin.key))
    assert fine.json()["warnings"] == []
    seg = client.post("/v1/alert-rules", json={**rule, "name": "seg", "metric": "drift.prompt.mmd",
                                               "segment": "region=eu"}, headers=_h(admin.key))
    assert "segment key 'region'" in seg.json()["warnings"][0]
    # Once the project computes it, the warning is gone.
    client.patch("/v1/project/config", json={"drift_methods": ["mmd", "classifier"]}, headers=_h(admin.key))
    again = client.put("/v1/alert-rules/clf", json=rule, headers=_h(admin.key))
    assert again.status_code == 200 and again.json()["warnings"] == []
    per_project = {m["name"]: m for m in client.get("/v1/project/metrics", headers=_h(admin.key)).json()}
    assert per_project["drift.prompt.classifier"]["computed"] is True
