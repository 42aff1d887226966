"""Per-event scores (toxicity, sentiment) stored once per (event, field, scorer), like embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.models import Event
from monitor.pipeline.idsets import id_conditions
from monitor.pipeline.models import EventScore

ScoreFn = Callable[[list[str]], np.ndarray]
EventScoreFn = Callable[[list[int], list[str]], np.ndarray]  # (event ids, their texts) -> scores


def _text_column(field: str):  # type: ignore[no-untyped-def]
    if field not in ("prompt", "response"):
        raise ValueError(f"cannot score field {field!r}; use prompt or response")
    return Event.prompt if field == "prompt" else Event.response


def scores_for(session: Session, event_ids: Sequence[int], field: str, scorer: str, fn: ScoreFn) -> dict[int, float]:
    """Scores of the texts of `event_ids` by `scorer`: stored ones read, missing ones computed with `fn` and
    stored. Events with an empty text have none."""
    return event_scores_for(session, event_ids, field, scorer, lambda _ids, texts: fn(texts))


def event_scores_for(session: Session, event_ids: Sequence[int], field: str, scorer: str,
                     fn: EventScoreFn) -> dict[int, float]:
    """`scores_for` with a scoring function that also gets the event ids (to read their stored vectors)."""
    col = _text_column(field)
    out: dict[int, float] = {}
    for cond in id_conditions(session, EventScore.event_id, event_ids):
        out.update(session.execute(select(EventScore.event_id, EventScore.score).where(
            cond, EventScore.field == field, EventScore.scorer == scorer)).all())
    todo = [e for e in event_ids if e not in out]
    ins = pg_insert(EventScore) if session.get_bind().dialect.name == "postgresql" else sqlite_insert(EventScore)
    for i in range(0, len(todo), 2048):
        found = [(eid, ts, t) for cond in id_conditions(session, Event.id, todo[i : i + 2048])
                 for eid, ts, t in session.execute(select(Event.id, Event.ts, col).where(cond)) if t]
        pairs = [(eid, t) for eid, _, t in found]
        event_ts = {eid: ts for eid, ts, _ in found}
        if not pairs:
            continue
        values = np.asarray(fn([eid for eid, _ in pairs], [t for _, t in pairs]), dtype=np.float64)
        rows = [{"event_id": eid, "field": field, "scorer": scorer, "score": float(v), "event_ts": event_ts[eid]}
                for (eid, _), v in zip(pairs, values, strict=True)]
        # No conflict target: plain tables key on (event, field, scorer), partitioned ones add event_ts.
        session.execute(ins.on_conflict_do_nothing(), rows)
        out.update((r["event_id"], r["score"]) for r in rows)
    return out
