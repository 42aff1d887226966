"""Calibrations through the real pipeline and database (Postgres and SQLite): stored with the reference
(`drift_calibrations`) and in each row's details, read back unchanged by a recompute, recomputed identically
from scratch, the window's rows judged by Benjamini-Hochberg, and a fixed `drift_min_effect` still wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.traffic import mixed
from monitor.drift.budget import bh_adjust
from monitor.drift.null import deflated_p, required_score
from monitor.drift.thresholds import effective_size
from monitor.ingest.service import ingest_events
from monitor.pipeline.models import DriftCalibration, MetricValue
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window, run_pending
from monitor.schemas import EventIn
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 21, tzinfo=UTC)
QUIET = {"account": 0.34, "billing": 0.33, "shipping": 0.33}


def _events(hour: int, n: int) -> list[EventIn]:
    return [EventIn(event_id=f"h{hour}-{i}", timestamp=T0 + timedelta(hours=hour, seconds=5 * i), prompt=text,
                    latency_ms=100.0) for i, text in enumerate(mixed(QUIET, n, seed=hour))]


def _drift_rows(s: Session, pid: int) -> dict[tuple[str, datetime], MetricValue]:
    rows = s.scalars(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.segment == "all",
                                               MetricValue.metric.like("drift.prompt.%")
                                               | (MetricValue.metric == "drift.embeddings.onset")))
    return {(r.metric, r.window_start): r for r in rows}


@pytest.mark.slow
def test_calibration_is_stored_and_survives_a_recompute(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": 400}, "drift_min_samples": 60,
                          "drift_fields": ["prompt"], "drift_methods": ["mmd", "knn"]}
        ingest_events(s, project.id, _events(0, 400) + _events(1, 100))
        s.commit()
        pid = project.id
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []

    with session_maker() as s:
        rows = _drift_rows(s, pid)
        row = rows[("drift.prompt.knn", T0 + timedelta(hours=1))]
        inner = row.details["details"]  # the detector's own details, as DriftResult.to_dict() nests them
        cal = inner["calibration"]
        assert cal["source"] == "reference_blocks" and cal["method"] == "knn"
        assert cal["n_reference"] == 400 and cal["n_blocks"] == 16 and cal["block_size"] == 50
        assert cal["lam"] >= 1.0 and cal["score_threshold"] >= 2.32 and "computed_at" in cal and "reason" in cal
        assert row.threshold == 0.01 and row.p_value is not None
        # BH over the window's embedding rows (one segment, one field, two methods, and the onset row against hour 0):
        # flagged is the adjusted decision.
        window = [r for (m, t), r in rows.items() if t == T0 + timedelta(hours=1)]
        assert len(window) == 3 and all(r.details["budget"]["family_size"] == 3 for r in window)
        # No onset history yet: the onset row borrows the reference's knn λ (conservative), and says so.
        onset = rows[("drift.embeddings.onset", T0 + timedelta(hours=1))]
        onset_cal = onset.details["details"]["calibration"]
        assert onset_cal["source"] == "reference_lambda" and onset_cal["lam"] == cal["lam"]
        assert onset_cal["n_reference"] == 400 and "0 onset scores" in onset_cal["reason"]
        assert onset.details["onset"] == {"trailing_seconds": 3 * 3600.0, "fields": ["prompt"], "skipped": {}}
        assert onset.details["details"]["fields"]["prompt"]["n_reference"] == 400  # all of hour 0
        hour0 = rows[("drift.embeddings.onset", T0)]
        assert hour0.status == "insufficient" and "trailing 0" in hour0.details["reason"]
        adjusted = bh_adjust([r.details["p_calibrated"] for r in window])
        for r, adj in zip(window, adjusted, strict=True):
            assert r.details["p_adjusted"] == pytest.approx(adj) and r.flagged == (adj <= 0.01)
        stored = s.scalars(select(DriftCalibration).where(DriftCalibration.project_id == pid)).all()
        assert {c.method for c in stored} == {"mmd", "knn"}
        # Hours 0 and 1 differ in window size (400 and 100 events: buckets 512 and 128), so each method has one
        # calibration per bucket; the row reads its own bucket's (not whichever the query returned last).
        by_method = {c.method: c for c in stored if c.calibration["window_size"] == cal["window_size"]}
        assert len(stored) == 4 and set(by_method) == {"mmd", "knn"}
        assert by_method["knn"].lam == cal["lam"] and by_method["knn"].n_reference == 400
        assert by_method["knn"].computed_at.isoformat() == cal["computed_at"]
        before = {k: (r.value, r.p_value, r.flagged, r.details) for k, r in rows.items()}
        stored_before = {(c.method, c.reference_key): (c.calibration, c.computed_at) for c in stored}

    for hour in (0, 1):  # a recompute reads the stored calibration: same rows, same calibration row
        process_window(pid, T0 + timedelta(hours=hour), factory=session_maker, only=["drift"])
    with session_maker() as s:
        after = {k: (r.value, r.p_value, r.flagged, r.details) for k, r in _drift_rows(s, pid).items()}
        stored_after = {(c.method, c.reference_key): (c.calibration, c.computed_at)
                        for c in s.scalars(select(DriftCalibration).where(DriftCalibration.project_id == pid))}
        s.execute(delete(DriftCalibration).where(DriftCalibration.project_id == pid))
        s.commit()
    assert after == before and stored_after == stored_before

    for hour in (0, 1):  # from scratch (calibration deleted): the same seed gives the same calibration
        process_window(pid, T0 + timedelta(hours=hour), factory=session_maker, only=["drift"])
    with session_maker() as s:
        again = s.scalars(select(DriftCalibration).where(DriftCalibration.project_id == pid)).all()
        assert {(c.method, c.reference_key): c.calibration for c in again} == {
            key: c for key, (c, _) in stored_before.items()}
        recomputed = {k: (r.value, r.p_value, r.flagged) for k, r in _drift_rows(s, pid).items()}
    assert recomputed == {k: v[:3] for k, v in before.items()}


@pytest.mark.slow
def test_a_fixed_floor_overrides_the_calibration(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": 100}, "drift_min_samples": 60,
                          "drift_fields": ["prompt"], "drift_min_effect": 0.2}
        ingest_events(s, project.id, _events(0, 100) + _events(1, 60))
        s.commit()
        pid = project.id
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        row = _drift_rows(s, pid)[("drift.prompt.mmd", T0 + timedelta(hours=1))]
        assert row.details["details"]["min_effect"] == 0.2
        assert "calibration" not in row.details["details"]


def _segment_events(n_pairs: int, start: int, moving: list[str]) -> list[EventIn]:
    """Interleaved events of two regions, in time order: `steady` always asks the QUIET mix; `moving` asks one
    topic at a time, the topic changing over its stretch of traffic (`moving` lists them in order)."""
    steady = mixed(QUIET, n_pairs, seed=start)
    per = n_pairs // len(moving)
    moved = [p for i, topic in enumerate(moving) for p in mixed({topic: 1.0}, per, seed=start + i)]
    out = []
    for i in range(n_pairs):
        at = T0 + timedelta(seconds=10 * (start + i))
        out.append(EventIn(event_id=f"s{start + i}", timestamp=at, prompt=steady[i], latency_ms=100.0,
                           metadata={"region": "steady"}))
        out.append(EventIn(event_id=f"m{start + i}", timestamp=at + timedelta(seconds=5), prompt=moved[i],
                           latency_ms=100.0, metadata={"region": "moving"}))
    return out


@pytest.mark.slow
def test_a_steady_segment_takes_the_whole_traffics_lambda(session_maker: sessionmaker[Session]) -> None:
    """The whole traffic moves (one region's topic changes over the reference) while the other region is steady:
    the steady segment's own time blocks give λ = 1, and its rows take `all`'s λ carried to the segment's size
    (monitor.drift.thresholds.with_segment_lambda); a recompute writes the identical rows."""
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"reference": {"kind": "first_n", "n": 600}, "drift_min_samples": 60,
                          "drift_fields": ["prompt"], "drift_methods": ["mmd", "knn"], "segment_keys": ["region"]}
        # 300 pairs (10 s apart, hour 0) fill the reference; 100 more pairs from 3,600 s are the window of hour 1.
        ingest_events(s, project.id, _segment_events(300, 0, ["account", "billing", "shipping"])
                      + _segment_events(100, 360, ["shipping"]))
        s.commit()
        pid = project.id
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []

    hour1 = T0 + timedelta(hours=1)

    def rows(s: Session) -> dict[tuple[str, str], MetricValue]:
        found = s.scalars(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.window_start == hour1,
                                                    MetricValue.metric.like("drift.prompt.%")))
        return {(r.segment, r.metric): r for r in found if r.status == "ok"}

    with session_maker() as s:
        before = rows(s)
        stored = {(c.segment, c.method): c for c in s.scalars(select(DriftCalibration).where(
            DriftCalibration.project_id == pid))}
        for method in ("mmd", "knn"):
            whole = before[("all", f"drift.prompt.{method}")].details["details"]["calibration"]
            cal = before[("region=steady", f"drift.prompt.{method}")].details["details"]
            c = cal["calibration"]
            assert whole["lam"] > 1.5 and whole["lam_from"] is None  # the whole traffic moves
            # The segment's own stored calibration: λ = 1 (its blocks are steady); the row's is derived from both.
            own = stored[("region=steady", method)]
            assert own.lam == 1.0 and own.calibration["lam_from"] is None
            assert c["lam_segment"] == 1.0 and c["lam_all"] == whole["lam"] and c["lam_from"] == "all"
            h_seg = effective_size(c["window_size"], c["n_reference"])
            h_all = effective_size(whole["window_size"], whole["n_reference"])
            assert c["lam"] == c["lam_all_carried"] == pytest.approx(1 + (whole["lam"] - 1) * h_seg / h_all)
            assert c["lam"] > 1.0 and cal["lambda"] == c["lam"]
            assert c["score_threshold"] == pytest.approx(required_score(0.01, c["lam"]))
            assert cal["p_calibrated"] == pytest.approx(deflated_p(cal["score"], c["lam"]))
            assert "`all`'s λ" in c["reason"]
        snapshot = {k: (r.value, r.p_value, r.flagged, r.details) for k, r in before.items()}

    process_window(pid, hour1, factory=session_maker, only=["drift"])
    with session_maker() as s:
        assert {k: (r.value, r.p_value, r.flagged, r.details) for k, r in rows(s).items()} == snapshot
