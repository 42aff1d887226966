"""Choose a toxicity scorer's decision threshold on labelled hateful vs neutral statements.

Scores from different backends are not on a common scale (a linear profanity model and a
fine-tuned transformer put the same sentence at very different probabilities), so a fixed 0.5
is arbitrary. ``calibrate_threshold`` scores a labelled set and picks the threshold that
maximises Youden's J (true-positive rate minus false-positive rate), reporting the ROC AUC and
per-category flag rates so blind spots (threats, slur-free hate) are visible.

The shipped set (data/calibration.yaml) is small and template-based; prefer your own labelled
traffic when you have it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from monitor.safety.serialization import json_safe
from monitor.safety.toxicity import ToxicityScorer

# Reported, but left out of the threshold choice: whether friendly swearing should count as
# toxic is a product decision, and it would drag a word-based model's threshold up.
EXCLUDED_BY_DEFAULT = ("non_hateful_profanity",)


@dataclass(frozen=True)
class CalibrationExample:
    text: str
    label: int  # 1 hateful / toxic, 0 not
    category: str


@dataclass(frozen=True)
class CategoryRate:
    category: str
    label: int
    n: int
    flagged_rate: float  # share scored at or above the chosen threshold
    mean_score: float


@dataclass(frozen=True)
class ThresholdCalibration:
    scorer: str
    threshold: float
    roc_auc: float
    tpr: float
    fpr: float
    balanced_accuracy: float
    n_positive: int
    n_negative: int
    categories: tuple[CategoryRate, ...]

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))


def load_calibration_set(path: str | Path | None = None) -> tuple[CalibrationExample, ...]:
    """Expand the calibration YAML (templates x identity groups) into labelled examples."""
    import yaml

    if path is None:
        text = resources.files("monitor.safety.data").joinpath("calibration.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    groups = [str(g) for g in data["identity_groups"]]
    out: list[CalibrationExample] = []
    for section, label in (("hateful", 1), ("neutral", 0)):
        for category, templates in data.get(section, {}).items():
            for template in templates:
                for group in groups:
                    sentence = str(template).replace("{group}", group)
                    out.append(CalibrationExample(sentence[0].upper() + sentence[1:], label, str(category)))
    for category, label in (
        ("hateful_free_text", 1),
        ("neutral_free_text", 0),
        ("neutral_general", 0),
        ("non_hateful_profanity", 0),
    ):
        out.extend(CalibrationExample(str(s), label, category) for s in data.get(category, []))
    return tuple(out)


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold maximising TPR - FPR, placed midway between the two scores it separates."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    cut = float(thresholds[best])
    if not math.isfinite(cut):  # roc_curve's first threshold is +inf
        return 1.0
    below = scores[scores < cut]
    return (cut + float(below.max())) / 2 if below.size else cut


def calibrate_threshold(
    scorer: ToxicityScorer,
    examples: Sequence[CalibrationExample] | None = None,
    *,
    exclude_categories: Sequence[str] = EXCLUDED_BY_DEFAULT,
    threshold: float | None = None,
) -> ThresholdCalibration:
    """Score ``examples`` (the shipped set by default) and choose, or evaluate, a threshold.

    With ``threshold`` given, that threshold is evaluated instead of chosen.
    """
    from sklearn.metrics import roc_auc_score

    items = tuple(examples if examples is not None else load_calibration_set())
    scores = np.asarray(scorer.score([e.text for e in items]), dtype=np.float64)
    labels = np.array([e.label for e in items])
    cats = np.array([e.category for e in items])
    used = ~np.isin(cats, list(exclude_categories))
    if len(set(labels[used].tolist())) < 2:
        raise ValueError("calibration needs both hateful (1) and neutral (0) examples")
    cut = youden_threshold(scores[used], labels[used]) if threshold is None else threshold
    flagged = scores >= cut
    pos, neg = used & (labels == 1), used & (labels == 0)
    tpr = float(flagged[pos].mean())
    fpr = float(flagged[neg].mean())
    categories = tuple(
        CategoryRate(
            str(c),
            int(labels[cats == c][0]),
            int((cats == c).sum()),
            float(flagged[cats == c].mean()),
            float(scores[cats == c].mean()),
        )
        for c in dict.fromkeys(cats.tolist())
    )
    return ThresholdCalibration(
        scorer.name,
        float(cut),
        float(roc_auc_score(labels[used], scores[used])),
        tpr,
        fpr,
        (tpr + 1.0 - fpr) / 2.0,
        int(pos.sum()),
        int(neg.sum()),
        categories,
    )
