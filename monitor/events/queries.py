"""Listing events with the explorer's filters (keyset pages, newest first) and one event in full.

Each filter is a condition on `events` (sub-selects for scores, feedback and cluster membership), so the
page is always one query ordered by (ts, id) and cut at `limit + 1` rows (the extra row says whether a next
page exists). Indexes for each filter: alembic/versions/0010_explorer_triage.py; latency: bench/explorer.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSQUERY
from sqlalchemy.orm import InstrumentedAttribute, Session

from monitor.encoding import iso
from monitor.errors import FieldError, NotFoundError
from monitor.evaluators.models import EvalScore
from monitor.events.filters import EventFilters, decode_cursor, encode_cursor
from monitor.events.search import text_condition, ts_query
from monitor.models import Event, EventSearch, Feedback, Project
from monitor.partitions.service import partitioned_tables
from monitor.pipeline.config import ProjectConfig, project_config
from monitor.pipeline.models import DriftClusterEvent, EventScore
from monitor.pipeline.segments import ALL, BUILTIN_KEYS
from monitor.settings import get_settings

MAX_LIMIT = 200
SESSION_NEIGHBOURS = 50
TEXT_PREVIEW = 300  # characters of prompt / response in a list row (the detail has them whole)
SENTIMENT_SCORER = "vader"
PROFANITY_SCORER = "profanity:masked"  # the abuse signal's key (monitor.safety.toxicity.PROFANITY_SCORER)
SPARSE_LIMIT = 2_000  # see `_few_or_probe`
PARTITIONED_KEYS = 100_000  # see `_negative_feedback`
DENSE_SCAN_ROWS = 20_000  # see `_sparse_search`
BOUND_TERMS = 6  # required terms of a search whose matches are estimated one by one (`_match_bound`)
_LEXEME = re.compile(r"(!?)('(?:[^']|'')+')(:\*)?")


@dataclass(frozen=True)
class EventPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def toxicity_scorer_key() -> str:
    """The key the safety stage stores toxicity scores under (monitor/pipeline/stages/safety.py `scorer_key`)."""
    import hashlib

    spec = get_settings().toxicity_scorer
    return spec if len(spec) <= 64 else f"{spec[:40]}-{hashlib.sha1(spec.encode()).hexdigest()[:12]}"


def _metadata_condition(session: Session, key: str, value: str) -> ColumnElement[bool]:
    # Segments compare str(value) (monitor/pipeline/segments.py); a number or boolean written by the SDK is
    # matched by its JSON form too, so `tier=3` finds {"tier": 3} and {"tier": "3"}.
    candidates: list[Any] = [value]
    try:
        parsed = json.loads(value)
        if isinstance(parsed, int | float | bool) and parsed is not None:
            candidates.append(parsed)
    except ValueError:
        pass
    if session.get_bind().dialect.name == "postgresql":
        return or_(*(Event.meta.op("@>")(cast({key: c}, JSONB)) for c in candidates))
    extracted = func.json_extract(Event.meta, f'$."{key}"')
    return or_(*(extracted == c for c in candidates))


def _segment_condition(session: Session, label: str) -> ColumnElement[bool] | None:
    if label == ALL:
        return None
    key, sep, value = label.partition("=")
    if not sep or not key:
        raise FieldError("segment", f"expected `all` or key=value (e.g. model_version=v2), got {label!r}")
    if key in BUILTIN_KEYS:
        column = Event.model_version if key == "model_version" else Event.prompt_template_version
        return column == value
    return _metadata_condition(session, key, value)


def _negative(cfg: ProjectConfig) -> ColumnElement[bool]:
    """Feedback that is not positive by the project's own rule (`is_positive`: score wins, else the label)."""
    positive = [x.lower() for x in cfg.positive_labels]
    return or_(Feedback.score <= cfg.positive_feedback_threshold,
               and_(Feedback.score.is_(None), Feedback.label.is_not(None), func.lower(Feedback.label).not_in(positive)))


