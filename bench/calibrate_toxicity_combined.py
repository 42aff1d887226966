"""Choose the combined scorer's (minilm-combined) lexical threshold on the ensemble head's validation split.

    python bench/calibrate_toxicity_combined.py [--write]

The combined scorer (``minilm-combined``, monitor.safety.combined) flags a text when the ensemble head
(``minilm-head:ensemble``) scores it at or above the head's own threshold OR the lexical model, run on the text
with identity terms masked and quoted spans removed, scores it at or above a lexical threshold. The head's
threshold is kept as shipped (chosen on its validation split); this script chooses the lexical one on the same
validation split (rebuilt with the training script's seed and code, so the head never trained on it): the cut
that maximises the source-balanced Youden J of the combination among the cuts that keep the combination within
the head's own fairness bounds (at most MAX_NEUTRAL_IDENTITY_FPR of the validation split's neutral identity
statements flagged, at most MAX_GROUP_NEUTRAL_FPR of any group's), with a bootstrap interval. The held-out test
splits are never read here, nor is ToxiGen. ``--write`` stores the result in monitor/safety/data/toxicity_combined.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from toxicity_sets import embed_cached, training_sets
from train_toxicity_head import (
    MAX_GROUP_NEUTRAL_FPR,
    MAX_NEUTRAL_IDENTITY_FPR,
    cell_weights,
    mean_auc,
    neutral_identity_mask,
    validation_mask,
)

from monitor.safety.combined import COMBINED_FILE, lexical_input, rescale
from monitor.safety.embedding_head import EmbeddingHeadScorer, _lexical

ROOT = Path(__file__).resolve().parents[1]
HEAD = "ensemble"
CUTS = np.round(np.arange(0.30, 0.996, 0.005), 3)


def constrained_j(flag: np.ndarray, y: np.ndarray, w: np.ndarray, neutral: np.ndarray, group: np.ndarray) -> float:
    """Weighted TPR - FPR of ``flag``, or -1 when it breaks the neutral identity bounds (overall or any group with
    at least 5 statements in the split)."""
    if neutral.any() and flag[neutral].mean() > MAX_NEUTRAL_IDENTITY_FPR:
        return -1.0
    for g in np.unique(group[neutral]):
        m = neutral & (group == g)
        if m.sum() >= 5 and flag[m].sum() > MAX_GROUP_NEUTRAL_FPR * m.sum():
            return -1.0
    pos, neg = y == 1, y == 0
    return float(w[pos & flag].sum() / w[pos].sum() - w[neg & flag].sum() / w[neg].sum())


def best_cut(head_flag: np.ndarray, lex: np.ndarray, y: np.ndarray, w: np.ndarray, neutral: np.ndarray,
             group: np.ndarray) -> tuple[float, float]:
    """(lexical threshold, J) maximising the combination's constrained J; the highest cut on ties."""
    best = (1.0, constrained_j(head_flag, y, w, neutral, group))
    for c in CUTS[::-1]:
        j = constrained_j(head_flag | (lex >= c), y, w, neutral, group)
        if j > best[1] + 1e-9:
            best = (float(c), j)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the thresholds in monitor/safety/data")
    parser.add_argument("--seed", type=int, default=0, help="the seed the ensemble head was trained with")
    args = parser.parse_args()
    head = EmbeddingHeadScorer(HEAD)
    if head.weights.meta.get("seed") != args.seed:
        raise SystemExit(f"the {HEAD} head was trained with seed {head.weights.meta.get('seed')}, not {args.seed}")
    sets = training_sets()  # the ensemble recipe trains on all of them (more_groups included)
    rng = np.random.default_rng(args.seed)
    val = validation_mask(sets, rng)
    texts = [t for s in sets for t in s.texts]
    y = np.concatenate([s.labels for s in sets])[val]
    source = np.array([s.name for s in sets for _ in s.texts])[val]
    group = np.array([g for s in sets for g in s.targets])[val]
    neutral = neutral_identity_mask(sets)[val]
    vtexts = [t for t, v in zip(texts, val, strict=True) if v]
    expected = {s.name: len(s.texts) - head.weights.meta["training"][s.name]["n"] for s in sets}
    got = {s: int((source == s).sum()) for s in expected}
    if got != expected:
        raise SystemExit(f"validation split differs from the head's: {got} vs {expected}")
    p_head = head.score_embedded(vtexts, embed_cached(vtexts))
    lex = _lexical([lexical_input(t) for t in vtexts])
    w = cell_weights(source, y, np.zeros(len(y), dtype=bool))
    t_head = head.threshold
    head_flag = p_head >= t_head
    cut, j = best_cut(head_flag, lex, y, w, neutral, group)
    boot = []
    for _ in range(200):
        b = rng.integers(0, len(y), size=len(y))
        boot.append(best_cut(head_flag[b], lex[b], y[b], w[b], neutral[b], group[b])[0])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    combined = np.maximum(rescale(p_head, t_head), rescale(lex, cut))
    flag = combined >= 0.5
    print(f"validation split: {len(y)} texts; head alone: J {constrained_j(head_flag, y, w, neutral, group):.3f}, "
          f"mean AUC {mean_auc(p_head, y, source):.4f}")
    print(f"lexical threshold {cut:.3f} (95% bootstrap {lo:.3f}-{hi:.3f}); combined J {j:.3f}, mean AUC "
          f"{mean_auc(combined, y, source):.4f}, neutral identity false-flag {flag[neutral].mean():.4f}")
    for s in np.unique(source):
        m = source == s
        print(f"  {s:<20} recall head {head_flag[m & (y == 1)].mean():.3f} combined {flag[m & (y == 1)].mean():.3f}"
              f"   false-flag head {head_flag[m & (y == 0)].mean():.3f} combined {flag[m & (y == 0)].mean():.3f}")
    meta = {
        "head": HEAD, "head_threshold": t_head, "lexical_threshold": cut,
        "lexical_threshold_ci95": [round(float(lo), 3), round(float(hi), 3)],
        "chosen_on": f"validation split of the {HEAD} head's training data (bench/train_toxicity_head.py seed "
                     f"{args.seed}): max source-balanced Youden J with at most {MAX_NEUTRAL_IDENTITY_FPR} of neutral "
                     f"identity statements and {MAX_GROUP_NEUTRAL_FPR} of any group's flagged",
        "validation_youden_j": round(j, 4), "validation_auc_mean": round(mean_auc(combined, y, source), 4),
        "validation_neutral_identity_fpr": round(float(flag[neutral].mean()), 4),
        "command": "python bench/calibrate_toxicity_combined.py --write",
    }
    print(json.dumps(meta, indent=1))
    if args.write:
        out = ROOT / "monitor" / "safety" / "data" / COMBINED_FILE
        out.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
