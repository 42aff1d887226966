"""Train the shipped prompt-injection head (monitor/evaluators/data/injection_head.npz) from the public extract.

    python bench/train_injection_head.py [--out PATH] [--seed 0]

Data: bench/data/evaluators/injection_prompts.jsonl, **train split only** (the test split, held out by template
group, is read only by bench/evaluators_judge.py). Features: the MiniLM vector of the prompt (float16 round trip,
as the pipeline stores it), the 0/1 cue features and the scaled log length (monitor.evaluators.injection).

Each (source, label) cell gets the same total weight, so the 650 in-the-wild jailbreaks do not drown the 28
system-prompt extraction attempts, nor the 600 short customer queries the long benign instructions. Candidates
(logistic regression at two strengths, a 32-unit MLP) are compared by validation ROC AUC on a group-held-out 20%
of the training split; the threshold is the one with the best Youden J among those that flag at most
``MAX_BENIGN_FPR`` of the validation benign prompts (a monitor that pages on ordinary prompts gets muted), and
the chosen model is refit on the whole training split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from toxicity_sets import embed_cached

from monitor.evaluators.injection import CUES, HEAD_PATH, injection_features
from monitor.safety.embedding_head import HEAD_EMBEDDING_KEY, HeadWeights, head_probability

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "evaluators" / "injection_prompts.jsonl"
MAX_BENIGN_FPR = 0.02
VERSION = "1"


def load(split: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    # split("\n"), not splitlines(): some texts hold U+2028, which splitlines() would cut at.
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").split("\n") if line]
    rows = [r for r in rows if r["split"] == split]
    return ([r["text"] for r in rows], np.array([r["label"] for r in rows]), np.array([r["source"] for r in rows]),
            np.array([r["group"] for r in rows]))


def cell_weights(source: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = np.zeros(len(y))
    cells = {(s, int(label)) for s, label in zip(source, y, strict=True)}
    for s, label in cells:
        mask = (source == s) & (y == label)
        w[mask] = 1.0 / mask.sum()
    return w * len(y) / w.sum()


def fit(kind: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> HeadWeights:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / scale
    meta = {"embedding_key": HEAD_EMBEDDING_KEY, "cues": list(CUES), "kind": kind, "threshold": 0.5,
            "version": VERSION}
    if kind.startswith("logistic"):
        c = float(kind.split(":")[1])
        lr = LogisticRegression(C=c, max_iter=3000).fit(xs, y, sample_weight=w)
        return HeadWeights((), lr.coef_[0].astype(np.float32), float(lr.intercept_[0]), mean.astype(np.float32),
                           scale.astype(np.float32), meta)
    # MLPClassifier takes no sample weights: resample by weight instead (seeded).
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), size=3 * len(y), p=w / w.sum())
    mlp = MLPClassifier(hidden_layer_sizes=(32,), alpha=1e-2, max_iter=400, random_state=seed).fit(xs[idx], y[idx])
    (w1, w2), (b1, b2) = mlp.coefs_, mlp.intercepts_
    return HeadWeights(((w1.astype(np.float32), b1.astype(np.float32)),), w2[:, 0].astype(np.float32),
                       float(b2[0]), mean.astype(np.float32), scale.astype(np.float32), meta)


def auc(p: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p, sample_weight=w))


def pick_threshold(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    best, best_j = 0.5, -1.0
    for t in np.unique(np.round(p, 4)):
        flag = p >= t
        fpr = float(flag[y == 0].mean())
        if fpr > MAX_BENIGN_FPR:
            continue
        tpr = float(np.average(flag[y == 1], weights=w[y == 1]))
        if tpr - fpr > best_j:
            best, best_j = float(t), tpr - fpr
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HEAD_PATH)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    texts, y, source, group = load("train")
    x = injection_features(texts, embed_cached(texts))
    w = cell_weights(source, y)
    h = np.array([int(hashlib.sha256(f"val:{g}".encode()).hexdigest()[:8], 16) / 2**32 for g in group])
    val = h < 0.2
    results = {}
    for kind in ("logistic:0.05", "logistic:0.5", "mlp"):
        head = fit(kind, x[~val], y[~val], w[~val], args.seed)
        p = head_probability(head, x[val])
        results[kind] = (auc(p, y[val], w[val]), head, p)
        print(f"{kind:14s} validation AUC (cell-weighted) {results[kind][0]:.4f}")
    kind = max(results, key=lambda k: results[k][0])
    threshold = pick_threshold(results[kind][2], y[val], w[val])
    head = fit(kind, x, y, w, args.seed)
    head.meta.update({"threshold": threshold, "validation_auc": round(results[kind][0], 4),
                      "max_benign_fpr": MAX_BENIGN_FPR, "trained_on": "bench/data/evaluators/injection_prompts.jsonl "
                      "split=train", "n_train": len(y)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    print(f"chose {kind}, threshold {threshold:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
