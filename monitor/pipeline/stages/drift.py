"""Stage `drift`: embed what is new, then compare each segment's window against the reference.

Embedding runs here, so this stage is routed to the `gpu` queue. Seeds are derived from the row key, so a
recomputation of the same data gives the same numbers (a re-run task leaves an identical row).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.drift.budget import bh_adjust
from monitor.drift.onset import DETECTOR as ONSET_DETECTOR
from monitor.drift.onset import ONSET, SERIES, combine_fields, pick_reference
from monitor.drift.registry import get_detector
from monitor.drift.result import DriftResult, InsufficientDataError
from monitor.drift.thresholds import CALIBRATED_METHODS, Calibration, apply_calibration, with_segment_lambda
from monitor.embeddings import get_embedder
from monitor.metrics.catalog import SCALAR_METHODS, SCALAR_SERIES, drift_metric_name
from monitor.models import Event
from monitor.pipeline.calibrations import reference_calibrations
from monitor.pipeline.clusters import store_cluster_members
from monitor.pipeline.config import ProjectConfig
from monitor.pipeline.context import WindowContext
from monitor.pipeline.onset import onset_calibration, onset_span, trailing_ids, trailing_vectors
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.sampling import run_sample, sample_ids, stable_seed
from monitor.pipeline.segments import ALL, segment_masks, segment_matches
from monitor.pipeline.store import upsert_points
from monitor.pipeline.vectors import Encode, ensure_vectors, load_vectors
from monitor.pipeline.window_data import WindowFrame, load_reference, load_window
from monitor.settings import get_settings

log = logging.getLogger(__name__)

BUDGETED = (*CALIBRATED_METHODS, ONSET)
"""Rows in a window's false-page budget (by the last part of the metric name)."""


def _run_detector(cfg: ProjectConfig, method: str, a: np.ndarray, b: np.ndarray, seed: int,
                  cal: tuple[Calibration, str] | None) -> DriftResult:
    detector = get_detector(method)
    if cal is not None:
        judged = apply_calibration(detector(a, b, alpha=cfg.drift_alpha, seed=seed, min_effect=0.0), cal[0],
                                   cfg.drift_alpha)
        judged.details["calibration"]["computed_at"] = cal[1]
        return judged
    if cfg.drift_min_effect is not None and method in CALIBRATED_METHODS:
        return detector(a, b, alpha=cfg.drift_alpha, seed=seed, min_effect=cfg.drift_min_effect)
    return detector(a, b, alpha=cfg.drift_alpha, seed=seed)


def _budget(points: dict[str, list[MetricPoint]], cfg: ProjectConfig) -> list[tuple[str, int]]:
    """Benjamini-Hochberg at `drift_alpha` over the window's embedding-drift rows (monitor/drift/budget.py).

    `flagged` becomes the adjusted decision (and, for a fixed or fallback floor, the effect must clear it);
    `p_value` stays raw; `details.p_adjusted` holds the BH-adjusted calibrated p-value. Returns the
    (segment, index) of every row in the family."""
    family = [(label, i) for label, pts in points.items() for i, pt in enumerate(pts)
              if pt.status == "ok" and pt.metric.split(".")[-1] in BUDGETED and pt.p_value is not None]
    if not family:
        return family
    raw = [points[label][i].details for label, i in family]
    p_cal = [float(d.get("details", {}).get("p_calibrated", d["p_value"])) for d in raw]
    adjusted = bh_adjust(p_cal)
    for (label, i), p_adj, p_c in zip(family, adjusted, p_cal, strict=True):
        pt = points[label][i]
        inner = pt.details.get("details", {})
        effect = pt.details.get("effect_size") or 0.0
        flagged = bool(p_adj <= cfg.drift_alpha and effect >= float(inner.get("min_effect", 0.0)))
        budget = {"method": "benjamini-hochberg", "alpha": cfg.drift_alpha, "family_size": len(family),
                  "p_calibrated": p_c, "p_adjusted": float(p_adj)}
        details = {**pt.details, "is_drift": flagged, "p_calibrated": p_c, "p_adjusted": float(p_adj),
                   "budget": budget}
        points[label][i] = replace(pt, flagged=flagged, details=details)
    return family


