"""GET /v1/events and /v1/events/{id} on both backends: every filter narrows to exactly the events it should,
full-text search finds words (stemmed on Postgres), cursor pages cover the list once, the detail carries
scores, feedback, cluster and session; the `read` scope is required."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from monitor import migrations
from monitor.db import make_engine
from monitor.evaluators.models import EvalScore
from monitor.events import queries
from monitor.events.filters import build_filters
from monitor.events.indexing import index_batch
from monitor.events.queries import toxicity_scorer_key
from monitor.events.search import ts_query
from monitor.models import Event, EventSearch
from monitor.pipeline.clusters import store_cluster_members
from monitor.pipeline.models import EventScore
from monitor.projects.service import get_project
from tests.support import services
from tests.support.factories import event_dict, feedback_dict, make_key

T0 = datetime(2026, 11, 20, 6, tzinfo=UTC)
TOPICS = ["refund for a broken kettle", "password reset link expired", "shipping to Norway", "invoice in euros"]


def _seed(client: TestClient, session: Session) -> tuple[dict[str, str], int, dict[str, int]]:
    key = make_key(session)
    session.commit()
    auth = {"Authorization": f"Bearer {key.key}"}
    events = []
    for i in range(24):
        events.append(event_dict(
            event_id=f"e{i}", timestamp=(T0 + timedelta(minutes=10 * i)).isoformat(),
            prompt=f"Question {i}: {TOPICS[i % 4]}", response=f"Answer {i} about {TOPICS[i % 4]}",
            model_version="v2" if i % 3 == 0 else "v1", session_id=f"s{i % 5}",
            metadata={"tier": "gold" if i % 2 else "free", "seats": i % 4}))
    assert client.post("/v1/events", json={"events": events}, headers=auth).status_code == 200
    fb = [feedback_dict("e1", score=0.0, label="thumbs_down"), feedback_dict("e2", score=1.0),
          feedback_dict("e5", score=None, label="wrong_answer"), feedback_dict("e6", score=None, label="good")]
    assert client.post("/v1/feedback", json={"feedback": fb}, headers=auth).status_code == 200
    project = get_project(session, key.project_slug)
    ids = {cid: i for i, cid in session.execute(select(Event.id, Event.client_event_id).where(
        Event.project_id == project.id))}
    scorer = toxicity_scorer_key()
    session.execute(insert(EventScore), [
        {"event_id": ids[f"e{i}"], "field": "response", "scorer": scorer, "score": s}
        for i, s in ((3, 0.95), (4, 0.91), (7, 0.2), (8, 0.89))])
    session.execute(insert(EventScore), [{"event_id": ids["e3"], "field": "response", "scorer": "vader",
                                          "score": -0.6}])
    store_cluster_members(session, project.id, T0, "drift.prompt.mmd", [(2, [ids["e0"], ids["e4"]]),
                                                                        (5, [ids["e1"]])])
    session.commit()
    return auth, project.id, ids


def _cids(client: TestClient, auth: dict[str, str], **params: Any) -> list[str]:
    r = client.get("/v1/events", params={"limit": 200, **params}, headers=auth)
    assert r.status_code == 200, r.text
    return [e["event_id"] for e in r.json()["items"]]


def test_every_filter_narrows_to_exactly_its_events(client: TestClient, session: Session) -> None:
    auth, _, _ = _seed(client, session)
    everything = _cids(client, auth)
    assert everything == [f"e{i}" for i in reversed(range(24))]  # newest first
    assert _cids(client, auth, start=(T0 + timedelta(hours=3)).isoformat()) == [f"e{i}" for i in range(23, 17, -1)]
    assert _cids(client, auth, end=(T0 + timedelta(minutes=30)).isoformat()) == ["e2", "e1", "e0"]
    assert _cids(client, auth, window=(T0 + timedelta(hours=1)).isoformat()) == [f"e{i}" for i in range(11, 5, -1)]
    assert set(_cids(client, auth, model_version="v2")) == {f"e{i}" for i in range(0, 24, 3)}
    assert set(_cids(client, auth, segment="model_version=v2")) == {f"e{i}" for i in range(0, 24, 3)}
    assert set(_cids(client, auth, segment="tier=gold")) == {f"e{i}" for i in range(1, 24, 2)}
    assert set(_cids(client, auth, metadata=["tier=gold", "seats=3"])) == {f"e{i}" for i in range(3, 24, 4)}
    assert _cids(client, auth, metadata="tier=platinum") == []
    assert set(_cids(client, auth, toxicity_min=0.9)) == {"e3", "e4"}
    assert set(_cids(client, auth, toxicity_min=0.5)) == {"e3", "e4", "e8"}
    assert _cids(client, auth, toxicity_min=0.5, toxicity_field="prompt") == []
    # Not positive by the project's rule: a score at or under 0.5, or (no score) a label outside positive_labels.
    assert set(_cids(client, auth, negative_feedback=True)) == {"e1", "e5"}
    assert set(_cids(client, auth, cluster_window=T0.isoformat())) == {"e0", "e4", "e1"}
    assert set(_cids(client, auth, cluster_window=T0.isoformat(), cluster=2)) == {"e0", "e4"}
    assert set(_cids(client, auth, in_grown_cluster=True)) == {"e0", "e4", "e1"}
    assert set(_cids(client, auth, session_id="s2")) == {f"e{i}" for i in range(2, 24, 5)}
    # Filters combine with AND.
    assert set(_cids(client, auth, model_version="v2", metadata="tier=gold")) == {"e3", "e9", "e15", "e21"}


def test_full_text_search(client: TestClient, session: Session, backend: str) -> None:
    auth, _, _ = _seed(client, session)
    assert set(_cids(client, auth, q="kettle")) == {f"e{i}" for i in range(0, 24, 4)}
    assert set(_cids(client, auth, q="Norway")) == {f"e{i}" for i in range(2, 24, 4)}
    assert _cids(client, auth, q="zeppelin") == []
    assert _cids(client, auth, q="100%") == []  # LIKE wildcards are text, not patterns
    if backend == "postgres":  # words, stemmed: "refunds" finds "refund"; a phrase keeps its order
        assert set(_cids(client, auth, q="refunds")) == {f"e{i}" for i in range(0, 24, 4)}
        assert set(_cids(client, auth, q='"password reset" -expired')) == set()
        assert set(_cids(client, auth, q="kettle or norway")) == {f"e{i}" for i in range(24) if i % 4 in (0, 2)}


def test_cursor_pages_cover_the_list_once_in_order(client: TestClient, session: Session) -> None:
    auth, _, _ = _seed(client, session)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/events", params=params, headers=auth).json()
        seen += [e["event_id"] for e in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5 and seen == [f"e{i}" for i in reversed(range(24))]
    # A filtered list pages within the filter.
    first = client.get("/v1/events", params={"limit": 2, "model_version": "v2"}, headers=auth).json()
    second = client.get("/v1/events", params={"limit": 2, "model_version": "v2", "cursor": first["next_cursor"]},
                        headers=auth).json()
    assert [e["event_id"] for e in first["items"] + second["items"]] == ["e21", "e18", "e15", "e12"]
    bad = client.get("/v1/events", params={"cursor": "not-a-cursor"}, headers=auth)
    assert bad.status_code == 422 and "cursor" in bad.text


def test_the_detail_has_scores_feedback_cluster_and_session(client: TestClient, session: Session) -> None:
    auth, _, ids = _seed(client, session)
    r = client.get(f"/v1/events/{ids['e4']}", headers=auth)
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["event_id"] == "e4" and e["prompt"] == "Question 4: refund for a broken kettle"
    assert e["scores"] == [{"field": "response", "scorer": toxicity_scorer_key(), "score": 0.91, "kind": "toxicity"}]
    assert e["clusters"] == [{"window_start": T0.isoformat(), "metric": "drift.prompt.mmd", "cluster": 2}]
    assert [o["event_id"] for o in e["session_events"]] == ["e9", "e14", "e19"]  # s4: i % 5 == 4
    fb = client.get(f"/v1/events/{ids['e5']}", headers=auth).json()["feedback"]
    assert [(f["label"], f["positive"]) for f in fb] == [("wrong_answer", False)]
    assert client.get("/v1/events/999999999", headers=auth).status_code == 404


def test_an_event_of_another_project_is_not_found_and_read_scope_is_required(client: TestClient,
                                                                             session: Session) -> None:
    _, _, ids = _seed(client, session)
    other = make_key(session)
    ingest_only = make_key(session, scopes="ingest")
    session.commit()
    assert client.get(f"/v1/events/{ids['e4']}", headers={"Authorization": f"Bearer {other.key}"}).status_code == 404
    assert client.get("/v1/events", headers={"Authorization": f"Bearer {other.key}"}).json()["items"] == []
    refused = client.get("/v1/events", headers={"Authorization": f"Bearer {ingest_only.key}"})
    assert refused.status_code == 403 and "'read' scope" in refused.text


def test_bad_filters_name_the_field(client: TestClient, session: Session) -> None:
    auth, _, _ = _seed(client, session)
    for params, field in (({"start": "yesterday"}, "start"), ({"metadata": "no-equals"}, "metadata[0]"),
                          ({"cluster": 2}, "cluster_window"), ({"segment": "=x"}, "segment"),
                          ({"start": T0.isoformat(), "end": T0.isoformat()}, "end")):
        r = client.get("/v1/events", params=params, headers=auth)
        assert r.status_code == 422, (params, r.text)
        assert field in r.text, (params, r.text)


def test_dense_side_filters_give_the_same_events_by_probing(client: TestClient, session: Session,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Scores and negative feedback are read first when few match, and probed per event when many do
    # (monitor/events/queries.py `_few_or_probe`): both plans must list the same events.
    auth, _, _ = _seed(client, session)
    cases: list[dict[str, Any]] = [{"toxicity_min": 0.5}, {"negative_feedback": True},
                                   {"toxicity_min": 0.9, "model_version": "v1"}, {"toxicity_min": 0.99}]
    few = [_cids(client, auth, **c) for c in cases]
    monkeypatch.setattr(queries, "SPARSE_LIMIT", 1)
    assert [_cids(client, auth, **c) for c in cases] == few
    assert few[0] == ["e8", "e4", "e3"] and few[3] == []


def test_sparse_and_dense_searches_list_the_same_events(client: TestClient, session: Session, backend: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A search the planner estimates sparse is read from the full-text index, a dense one by walking events
    # newest first (monitor/events/queries.py `_sparse_search`): the same events, in the same order.
    auth, project_id, _ = _seed(client, session)
    if backend == "postgres":
        stmt = select(Event.id).where(Event.project_id == project_id)
        assert (queries._estimate(session, stmt) or 0) >= 1  # the planner's estimate is read
    searches: list[dict[str, Any]] = [{"q": "kettle"}, {"q": "answer"}, {"q": "norway", "model_version": "v1"},
                                      {"q": "kettle or norway", "limit": 3}]
    results = {}
    for rows in (0, 10**9):  # always sparse (0 rows may be walked) / never sparse
        monkeypatch.setattr(queries, "DENSE_SCAN_ROWS", rows)
        results[rows] = [_cids(client, auth, **s) for s in searches]
    assert results[0] == results[10**9]
    assert results[0][1] == [f"e{i}" for i in reversed(range(24))]


@pytest.fixture(scope="module")
def planner_url(_servers: tuple[str, str], worker_id: str) -> Iterator[str]:
    """A database of this test's own: the planner's statistics of `events` must come from its rows alone (the
    shared test database holds every other test's events)."""
    name = f"driftloop_planner_{services.checkout_tag()}_{worker_id}"[:63]
    url = services.recreate_database(_servers[0], name)
    migrations.upgrade(url)
    yield url
    services.drop_database(_servers[0], name)


@pytest.fixture
def pg_session(planner_url: str) -> Iterator[Session]:
    engine = make_engine(planner_url)
    conn = engine.connect()
    outer = conn.begin()
    with Session(bind=conn, join_transaction_mode="create_savepoint") as s:
        yield s
    outer.rollback()
    conn.close()
    engine.dispose()


def test_words_that_occur_together_are_not_taken_for_a_rare_search(pg_session: Session,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The planner multiplies word frequencies as if independent: "reset the password" in 40% of events is
    # estimated at about 16%, and 10M events once took minutes reading every match from the index. The rarest
    # required word bounds the matches (`_match_bound`), so such a search walks events newest first.
    session = pg_session
    project = get_project(session, make_key(session).project_slug)
    texts = ["I need to reset the password of my account"] * 2 + ["where is my parcel", "cancel my order please",
                                                                   "do you ship to Norway"]
    session.execute(insert(Event), [
        {"project_id": project.id, "client_event_id": f"c{i}", "ts": T0 + timedelta(seconds=i),
         "prompt": texts[i % 5] + ("" if i % 997 else " zebra"), "response": "ok"} for i in range(3000)])
    index_batch(session)
    index_batch(session)  # the first run reads the safe bound, the second indexes up to it
    session.execute(text("ANALYZE events; ANALYZE event_search"))
    f = build_filters(q='"reset the password"')
    actual = session.scalar(select(func.count()).select_from(Event).where(*queries.conditions(session, project, f)))
    planner = queries._estimate(session, select(EventSearch.event_id).where(
        EventSearch.project_id == project.id, EventSearch.tsv.op("@@")(ts_query(f.q or ""))))
    bound = queries._match_bound(session, project.id, f.q or "")
    assert actual == 1200 and planner is not None and bound is not None
    assert bound >= 0.7 * actual > planner  # the planner's guess is low; the bound is not
    # Sparse below 50 * 3000 / DENSE_SCAN_ROWS matches: 600 here, between the planner's guess and the truth.
    monkeypatch.setattr(queries, "DENSE_SCAN_ROWS", 250)
    assert not queries._sparse_search(session, project, f, 50)
    rare = build_filters(q="zebra")
    assert queries._sparse_search(session, project, rare, 50)
    assert len(queries.list_events(session, project, f, limit=50).items) == 50
    zebras = queries.list_events(session, project, rare, limit=50).items
    assert sorted(e["event_id"] for e in zebras) == sorted(f"c{i}" for i in range(3000) if i % 997 == 0)


def test_evaluator_score_filter_uses_the_newest_version(client: TestClient, session: Session,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    auth, project_id, ids = _seed(client, session)
    old, new = T0, T0 + timedelta(hours=1)
    rows = [{"event_id": ids[f"e{i}"], "evaluator": "relevance", "version": "v1", "project_id": project_id,
             "value": 0.05, "label": False, "explanation": "", "created_at": old} for i in range(24)]
    rows += [{"event_id": ids[f"e{i}"], "evaluator": "relevance", "version": "v2", "project_id": project_id,
              "value": v, "label": v >= 0.5, "explanation": "", "created_at": new}
             for i, v in ((1, 0.1), (2, 0.2), (3, 0.9), (9, 0.35))]
    session.execute(insert(EvalScore), rows)
    session.commit()
    low = _cids(client, auth, evaluator="relevance", eval_max=0.3)
    assert low == ["e2", "e1"]  # v2's scores only: v1 called every event 0.05
    assert _cids(client, auth, evaluator="relevance") == ["e9", "e3", "e2", "e1"]
    assert _cids(client, auth, evaluator="relevance", eval_min=0.3, eval_max=0.9) == ["e9", "e3"]
    assert _cids(client, auth, evaluator="refusal") == []  # never scored
    monkeypatch.setattr(queries, "SPARSE_LIMIT", 1)  # many matches: probed per event, same answer
    assert _cids(client, auth, evaluator="relevance", eval_max=0.3) == low
    r = client.get("/v1/events", params={"evaluator": "relevance", "eval_max": 0.3}, headers=auth)
    assert r.json()["filters"] == {"evaluator": "relevance", "eval_max": 0.3}
    for params, field in (({"eval_min": 0.5}, "evaluator"), ({"evaluator": "Relevance!"}, "evaluator"),
                          ({"evaluator": "relevance", "eval_min": 0.8, "eval_max": 0.2}, "eval_max")):
        r = client.get("/v1/events", params=params, headers=auth)
        assert r.status_code == 422 and field in r.text, r.text
