"""Stage `safety`: toxicity of prompts and responses per segment, the abuse (profanity) rate next to it, and
production disparity across the groups of a metadata attribute (toxicity rate, response sentiment,
negative-feedback rate).

Two signals, never OR-ed: toxicity from the configured scorer (default ``minilm-head:ensemble``: implicit and
identity-directed hate, fair to identity mentions) and ``safety.profanity_rate`` from the lexical model on
identity-masked text (``profanity:masked``: explicit rudeness and insults the hate head leaves alone). Disparity
uses the toxicity scorer only: the one whose per-group false-flag rate is measured and bounded."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.pipeline.context import WindowContext
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.sampling import event_ranks, sample_mask, stable_seed
from monitor.pipeline.scores import event_scores_for, scores_for
from monitor.pipeline.segments import ALL, segment_masks
from monitor.pipeline.store import upsert_points
from monitor.pipeline.vectors import ensure_vectors, load_vectors
from monitor.pipeline.window_data import WindowFrame, feedback_positive, load_window
from monitor.safety import (
    PROFANITY_SCORER,
    DisparityConfig,
    ToxicityScorer,
    disparity_report,
    get_scorer,
    toxicity_summary,
)
from monitor.safety.sentiment import vader_compound
from monitor.safety.toxicity import threshold_for
from monitor.settings import get_settings

SENTIMENT = "vader"
_scorers: dict[str, ToxicityScorer] = {}
_lock = threading.Lock()


def scorer_key(spec: str) -> str:
    """Short stable key stored with each score (a spec may be a long path)."""
    return spec if len(spec) <= 64 else f"{spec[:40]}-{hashlib.sha1(spec.encode()).hexdigest()[:12]}"


def toxicity_scorer(spec: str) -> ToxicityScorer:
    with _lock:
        scorer = _scorers.get(spec)
        if scorer is None:
            scorer = _scorers[spec] = get_scorer(spec)
        return scorer


def score_events(session: Session, scorer: ToxicityScorer, field: str, ids: list[int], texts: list[str]) -> np.ndarray:
    """Toxicity of events' texts. A scorer over sentence vectors (``score_embedded``, e.g. minilm-head) reads the
    vectors the drift stage stored under its model key, embedding only the events that have none (with the
    default embedding model they all have one: no second model pass); other scorers read the texts."""
    score_embedded = getattr(scorer, "score_embedded", None)
    key = getattr(scorer, "embedding_key", None)
    if score_embedded is None or key is None:
        return np.asarray(scorer.score(texts))
    from monitor.embeddings import get_embedder

    settings = get_settings()
    embedder = get_embedder(None, device=settings.device, batch_size=settings.embedding_batch_size)
    if embedder.model_key != key:
        return np.asarray(scorer.score(texts))
    ensure_vectors(session, ids, field, key, embedder.encode)
    have, vecs = load_vectors(session, ids, field, key)
    row = {int(e): i for i, e in enumerate(have.tolist())}
    out = np.full(len(ids), np.nan)
    idx = [k for k, e in enumerate(ids) if e in row]
    if idx:
        out[idx] = score_embedded([texts[k] for k in idx], vecs[[row[ids[k]] for k in idx]])
    return out


def _scoring(session: Session, scorer: ToxicityScorer, field: str) -> Callable[[list[int], list[str]], np.ndarray]:
    def fn(ids: list[int], texts: list[str]) -> np.ndarray:
        return score_events(session, scorer, field, ids, texts)
    return fn


def toxicity_threshold(scorer: ToxicityScorer) -> float:
    """The configured threshold, or the scorer's calibrated one when none is configured."""
    configured = get_settings().toxicity_threshold
    return threshold_for(scorer) if configured is None else configured


def _score_column(n: int, positions: np.ndarray, ids: list[int], scores: dict[int, float]) -> np.ndarray:
    """The scores of the events at `positions` (ids `ids`) in an array over the window; NaN where unscored."""
    out = np.full(n, np.nan)
    out[positions] = np.array([scores.get(i, np.nan) for i in ids], dtype=np.float64)
    return out