def _few_or_probe(session: Session, found: Select[Any], column: InstrumentedAttribute[Any],
                  probe: Select[Any]) -> ColumnElement[bool]:
    """A filter on a side table (scores, feedback) that may match a handful of events or millions.

    Read the matching keys first, at most SPARSE_LIMIT + 1 of them, from the side table's index: when there are
    that few, the page is those events (an index lookup each), newest first. When there are more, they are
    dense enough that walking the events newest first and probing the side table per event (a correlated
    EXISTS the planner may not flatten: OFFSET 0) reaches a page quickly. A single plan for both cases was
    the slow one: a semi-join that reads every event of the project before the first page.
    """
    keys = list(session.scalars(found.limit(SPARSE_LIMIT + 1)))
    if len(keys) <= SPARSE_LIMIT:
        return column.in_(keys) if keys else false()
    return exists(probe.offset(0))


def _negative_feedback(session: Session, project_id: int, cfg: ProjectConfig) -> ColumnElement[bool]:
    negative = _negative(cfg)
    found = select(Feedback.event_client_id).where(Feedback.project_id == project_id, negative)
    probe = select(Feedback.id).where(Feedback.project_id == Event.project_id,
                                      Feedback.event_client_id == Event.client_event_id, negative)
    if "feedback" in partitioned_tables(session.connection()):
        # Partitioned by the feedback's own time, which says nothing of its event's (feedback may even come
        # first), so the per-event probe cannot be pruned: one index lookup in every partition (74 of them in
        # bench/explorer.py's database) per event walked, 0.6-0.9 s a page. Read the keys once instead and pass
        # them as one array: Postgres hashes `= ANY(array)` and the walk newest first costs a lookup in it.
        keys = list(session.scalars(found.distinct().limit(PARTITIONED_KEYS + 1)))
        if len(keys) <= PARTITIONED_KEYS:
            if not keys:
                return false()
            return Event.client_event_id == any_(bindparam(None, keys, type_=ARRAY(String)))
    return _few_or_probe(session, found, Event.client_event_id, probe)


def _toxic(session: Session, f: EventFilters) -> ColumnElement[bool]:
    at_least = and_(EventScore.scorer == toxicity_scorer_key(), EventScore.field == f.toxicity_field,
                    EventScore.score >= f.toxicity_min)
    found = select(EventScore.event_id).where(at_least)
    probe = select(EventScore.event_id).where(EventScore.event_id == Event.id, at_least)
    return _few_or_probe(session, found, Event.id, probe)


def _evaluated(session: Session, project_id: int, f: EventFilters) -> ColumnElement[bool]:
    """Events the evaluator's newest version scored (within the bounds asked): a changed rubric, model or
    threshold is a new version whose scores are not comparable with the old ones (monitor/evaluators)."""
    newest = session.scalar(select(EvalScore.version).where(
        EvalScore.project_id == project_id, EvalScore.evaluator == f.evaluator)
        .order_by(EvalScore.created_at.desc()).limit(1))
    if newest is None:
        return false()
    scored = [EvalScore.project_id == project_id, EvalScore.evaluator == f.evaluator, EvalScore.version == newest]
    if f.eval_min is not None:
        scored.append(EvalScore.value >= f.eval_min)
    if f.eval_max is not None:
        scored.append(EvalScore.value <= f.eval_max)
    found = select(EvalScore.event_id).where(*scored)
    probe = select(EvalScore.event_id).where(EvalScore.event_id == Event.id, *scored)
    return _few_or_probe(session, found, Event.id, probe)


def conditions(session: Session, project: Project, f: EventFilters, *,
               sparse_search: bool = True) -> list[ColumnElement[bool]]:
    cfg = project_config(project)
    out: list[ColumnElement[bool]] = [Event.project_id == project.id]
    if f.start is not None:
        out.append(Event.ts >= f.start)
    if f.end is not None:
        out.append(Event.ts < f.end)
    if f.window is not None:
        out += [Event.ts >= f.window, Event.ts < f.window + timedelta(seconds=cfg.window_seconds)]
    if f.segment:
        cond = _segment_condition(session, f.segment)
        if cond is not None:
            out.append(cond)
    if f.model_version is not None:
        out.append(Event.model_version == f.model_version)
    if f.template_version is not None:
        out.append(Event.prompt_template_version == f.template_version)
    out += [_metadata_condition(session, k, v) for k, v in f.metadata]
    if f.session_id is not None:
        out.append(Event.session_id == f.session_id)
    if f.trace_id is not None:
        out.append(Event.trace_id == f.trace_id)
    if f.event_id is not None:
        out.append(Event.client_event_id == f.event_id)
    if f.toxicity_min is not None:
        out.append(_toxic(session, f))
    if f.negative_feedback:
        out.append(_negative_feedback(session, project.id, cfg))
    if f.evaluator is not None:
        out.append(_evaluated(session, project.id, f))
    if f.cluster is not None or f.in_grown_cluster:
        members = select(DriftClusterEvent.event_id).where(DriftClusterEvent.project_id == project.id)
        if f.cluster is not None:
            members = members.where(DriftClusterEvent.window_start == f.cluster.window_start)
            if f.cluster.metric:
                members = members.where(DriftClusterEvent.metric == f.cluster.metric)
            if f.cluster.cluster is not None:
                members = members.where(DriftClusterEvent.cluster == f.cluster.cluster)
        out.append(Event.id.in_(members))
    if f.q:
        out.append(text_condition(session, project.id, f.q, walk=not sparse_search))
    return out


