"""Separation of a toxicity scorer on realistic hateful vs neutral statements: one command.

    python bench/safety_calibration.py [--scorer profanity | --scorer hf:<model>]

Scores the shipped calibration set (monitor/safety/data/calibration.yaml), prints ROC AUC, the
Youden-optimal threshold, and per-category flag rates at that threshold, at the driftloop
default and at 0.5, plus a threshold sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.safety.calibration import ThresholdCalibration, calibrate_threshold, load_calibration_set
from monitor.safety.toxicity import get_scorer, threshold_for


def _summary(label: str, cal: ThresholdCalibration) -> str:
    return (
        f"{label:<22} threshold {cal.threshold:.3f}  TPR {cal.tpr:.3f}  FPR {cal.fpr:.3f}  "
        f"balanced accuracy {cal.balanced_accuracy:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="profanity")
    args = parser.parse_args()
    scorer = get_scorer(args.scorer)
    examples = load_calibration_set()
    chosen = calibrate_threshold(scorer, examples)
    fixed = {
        f"default ({threshold_for(scorer):g})": calibrate_threshold(
            scorer, examples, threshold=threshold_for(scorer)
        ),
        "0.5": calibrate_threshold(scorer, examples, threshold=0.5),
    }
    print(f"scorer {scorer.name}: {chosen.n_positive} hateful, {chosen.n_negative} neutral statements")
    print(f"ROC AUC {chosen.roc_auc:.3f}")
    print(_summary("Youden-optimal", chosen))
    for label, cal in fixed.items():
        print(_summary(label, cal))
    print()
    columns = ["Youden", *fixed]
    print(f"{'category':<24}{'label':>6}{'n':>5}{'mean score':>12}" + "".join(f"{c:>16}" for c in columns))
    by_cal = [chosen, *fixed.values()]
    for i, cat in enumerate(chosen.categories):
        rates = "".join(f"{cal.categories[i].flagged_rate:>16.2f}" for cal in by_cal)
        kind = "hate" if cat.label else "ok"
        print(f"{cat.category:<24}{kind:>6}{cat.n:>5}{cat.mean_score:>12.2f}{rates}")
    print("\n(flag rates: share of the category scored at or above each threshold)")
    print("\nthreshold sweep:")
    for t in (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8):
        print("  " + _summary(f"{t:.2f}", calibrate_threshold(scorer, examples, threshold=t)))


if __name__ == "__main__":
    main()