def _point(metric: str, result: DriftResult, extra: dict[str, Any] | None = None) -> MetricPoint:
    details = result.to_dict()
    if extra:
        details.update(extra)
    return MetricPoint(metric, "ok", result.n_current, value=result.statistic, p_value=result.p_value,
                       threshold=result.threshold, flagged=result.is_drift, details=details)


def _insufficient(metric: str, n_ref: int, n_cur: int, need: int) -> MetricPoint:
    return MetricPoint(metric, "insufficient", n_cur,
                       details={"reason": f"reference {n_ref}, current {n_cur}; need {need} each",
                                "n_reference": n_ref, "n_current": n_cur})


def _explain(session: Session, ctx: WindowContext, metric: str, ref: np.ndarray, cur: np.ndarray,
             cur_ids: np.ndarray, seed: int) -> dict[str, Any]:
    """The current clusters that grew most against the reference, with example prompts (and their event ids);
    every member event of those clusters is stored for the events explorer (monitor/pipeline/clusters.py)."""
    try:
        from monitor.drift.explain import explain_drift
    except ImportError:  # explanation is a nicety; drift rows must never fail for its lack
        return {}
    explanation = explain_drift(ref, cur, seed=seed)
    out = explanation.to_dict()
    wanted = {int(cur_ids[i]) for c in explanation.clusters for i in c.example_indices}
    rows = session.execute(select(Event.id, Event.prompt).where(Event.id.in_(wanted))).all() if wanted else []
    texts = {int(i): t for i, t in rows}
    for cluster, raw in zip(out["clusters"], explanation.clusters, strict=True):
        cluster["examples"] = [texts.get(int(cur_ids[i])) for i in raw.example_indices]
        cluster["example_event_ids"] = [int(cur_ids[i]) for i in raw.example_indices]
    store_cluster_members(session, ctx.project.id, ctx.window_start, metric,
                          [(c.cluster, [int(cur_ids[i]) for i in c.member_indices]) for c in explanation.clusters])
    return {"explanation": out}


def _onset_field(session: Session, ctx: WindowContext, field: str, cur: np.ndarray | None, trailing: np.ndarray,
                 span: timedelta, model_key: str, encode: Encode) -> DriftResult | str:
    """`knn` between the window's `all` rows of `field` and a sample of the `trailing` events (ids of the `span`
    before the window); or why it cannot run."""
    cfg, pid, need = ctx.config, ctx.project.id, ctx.config.drift_min_samples
    n_cur = 0 if cur is None else int(cur.shape[0])
    if cur is None or n_cur < need:
        return f"{field}: current {n_cur}; need {need}"
    trail = trailing_vectors(session, cfg, project_id=pid, field=field, trailing=trailing, n_window=n_cur,
                             model_key=model_key, encode=encode)
    if trail.shape[0] < need:
        return f"{field}: trailing {trail.shape[0]} in the {span} before the window; need {need}"
    seed = stable_seed(pid, ALL, ctx.window_start.isoformat(), drift_metric_name(field, ONSET))
    try:
        return get_detector(ONSET_DETECTOR)(trail, cur, alpha=cfg.drift_alpha, seed=seed, min_effect=0.0)
    except InsufficientDataError as exc:
        return f"{field}: {exc}"


