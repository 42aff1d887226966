"""The agreement row and the default judge-health rules, run through the alert engine's own decision function
on a sequence of windows in which a judge's agreement is degraded on purpose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.alerts.state import AlertState, Condition, Point, RuleParams, decide
from monitor.evaluators.health import agreement_point, judge_health_rule_dicts
from monitor.pipeline.ops import MetricPoint

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _labelled(rng: np.random.Generator, n: int, separation: float) -> tuple[np.ndarray, np.ndarray]:
    good = rng.random(n) < 0.6
    z = rng.normal(0, 1, n) + separation * good
    return 1 / (1 + np.exp(-z)), good


def _rule(d: dict[str, object]) -> RuleParams:
    return RuleParams(Condition(d["field"], d["comparator"], float(d["threshold"])))  # type: ignore[arg-type]


def _point(i: int, mp: MetricPoint) -> Point:
    return Point(T0 + timedelta(hours=i), mp.status, mp.n, mp.value, mp.p_value, mp.flagged, mp.threshold)


def _run(rule: RuleParams, points: list[Point]) -> list[str | None]:
    state, out = AlertState(), []
    for i, p in enumerate(points):
        d = decide(rule, state, points[: i + 1], p.window_start)
        out.append(d.to_status)
        if d.to_status in ("firing", "pending"):
            state = AlertState(d.to_status, p.window_start, p.window_start if d.to_status == "firing" else None)
        elif d.to_status in ("resolved", "cancelled"):
            state = AlertState("inactive", p.window_start, state.last_fired_window)
    return out


def test_agreement_rule_fires_when_the_judge_is_degraded_on_purpose() -> None:
    rng = np.random.default_rng(21)
    rules = {r["name"]: r for r in judge_health_rule_dicts("judge", min_coverage=0.8)}
    rule = _rule(rules["eval-judge-agreement-dropped"])
    base_s, base_g = _labelled(rng, 400, 1.6)  # the baseline windows: AUC ~0.87
    points = []
    # Six healthy windows, then the judge (say, a swapped model) stops telling good from bad: AUC ~0.55.
    for i, sep in enumerate([1.6] * 6 + [0.2] * 3):
        s, g = _labelled(rng, 120, sep)
        mp = agreement_point("judge", s, g, good_when_high=True, threshold=0.5, baseline_scores=base_s,
                             baseline_good=base_g)
        assert mp.metric == "eval.judge.agreement" and mp.status == "ok" and mp.n == 120
        assert mp.details["auc_low"] <= mp.value <= mp.details["auc_high"]  # type: ignore[operator]
        points.append(_point(i, mp))
    transitions = _run(rule, points)
    assert transitions[:6] == [None] * 6  # no page while agreement holds
    assert transitions[6] == "firing"  # the first degraded window pages
    assert points[6].p_value is not None and points[6].p_value < 0.01


def test_stopped_rule_fires_on_low_coverage() -> None:
    rules = {r["name"]: r for r in judge_health_rule_dicts("judge", min_coverage=0.8)}
    rule = _rule(rules["eval-judge-stopped"])
    coverage = [0.97, 0.95, 0.99, 0.1]  # the endpoint went down in the last window
    points = [Point(T0 + timedelta(hours=i), "ok", 100, c) for i, c in enumerate(coverage)]
    assert _run(rule, points) == [None, None, None, "firing"]


def test_too_few_labels_is_insufficient_and_never_pages() -> None:
    mp = agreement_point("judge", [0.9, 0.1, 0.8], [True, False, True], good_when_high=True, threshold=0.5)
    assert mp.status == "insufficient" and mp.flagged is None and "need 5 of each" in str(mp.details["reason"])
    rules = {r["name"]: r for r in judge_health_rule_dicts("judge")}
    assert _run(_rule(rules["eval-judge-agreement-dropped"]), [_point(0, mp)]) == [None]


def test_no_baseline_yet_is_reported_not_flagged() -> None:
    rng = np.random.default_rng(2)
    mp = agreement_point("refusal", *_labelled(rng, 100, 1.0), good_when_high=False, threshold=0.5)
    assert mp.status == "ok" and mp.flagged is False and mp.p_value is None
    assert mp.details["reason"] == "no baseline with enough labelled events yet"
