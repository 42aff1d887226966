"""What the explorer can ask for, parsed and validated once (the API and the UI share it), and the cursor.

Every filter narrows the list; none is required. The cursor is opaque to clients: the (ts, id) of the last
event of a page, so the next page starts strictly after it in the list's order (newest first) and pages stay
stable while new events arrive (keyset pagination, no OFFSET).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from monitor.errors import FieldError
from monitor.timestamps import TimeRangeError, to_utc

META_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_META_FILTERS = 5
MAX_QUERY_CHARS = 200
Field = Literal["prompt", "response"]


@dataclass(frozen=True)
class ClusterRef:
    """Events a drift explanation put in a grown cluster: of one window, optionally one metric and cluster."""

    window_start: datetime
    metric: str | None = None
    cluster: int | None = None


@dataclass(frozen=True)
class EventFilters:
    start: datetime | None = None  # ts >= start
    end: datetime | None = None  # ts < end
    window: datetime | None = None  # a window's start: [window, window + the project's window length)
    segment: str | None = None  # a segment label: `all`, `model_version=v2`, `tier=gold`
    model_version: str | None = None
    template_version: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # key=value pairs, all must hold
    toxicity_min: float | None = None
    toxicity_field: Field = "response"
    negative_feedback: bool = False
    evaluator: str | None = None  # events its newest version scored, within [eval_min, eval_max] when given
    eval_min: float | None = None
    eval_max: float | None = None
    cluster: ClusterRef | None = None
    in_grown_cluster: bool = False  # in any grown cluster of any window
    session_id: str | None = None
    trace_id: str | None = None
    event_id: str | None = None  # the client's event id (what training examples and feedback refer to)
    q: str | None = None  # full text on prompt and response

    def active(self) -> dict[str, object]:
        """The filters in use, for the response and the UI (what was asked, echoed back)."""
        out: dict[str, object] = {}
        for name in ("start", "end", "window", "segment", "model_version", "template_version", "toxicity_min",
                     "evaluator", "eval_min", "eval_max", "session_id", "trace_id", "event_id", "q"):
            v = getattr(self, name)
            if v is not None:
                out[name] = v.isoformat() if isinstance(v, datetime) else v
        if self.toxicity_min is not None:
            out["toxicity_field"] = self.toxicity_field
        if self.metadata:
            out["metadata"] = [f"{k}={v}" for k, v in self.metadata]
        if self.negative_feedback:
            out["negative_feedback"] = True
        if self.in_grown_cluster:
            out["in_grown_cluster"] = True
        if self.cluster is not None:
            out["cluster_window"] = self.cluster.window_start.isoformat()
            if self.cluster.metric:
                out["cluster_metric"] = self.cluster.metric
            if self.cluster.cluster is not None:
                out["cluster"] = self.cluster.cluster
        return out


def parse_time(name: str, raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise FieldError(name, f"not an ISO 8601 time: {raw!r} (e.g. 2026-11-20T06:00:00Z)") from None
    try:
        return to_utc(ts)  # an extreme offset would overflow the conversion (issue #18, finding 6)
    except TimeRangeError as exc:
        raise FieldError(name, str(exc)) from None


def parse_metadata(raw: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for i, item in enumerate(x for x in raw if x != ""):
        key, sep, value = item.partition("=")
        if not sep or not META_KEY.match(key):
            raise FieldError(f"metadata[{i}]", f"expected key=value with a key of letters, digits, _ . - "
                                               f"(got {item!r})")
        pairs.append((key, value[:200]))
    if len(pairs) > MAX_META_FILTERS:
        raise FieldError("metadata", f"at most {MAX_META_FILTERS} metadata filters")
    return tuple(pairs)


def check_query(q: str | None) -> str | None:
    if q is None or not q.strip():
        return None
    if len(q) > MAX_QUERY_CHARS:
        raise FieldError("q", f"at most {MAX_QUERY_CHARS} characters")
    return q.strip()


# The cursor: "<ts isoformat>|<id>", URL-safe base64 without padding.
def encode_cursor(ts: datetime, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts.isoformat()}|{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, eid = raw.partition("|")
        return to_utc(datetime.fromisoformat(ts)), int(eid)  # a forged cursor's time is range-checked too
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise FieldError("cursor", "not a cursor this server gave out (use next_cursor from the last page)") from None


METRIC = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
EVALUATOR = re.compile(r"^[a-z][a-z0-9_]{0,47}$")  # an evaluator's name (monitor/pipeline/config.py)


def _evaluator_filter(evaluator: str | None, eval_min: float | None,
                      eval_max: float | None) -> tuple[str | None, float | None, float | None]:
    if evaluator and not EVALUATOR.match(evaluator):
        raise FieldError("evaluator", f"not an evaluator name: {evaluator!r} (lower case letters, digits, _)")
    for name, v in (("eval_min", eval_min), ("eval_max", eval_max)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise FieldError(name, "an evaluator score between 0 and 1")
        if v is not None and not evaluator:
            raise FieldError("evaluator", f"{name} needs the evaluator whose score it bounds")
    if eval_min is not None and eval_max is not None and eval_max < eval_min:
        raise FieldError("eval_max", "must be at least eval_min")
    return evaluator or None, eval_min, eval_max


def build_filters(
    *, start: str | None = None, end: str | None = None, window: str | None = None, segment: str | None = None,
    model_version: str | None = None, template_version: str | None = None, metadata: list[str] | None = None,
    toxicity_min: float | None = None, toxicity_field: str = "response", negative_feedback: bool = False,
    cluster_window: str | None = None, cluster_metric: str | None = None, cluster: int | None = None,
    in_grown_cluster: bool = False, session_id: str | None = None, trace_id: str | None = None,
    event_id: str | None = None, q: str | None = None, evaluator: str | None = None, eval_min: float | None = None,
    eval_max: float | None = None,
) -> EventFilters:
    """Filters from request parameters (strings as sent; empty means unset), refusing what cannot work."""
    if toxicity_field not in ("prompt", "response"):
        raise FieldError("toxicity_field", "prompt or response")
    if toxicity_min is not None and not 0.0 <= toxicity_min <= 1.0:
        raise FieldError("toxicity_min", "a probability between 0 and 1")
    evaluator, eval_min, eval_max = _evaluator_filter(evaluator, eval_min, eval_max)
    if cluster_metric and not METRIC.match(cluster_metric):
        raise FieldError("cluster_metric", f"not a metric name: {cluster_metric!r}")
    ref = None
    cw = parse_time("cluster_window", cluster_window)
    if cw is not None:
        ref = ClusterRef(cw, cluster_metric or None, cluster)
    elif cluster_metric or cluster is not None:
        raise FieldError("cluster_window", "a cluster is named by its window (and optionally metric and number)")
    s, e = parse_time("start", start), parse_time("end", end)
    if s is not None and e is not None and e <= s:
        raise FieldError("end", "must be after start")
    return EventFilters(
        start=s, end=e, window=parse_time("window", window), segment=segment or None,
        model_version=model_version or None, template_version=template_version or None,
        metadata=parse_metadata(metadata or []), toxicity_min=toxicity_min,
        toxicity_field="prompt" if toxicity_field == "prompt" else "response", negative_feedback=negative_feedback,
        evaluator=evaluator, eval_min=eval_min, eval_max=eval_max, cluster=ref, in_grown_cluster=in_grown_cluster,
        session_id=session_id or None, trace_id=trace_id or None,
        event_id=event_id or None, q=check_query(q),
    )
