"""Training-set builder: selection, PII scrubbing, toxicity filter, dedupe, deterministic split and hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrain.dataset.builder import BuildOptions, FeedbackRow, build_dataset, read_snapshot
from retrain.dataset.pii import luhn_ok, scrub


def row(i: int, **kw) -> FeedbackRow:  # type: ignore[no-untyped-def]
    base = {"event_id": f"e{i}", "prompt": f"How do I export report number {i}?",
            "response": f"Open Reports, pick report {i}, then Export.", "score": 1.0, "label": None,
            "corrected_response": None}
    base.update(kw)
    return FeedbackRow(**base)


def test_selects_positive_and_corrected_only() -> None:
    rows = [row(1), row(2, score=0.0), row(3, score=None, label="thumbs_up"), row(4, score=None, label="meh"),
            row(5, score=0.0, corrected_response="Use the Export button on report 5."), row(6, prompt=None)]
    snap = build_dataset(rows, options=None)
    examples = {e.event_id: e for e in (*snap.train, *snap.eval)}
    assert set(examples) == {"e1", "e3", "e5"}
    assert examples["e5"].response == "Use the Export button on report 5." and examples["e5"].source == "corrected"
    assert snap.stats["positive"] == 2 and snap.stats["corrected"] == 1


def test_pii_is_scrubbed() -> None:
    text = ("Mail jane.doe+x@example.co.uk or call +1 (415) 555-0132; card 4111 1111 1111 1111, "
            "order 1234567890123 stays.")
    out, n = scrub(text)
    assert "<EMAIL>" in out and "<PHONE>" in out and "<CARD>" in out
    assert "jane.doe" not in out and "4111" not in out and "555-0132" not in out
    assert "1234567890123" in out  # fails the Luhn check: not a card
    assert n == 3
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    snap = build_dataset([row(1, prompt="My email is bob@corp.io, help", response="Write to [EMAIL] support.")])
    assert all("bob@corp.io" not in e.prompt for e in (*snap.train, *snap.eval))


def test_toxic_targets_dropped_and_duplicates_removed() -> None:
    rows = [row(1), row(2, response="You are an idiot, read the manual."),
            row(3, prompt="how do i export REPORT number 1?"),  # same prompt as e1 after normalisation
            row(4, prompt="How do I export report number 1?", corrected_response="Click Export on report 1.")]
    snap = build_dataset(rows, toxicity=lambda texts: [0.9 if "idiot" in t else 0.0 for t in texts],
                         toxicity_threshold=0.5)
    examples = [*snap.train, *snap.eval]
    assert snap.stats["dropped_toxic"] == 1 and snap.stats["dropped_duplicate"] == 2
    assert [e.source for e in examples] == ["corrected"]  # the correction outranks the positive ratings


def test_split_and_hash_are_deterministic(tmp_path: Path) -> None:
    rows = [row(i) for i in range(100)]
    a, b = build_dataset(rows), build_dataset(list(reversed(rows)))
    assert a.content_hash == b.content_hash and a.train == b.train
    assert 10 <= len(a.eval) <= 30 and len(a.train) + len(a.eval) == 100
    path = a.write(tmp_path / "snap.jsonl")
    again = read_snapshot(path)
    assert again.content_hash == a.content_hash and again.train == a.train and again.eval == a.eval
    changed = build_dataset([*rows[:-1], row(99, response="Different answer.")])
    assert changed.content_hash != a.content_hash


@given(st.text(max_size=300))
def test_scrub_never_crashes_and_is_idempotent(text: str) -> None:
    once, _ = scrub(text)
    assert scrub(once)[0] == once


def test_the_toxicity_filter_uses_the_scorers_threshold_unless_the_options_set_one() -> None:
    rows = [row(1), row(2, response="You are an idiot, read the manual.")]
    scores = lambda texts: [0.4 if "idiot" in t else 0.0 for t in texts]  # noqa: E731
    # The scorer's calibrated threshold decides: 0.4 is toxic for a scorer calibrated at 0.3, not at 0.6.
    assert build_dataset(rows, toxicity=scores, toxicity_threshold=0.3).stats["dropped_toxic"] == 1
    assert build_dataset(rows, toxicity=scores, toxicity_threshold=0.6).stats["dropped_toxic"] == 0
    # A threshold in the options (project config) wins over the scorer's.
    opts = BuildOptions(toxicity_threshold=0.35)
    assert build_dataset(rows, toxicity=scores, toxicity_threshold=0.6, options=opts).stats["dropped_toxic"] == 1
    with pytest.raises(ValueError, match="threshold"):  # no silent constant fitted to another scorer
        build_dataset(rows, toxicity=scores)
