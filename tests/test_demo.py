"""The demo, non-interactively: each stage's outcome is asserted (issue: one-command end-to-end demo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.demo.run import run_demo

pytestmark = pytest.mark.slow


def test_demo_detects_the_shift(tmp_path: Path) -> None:
    seen: set[str] = set()
    report = run_demo(tmp_path, events_per_window=100, progress=lambda stage, done, total: seen.add(stage))
    assert report.ok, [(s.name, s.detail) for s in report.stages if not s.ok]
    assert report.events_stored == 600
    # Only the two shifted windows (the last two simulated hours) drift; the quiet ones do not page anyone.
    assert len(report.drift_windows) == 2
    assert any(w in " ".join(report.explanation_examples).lower()
               for w in ("cook", "recipe", "bake", "visit", "itinerary", "pack", "museum", "visa", "wine"))
    assert {"traffic", "metrics"} <= seen
    # The drift rule fired once (not once per drifted window) and the receiver verified its signature.
    assert report.values["alert_firing"] >= 1
