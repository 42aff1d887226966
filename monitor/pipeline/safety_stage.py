"""Stage `safety`: toxicity of prompts and responses per segment, and production disparity across the
groups of a metadata attribute (toxicity rate, response sentiment, negative-feedback rate)."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.metric_registry import MetricSpec, register_metric
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.scores import ensure_scores, load_scores
from monitor.pipeline.segments import ALL, segment_masks
from monitor.pipeline.stages import WindowContext, register_stage
from monitor.pipeline.store import upsert_points
from monitor.pipeline.window_data import WindowFrame, feedback_positive, load_window
from monitor.safety import DisparityConfig, ToxicityScorer, disparity_report, get_scorer, toxicity_summary
from monitor.safety.sentiment import vader_compound
from monitor.settings import get_settings

SENTIMENT = "vader"
BIAS_METRICS = ("toxicity_rate", "sentiment", "negative_feedback_rate")
_scorers: dict[str, ToxicityScorer] = {}
_lock = threading.Lock()

for _field in ("prompt", "response"):
    register_metric(MetricSpec(f"safety.toxicity_rate.{_field}", "safety",
                               f"Share of {_field}s at or above the toxicity threshold", "ratio"))
    register_metric(MetricSpec(f"safety.toxicity_mean.{_field}", "safety", f"Mean toxicity score of {_field}s",
                               "score"))
register_metric(MetricSpec("safety.sentiment_mean.response", "safety", "Mean VADER compound of responses", "score"))
for _m in BIAS_METRICS:
    register_metric(MetricSpec(f"bias.{_m}.gap", "bias",
                               f"Largest gap in {_m.replace('_', ' ')} between groups of the bias attribute", "gap"))


def scorer_key(spec: str) -> str:
    """Short stable key stored with each score (a spec may be a long path)."""
    return spec if len(spec) <= 64 else f"{spec[:40]}-{hashlib.sha1(spec.encode()).hexdigest()[:12]}"


def toxicity_scorer(spec: str) -> ToxicityScorer:
    with _lock:
        scorer = _scorers.get(spec)
        if scorer is None:
            scorer = _scorers[spec] = get_scorer(spec)
        return scorer


def _scores(frame: WindowFrame, stored: dict[int, float]) -> np.ndarray:
    return np.array([stored.get(int(i), np.nan) for i in frame.ids], dtype=np.float64)


@register_stage("safety", queue="gpu", order=30)
def compute_safety(session: Session, ctx: WindowContext) -> int:
    settings = get_settings()
    cfg, pid = ctx.config, ctx.project.id
    frame = load_window(session, pid, ctx.window_start, ctx.window_end)
    if len(frame) == 0:
        return 0
    spec, threshold = settings.toxicity_scorer, settings.toxicity_threshold
    key = scorer_key(spec)
    ids = frame.ids.tolist()
    scorer = toxicity_scorer(spec)
    tox: dict[str, np.ndarray] = {}
    for field in ("prompt", "response"):
        ensure_scores(session, ids, field, key, lambda texts: np.asarray(scorer.score(texts)))
        tox[field] = _scores(frame, load_scores(session, ids, field, key))
    ensure_scores(session, ids, "response", SENTIMENT, lambda texts: vader_compound(texts))
    sentiment = _scores(frame, load_scores(session, ids, "response", SENTIMENT))

    written = 0
    for segment, mask in segment_masks(frame.segments, cfg.segment_keys, cfg.max_segment_values).items():
        points: list[MetricPoint] = []
        for field, scores in tox.items():
            s = toxicity_summary(scores[mask], threshold=threshold)
            status = "ok" if s.n >= cfg.min_samples else "insufficient"
            details: dict[str, Any] = {**s.to_dict(), "scorer": spec}
            if status == "insufficient":
                details["reason"] = f"{s.n} samples, need {cfg.min_samples}"
            points.append(MetricPoint(f"safety.toxicity_rate.{field}", status, s.n,
                                      value=s.rate if status == "ok" else None, threshold=threshold, details=details))
            points.append(MetricPoint(f"safety.toxicity_mean.{field}", status, s.n,
                                      value=s.mean if status == "ok" else None, details=details))
        sent = sentiment[mask]
        sent = sent[np.isfinite(sent)]
        points.append(MetricPoint("safety.sentiment_mean.response", "ok" if sent.size >= cfg.min_samples
                                  else "insufficient", int(sent.size),
                                  value=float(sent.mean()) if sent.size >= cfg.min_samples else None))
        if segment == ALL and cfg.bias_attribute:
            points += _bias_points(session, ctx, frame, tox["response"] >= threshold, tox["response"], sentiment)
        written += upsert_points(session, pid, segment, ctx.window_start, ctx.window_end, points)
    return written


def _bias_points(
    session: Session, ctx: WindowContext, frame: WindowFrame, toxic_flag: np.ndarray, tox: np.ndarray,
    sentiment: np.ndarray,
) -> list[MetricPoint]:
    cfg = ctx.config
    attr = cfg.bias_attribute or ""
    groups = [(row.metadata or {}).get(attr) for row in frame.segments]
    toxic = np.where(np.isfinite(tox), toxic_flag.astype(np.float64), np.nan)
    fb_pos, fb_positive = feedback_positive(session, ctx.project.id, frame, cfg)
    negative = np.full(len(frame), np.nan)
    if fb_pos.size:
        # One value per event with feedback: negative if any of its feedback was negative.
        negative[fb_pos] = 0.0
        negative[fb_pos[~fb_positive]] = 1.0
    seed = int.from_bytes(hashlib.sha256(f"{ctx.project.id}|{ctx.window_start.isoformat()}".encode()).digest()[:4],
                          "little")
    report = disparity_report(groups, toxic=toxic, sentiment=sentiment, negative_feedback=negative,
                              config=DisparityConfig(min_group_size=cfg.bias_min_group_size, alpha=cfg.bias_alpha,
                                                     seed=seed))
    points = []
    for m in report.metrics:
        eligible = sum(1 for g in m.groups if g.eligible)
        n = sum(g.n for g in m.groups if g.eligible)
        status = "ok" if eligible >= 2 else "insufficient"
        details = {**m.to_dict(), "attribute": attr}
        if status == "insufficient":
            details["reason"] = f"{eligible} group(s) with at least {cfg.bias_min_group_size} events; need 2"
        points.append(MetricPoint(f"bias.{m.metric}.gap", status, n, value=m.gap if status == "ok" else None,
                                  p_value=m.p_value if status == "ok" else None, threshold=m.threshold,
                                  flagged=m.is_flagged if status == "ok" else None, details=details))
    return points