def _clip(text: str | None) -> dict[str, Any]:
    if text is None:
        return {"text": None, "truncated": False}
    return {"text": text[:TEXT_PREVIEW], "truncated": len(text) > TEXT_PREVIEW}


def row_dict(e: Event) -> dict[str, Any]:
    prompt, response = _clip(e.prompt), _clip(e.response)
    return {
        "id": e.id, "event_id": e.client_event_id, "ts": iso(e.ts), "session_id": e.session_id,
        "trace_id": e.trace_id, "model": e.model, "model_version": e.model_version,
        "prompt_template_id": e.prompt_template_id, "prompt_template_version": e.prompt_template_version,
        "prompt": prompt["text"], "prompt_truncated": prompt["truncated"],
        "response": response["text"], "response_truncated": response["truncated"],
        "latency_ms": e.latency_ms, "error": e.error, "metadata": e.meta,
    }


def _estimate(session: Session, stmt: Select[Any]) -> float | None:
    """The planner's row estimate for `stmt` (Postgres), or None when it cannot be had."""
    try:
        compiled = stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
        plan: Any = session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled),
                                                         compiled.params).scalar()
        return float((plan if isinstance(plan, list) else json.loads(str(plan)))[0]["Plan"]["Plan Rows"])
    except Exception:  # an estimate is an optimisation: without one, the default plan is used
        session.rollback()
        return None


def _match_bound(session: Session, project_id: int, q: str) -> float | None:
    """An estimate of a search's matches that correlated words cannot fool: its rarest required term's.

    The planner multiplies the frequencies of a search's words as if they were independent; words of one phrase
    or topic ("reset the password") occur together, and 10M events held 230,000 matches of a search it put at
    6,786. Every match contains each required term, so the rarest one bounds them. None for a search with `or`
    (no term is required) or when there is no estimate."""
    tsquery = session.execute(select(cast(ts_query(q), String))).scalar()
    if not tsquery or "|" in tsquery:
        return None
    required = [m.group(2) + (m.group(3) or "") for m in _LEXEME.finditer(tsquery) if not m.group(1)]
    estimates = [_estimate(session, select(EventSearch.event_id).where(
        EventSearch.project_id == project_id, EventSearch.tsv.op("@@")(cast(term, TSQUERY))))
        for term in dict.fromkeys(required[:BOUND_TERMS])]
    known = [e for e in estimates if e is not None]
    return min(known) if known else None


def _sparse_search(session: Session, project: Project, f: EventFilters, limit: int) -> bool:
    """Whether a full-text search is sparse: walking events newest first (the planner's usual choice under
    ORDER BY ts LIMIT n) would test more than DENSE_SCAN_ROWS events before a page is full. Then the page is
    built from the matches instead (all of them, from the GIN index on `event_search`, sorted). The share of
    events that match is estimated on `event_search` (its `tsv` column has the planner's per-lexeme
    statistics) and assumed independent of the other filters, which cancel out of the comparison; it is
    counted high rather than low (`_match_bound`): reading every match of a common phrase took minutes at 10M
    events, where walking found a page in milliseconds."""
    if not f.q or session.get_bind().dialect.name != "postgresql":
        return False
    of_project = EventSearch.project_id == project.id
    every = _estimate(session, select(EventSearch.event_id).where(of_project))
    matching = _estimate(session, select(EventSearch.event_id).where(of_project,
                                                                      EventSearch.tsv.op("@@")(ts_query(f.q))))
    if not every or matching is None:
        return False
    bound = _match_bound(session, project.id, f.q)
    return max(matching, bound or 0.0) * DENSE_SCAN_ROWS < limit * every


