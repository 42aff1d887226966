"""Storing and loading event embeddings. Each (event, field, model) is embedded once; a recompute of a
window finds its vectors stored and embeds nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.models import Event
from monitor.pipeline.idsets import chunks, id_conditions
from monitor.pipeline.models import EventVector

Encode = Callable[[list[str]], np.ndarray]


def _text_column(field: str):  # type: ignore[no-untyped-def]
    if field not in ("prompt", "response"):
        raise ValueError(f"cannot embed field {field!r}; use prompt or response")
    return Event.prompt if field == "prompt" else Event.response


def missing_vector_ids(session: Session, event_ids: Sequence[int], field: str, model_key: str) -> list[int]:
    have: set[int] = set()
    for cond in id_conditions(session, EventVector.event_id, event_ids):
        have.update(
            session.scalars(
                select(EventVector.event_id).where(
                    cond, EventVector.field == field, EventVector.model_key == model_key
                )
            )
        )
    return [i for i in event_ids if i not in have]


def ensure_vectors(
    session: Session, event_ids: Sequence[int], field: str, model_key: str, encode: Encode,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed the texts of `event_ids` that have no stored vector yet; returns how many texts were embedded.

    Identical texts are encoded once per call, across chunks too (apps repeat prompts). Events whose text is
    empty get no vector (they are left out of drift).
    """
    col = _text_column(field)
    todo = missing_vector_ids(session, event_ids, field, model_key)
    embedded = 0
    dialect = session.get_bind().dialect.name
    known: dict[str, bytes] = {}
    for chunk in chunks(todo, 2048):
        found = [(i, ts, t) for cond in id_conditions(session, Event.id, chunk)
                 for i, ts, t in session.execute(select(Event.id, Event.ts, col).where(cond)) if t]
        pairs = [(i, t) for i, _, t in found]
        event_ts = {i: ts for i, ts, _ in found}
        if not pairs:
            continue
        unique = [t for t in dict.fromkeys(t for _, t in pairs) if t not in known]
        if unique:
            vecs = encode(unique).astype(np.float16)
            known.update((t, vecs[k].tobytes()) for k, t in enumerate(unique))
        dim = len(known[pairs[0][1]]) // 2  # float16
        rows = [
            {"event_id": i, "field": field, "model_key": model_key, "dim": dim, "vector": known[t],
             "event_ts": event_ts[i]}
            for i, t in pairs
        ]
        ins = pg_insert(EventVector) if dialect == "postgresql" else sqlite_insert(EventVector)
        # No conflict target: plain tables key on (event, field, model), partitioned ones add event_ts.
        session.execute(ins.on_conflict_do_nothing(), rows)
        embedded += len(unique)
        if progress:
            progress(len(pairs))
    return embedded


def load_vectors(
    session: Session, event_ids: Sequence[int], field: str, model_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """(event ids that have a vector, float32 matrix in that order)."""
    ids: list[int] = []
    blobs: list[bytes] = []
    dim = 0
    for cond in id_conditions(session, EventVector.event_id, event_ids):
        for eid, d, blob in session.execute(
            select(EventVector.event_id, EventVector.dim, EventVector.vector).where(
                cond, EventVector.field == field, EventVector.model_key == model_key
            )
        ):
            ids.append(eid)
            blobs.append(blob)
            dim = d
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    mat = np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(ids), dim).astype(np.float32)
    order = np.argsort(np.asarray(ids))
    return np.asarray(ids, dtype=np.int64)[order], mat[order]
