"""Building evaluator items from stored events: texts, the context passage from metadata, the corrected answer
from feedback, and the stored sentence vectors when the evaluator asks for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.evaluators.base import EvalItem
from monitor.models import Event, Feedback
from monitor.pipeline.idsets import id_conditions
from monitor.pipeline.vectors import ensure_vectors, load_vectors

CONTEXT_CHARS = 20_000  # a judge prompt is bounded; passages beyond this are cut

Encode = Callable[[list[str]], np.ndarray]


def context_text(meta: dict[str, Any] | None, key: str) -> str | None:
    """The metadata value under `key` as text: a string, or a list of passages (strings or {"text": ...})."""
    value = (meta or {}).get(key)
    if isinstance(value, str):
        return value[:CONTEXT_CHARS] or None
    if isinstance(value, list):
        parts = [v if isinstance(v, str) else str(v.get("text", "")) if isinstance(v, dict) else "" for v in value]
        joined = "\n\n".join(p for p in parts if p)
        return joined[:CONTEXT_CHARS] or None
    return None


def _references(session: Session, project_id: int, client_ids: list[str]) -> dict[str, str]:
    """The latest corrected response per event client id."""
    out: dict[str, str] = {}
    for i in range(0, len(client_ids), 1000):
        rows = session.execute(select(Feedback.event_client_id, Feedback.corrected_response).where(
            Feedback.project_id == project_id, Feedback.event_client_id.in_(client_ids[i : i + 1000]),
            Feedback.corrected_response.is_not(None)).order_by(Feedback.ts))
        out.update((cid, text) for cid, text in rows if text)
    return out


def load_items(session: Session, project_id: int, event_ids: Sequence[int], fields: frozenset[str], *,
               context_key: str = "context", vectors: tuple[str, Encode] | None = None) -> list[EvalItem]:
    """Items for `event_ids` (in that order). `vectors` = (model key, encode) when the evaluator needs sentence
    vectors: missing ones are embedded and stored (the drift stage usually did it already)."""
    rows: dict[int, tuple[str, str | None, str | None, str, dict[str, Any] | None]] = {}
    for cond in id_conditions(session, Event.id, event_ids):
        for eid, cid, prompt, response, meta in session.execute(
                select(Event.id, Event.client_event_id, Event.prompt, Event.response, Event.meta).where(cond)):
            rows[eid] = (cid, prompt, response, "", meta)
    refs = _references(session, project_id, [r[0] for r in rows.values()]) if "reference" in fields else {}
    vecs: dict[str, dict[int, np.ndarray]] = {"prompt": {}, "response": {}}
    if vectors is not None:
        key, encode = vectors
        for field in ("prompt", "response"):
            if f"{field}_vec" in fields:
                ensure_vectors(session, list(event_ids), field, key, encode)
                have, matrix = load_vectors(session, list(event_ids), field, key)
                vecs[field] = {int(e): matrix[k] for k, e in enumerate(have.tolist())}
    items = []
    for eid in event_ids:
        if eid not in rows:
            continue  # erased since the window was loaded
        cid, prompt, response, _, meta = rows[eid]
        items.append(EvalItem(
            event_id=eid, prompt=prompt or "", response=response,
            context=context_text(meta, context_key) if "context" in fields else None,
            reference=refs.get(cid), prompt_vec=vecs["prompt"].get(eid), response_vec=vecs["response"].get(eid)))
    return items