def page_query(session: Session, project: Project, f: EventFilters, *, limit: int,
               cursor: str | None = None) -> Select[Event]:
    sparse = _sparse_search(session, project, f, limit)
    stmt = select(Event).where(*conditions(session, project, f, sparse_search=sparse))
    if cursor:
        ts, eid = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Event.ts, Event.id) < tuple_(ts, eid))
    if sparse:
        # Same order, but not the index's: the planner then starts from the matches (GIN on event_search).
        return stmt.order_by((Event.ts + literal_column("interval '0 seconds'")).desc(), Event.id.desc()).limit(
            limit + 1)
    return stmt.order_by(Event.ts.desc(), Event.id.desc()).limit(limit + 1)


def list_events(session: Session, project: Project, f: EventFilters, *, limit: int = 50,
                cursor: str | None = None) -> EventPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"between 1 and {MAX_LIMIT}")
    rows = list(session.scalars(page_query(session, project, f, limit=limit, cursor=cursor)))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].ts, rows[-1].id) if more and rows else None
    return EventPage([row_dict(e) for e in rows], nxt)


def _is_positive(score: float | None, label: str | None, cfg: ProjectConfig) -> bool | None:
    if score is not None:
        return score > cfg.positive_feedback_threshold
    if label is not None:
        return label.lower() in {x.lower() for x in cfg.positive_labels}
    return None


def event_detail(session: Session, project: Project, event_id: int) -> dict[str, Any]:
    """Everything about one event: its fields in full, every stored score, its feedback (each judged positive
    or not by the project's rule), the drift clusters it fell in, and its session's other events."""
    e = session.scalar(select(Event).where(Event.project_id == project.id, Event.id == event_id))
    if e is None:
        raise NotFoundError(f"no event {event_id} in project {project.slug!r}")
    cfg = project_config(project)
    out = row_dict(e)
    out.update(prompt=e.prompt, response=e.response, prompt_truncated=False, response_truncated=False,
               received_at=iso(e.received_at), prompt_tokens=e.prompt_tokens, completion_tokens=e.completion_tokens)
    tox_key = toxicity_scorer_key()
    kinds = {SENTIMENT_SCORER: "sentiment", PROFANITY_SCORER: "abuse", tox_key: "toxicity"}
    out["scores"] = [
        {"field": s.field, "scorer": s.scorer, "score": s.score, "kind": kinds.get(s.scorer, "other")}
        for s in session.scalars(select(EventScore).where(EventScore.event_id == e.id)
                                 .order_by(EventScore.field, EventScore.scorer))]
    out["evaluations"] = [  # every evaluator version that scored it, newest first
        {"evaluator": v.evaluator, "version": v.version, "value": v.value, "label": v.label,
         "explanation": v.explanation, "error": v.error, "created_at": iso(v.created_at)}
        for v in session.scalars(select(EvalScore).where(EvalScore.event_id == e.id)
                                 .order_by(EvalScore.evaluator, EvalScore.created_at.desc()))]
    out["feedback"] = [
        {"id": fb.id, "feedback_id": fb.client_feedback_id, "ts": iso(fb.ts), "score": fb.score, "label": fb.label,
         "comment": fb.comment, "corrected_response": fb.corrected_response, "metadata": fb.meta,
         "positive": _is_positive(fb.score, fb.label, cfg)}
        for fb in session.scalars(select(Feedback).where(
            Feedback.project_id == project.id, Feedback.event_client_id == e.client_event_id).order_by(Feedback.ts))]
    out["clusters"] = [
        {"window_start": iso(c.window_start), "metric": c.metric, "cluster": c.cluster}
        for c in session.scalars(select(DriftClusterEvent).where(DriftClusterEvent.event_id == e.id)
                                 .order_by(DriftClusterEvent.window_start, DriftClusterEvent.metric))]
    out["session_events"] = []
    if e.session_id:
        others = session.scalars(select(Event).where(
            Event.project_id == project.id, Event.session_id == e.session_id, Event.id != e.id)
            .order_by(Event.ts, Event.id).limit(SESSION_NEIGHBOURS))
        out["session_events"] = [row_dict(o) for o in others]
    return out
