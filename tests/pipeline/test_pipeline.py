"""The window pipeline end to end in-process, on Postgres and SQLite: ops and drift rows, idempotent
recomputation, late events re-opening their window, segments, and insufficient windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.traffic import mixed
from monitor.embeddings import get_embedder
from monitor.ingest.service import ingest_events, ingest_feedback
from monitor.models import Event
from monitor.pipeline.models import DriftClusterEvent, EventVector, MetricValue
from monitor.pipeline.vectors import ensure_vectors
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window, run_pending
from monitor.schemas import EventIn, FeedbackIn
from tests.support.factories import unique_slug
from tests.support.topics import topic_of

T0 = datetime(2026, 11, 20, tzinfo=UTC)
QUIET = {"account": 0.34, "billing": 0.33, "shipping": 0.33}
# The shifted window keeps most of its quiet traffic: the explanation has to find the grown topics among it.
SHIFTED = {"account": 0.2, "billing": 0.2, "shipping": 0.2, "cooking": 0.2, "travel": 0.2}
GROWN = ("cooking", "travel")


def _events(window: int, mix: dict[str, float], n: int, version: str) -> list[EventIn]:
    rng = np.random.default_rng(window)
    return [
        EventIn(event_id=f"w{window}-{i}", timestamp=T0 + timedelta(hours=window, seconds=5 * i), prompt=text,
                response=f"Thanks for asking. {text[:30]}", latency_ms=float(rng.lognormal(5, 0.3)),
                prompt_tokens=len(text.split()), completion_tokens=12, model_version=version,
                error="timeout" if i % 20 == 0 else None, metadata={"locale": "en" if i % 2 else "de"})
        for i, text in enumerate(mixed(mix, n, seed=window))
    ]


def _rows(session: Session, project_id: int, metric: str, segment: str = "all") -> list[MetricValue]:
    return list(session.scalars(select(MetricValue).where(
        MetricValue.project_id == project_id, MetricValue.metric == metric, MetricValue.segment == segment
    ).order_by(MetricValue.window_start)))


def _members(session: Session, pid: int) -> dict[int, dict[int, str]]:
    """Stored cluster members of the drifted window: cluster -> {event id: prompt}."""
    out: dict[int, dict[int, str]] = {}
    rows = session.execute(select(DriftClusterEvent.cluster, Event.id, Event.prompt).join(
        Event, DriftClusterEvent.event_id == Event.id).where(
        DriftClusterEvent.project_id == pid, DriftClusterEvent.window_start == T0 + timedelta(hours=2),
        DriftClusterEvent.metric == "drift.prompt.mmd"))
    for cluster, eid, prompt in rows:
        out.setdefault(int(cluster), {})[int(eid)] = str(prompt)
    return out


@pytest.mark.slow
def test_window_pipeline(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": 150}, "segment_keys": ["locale"],
                          "drift_min_samples": 60, "min_samples": 30, "drift_fields": ["prompt"]}
        events = _events(0, QUIET, 150, "v1") + _events(1, QUIET, 150, "v1") + _events(2, SHIFTED, 150, "v2")
        ingest_events(s, project.id, events)
        ingest_feedback(s, project.id, [
            FeedbackIn(feedback_id=f"f{i}", event_id=f"w1-{i}", score=1.0 if i % 4 else 0.0) for i in range(40)
        ])
        s.commit()
        pid = project.id

    report = run_pending(factory=session_maker, project_ids=[pid])
    assert report.failures == [] and report.windows == 3

    with session_maker() as s:
        volume = _rows(s, pid, "ops.volume")
        assert [r.value for r in volume] == [150, 150, 150]
        assert [r.window_start for r in volume] == [T0 + timedelta(hours=h) for h in range(3)]
        err = _rows(s, pid, "ops.error_rate")[0]
        assert err.value == pytest.approx(8 / 150)
        lat = [e.latency_ms for e in events[150:300]]
        assert _rows(s, pid, "ops.latency_p95")[1].value == pytest.approx(np.percentile(lat, 95))
        fb = _rows(s, pid, "feedback.positive_rate")[1]
        assert fb.value == pytest.approx(30 / 40) and fb.n == 40

        drift = _rows(s, pid, "drift.prompt.mmd")
        assert [r.status for r in drift] == ["ok", "ok", "ok"]
        assert [r.flagged for r in drift] == [False, False, True]
        assert drift[2].p_value is not None and drift[2].p_value <= 0.01
        # The examples of the clusters that grew most come from the grown topics, though 60% of the window is
        # quiet traffic (classified by the templates that wrote each prompt, not by a word list).
        clusters = drift[2].details["explanation"]["clusters"]
        # The cluster that grew most is all grown topic (examples drawn at random from the window would be ~60%
        # quiet). Only the top one: which cluster ranks second depends on the sample, and on a fresh Postgres it
        # was a quiet topic.
        top = [topic_of(e) for e in clusters[0]["examples"] if e]
        assert len(top) >= 3 and all(t in GROWN for t in top), top
        # Every member of each reported cluster is stored for the explorer (monitor/pipeline/clusters.py): as many
        # as the explanation counted, all events of the drifted window, the examples among them, and the top
        # cluster's members mostly grown topic (not just its five nearest examples).
        members = _members(s, pid)
        for c in clusters:
            assert len(members[c["cluster"]]) == c["n_current"] > 0
            assert set(c["example_event_ids"]) <= set(members[c["cluster"]])
        grown = [topic_of(p) in GROWN for p in members[clusters[0]["cluster"]].values()]
        assert np.mean(grown) >= 0.8, np.mean(grown)
        assert s.scalar(select(func.count()).select_from(DriftClusterEvent).where(
            DriftClusterEvent.project_id == pid, DriftClusterEvent.window_start < T0 + timedelta(hours=2))) == 0
        # Segments: the new model version only exists in the shifted window; its reference slice is empty.
        v2 = _rows(s, pid, "drift.prompt.mmd", "model_version=v2")
        assert [r.status for r in v2] == ["insufficient"]
        assert len(_rows(s, pid, "ops.volume", "locale=en")) == 3
        snapshot = {(r.metric, r.segment, r.window_start): (r.value, r.p_value, r.flagged)
                    for r in s.scalars(select(MetricValue).where(MetricValue.project_id == pid))}
        vectors = s.scalar(select(func.count()).select_from(EventVector))

    # Nothing new arrived: a second run computes nothing; forcing a recompute embeds nothing new and
    # rewrites identical rows (seeds derive from the row key).
    assert run_pending(factory=session_maker, project_ids=[pid]).windows == 0
    from monitor.runner import process_window

    for h in range(3):
        process_window(pid, T0 + timedelta(hours=h), factory=session_maker)
    with session_maker() as s:
        again = {(r.metric, r.segment, r.window_start): (r.value, r.p_value, r.flagged)
                 for r in s.scalars(select(MetricValue).where(MetricValue.project_id == pid))}
        assert again == snapshot
        assert {c: set(m) for c, m in _members(s, pid).items()} == {c: set(m) for c, m in members.items()}
        assert s.scalar(select(func.count()).select_from(EventVector)) == vectors

    # A late event re-opens only its own window.
    with session_maker() as s:
        late = EventIn(event_id="late-1", timestamp=T0 + timedelta(minutes=30), prompt="Where is my refund?",
                       latency_ms=100.0)
        ingest_events(s, pid, [late])
        s.commit()
    report = run_pending(factory=session_maker, project_ids=[pid])
    assert report.windows == 1
    with session_maker() as s:
        assert [r.value for r in _rows(s, pid, "ops.volume")] == [151, 150, 150]


def test_tiny_windows_are_insufficient(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        ingest_events(s, project.id, _events(0, QUIET, 10, "v1"))
        s.commit()
        pid = project.id
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        assert _rows(s, pid, "ops.volume")[0].value == 10
        assert _rows(s, pid, "ops.latency_p95")[0].status == "insufficient"
        drift = _rows(s, pid, "drift.prompt.mmd")[0]
        assert drift.status == "insufficient" and drift.value is None and "need 100" in drift.details["reason"]


@pytest.mark.slow
def test_each_text_is_embedded_once(session: Session) -> None:
    project = get_or_create_project(session, unique_slug())
    ingest_events(session, project.id, _events(0, QUIET, 40, "v1"))
    session.flush()
    ids = list(session.scalars(select(MetricValue.id).limit(0)))  # noqa: F841  (keeps the session warm)
    from monitor.models import Event

    event_ids = list(session.scalars(select(Event.id).where(Event.project_id == project.id)))
    calls: list[int] = []
    emb = get_embedder()

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return emb.encode(texts)

    first = ensure_vectors(session, event_ids, "prompt", emb.model_key, encode)
    assert first == len({e.prompt for e in _events(0, QUIET, 40, "v1")}) and sum(calls) == first
    assert ensure_vectors(session, event_ids, "prompt", emb.model_key, encode) == 0
    assert sum(calls) == first


@pytest.mark.slow
def test_drift_embeds_only_its_samples_of_a_large_window(session_maker: sessionmaker[Session]) -> None:
    """A window larger than drift_max_samples embeds (and stores) at most that many events per side, not every
    event: at production rates a 5-minute window holds millions. Recomputing gives the same rows and embeds
    nothing new."""
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": 150}, "drift_min_samples": 60,
                          "drift_max_samples": 100, "drift_fields": ["prompt"]}
        ingest_events(s, project.id, _events(0, QUIET, 150, "v1") + _events(1, SHIFTED, 400, "v1"))
        s.commit()
        pid = project.id
    # The drift stage alone: the safety stage embeds a sample of its own (it scores toxicity from stored vectors).
    for hour in (0, 1):
        process_window(pid, T0 + timedelta(hours=hour), factory=session_maker, only=["drift"])

    def stored_vectors() -> int:
        with session_maker() as s:
            from monitor.models import Event

            stmt = select(func.count()).select_from(EventVector).join(Event, Event.id == EventVector.event_id)
            return int(s.scalar(stmt.where(Event.project_id == pid, EventVector.field == "prompt")) or 0)

    vectors = stored_vectors()
    # At most 100 per side of each window: the reference's 100 (runs of consecutive events, the same for every
    # window and segment), window 0's 100 (the reference's own hour, sampled uniformly: partly the same events)
    # and window 1's 100. Without the cap all 550 events would be embedded.
    assert 200 < vectors <= 300, vectors
    with session_maker() as s:
        shifted = _rows(s, pid, "drift.prompt.mmd")[1]
        before = (shifted.value, shifted.p_value, shifted.n)
    assert shifted.n == 100 and shifted.flagged

    process_window(pid, T0 + timedelta(hours=1), factory=session_maker, only=["drift"])
    with session_maker() as s:
        again = _rows(s, pid, "drift.prompt.mmd")[1]
        assert (again.value, again.p_value, again.n) == before
    assert stored_vectors() == vectors


@pytest.mark.slow
def test_repeated_texts_are_encoded_once_across_chunks(session: Session) -> None:
    """ensure_vectors works in chunks of 2,048 events; a text repeated in several chunks is still encoded once."""
    from monitor.models import Event

    project = get_or_create_project(session, unique_slug())
    texts = [f"question number {i % 50}" for i in range(5000)]
    ingest_events(session, project.id, [EventIn(event_id=f"r{i}", timestamp=T0 + timedelta(seconds=i), prompt=t,
                                                response="ok") for i, t in enumerate(texts)])
    session.flush()
    event_ids = list(session.scalars(select(Event.id).where(Event.project_id == project.id)))
    calls: list[int] = []

    def encode(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        return np.ones((len(batch), 8), dtype=np.float32) * np.arange(len(batch))[:, None]

    assert ensure_vectors(session, event_ids, "prompt", "fake-8d", encode) == 50
    assert sum(calls) == 50
    stored = session.scalar(select(func.count()).select_from(EventVector).where(EventVector.model_key == "fake-8d"))
    assert stored == 5000


def test_window_frame_is_columns_with_shared_segment_rows(session: Session) -> None:
    """A window is loaded a partition at a time into arrays; events with the same segment fields share one
    SegmentRow (a window of millions must not hold millions of dicts), and feedback is found by one join."""
    from monitor.pipeline.window_data import _PARTITION, load_window

    project = get_or_create_project(session, unique_slug())
    n = _PARTITION + 500  # more than one partition
    ingest_events(session, project.id, [
        EventIn(event_id=f"s{i}", timestamp=T0 + timedelta(seconds=i % 3000), prompt="p", response="r",
                latency_ms=None if i % 7 == 0 else float(i), error="boom" if i % 10 == 0 else None,
                model_version=f"v{i % 2}", metadata={"locale": "de" if i % 3 else "en"})
        for i in range(n)
    ])
    ingest_feedback(session, project.id, [
        FeedbackIn(feedback_id=f"f{i}", event_id=f"s{i}", score=1.0 if (i // 1000) % 2 else 0.0)
        for i in range(0, n, 1000)])
    session.flush()
    frame = load_window(session, project.id, T0, T0 + timedelta(hours=1))
    assert len(frame) == n and len(frame.client_ids) == n and len(frame.segments) == n
    combos = {(f"v{i % 2}", "de" if i % 3 else "en") for i in range(n)}
    assert len({id(row) for row in frame.segments}) == len(combos)  # one object per distinct segment fields
    assert {(row.model_version, (row.metadata or {}).get("locale")) for row in frame.segments} == combos
    by_client = dict(zip(frame.client_ids, range(n), strict=True))
    i = by_client["s70"]
    assert frame.has_error[i] and np.isnan(frame.latency_ms[i])
    j = by_client["s71"]
    assert not frame.has_error[j] and frame.latency_ms[j] == 71.0 and frame.segments[j].metadata == {"locale": "de"}
    from monitor.pipeline.config import ProjectConfig
    from monitor.pipeline.window_data import feedback_positive

    positions, positive = feedback_positive(session, project.id, frame, ProjectConfig())
    assert sorted(frame.client_ids[p] for p in positions) == sorted(f"s{i}" for i in range(0, n, 1000))
    assert 0 < positive.sum() == sum(1 for i in range(0, n, 1000) if (i // 1000) % 2) < positions.size