def _onset_point(session: Session, ctx: WindowContext, results: dict[str, DriftResult | str],
                 whole: dict[str, dict[str, tuple[Calibration, str]]], span: timedelta) -> MetricPoint:
    """The window's onset row (monitor/drift/onset.py): the fields' tests combined, judged with λ from the
    project's earlier onset rows (or, until there are enough, the reference rows' λ)."""
    cfg = ctx.config
    metric = drift_metric_name(SERIES, ONSET)
    done = {f: r for f, r in results.items() if isinstance(r, DriftResult)}
    if not done:
        reasons = "; ".join(r for r in results.values() if isinstance(r, str))
        return MetricPoint(metric, "insufficient", 0, details={"reason": reasons or "no embedded fields"})
    combined = combine_fields(done, cfg.drift_alpha)
    # What to borrow while the history is short: the largest λ of the fields' reference calibrations to borrow
    # (each with its computed_at; a field's calibrations are keyed by their method).
    picked = [cals[c.method] for cals in whole.values()
              if (c := pick_reference({m: cal for m, (cal, _) in cals.items()})) is not None]
    reference = max(picked, key=lambda ca: (ca[0].lam, ca[0].method)) if picked else None
    cal = onset_calibration(session, cfg, project_id=ctx.project.id, start=ctx.window_start,
                            window_size=combined.n_current, n_trailing=combined.n_reference, reference=reference)
    judged = apply_calibration(combined, cal[0], cfg.drift_alpha)
    judged.details["calibration"]["computed_at"] = cal[1]
    return _point(metric, judged, {"onset": {"trailing_seconds": span.total_seconds(),
                                             "fields": sorted(done),
                                             "skipped": {f: r for f, r in results.items() if isinstance(r, str)}}})


