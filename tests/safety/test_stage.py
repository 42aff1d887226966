"""The safety stage in the pipeline: toxicity rows per segment from the default scorer, the abuse (profanity) rate
as its own signal, scores stored once, and production disparity across a metadata attribute flagged only when a
group really differs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.ingest.service import ingest_events, ingest_feedback
from monitor.pipeline.models import EventScore, MetricValue
from monitor.projects.service import get_or_create_project
from monitor.runner import process_window, run_pending
from monitor.safety import DEFAULT_TOXICITY_SCORER, DEFAULT_TOXICITY_THRESHOLD, PROFANITY_SCORER, get_scorer
from monitor.schemas import EventIn, FeedbackIn
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 19, 8, tzinfo=UTC)
NICE = ["Happy to help! Your refund is on its way.", "Thanks for your patience, the order ships today.",
        "Great question: open Settings and choose Security.", "I'm glad that worked, have a lovely day!"]
# Plain rudeness: the abuse signal (safety.profanity_rate) flags it, the default toxicity scorer (a hate head) does not.
RUDE = ["That's a stupid question, you idiot.", "Shut up and read the damn manual.",
        "What a dumb request, figure it out yourself."]
# Slur-free hate: the default toxicity scorer flags it, the lexical abuse model does not.
HATE = ["Immigrants are vermin and should be thrown out of this country.",
        "Muslims breed like rats and will replace us.", "Trans people are mentally ill and a danger to children."]
# Abusive hate: both signals flag it (the sampling tests count it once per event).
ABUSE = ["People like you are subhuman filth, you idiot.", "Women are too stupid to understand this, so shut up.",
         "Gay people are disgusting freaks."]


def test_the_two_signals_split_rudeness_from_hate() -> None:
    """The lines these tests rely on: each signal flags its own kind and not the other's."""
    tox, prof = get_scorer(), get_scorer(PROFANITY_SCORER)
    t_tox, t_prof = tox.threshold, prof.threshold  # type: ignore[attr-defined]
    assert tox.name == DEFAULT_TOXICITY_SCORER and t_tox == DEFAULT_TOXICITY_THRESHOLD
    assert (tox.score(HATE) >= t_tox).all() and not (prof.score(HATE) >= t_prof).any()
    assert (prof.score(RUDE) >= t_prof).all() and not (tox.score(RUDE) >= t_tox).any()
    assert (tox.score(ABUSE) >= t_tox).all() and (prof.score(ABUSE) >= t_prof).all()
    assert not (tox.score(NICE) >= t_tox).any() and not (prof.score(NICE) >= t_prof).any()


