"""The onset row (monitor/drift/onset.py): a window against the trailing hours, λ from the project's own history.

Statistical checks on a synthetic stream whose topic mix moves all the time (a daily cycle times hour-level
noise), the kind of quiet traffic a fixed reference flags: the onset row judged with its history λ keeps its
false-positive rate, a sudden share of new neighbouring topics is flagged in its first windows, and the rule's
pieces (history λ, the borrowed and fallback rules) do what docs/drift.md says."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import norm
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from threadpoolctl import threadpool_limits

from monitor.demo.traffic import mixed
from monitor.drift import get_detector
from monitor.drift.null import inflation, required_score
from monitor.drift.onset import (
    FIELD_FLOOR,
    MIN_HISTORY,
    borrowed_calibration,
    combine_fields,
    history_calibration,
    pick_reference,
)
from monitor.drift.result import DriftResult
from monitor.drift.thresholds import Calibration, apply_calibration, result_score
from monitor.ingest.service import ingest_events
from monitor.metrics.catalog import project_metrics
from monitor.pipeline.config import ProjectConfig
from monitor.pipeline.models import MetricValue
from monitor.pipeline.onset import onset_span
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window
from monitor.schemas import EventIn
from tests.support.factories import unique_slug
from tests.support.stats import fpr_bound

T0 = datetime(2026, 11, 21, tzinfo=UTC)
QUIET = {"account": 0.34, "billing": 0.33, "shipping": 0.33}

WINDOW, TRAILING, PER_DAY, HOUR, TOPICS, DIM = 200, 9, 96, 4, 8, 8
ALPHA = 0.05


def _stream(seed: int, n_windows: int, *, shift_at: int | None = None, share: float = 0.15) -> list[np.ndarray]:
    """Windows of WINDOW events from TOPICS Gaussian clusters. The mix follows a daily cycle (each topic its own
    phase, ±60%) times log-normal noise redrawn every HOUR windows; from `shift_at` on, `share` of each window
    comes from 2 new topics placed near known ones (a neighbouring intent, not an unrelated one)."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((TOPICS, DIM))
    new = centres[:2] + 1.2 * rng.standard_normal((2, DIM))
    phase = rng.uniform(0, 2 * math.pi, TOPICS)
    windows, noise = [], np.ones(TOPICS)
    for w in range(n_windows):
        if w % HOUR == 0:
            noise = np.exp(0.4 * rng.standard_normal(TOPICS))
        mix = (1 + 0.6 * np.sin(2 * math.pi * w / PER_DAY + phase)) * noise
        topics = rng.choice(TOPICS, WINDOW, p=mix / mix.sum())
        x = centres[topics] + 0.6 * rng.standard_normal((WINDOW, DIM))
        if shift_at is not None and w >= shift_at:
            k = int(share * WINDOW)
            x[:k] = new[rng.integers(0, 2, k)] + 0.6 * rng.standard_normal((k, DIM))
        windows.append(x.astype(np.float32))
    return windows


def _trailing(windows: list[np.ndarray], w: int, seed: int) -> np.ndarray:
    rows = np.concatenate(windows[max(0, w - TRAILING): w])
    keep = np.random.default_rng([seed, w]).choice(rows.shape[0], min(rows.shape[0], 4 * WINDOW), replace=False)
    return rows[np.sort(keep)]


def _knn(ref: np.ndarray, cur: np.ndarray, seed: int):  # type: ignore[no-untyped-def]
    return get_detector("knn")(ref, cur, alpha=ALPHA, seed=seed, min_effect=0.0)


def _judged(windows: list[np.ndarray], first: int, seed: int) -> tuple[list[float], dict[int, bool]]:
    """Every window's onset score from TRAILING on, and the verdict of those with MIN_HISTORY earlier scores,
    as the pipeline judges them (history λ, calibrated p <= ALPHA)."""
    scores: list[float] = []
    verdicts: dict[int, bool] = {}
    for w in range(TRAILING, len(windows)):
        result = _knn(_trailing(windows, w, seed), windows[w], seed + w)
        cal = history_calibration(scores[::-1], alpha=ALPHA, window_size=WINDOW, n_trailing=4 * WINDOW)
        if cal is not None and w >= first:
            verdicts[w] = apply_calibration(result, cal, ALPHA).is_drift
        scores.append(result_score(result))
    return scores, verdicts