def _segment_sides(
    label: str, mask: np.ndarray, cur: WindowFrame, ref: WindowFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Event ids of the segment in the window and in the reference pool."""
    ref_mask = np.fromiter((segment_matches(label, r) for r in ref.segments), dtype=bool, count=len(ref))
    return cur.ids[mask], ref.ids[ref_mask]


def compute_drift(session: Session, ctx: WindowContext) -> int:
    cfg, pid = ctx.config, ctx.project.id
    settings = get_settings()
    cur = load_window(session, pid, ctx.window_start, ctx.window_end)
    ref = load_reference(session, pid, cfg)
    masks = segment_masks(cur.segments, cfg.segment_keys, cfg.max_segment_values)
    sides = {label: _segment_sides(label, mask, cur, ref) for label, mask in masks.items()}
    points: dict[str, list[MetricPoint]] = {label: [] for label in masks}
    need = cfg.drift_min_samples
    span = onset_span(cfg)  # the onset row's trailing span; None: the row is off
    explain_inputs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}

    if len(cur) >= need and len(ref) >= need:
        embedder = get_embedder(settings.embedding_model, device=settings.device,
                                batch_size=settings.embedding_batch_size, backend=settings.embedding_backend,
                                cache_dir=settings.data_dir / "onnx")
        start = ctx.window_start.isoformat()
        salt = stable_seed(pid, "drift-sample")
        # The reference in runs of consecutive events (run_sample says why), the window uniformly.
        runs = 2 * cfg.drift_calibration_blocks
        samples = {label: (run_sample(seg_ref, cfg.drift_max_samples, runs),
                           sample_ids(seg_cur, cfg.drift_max_samples, salt))
                   for label, (seg_cur, seg_ref) in sides.items()}
        sampled_in_runs = {label: seg_ref.shape[0] > cfg.drift_max_samples for label, (_, seg_ref) in sides.items()}
        wanted = np.unique(np.concatenate([ids for pair in samples.values() for ids in pair])).tolist()
        onset_results: dict[str, DriftResult | str] = {}
        onset_cals: dict[str, dict[str, tuple[Calibration, str]]] = {}
        trailing = trailing_ids(session, pid, ctx.window_start, span) if span is not None else None
        for field in cfg.drift_fields:
            ensure_vectors(session, wanted, field, embedder.model_key, embedder.encode)
            ids, vecs = load_vectors(session, wanted, field, embedder.model_key)  # events with empty text have none
            whole: dict[str, tuple[Calibration, str]] = {}  # `all`'s calibrations of this field (`all` comes first)
            whole_cur: np.ndarray | None = None  # `all`'s window rows of this field, for the onset row
            for label, (ref_sample, cur_sample) in samples.items():
                ref_in = np.isin(ids, ref_sample)
                a, a_ids = vecs[ref_in], ids[ref_in]  # in id (= arrival) order, which the calibration needs
                cm = np.isin(ids, cur_sample)
                b, b_ids = vecs[cm], ids[cm]
                if label == ALL:
                    whole_cur = b
                cals: dict[str, tuple[Calibration, str]] = {}
                if a.shape[0] >= need and b.shape[0] >= need:
                    cals = reference_calibrations(session, cfg, project_id=pid, segment=label, field=field,
                                                  ref_ids=a_ids, ref=a, n_window=int(b.shape[0]),
                                                  seed=stable_seed(pid, label, field, "floor"),
                                                  model_key=embedder.model_key,
                                                  runs=runs if sampled_in_runs[label] else None)
                    if label == ALL:
                        whole = cals
                    else:
                        # A segment's own time blocks are small and its stationarity gate rarely fires, while what
                        # moves the whole traffic's mix moves the segment's: its λ is at least `all`'s carried to
                        # its size (docs/drift.md). Derived from the two stored calibrations, never stored itself,
                        # so a recompute reads the same two rows and writes the same verdict.
                        cals = {m: (with_segment_lambda(c, whole[m][0]), at) if m in whole else (c, at)
                                for m, (c, at) in cals.items()}
                for method in cfg.drift_methods:
                    metric = drift_metric_name(field, method)
                    if a.shape[0] < need or b.shape[0] < need:
                        points[label].append(_insufficient(metric, int(a.shape[0]), int(b.shape[0]), need))
                        continue
                    seed = stable_seed(pid, label, start, metric)
                    try:
                        result = _run_detector(cfg, method, a, b, seed, cals.get(method))
                    except InsufficientDataError as exc:
                        points[label].append(MetricPoint(metric, "insufficient", int(b.shape[0]),
                                                         details={"reason": str(exc)}))
                        continue
                    points[label].append(_point(metric, result))
                    if label == ALL and field == "prompt":
                        explain_inputs[len(points[label]) - 1] = (a, b, b_ids, seed)
            if span is not None and trailing is not None:
                onset_results[field] = _onset_field(session, ctx, field, whole_cur, trailing, span,
                                                    embedder.model_key, embedder.encode)
                onset_cals[field] = whole
        if span is not None:
            points[ALL].append(_onset_point(session, ctx, onset_results, onset_cals, span))
    else:
        for label in masks:
            for field in cfg.drift_fields:
                for method in cfg.drift_methods:
                    points[label].append(_insufficient(drift_metric_name(field, method), len(ref), len(cur), need))
        if span is not None:
            points[ALL].append(_insufficient(drift_metric_name(SERIES, ONSET), len(ref), len(cur), need))

    _budget(points, cfg)
    # Flagged prompt rows of the whole traffic say what grew (after the budget: flagged is its decision).
    for i, (a, b, b_ids, seed) in explain_inputs.items():
        metric = points[ALL][i].metric
        if points[ALL][i].flagged:
            points[ALL][i] = replace(points[ALL][i], details={**points[ALL][i].details,
                                                              **_explain(session, ctx, metric, a, b, b_ids, seed)})
        else:  # a recomputed window that no longer drifts keeps no stale members
            store_cluster_members(session, pid, ctx.window_start, metric, [])

    for label, mask in masks.items():
        ref_mask = np.isin(ref.ids, sides[label][1])
        for series in SCALAR_SERIES:
            x, y = ref.scalar(series)[ref_mask], cur.scalar(series)[mask]
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            for method in SCALAR_METHODS:
                metric = drift_metric_name(series, method)
                if x.size < need or y.size < need:
                    points[label].append(_insufficient(metric, int(x.size), int(y.size), need))
                    continue
                try:
                    result = get_detector(method)(x, y, alpha=cfg.drift_alpha,
                                                  seed=stable_seed(pid, label, ctx.window_start.isoformat(), metric))
                except (InsufficientDataError, ValueError) as exc:  # e.g. a constant series
                    points[label].append(MetricPoint(metric, "insufficient", int(y.size), details={"reason": str(exc)}))
                    continue
                points[label].append(_point(metric, result))

    return sum(
        upsert_points(session, pid, label, ctx.window_start, ctx.window_end, pts) for label, pts in points.items()
    )