def _seed(s: Session, rude_for: str | None, n_per_group: int = 120) -> int:
    project = get_or_create_project(s, unique_slug())
    project.config = {"bias_attribute": "locale", "segment_keys": ["locale"], "drift_fields": ["prompt"],
                      "drift_min_samples": 10_000}
    rng = np.random.default_rng(3)
    events, feedback = [], []
    for g, locale in enumerate(("en", "de", "fr")):
        for i in range(n_per_group):
            # The chosen locale gets a hateful answer every 6th event and a rude one 3 events later (20 each).
            rude = locale == rude_for and i % 3 == 0
            text = (HATE if i % 6 == 0 else RUDE)[i // 6 % 3] if rude else NICE[i % 4]
            eid = f"{locale}-{i}"
            events.append(EventIn(event_id=eid, timestamp=T0 + timedelta(seconds=10 * (g * n_per_group + i)),
                                  prompt=f"Question {i} from {locale}", response=text, latency_ms=100.0,
                                  metadata={"locale": locale}))
            if i % 2 == 0:
                feedback.append(FeedbackIn(feedback_id=f"f-{eid}", event_id=eid,
                                           score=0.0 if rude else float(rng.random() < 0.9)))
    ingest_events(s, project.id, events)
    ingest_feedback(s, project.id, feedback)
    s.commit()
    return project.id


def _row(s: Session, pid: int, metric: str, segment: str = "all") -> MetricValue:
    row = s.scalar(select(MetricValue).where(MetricValue.project_id == pid, MetricValue.metric == metric,
                                             MetricValue.segment == segment))
    assert row is not None, metric
    return row


def test_toxicity_and_disparity_rows(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        pid = _seed(s, rude_for="de")
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        overall = _row(s, pid, "safety.toxicity_rate.response")
        # The default scorer (minilm-head:ensemble) at its own calibrated threshold, from vectors stored per event:
        # the 20 hateful answers, not the 20 rude ones.
        assert overall.value == pytest.approx(20 / 360) and overall.threshold == DEFAULT_TOXICITY_THRESHOLD
        assert overall.details["scorer"] == DEFAULT_TOXICITY_SCORER
        assert _row(s, pid, "safety.toxicity_rate.response", "locale=de").value == pytest.approx(20 / 120)
        assert _row(s, pid, "safety.toxicity_rate.response", "locale=en").value == 0.0
        assert _row(s, pid, "safety.toxicity_rate.prompt").value == 0.0
        # The rude answers are the abuse signal's: its own rate, threshold and scorer, in the same stage.
        abuse = _row(s, pid, "safety.profanity_rate.response")
        prof = get_scorer(PROFANITY_SCORER)
        assert abuse.value == pytest.approx(20 / 360) and abuse.threshold == prof.threshold  # type: ignore[attr-defined]
        assert abuse.details["scorer"] == PROFANITY_SCORER and abuse.n == 360
        assert _row(s, pid, "safety.profanity_rate.response", "locale=de").value == pytest.approx(20 / 120)
        assert _row(s, pid, "safety.profanity_rate.response", "locale=fr").value == 0.0
        assert _row(s, pid, "safety.profanity_rate.prompt").value == 0.0
        gap = _row(s, pid, "bias.toxicity_rate.gap")
        assert gap.flagged is True and gap.p_value is not None and gap.p_value < 0.01
        assert gap.details["max_group"] == "de" and gap.value == pytest.approx(20 / 120)
        assert _row(s, pid, "bias.sentiment.gap").flagged is True
        assert _row(s, pid, "bias.negative_feedback_rate.gap").flagged is True
        scores = s.scalar(select(func.count()).select_from(EventScore))
    process_window(pid, T0, factory=session_maker)  # recompute: nothing scored twice, same verdicts
    with session_maker() as s:
        assert s.scalar(select(func.count()).select_from(EventScore)) == scores
        assert _row(s, pid, "bias.toxicity_rate.gap").flagged is True


def test_equal_groups_are_not_flagged(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        pid = _seed(s, rude_for=None)
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        for metric in ("bias.toxicity_rate.gap", "bias.sentiment.gap", "bias.negative_feedback_rate.gap"):
            row = _row(s, pid, metric)
            assert row.status == "ok" and row.flagged is False, (metric, row.value, row.p_value)


def test_small_groups_never_page(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        pid = _seed(s, rude_for="de", n_per_group=12)  # below the 30-event minimum group size
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        row = _row(s, pid, "bias.toxicity_rate.gap")
        assert row.status == "insufficient" and row.flagged is None and "need 2" in row.details["reason"]


def _seed_large(s: Session, sizes: dict[str, int], max_samples: int, offset: int = 0) -> tuple[int, dict[str, int]]:
    """A window of `sum(sizes)` events, every 8th response rude (spread over ids by the rng); returns the
    project id and the number of rude responses per locale."""
    project = get_or_create_project(s, unique_slug())
    project.config = {"bias_attribute": "locale", "segment_keys": ["locale"], "drift_fields": ["prompt"],
                      "drift_min_samples": 100_000, "safety_max_samples": max_samples}
    s.flush()
    return project.id, _add_events(s, project.id, sizes, offset)


def _add_events(s: Session, pid: int, sizes: dict[str, int], offset: int) -> dict[str, int]:
    rng = np.random.default_rng(offset + 11)
    events, rude = [], dict.fromkeys(sizes, 0)
    k = offset
    for locale, n in sizes.items():
        for i in range(n):
            is_rude = bool(rng.random() < 0.125)
            rude[locale] += is_rude
            events.append(EventIn(event_id=f"{locale}-{offset}-{i}", timestamp=T0 + timedelta(milliseconds=50 * k),
                                  prompt=f"Question {i}", response=ABUSE[i % 3] if is_rude else NICE[i % 4],
                                  metadata={"locale": locale}))
            k += 1
    rng.shuffle(events)  # rude and nice interleaved in id order too
    ingest_events(s, pid, events)
    s.commit()
    return rude


def _scored(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(EventScore).where(
        EventScore.field == "response", EventScore.scorer == DEFAULT_TOXICITY_SCORER)) or 0)


def test_a_large_window_scores_a_uniform_sample_per_segment(session_maker: sessionmaker[Session]) -> None:
    sizes = {"en": 2400, "de": 1000, "fr": 150}
    with session_maker() as s:
        before = _scored(s)
        pid, rude = _seed_large(s, sizes, max_samples=400)
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        scored = _scored(s) - before
        # Each segment's sample is at most 400; the union is what got scored, far fewer than the 3,550 events.
        assert 400 <= scored <= 4 * 400 and scored < 3550 / 2
        overall = _row(s, pid, "safety.toxicity_rate.response")
        assert overall.n == 400 and overall.details["sampled"] == 400 and overall.details["events"] == 3550
        truth = sum(rude.values()) / 3550
        se = np.sqrt(truth * (1 - truth) / 400)
        assert overall.value is not None and abs(overall.value - truth) < 4 * se, (overall.value, truth)
        small = _row(s, pid, "safety.toxicity_rate.response", "locale=fr")
        assert small.n == 150 and "sampled" not in small.details  # a small segment keeps every event
        assert small.value == pytest.approx(rude["fr"] / 150)
        # The abuse signal scores the same sample (every abusive line is rude too).
        assert _row(s, pid, "safety.profanity_rate.response", "locale=fr").value == pytest.approx(rude["fr"] / 150)
        assert _row(s, pid, "safety.profanity_rate.response").n == 400
        en = _row(s, pid, "safety.toxicity_rate.response", "locale=en")
        assert en.n == 400 and en.details["events"] == 2400
        gap = _row(s, pid, "bias.toxicity_rate.gap")
        assert gap.status == "ok" and gap.details["sampled"] == 400
        assert gap.flagged is False, (gap.value, gap.p_value)  # every locale is rude at the same rate


def test_a_grown_window_scores_only_what_its_new_sample_brought(session_maker: sessionmaker[Session]) -> None:
    with session_maker() as s:
        pid, _ = _seed_large(s, {"en": 2000, "de": 1000}, max_samples=300)
    assert run_pending(factory=session_maker, project_ids=[pid]).failures == []
    with session_maker() as s:
        first = _scored(s)
        _add_events(s, pid, {"en": 400, "de": 200}, offset=3000)
    process_window(pid, T0, factory=session_maker)
    with session_maker() as s:
        added = _scored(s) - first
        # 600 new events among 3,600: each sample of 300 trades about a sixth of its events for new ones.
        assert 0 < added < 300, added
        assert _row(s, pid, "safety.toxicity_rate.response").details["events"] == 3600


def test_the_explorer_labels_the_abuse_signal_by_the_key_the_stage_stores() -> None:
    from monitor.events.queries import PROFANITY_SCORER as EXPLORER_KEY
    from monitor.pipeline.stages.safety import scorer_key

    assert scorer_key(PROFANITY_SCORER) == EXPLORER_KEY
