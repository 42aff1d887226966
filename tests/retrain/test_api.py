"""The loop's HTTP API on both backends: versions and aliases, decisions with actor and reason, the gate's
audited override, the serving hook (called after the alias move; its failure recorded, never fatal), manual
retraining jobs, and project scoping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.llm import LoadedLM
from monitor.models import Project
from monitor.queue import serial_runner
from monitor.settings import Settings
from retrain.serving import lm_cache
from tests.support.factories import make_key
from tests.support.retrain import add_candidate
from tests.support.services import free_port
from tests.support.webhook_receiver import Answer, running_receiver


def keyed(session: Session) -> tuple[dict[str, str], int]:
    created = make_key(session)
    project_id = session.scalars(select(Project.id).where(Project.slug == created.project_slug)).one()
    session.commit()
    return {"Authorization": f"Bearer {created.key}"}, project_id


def decide(client: TestClient, auth: dict[str, str], version: str, decision: str, **body: Any) -> Any:
    return client.post(f"/v1/models/{version}/{decision}", headers=auth, json={"actor": "alice", **body})


def test_versions_decisions_and_audit(client: TestClient, session: Session) -> None:
    auth, pid = keyed(session)
    add_candidate(session, pid, passing=True)
    add_candidate(session, pid, passing=False)
    session.commit()

    listing = client.get("/v1/models", headers=auth).json()
    assert listing["aliases"] == {"champion": "v0", "challenger": "v2"}
    assert [(v["name"], v["status"], v["gates_passed"]) for v in listing["versions"]] == [
        ("v2", "candidate", False), ("v1", "candidate", True), ("v0", "champion", None)]

    r = decide(client, auth, "v2", "promote", reason="ship")
    assert r.status_code == 409 and "failed its evaluation gates" in r.json()["detail"]
    r = decide(client, auth, "v2", "promote", override=True)
    assert r.status_code == 409 and "needs a reason" in r.json()["detail"]
    r = decide(client, auth, "v2", "promote", override=True, reason="scorer false positive")
    assert r.status_code == 200, r.text
    assert r.json() == {"champion": "v2", "previous": "v0", "serving_hook": {
        "called": False, "ok": True, "url": None, "status_code": None, "error": "no serving hook configured"}}

    assert decide(client, auth, "v1", "approve", reason="fine").json()["version"]["status"] == "approved"
    assert decide(client, auth, "v1", "reject", reason="changed my mind").json()["version"]["status"] == "rejected"
    assert decide(client, auth, "v0", "rollback").status_code == 409  # not the champion
    r = decide(client, auth, "champion", "rollback", reason="complaints")
    assert r.status_code == 200, r.text
    assert r.json()["champion"] == "v0" and r.json()["previous"] == "v2"

    v2 = client.get("/v1/models/v2", headers=auth).json()
    assert v2["status"] == "rejected" and v2["parent"] == "v0" and v2["trigger"] == {"kind": "test"}
    assert [g["name"] for g in v2["gate_results"] if not g["passed"]] == ["toxicity_rate"]
    assert [(a["action"], a["actor"]) for a in v2["audit"]] == [("promote_override", "alice"),
                                                               ("register_challenger", "test")]
    audit = client.get("/v1/audit", headers=auth).json()
    assert [a["action"] for a in audit][:3] == ["rollback", "reject", "approve"]
    assert audit[0]["reason"] == "complaints" and audit[0]["version"] == "v0"
    assert client.post("/v1/models/v2/archive", headers=auth, json={"actor": "x"}).status_code == 422


def test_serving_hook_after_promotion_and_its_failure_is_audited(
    client: TestClient, session: Session, settings: Settings,
) -> None:
    auth, pid = keyed(session)
    v1 = add_candidate(session, pid, passing=True, adapter_path="/models/adapters/v1")
    session.commit()
    with running_receiver() as receiver:
        receiver.answer(Answer(200, body=b"Success: LoRA adapter 'v1' added successfully."))
        client.app.state.settings = settings.model_copy(update={"serving_hook_url": receiver.url})  # type: ignore[attr-defined]
        r = decide(client, auth, "v1", "promote", reason="better")
        assert r.json()["serving_hook"] == {"called": True, "ok": True, "url": receiver.url, "status_code": 200,
                                            "error": None}
        assert [json.loads(x.body) for x in receiver.requests] == [{"lora_name": "v1", "lora_path": v1.adapter_path}]

    # Nothing listens on this port: the rollback still happens, and the failure is in the audit log.
    dead = f"http://127.0.0.1:{free_port()}/v1/load_lora_adapter"
    client.app.state.settings = settings.model_copy(update={"serving_hook_url": dead})  # type: ignore[attr-defined]
    add_candidate(session, pid, passing=True, adapter_path="/models/adapters/v2")
    session.commit()
    r = decide(client, auth, "v2", "promote", reason="newer")
    assert r.status_code == 200 and r.json()["champion"] == "v2"
    assert r.json()["serving_hook"]["ok"] is False and "ConnectError" in r.json()["serving_hook"]["error"]
    audit = client.get("/v1/audit", headers=auth).json()
    assert [(a["action"], a["version"], a["details"].get("ok")) for a in audit[:4]] == [
        ("serving_hook", "v2", False), ("promote", "v2", None), ("register_challenger", "v2", None),
        ("serving_hook", "v1", True)]


def test_manual_retrain_job_runs_and_reports_progress(
    client: TestClient, session: Session, tiny_settings: Settings, tiny: LoadedLM,
) -> None:
    auth, pid = keyed(session)
    from tests.support.retrain import seed_feedback

    seed_feedback(session, pid, 20)
    session.commit()
    lm_cache.provide(tiny_settings.base_model, tiny_settings, tiny)
    client.app.state.settings = tiny_settings  # type: ignore[attr-defined]
    bad = client.post("/v1/retrain", headers=auth, json={"actor": "bob", "params": {"lora": {"rank": 4}}})
    assert bad.status_code == 422
    (problem,) = bad.json()["detail"]
    assert problem["field"] == "params" and "unknown retrain.lora keys ['rank']" in problem["message"]

    r = client.post("/v1/retrain", headers=auth, json={"actor": "bob", "reason": "weekly",
                                                       "params": {"eval": {"similarity": False}}})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    serial_runner("gpu").join()  # embedded mode: the job ran on the serial runner after the reply
    job = client.get(f"/v1/retrain/jobs/{r.json()['id']}", headers=auth).json()
    assert job["status"] == "succeeded", job["message"]
    assert job["progress"] == 1.0 and len(job["losses"]) == 3 and job["trigger"]["reason"] == "weekly"
    assert [j["id"] for j in client.get("/v1/retrain/jobs", headers=auth).json()] == [job["id"]]
    v1 = client.get("/v1/models/challenger", headers=auth).json()
    assert v1["name"] == "v1" and v1["job_id"] == job["id"] and v1["created_by"] == "bob"
    assert v1["eval_results"]["challenger"]["similarity"] is None  # switched off by the job's params
    # Clients see the adapter relative to the data directory, never the server's absolute path.
    assert v1["adapter_path"] == f"data:adapters/project-{pid}/job-{job['id']}"
    assert (Path(tiny_settings.data_dir) / "adapters" / f"project-{pid}" / f"job-{job['id']}").is_dir()


def test_routes_are_scoped_and_authenticated(client: TestClient, session: Session) -> None:
    auth, pid = keyed(session)
    other, _ = keyed(session)
    add_candidate(session, pid, passing=True)
    session.commit()
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models/v1", headers=other).status_code == 404
    assert decide(client, other, "v1", "promote", reason="x").status_code == 404
    assert client.get("/v1/retrain/jobs/999999", headers=auth).status_code == 404
    assert client.post("/v1/models/v1/promote", headers=auth, json={"reason": "no actor"}).status_code == 422


def test_the_audit_log_records_the_key_behind_a_label(client: TestClient, session: Session) -> None:
    """Issue #18 finding 4: `{"actor": "alice"}` sent with an admin key is recorded as the label "alice",
    made by that key - never as if the operator alice had decided in the UI."""
    created = make_key(session, name="deploy-bot")
    pid = session.scalars(select(Project.id).where(Project.slug == created.project_slug)).one()
    session.commit()
    auth = {"Authorization": f"Bearer {created.key}"}
    add_candidate(session, pid, passing=True)
    session.commit()
    assert decide(client, auth, "v1", "approve", reason="looks fine").status_code == 200
    entry = client.get("/v1/audit", headers=auth).json()[0]
    assert entry["action"] == "approve" and entry["actor"] == "alice"
    assert entry["principal"] == {"kind": "api-key", "name": "deploy-bot", "key_id": created.id,
                                  "text": f'API key #{created.id} "deploy-bot"'}
    # the same on the version's own trail, and on a promotion (which commits in units of its own)
    assert decide(client, auth, "v1", "promote", reason="ship").status_code == 200
    trail = client.get("/v1/models/v1", headers=auth).json()["audit"]
    assert [(a["action"], a["actor"], (a["principal"] or {}).get("key_id")) for a in trail] == [
        ("promote", "alice", created.id), ("approve", "alice", created.id), ("register_challenger", "test", None)]
    assert trail[2]["principal"]["kind"] == "system"