def _sample_details(sampled: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    n, of = int(sampled.sum()), int(mask.sum())
    return {"sampled": n, "events": of} if n < of else {}


def compute_safety(session: Session, ctx: WindowContext) -> int:
    settings = get_settings()
    cfg, pid = ctx.config, ctx.project.id
    frame = load_window(session, pid, ctx.window_start, ctx.window_end)
    if len(frame) == 0:
        return 0
    spec = settings.toxicity_scorer
    key = scorer_key(spec)
    masks = segment_masks(frame.segments, cfg.segment_keys, cfg.max_segment_values)
    # Each segment is summarised over its own uniform sample; only the union of the samples is ever scored.
    ranks = event_ranks(frame.ids, stable_seed(pid, "safety-sample"))
    samples = {label: sample_mask(ranks, mask, cfg.safety_max_samples) for label, mask in masks.items()}
    scored = np.logical_or.reduce(list(samples.values()))
    positions = np.flatnonzero(scored)
    ids = frame.ids[positions].tolist()
    scorer = toxicity_scorer(spec)
    threshold = toxicity_threshold(scorer)

    def columns(scorer: ToxicityScorer, key: str) -> dict[str, np.ndarray]:
        """Each field's scores over the window's rows (stored ones reused, the rest scored and stored)."""
        return {field: _score_column(len(frame), positions, ids,
                                     event_scores_for(session, ids, field, key, _scoring(session, scorer, field)))
                for field in ("prompt", "response")}

    tox = columns(scorer, key)
    # The abuse signal: a second, lexical score per text (~1e5 texts/s), stored like the toxicity scores.
    profanity = toxicity_scorer(PROFANITY_SCORER)
    profanity_threshold = threshold_for(profanity)
    prof = columns(profanity, PROFANITY_SCORER)
    stored = scores_for(session, ids, "response", SENTIMENT, lambda texts: vader_compound(texts))
    sentiment = _score_column(len(frame), positions, ids, stored)

    written = 0
    for segment, mask in masks.items():
        sampled = samples[segment]
        sampling = _sample_details(sampled, mask)
        points: list[MetricPoint] = []
        for field, scores in tox.items():
            points += _rate_points(field, scores[sampled], threshold, spec, sampling, cfg.min_samples,
                                   rate="toxicity_rate", mean="toxicity_mean")
        for field, scores in prof.items():
            points += _rate_points(field, scores[sampled], profanity_threshold, PROFANITY_SCORER, sampling,
                                   cfg.min_samples, rate="profanity_rate")
        sent = sentiment[sampled]
        sent = sent[np.isfinite(sent)]
        points.append(MetricPoint("safety.sentiment_mean.response", "ok" if sent.size >= cfg.min_samples
                                  else "insufficient", int(sent.size),
                                  value=float(sent.mean()) if sent.size >= cfg.min_samples else None,
                                  details=dict(sampling)))
        if segment == ALL and cfg.bias_attribute:
            unsampled = ~sampled
            points += _bias_points(session, ctx, frame, _blank(tox["response"], unsampled),
                                   _blank(sentiment, unsampled), sampling)
        written += upsert_points(session, pid, segment, ctx.window_start, ctx.window_end, points)
    return written


def _rate_points(field: str, scores: np.ndarray, threshold: float, scorer: str, sampling: dict[str, Any],
                 min_samples: int, *, rate: str, mean: str | None = None) -> list[MetricPoint]:
    """`safety.<rate>.<field>` (share at or above `threshold`) and optionally `safety.<mean>.<field>`."""
    s = toxicity_summary(scores, threshold=threshold)
    status = "ok" if s.n >= min_samples else "insufficient"
    details: dict[str, Any] = {**s.to_dict(), "scorer": scorer, **sampling}
    if status == "insufficient":
        details["reason"] = f"{s.n} samples, need {min_samples}"
    points = [MetricPoint(f"safety.{rate}.{field}", status, s.n, value=s.rate if status == "ok" else None,
                          threshold=threshold, details=details)]
    if mean is not None:
        points.append(MetricPoint(f"safety.{mean}.{field}", status, s.n, value=s.mean if status == "ok" else None,
                                  details=details))
    return points


def _blank(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[where] = np.nan
    return out


def _bias_points(
    session: Session, ctx: WindowContext, frame: WindowFrame, tox: np.ndarray, sentiment: np.ndarray,
    sampling: dict[str, Any],
) -> list[MetricPoint]:
    """Disparity across the groups of the bias attribute: toxicity and sentiment over the window's sample
    (NaN where unscored), negative feedback over every event that has feedback."""
    cfg = ctx.config
    threshold = toxicity_threshold(toxicity_scorer(get_settings().toxicity_scorer))
    attr = cfg.bias_attribute or ""
    groups = [(row.metadata or {}).get(attr) for row in frame.segments]
    toxic = np.where(np.isfinite(tox), (tox >= threshold).astype(np.float64), np.nan)
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
        details = {**m.to_dict(), "attribute": attr, **sampling}
        if status == "insufficient":
            details["reason"] = f"{eligible} group(s) with at least {cfg.bias_min_group_size} events; need 2"
        points.append(MetricPoint(f"bias.{m.metric}.gap", status, n, value=m.gap if status == "ok" else None,
                                  p_value=m.p_value if status == "ok" else None, threshold=m.threshold,
                                  flagged=m.is_flagged if status == "ok" else None, details=details))
    return points
