"""The reference model server on the tiny model: answers as the champion, follows promotions and rollbacks
without a restart, routes the configured canary share, refuses bad requests clearly, logs through the SDK."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from monitor.llm import LoadedLM
from monitor.models import Project
from monitor.settings import Settings
from retrain.registry.service import promote, rollback
from retrain.serving.server import VERSION_HEADER, ServingState, create_model_server
from tests.support.retrain import add_candidate

ASK = {"model": "whatever-the-client-sends", "messages": [{"role": "user", "content": "What is case 3?"}],
       "max_tokens": 4}


def server(settings: Settings, project: Project, session_maker: sessionmaker[Session], lm: LoadedLM,
           **overrides: Any) -> TestClient:
    app = create_model_server(settings.model_copy(update=overrides), project=project.slug, factory=session_maker,
                              lm=lm, seed=7)
    return TestClient(app)


def test_answers_as_the_champion_with_its_version(
    tiny_settings: Settings, project: Project, session_maker: sessionmaker[Session], tiny: LoadedLM,
) -> None:
    with server(tiny_settings, project, session_maker, tiny) as client:
        r = client.post("/v1/chat/completions", json=ASK)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "v0" and r.headers[VERSION_HEADER] == "v0"
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
        assert isinstance(body["choices"][0]["message"]["content"], str)
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0 and 0 <= usage["completion_tokens"] <= 4
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert body["driftloop"]["route"] == "champion"
        assert client.get("/v1/models").json()["data"][0] == {
            "id": "v0", "object": "model", "owned_by": "driftloop", "alias": "champion",
            "base_model": tiny_settings.base_model}


def test_follows_promotion_and_rollback_without_restart(
    tiny_settings: Settings, project: Project, session: Session, session_maker: sessionmaker[Session],
    tiny: LoadedLM, tiny_adapter: Path,
) -> None:
    with server(tiny_settings, project, session_maker, tiny, model_server_reload_seconds=3600) as client:
        assert client.post("/v1/chat/completions", json=ASK).json()["model"] == "v0"
        add_candidate(session, project.id, passing=True, adapter_path=str(tiny_adapter))
        session.commit()
        # The challenger is addressable by alias once the server has re-read the aliases.
        assert client.post("/admin/reload").json() == {"champion": "v0", "challenger": "v1"}
        assert client.post("/v1/chat/completions", json={**ASK, "model": "challenger"}).json()["model"] == "v1"

        promote(session, project.id, "v1", actor="test", reason="better")
        session.commit()
        # Within the reload interval the old routes stand; the reload endpoint picks the change up at once.
        assert client.post("/v1/chat/completions", json=ASK).json()["model"] == "v0"
        client.post("/admin/reload")
        r = client.post("/v1/chat/completions", json=ASK)
        assert r.json()["model"] == "v1" and r.headers[VERSION_HEADER] == "v1"

    # With a zero interval every request sees the latest aliases: a rollback needs no reload call.
    with server(tiny_settings, project, session_maker, tiny, model_server_reload_seconds=0) as client:
        assert client.post("/v1/chat/completions", json=ASK).json()["model"] == "v1"
        rollback(session, project.id, actor="test", reason="worse online")
        session.commit()
        assert client.post("/v1/chat/completions", json=ASK).json()["model"] == "v0"


def test_canary_share_is_honoured(
    tiny_settings: Settings, project: Project, session: Session, session_maker: sessionmaker[Session],
    tiny: LoadedLM, tiny_adapter: Path,
) -> None:
    add_candidate(session, project.id, passing=True, adapter_path=str(tiny_adapter))
    session.commit()
    n, share = 4000, 0.2
    for seed in (1, 2, 3):
        state = ServingState(tiny, session_maker, project.id, "tiny", reload_seconds=3600, canary_share=share,
                             seed=seed)
        routed = Counter(state.pick("any-model")[0].name for _ in range(n))
        sigma = math.sqrt(share * (1 - share) / n)
        assert abs(routed["v1"] / n - share) < 4 * sigma, routed  # a 4-sigma band: fails ~1 in 16,000 seeds
    # Named routes bypass the draw; share 0 never sends anyone to the challenger.
    assert state.pick("champion")[0].name == "v0" and state.pick("v1")[0].name == "v1"
    none = ServingState(tiny, session_maker, project.id, "tiny", reload_seconds=3600, canary_share=0.0, seed=1)
    assert {none.pick(None)[0].name for _ in range(500)} == {"v0"}
    # Over HTTP, answers report which version served them and by which route.
    with server(tiny_settings, project, session_maker, tiny, canary_share=0.5) as client:
        seen = Counter((b["model"], b["driftloop"]["route"]) for b in
                       (client.post("/v1/chat/completions", json={**ASK, "max_tokens": 1}).json() for _ in range(40)))
    assert set(seen) == {("v0", "champion"), ("v1", "canary")} and 8 <= seen[("v1", "canary")] <= 32


@pytest.mark.parametrize(("body", "param", "phrase"), [
    ({**ASK, "stream": True}, "stream", "stream=true is not supported"),
    ({**ASK, "n": 3}, "n", "n=3 is not supported"),
    ({**ASK, "max_tokens": 100_000}, "max_tokens", "exceeds this server's limit of 512"),
    ({**ASK, "messages": []}, "messages", "invalid request: messages"),
    ({**ASK, "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role", "invalid request"),
    ({**ASK, "messages": [{"role": "system", "content": "be brief"}]}, "messages", "at least one user"),
    ({**ASK, "temperature": -1}, "temperature", "invalid request: temperature"),
    ({"model": "x"}, "messages", "Field required"),
])
def test_bad_requests_are_refused_clearly(
    tiny_settings: Settings, project: Project, session_maker: sessionmaker[Session], tiny: LoadedLM,
    body: dict[str, Any], param: str, phrase: str,
) -> None:
    with server(tiny_settings, project, session_maker, tiny) as client:
        r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and phrase in error["message"]


def test_unknown_project_is_refused_at_start(tiny_settings: Settings, session_maker: sessionmaker[Session],
                                             tiny: LoadedLM) -> None:
    from monitor.errors import NotFoundError

    with pytest.raises(NotFoundError):
        create_model_server(tiny_settings, project="no-such-project", factory=session_maker, lm=tiny)


@pytest.mark.postgres
def test_every_answer_is_logged_through_the_sdk_with_its_version(
    pg_url: str, tiny_dir: Path, tiny: LoadedLM, tiny_adapter: Path, tmp_path: Path,
) -> None:
    """A real collector process receives the server's calls; champion and challenger rows carry their version."""
    from sqlalchemy import select

    from monitor.db import make_engine, session_factory
    from monitor.models import Event
    from monitor.projects.service import create_key
    from monitor.sdk import Client
    from tests.support.collector import CollectorProcess
    from tests.support.factories import unique_slug

    engine = make_engine(pg_url)
    factory = session_factory(engine)
    with factory() as s:
        key = create_key(s, unique_slug("served"), "model-server")
        project_id = s.scalars(select(Project.id).where(Project.slug == key.project_slug)).one()
        add_candidate(s, project_id, passing=True, adapter_path=str(tiny_adapter))
        s.commit()
    collector = CollectorProcess(pg_url, tmp_path / "collector.log")
    collector.start()
    sdk = Client(collector.url, key.key, spool_dir=False, flush_interval=0.05)
    try:
        settings = Settings(database_url=pg_url, data_dir=tmp_path / "data", base_model=str(tiny_dir), device="cpu")
        app = create_model_server(settings, project=key.project_slug, factory=factory, lm=tiny, sdk_client=sdk)
        with TestClient(app) as client:
            ids = {}
            for model in ("champion", "challenger"):
                body = client.post("/v1/chat/completions", json={**ASK, "model": model}).json()
                ids[body["driftloop"]["event_id"]] = body["model"]
        assert sdk.flush(timeout=30)
        with factory() as s:
            rows = s.execute(select(Event.client_event_id, Event.model_version, Event.prompt, Event.meta)
                             .where(Event.project_id == project_id)).all()
        assert sorted(ids.values()) == ["v0", "v1"]
        assert {r[0]: r[1] for r in rows} == ids  # each call stored once, under the version that answered
        assert {r[2] for r in rows} == {"What is case 3?"}
        assert {r[3]["route"] for r in rows} == {"champion", "challenger"}
    finally:
        sdk.close()
        collector.stop()
        engine.dispose()
