"""Calibrated floors through the real pipeline and database (Postgres and SQLite): stored in the row's
details, identical after a recompute from scratch, and a fixed `drift_min_effect` still wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.traffic import mixed
from monitor.ingest.service import ingest_events
from monitor.pipeline.models import MetricValue
from monitor.pipeline.stages import drift as drift_stage
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
                                               MetricValue.metric.like("drift.prompt.%")))
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
        assert cal["n_reference"] == 400 and cal["n_blocks"] == 8 and cal["block_size"] == 25
        assert 0.0 <= cal["nonstationarity_p"] <= 1.0 and "reason" in cal
        assert len(inner["min_effect_interval"]) == 2
        assert row.threshold == 0.01 and row.p_value is not None
        assert row.flagged == (row.p_value <= 0.01 and row.details["effect_size"] >= inner["min_effect"])
        before = {k: (r.value, r.p_value, r.flagged, r.details) for k, r in rows.items()}

    drift_stage._CALIBRATION_CACHE.clear()  # recalibrate from the stored reference, not from memory
    for hour in (0, 1):
        process_window(pid, T0 + timedelta(hours=hour), factory=session_maker, only=["drift"])
    with session_maker() as s:
        after = {k: (r.value, r.p_value, r.flagged, r.details) for k, r in _drift_rows(s, pid).items()}
    assert after == before


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
