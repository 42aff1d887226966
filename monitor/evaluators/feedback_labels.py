"""Human labels for evaluator agreement: each event's feedback as good/bad, and the baseline of earlier windows.

An event is *bad* when any of its feedback carries a correction (someone wrote what the answer should have been),
else its latest thumbs decide (the project's ``positive_feedback_threshold`` and ``positive_labels``, as the
feedback metrics count them); events without feedback are unlabelled and left out.

The baseline of a window is the same evaluator *version*'s stored scores on labelled events before the window
(the newest ``BASELINE_MAX`` of them), so a new rubric, model or threshold starts a new baseline, as its series
does. It is pooled over segments: a segment is compared with the evaluator's usual agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from monitor.evaluators.base import Evaluator
from monitor.evaluators.health import agreement_point
from monitor.evaluators.models import EvalScore
from monitor.models import Event, Feedback
from monitor.pipeline.config import EvaluatorSpec, ProjectConfig
from monitor.pipeline.context import WindowContext
from monitor.pipeline.idsets import id_conditions
from monitor.pipeline.ops import MetricPoint, is_positive

BASELINE_MAX = 5000
_CACHE_KEY = "evaluators.human_labels"


def human_labels(session: Session, project_id: int, event_ids: Sequence[int], cfg: ProjectConfig) -> dict[int, bool]:
    """{event id: True (good) / False (bad)} for the events that have feedback."""
    if not len(event_ids):
        return {}
    positive_labels = {x.lower() for x in cfg.positive_labels}
    latest: dict[int, tuple[Any, bool | None]] = {}
    corrected: set[int] = set()
    for cond in id_conditions(session, Event.id, list(event_ids)):
        rows = session.execute(
            select(Event.id, Feedback.ts, Feedback.score, Feedback.label, Feedback.corrected_response)
            .join(Feedback, (Feedback.project_id == Event.project_id)
                  & (Feedback.event_client_id == Event.client_event_id))
            .where(cond, Event.project_id == project_id))
        for eid, ts, score, label, correction in rows:
            if correction:
                corrected.add(eid)
            verdict = is_positive(score, label, threshold=cfg.positive_feedback_threshold,
                                  positive_labels=positive_labels)
            if verdict is not None and (eid not in latest or ts >= latest[eid][0]):
                latest[eid] = (ts, verdict)
    out = {eid: bool(v) for eid, (_, v) in latest.items() if v is not None}
    out.update({eid: False for eid in corrected})
    return out


def load_baseline(session: Session, ctx: WindowContext, name: str, version: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, good) of the evaluator version's labelled events before the window (newest first, bounded)."""
    pid = ctx.project.id
    has_feedback = exists().where(Feedback.project_id == pid, Feedback.event_client_id == Event.client_event_id)
    rows = session.execute(
        select(EvalScore.event_id, EvalScore.value).join(Event, Event.id == EvalScore.event_id)
        .where(EvalScore.project_id == pid, EvalScore.evaluator == name, EvalScore.version == version,
               EvalScore.value.is_not(None), Event.project_id == pid, Event.ts < ctx.window_start, has_feedback)
        .order_by(Event.ts.desc()).limit(BASELINE_MAX)).all()
    labels = human_labels(session, pid, [r[0] for r in rows], ctx.config)
    kept = [(float(v), labels[e]) for e, v in rows if e in labels and v is not None]
    return (np.array([k[0] for k in kept], dtype=float), np.array([k[1] for k in kept], dtype=bool))


def agreement_row(session: Session, ctx: WindowContext, spec: EvaluatorSpec, evaluator: Evaluator,
                  ids: np.ndarray, values: np.ndarray, baseline: tuple[np.ndarray, np.ndarray] | None) -> MetricPoint:
    """``eval.<name>.agreement`` of one segment's sample (its event ids and values, NaN = unscored)."""
    cache: dict[int, bool] = ctx.cache.setdefault(_CACHE_KEY, {})
    known: set[int] = ctx.cache.setdefault(_CACHE_KEY + ".asked", set())
    todo = [int(e) for e in ids.tolist() if int(e) not in known]
    if todo:
        cache.update(human_labels(session, ctx.project.id, todo, ctx.config))
        known.update(todo)
    mask = np.array([int(e) in cache for e in ids.tolist()], dtype=bool)
    good = np.array([cache[int(e)] for e in ids[mask].tolist()], dtype=bool)
    threshold = getattr(getattr(evaluator, "params", None), "threshold", None)
    if not isinstance(threshold, int | float):
        threshold = float(spec.params.get("threshold", 0.5))
    assert evaluator.good_when_high is not None
    return agreement_point(spec.name, values[mask], good, good_when_high=evaluator.good_when_high,
                           threshold=float(threshold), baseline_scores=None if baseline is None else baseline[0],
                           baseline_good=None if baseline is None else baseline[1])
