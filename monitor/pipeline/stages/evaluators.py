"""Stage `evaluators`: each configured evaluator scores a hash-rank sample of the window's events (scores stored
once per event and evaluator version, reused on recompute) and is summarised per segment as
`eval.<name>.mean`, `eval.<name>.rate` (with 95% intervals) and `eval.<name>.coverage`.

An evaluator that fails (EvaluatorFailed, or any other exception: an endpoint down, a missing package) does not
fail the window: its rows say `evaluator_status: failed` with the message, its mean and rate rows have status
`error`, and its coverage row reports the share that did get a score (so a coverage rule pages).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.evaluators.base import EvalResult, Evaluator
from monitor.evaluators.feedback_labels import agreement_row, load_baseline
from monitor.evaluators.items import load_items
from monitor.evaluators.registry import build
from monitor.evaluators.store import store_scores, stored_scores
from monitor.evaluators.summary import summarise
from monitor.pipeline.config import EvaluatorSpec
from monitor.pipeline.context import WindowContext
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.sampling import event_ranks, sample_mask, stable_seed
from monitor.pipeline.segments import segment_masks
from monitor.pipeline.store import upsert_points
from monitor.pipeline.window_data import load_window
from monitor.settings import get_settings

log = logging.getLogger(__name__)
BATCH = 256  # items per evaluate() call: bounds memory and what a failure mid-way loses
STATS = ("mean", "rate", "coverage")


def share_mask(ranks: np.ndarray, share: float) -> np.ndarray:
    """Events whose rank falls in the lowest `share` of the 64-bit range: a fixed subset per event, so the sample
    of a growing window only gains events and every evaluator at the same share sees the same ones."""
    if share >= 1.0:
        return np.ones(ranks.shape[0], dtype=bool)
    return ranks < np.uint64(int(share * 2**64))


def _vectors(evaluator: Evaluator) -> tuple[str, Any] | None:
    if not evaluator.fields & {"prompt_vec", "response_vec"}:
        return None
    from monitor.embeddings import get_embedder

    settings = get_settings()
    embedder = get_embedder(settings.embedding_model, device=settings.device,
                            batch_size=settings.embedding_batch_size)
    return embedder.model_key, embedder.encode


def score(session: Session, project_id: int, evaluator: Evaluator, ids: list[int],
          context_key: str) -> tuple[dict[int, EvalResult], str | None]:
    """Results for `ids`: stored ones read, the rest evaluated and stored. Returns (results, failure message)."""
    results = stored_scores(session, ids, evaluator.name, evaluator.version)
    todo = [e for e in ids if e not in results]
    if not todo:
        return results, None
    try:
        vectors = _vectors(evaluator)
        for i in range(0, len(todo), BATCH):
            items = load_items(session, project_id, todo[i : i + BATCH], evaluator.fields, context_key=context_key,
                               vectors=vectors)
            out = evaluator.evaluate(items)
            if len(out) != len(items):
                raise RuntimeError(f"returned {len(out)} results for {len(items)} events")
            fresh = {item.event_id: r for item, r in zip(items, out, strict=True)}
            # Only scores are kept: an item error (a judge's budget or deadline, a correction not yet given)
            # may not recur, so a recompute asks again instead of reusing the error forever.
            store_scores(session, project_id, evaluator.name, evaluator.version,
                         {e: r for e, r in fresh.items() if r.value is not None})
            results.update(fresh)
    except Exception as exc:  # whatever broke, the window is computed and the failure is reported in its rows
        log.warning("evaluator %s failed on project %s: %s", evaluator.name, project_id, exc)
        return results, f"{type(exc).__name__}: {exc}"[:500]
    return results, None


def _points(spec: EvaluatorSpec, evaluator: Evaluator | None, values: np.ndarray, labels: np.ndarray,
            min_samples: int, failure: str | None, base: dict[str, Any]) -> list[MetricPoint]:
    s = summarise(values, labels)
    details: dict[str, Any] = {**base, **s.to_dict(), "evaluator_status": "failed" if failure else "ok"}
    if evaluator is not None:
        details["version"] = evaluator.version
    if failure:
        details["message"] = failure
    # The threshold the labels were cut at: the evaluator's validated params, else what the spec says.
    threshold = getattr(getattr(evaluator, "params", None), "threshold", None)
    if threshold is None:
        threshold = spec.params.get("threshold")
    enough = s.scored >= min_samples
    if failure:
        status, why = "error", failure
    else:
        status, why = ("ok", "") if enough else ("insufficient", f"{s.scored} scored events, need {min_samples}")
    body = {**details, **({"reason": why} if why and not failure else {})}
    name = f"eval.{spec.name}"
    return [
        MetricPoint(f"{name}.mean", status, s.scored, value=s.mean if status == "ok" else None, details=body),
        MetricPoint(f"{name}.rate", status, s.scored, value=s.rate if status == "ok" else None,
                    threshold=float(threshold) if isinstance(threshold, int | float) else None, details=body),
        # Coverage is a fact even when the evaluator failed: that is when it matters.
        MetricPoint(f"{name}.coverage", "ok" if s.sampled else "insufficient", s.sampled,
                    value=s.coverage if s.sampled else None, details=details),
    ]


def compute_evaluators(session: Session, ctx: WindowContext) -> int:
    cfg, pid = ctx.config, ctx.project.id
    specs = [s for s in cfg.evaluators if s.enabled]
    if not specs:
        return 0
    frame = load_window(session, pid, ctx.window_start, ctx.window_end)
    if len(frame) == 0:
        return 0
    masks = segment_masks(frame.segments, cfg.segment_keys, cfg.max_segment_values)
    ranks = event_ranks(frame.ids, stable_seed(pid, "evaluators-sample"))
    written = 0
    for spec in specs:
        in_share = share_mask(ranks, spec.sample_share)
        chosen = {label: m for label, m in masks.items() if spec.segments is None or label in spec.segments}
        samples = {label: sample_mask(ranks, m & in_share, spec.max_per_window) for label, m in chosen.items()}
        if not samples:
            continue
        positions = np.flatnonzero(np.logical_or.reduce(list(samples.values())))
        ids = frame.ids[positions].tolist()
        evaluator: Evaluator | None = None
        failure: str | None = None
        results: dict[int, EvalResult] = {}
        try:
            evaluator = build(spec, get_settings())
        except Exception as exc:  # a config that validated once but no longer builds (e.g. a removed model)
            failure = f"{type(exc).__name__}: {exc}"[:500]
        if evaluator is not None and hasattr(evaluator, "bind_project"):
            try:  # the judge: the project's persistent token budget and stored API key
                evaluator.bind_project(session, pid, get_settings())
            except Exception as exc:
                failure, evaluator = f"{type(exc).__name__}: {exc}"[:500], None
        if evaluator is not None:
            results, failure = score(session, pid, evaluator, ids, cfg.evaluator_context_key)
        values = np.full(len(frame), np.nan)
        labels = np.zeros(len(frame), dtype=bool)
        for pos, eid in zip(positions.tolist(), ids, strict=True):
            r = results.get(eid)
            if r is not None and r.value is not None:
                values[pos] = r.value
                labels[pos] = bool(r.label)
        base = {"kind": spec.kind, "sample_share": spec.sample_share}
        baseline = (load_baseline(session, ctx, spec.name, evaluator.version)
                    if evaluator is not None and evaluator.good_when_high is not None and not failure else None)
        for label, sampled in samples.items():
            events = int(chosen[label].sum())
            extra = {**base, "events": events} if int(sampled.sum()) < events else base
            points = _points(spec, evaluator, values[sampled], labels[sampled], cfg.min_samples, failure, extra)
            if evaluator is not None and evaluator.good_when_high is not None and not failure:
                points.append(agreement_row(session, ctx, spec, evaluator, frame.ids[sampled], values[sampled],
                                            baseline))
            written += upsert_points(session, pid, label, ctx.window_start, ctx.window_end, points)
    return written