@pytest.mark.slow
def test_onset_keeps_its_level_on_moving_quiet_traffic_that_a_fixed_reference_flags() -> None:
    flagged = trials = fixed_flagged = 0
    with threadpool_limits(1):
        for seed in (1, 2):
            windows = _stream(seed, TRAILING + MIN_HISTORY + 100)
            _, verdicts = _judged(windows, TRAILING + MIN_HISTORY, seed)
            flagged += sum(verdicts.values())
            trials += len(verdicts)
            reference = np.concatenate(windows[:TRAILING])[:: TRAILING // 4 or 1][: 4 * WINDOW]
            for w in list(verdicts)[::4]:  # the same windows against a fixed reference, at λ = 1
                fixed_flagged += _knn(reference, windows[w], seed + w).p_value <= ALPHA
    assert trials == 200
    assert flagged / trials <= fpr_bound(ALPHA, trials)
    # The stream really moves: against a fixed reference its quiet windows are "significant" most of the time.
    assert fixed_flagged / 50 > 0.5


@pytest.mark.slow
def test_onset_flags_a_sudden_share_of_new_neighbouring_topics_in_its_first_windows() -> None:
    shift_at = TRAILING + MIN_HISTORY + 20
    paged = 0
    with threadpool_limits(1):
        for seed in range(5):
            windows = _stream(10 + seed, shift_at + 3, shift_at=shift_at)
            _, verdicts = _judged(windows, shift_at, seed)
            first = [verdicts[w] for w in range(shift_at, shift_at + 3)]
            paged += any(a and b for a, b in itertools.pairwise(first))  # 2 consecutive, within 3
    assert paged >= 4


def test_history_lambda_is_genomic_control_over_finite_scores() -> None:
    rng = np.random.default_rng(0)
    assert history_calibration(list(rng.standard_normal(MIN_HISTORY - 1)), alpha=0.01, window_size=1000,
                               n_trailing=4000) is None
    inflated = list(math.sqrt(3.0) * rng.standard_normal(288))
    cal = history_calibration([*inflated, None, -math.inf, math.nan], alpha=0.01, window_size=1000, n_trailing=4000)
    assert cal is not None and cal.source == "onset_history" and cal.method == "knn" and cal.n_blocks == 288
    assert cal.lam == pytest.approx(inflation(inflated)) and 2.0 < cal.lam < 4.5
    assert cal.interval[0] <= cal.lam <= cal.interval[1]
    assert cal.score_threshold == pytest.approx(required_score(0.01, cal.lam))
    quiet = history_calibration(list(0.5 * rng.standard_normal(100)), alpha=0.01, window_size=1000, n_trailing=4000)
    assert quiet is not None and quiet.lam == 1.0  # never below the window's own null


def _reference(method: str, lam: float, source: str = "reference_blocks") -> Calibration:
    return Calibration(method=method, lam=lam, lam_blocks=lam, interval=(lam, lam), source=source,  # type: ignore[arg-type]
                       floor=0.0, alpha=0.01, score_threshold=required_score(0.01, lam), n_reference=4000,
                       n_blocks=16, block_size=1000, window_size=1000, nonstationarity_p=0.001, reason="blocks")


def test_short_history_borrows_the_reference_lambda_or_falls_back() -> None:
    knn, mmd = _reference("knn", 12.0), _reference("mmd", 30.0)
    assert pick_reference({"mmd": mmd, "knn": knn}) is knn
    assert pick_reference({"mmd": mmd, "classifier": _reference("classifier", 5.0)}) is mmd
    assert pick_reference({"mmd": _reference("mmd", 1.0, "fallback")}) is None
    borrowed = borrowed_calibration(mmd, history=10, alpha=0.01, window_size=800, n_trailing=3200)
    assert borrowed.source == "reference_lambda" and borrowed.method == "knn" and borrowed.lam == 30.0
    assert borrowed.n_reference == 3200 and borrowed.window_size == 800 and "10 onset scores" in borrowed.reason
    fallback = borrowed_calibration(None, history=0, alpha=0.01, window_size=800, n_trailing=3200)
    assert fallback.source == "fallback" and fallback.floor == 0.05 and fallback.lam == 1.0


def _window_events(w: int, n: int) -> list[EventIn]:
    answers = mixed(QUIET, n, seed=10_000 + w)  # the demo has no answers: another query of the mix stands in
    return [EventIn(event_id=f"w{w}-{i}", timestamp=T0 + timedelta(minutes=5 * w, seconds=10 * i), prompt=text,
                    response=answers[i], latency_ms=100.0) for i, text in enumerate(mixed(QUIET, n, seed=w))]


@pytest.mark.slow
def test_the_pipeline_measures_onset_lambda_on_its_own_history_once_it_has_enough(
        session_maker: sessionmaker[Session]) -> None:
    """Through the real pipeline and database: the onset rows borrow the reference's λ until MIN_HISTORY onset
    scores are stored, then λ is genomic control over exactly those stored scores; a recompute is identical."""
    n_windows = MIN_HISTORY + 2  # window 0 has no trailing traffic; windows 1..MIN_HISTORY make the history
    with session_maker() as s:
        project = get_or_create_project(s, unique_slug())
        project.config = {"window_seconds": 300, "reference": {"kind": "first_n", "n": 240}, "drift_min_samples": 20,
                          "drift_methods": ["knn"], "drift_onset_seconds": 900}
        ingest_events(s, project.id, [e for w in range(n_windows) for e in _window_events(w, 24)])
        s.commit()
        pid = project.id
    starts = [T0 + timedelta(minutes=5 * w) for w in range(n_windows)]
    for start in starts:  # in time order, as the scheduler computes a live project's windows
        process_window(pid, start, factory=session_maker, only=["drift"])

    with session_maker() as s:
        rows = {r.window_start: r for r in s.scalars(select(MetricValue).where(
            MetricValue.project_id == pid, MetricValue.segment == "all",
            MetricValue.metric == "drift.embeddings.onset"))}
        assert rows[starts[0]].status == "insufficient"
        sources = [rows[t].details["details"]["calibration"]["source"] for t in starts[1:]]
        assert sources == ["reference_lambda"] * MIN_HISTORY + ["onset_history"]
        last = rows[starts[-1]]
        cal = last.details["details"]["calibration"]
        history = [rows[t].details["details"]["score"] for t in starts[1:-1]]
        assert cal["n_blocks"] == MIN_HISTORY and cal["lam"] == pytest.approx(max(1.0, inflation(history)))
        assert last.details["onset"] == {"trailing_seconds": 900.0, "fields": ["prompt", "response"], "skipped": {}}
        fields = last.details["details"]["fields"]
        assert fields["prompt"]["n_reference"] == fields["response"]["n_reference"] == 72  # 3 windows of 24
        # One row over both fields: Stouffer's sum of their scores.
        assert last.value == pytest.approx((fields["prompt"]["score"] + fields["response"]["score"]) / math.sqrt(2))
        assert last.details["budget"]["family_size"] == 3  # knn on each field against the reference, and onset
        before = (last.value, last.p_value, last.flagged, last.details)
    process_window(pid, starts[-1], factory=session_maker, only=["drift"])
    with session_maker() as s:
        again = s.scalars(select(MetricValue).where(
            MetricValue.project_id == pid, MetricValue.segment == "all", MetricValue.metric == "drift.embeddings.onset",
            MetricValue.window_start == starts[-1])).one()
        assert (again.value, again.p_value, again.flagged, again.details) == before


def _scored(z: float, effect: float = 0.02) -> DriftResult:
    return DriftResult(method="knn", statistic=10.0, p_value=0.5, threshold=0.01, is_drift=False, effect_size=effect,
                       n_reference=4000, n_current=1000, details={"z": z, "null_skew": 0.0})


def test_fields_combine_by_stouffer_with_a_floor_under_a_field_without_isolated_items() -> None:
    both = combine_fields({"prompt": _scored(3.0), "response": _scored(2.0, 0.04)}, 0.01)
    assert both.statistic == pytest.approx(5.0 / math.sqrt(2)) and result_score(both) == pytest.approx(5 / math.sqrt(2))
    assert both.p_value == pytest.approx(float(norm.sf(5.0 / math.sqrt(2))))
    assert both.effect_size == pytest.approx(0.03) and both.details["fields"]["response"]["score"] == pytest.approx(2.0)
    one = combine_fields({"prompt": _scored(2.5)}, 0.01)
    assert one.statistic == pytest.approx(2.5)
    floored = combine_fields({"prompt": _scored(4.0), "response": _scored(-9.0)}, 0.01)
    assert floored.statistic == pytest.approx((4.0 + FIELD_FLOOR) / math.sqrt(2))
    with pytest.raises(ValueError):
        combine_fields({}, 0.01)


def test_the_catalog_says_when_a_project_computes_the_onset_row() -> None:
    on = {m.spec.name: m for m in project_metrics(ProjectConfig())}["drift.embeddings.onset"]
    assert on.computed and on.spec.kind == "drift"
    off = {m.spec.name: m for m in project_metrics(ProjectConfig(drift_onset_seconds=None))}["drift.embeddings.onset"]
    assert not off.computed and "drift_onset_seconds" in off.note
    # rounded up to whole windows
    assert onset_span(ProjectConfig(window_seconds=3600, drift_onset_seconds=5400)) == timedelta(hours=2)
    assert onset_span(ProjectConfig(window_seconds=86_400)) == timedelta(days=1)  # at least one window
    assert onset_span(ProjectConfig(drift_onset_seconds=None)) is None
