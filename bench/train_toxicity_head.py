"""Train the ensemble toxicity head (monitor/safety/data/toxicity_head_ensemble.npz) from the public extracts.

    python bench/train_toxicity_head.py [--out PATH] [--seed 0]

Features: the MiniLM vector of a text (as the pipeline stores it), the lexical model's log-odds and the 0/1 cue
features (quote, negation, reported speech, condemnation; monitor.safety.embedding_head.CUES). Training
data: bench/data/toxicity/ training splits only (identity templates, HateCheck train half and the same
templates filled for 14 more groups, Stormfront train, wiki comments train); the test splits are never read
here. Each (source, label) cell gets the same total weight, so
neither the large Stormfront set nor its 9:1 class ratio dominates, and the neutral identity templates
("I am gay", "being muslim is fine") weigh as much as the hateful ones: the explicit counterweight to
identity-word bias.

The head is an ensemble of ENSEMBLE one-hidden-layer MLPs (different seeds) folded into one wider layer, the
output their mean logit. Weight decay and threshold are chosen on a validation split (20% of each source;
HateCheck by whole template family) of the training data, which the shipped head never sees: candidate decays
are compared by mean validation ROC AUC over the sources; the threshold maximises the source-balanced Youden J
on the validation split among the thresholds that flag at most 3% of its neutral identity statements (non-toxic
identity templates, HateCheck's neutral and positive statements about groups) and at most 10% of any one
group's, with a bootstrap interval. The shipped head is the one whose validation scores chose the threshold
(no refit), so the threshold in the file is calibrated on data the head did not train on.
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

from monitor.safety.embedding_head import CUES, HEAD_EMBEDDING_KEY, HeadWeights, head_features, head_probability

# The ensemble ships beside the default head (minilm-head:ensemble) until it is made the default.
OUT = Path(__file__).resolve().parents[1] / "monitor" / "safety" / "data" / "toxicity_head_ensemble.npz"
HIDDEN = 32  # units per ensemble member
ENSEMBLE = 5
DECAYS = (1e-3, 1e-2)  # candidate weight decays
# Most a default may flag of the validation split's neutral statements naming an identity group, overall and
# per group (a group's validation slice is small: 10% is one or two statements).
MAX_NEUTRAL_IDENTITY_FPR = 0.03
MAX_GROUP_NEUTRAL_FPR = 0.10
# Extra weight on neutral statements that name a group: an embedding puts "we should look up to these X" next
# to "we should get rid of these X", and these are the examples that teach the head the difference.
NEUTRAL_IDENTITY_WEIGHT = 4.0


def features(texts: list[str]) -> np.ndarray:
    import profanity_check

    return head_features(texts, embed_cached(texts), np.asarray(profanity_check.predict_prob(texts)), tuple(CUES))


def cell_weights(source: np.ndarray, y: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """Each (source, label) cell sums to the same weight, neutral identity statements count
    NEUTRAL_IDENTITY_WEIGHT times within their cell; weights average 1."""
    w = np.zeros(len(y))
    cells = {(s, c) for s, c in zip(source.tolist(), y.tolist(), strict=True)}
    for s, c in cells:
        m = (source == s) & (y == c)
        boost = np.where(neutral[m], NEUTRAL_IDENTITY_WEIGHT, 1.0)
        w[m] = boost / boost.sum()
    return w * len(y) / w.sum()


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, hidden: int, decay: float, seed: int) -> HeadWeights:
    import torch

    torch.manual_seed(seed)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / scale)
    yt, wt = torch.tensor(y, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)
    layers: list[torch.nn.Module] = []
    if hidden:
        layers += [torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)]
    else:
        layers += [torch.nn.Linear(x.shape[1], 1)]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    gen = torch.Generator().manual_seed(seed)
    for _epoch in range(25):
        for idx in torch.randperm(len(yt), generator=gen).split(256):
            opt.zero_grad()
            loss = (loss_fn(net(xt[idx]).squeeze(1), yt[idx]) * wt[idx]).mean()
            loss = loss + decay * sum((p**2).sum() for n, p in net.named_parameters() if n.endswith("weight"))
            loss.backward()
            opt.step()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    hidden_layers = tuple((m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in lin[:-1])
    out = lin[-1]
    return HeadWeights(hidden_layers, out.weight.detach().numpy().T.copy().reshape(-1), float(out.bias.item()),
                       mean.astype(np.float32), scale.astype(np.float32), {"threshold": 0.5})


def fit_ensemble(x: np.ndarray, y: np.ndarray, w: np.ndarray, decay: float, seed: int) -> HeadWeights:
    """ENSEMBLE MLPs of HIDDEN units (seeds seed..seed+ENSEMBLE-1) folded into one: hidden layers side by side,
    output weights divided by ENSEMBLE, so the output is the members' mean logit."""
    members = [fit(x, y, w, HIDDEN, decay, seed + k) for k in range(ENSEMBLE)]
    w1 = np.concatenate([m.hidden[0][0] for m in members], axis=1)
    b1 = np.concatenate([m.hidden[0][1] for m in members])
    out_w = np.concatenate([m.out_w for m in members]) / ENSEMBLE
    out_b = float(np.mean([m.out_b for m in members]))
    return HeadWeights(((w1, b1),), out_w.astype(np.float32), out_b, members[0].mean, members[0].scale, {})


def balanced_youden(p: np.ndarray, y: np.ndarray, w: np.ndarray, neutral_identity: np.ndarray,
                    group: np.ndarray) -> tuple[float, float]:
    """(threshold, J) maximising weighted TPR - FPR over the cut points that flag at most
    MAX_NEUTRAL_IDENTITY_FPR of the neutral identity statements and MAX_GROUP_NEUTRAL_FPR of any group's."""
    cuts = np.unique(np.round(p, 3))
    pos, neg = y == 1, y == 0
    groups = [neutral_identity & (group == g) for g in np.unique(group[neutral_identity])]
    best = (1.0, -1.0)
    for c in cuts:
        flag = p >= c
        if neutral_identity.any() and flag[neutral_identity].mean() > MAX_NEUTRAL_IDENTITY_FPR:
            continue
        if any(flag[m].mean() > MAX_GROUP_NEUTRAL_FPR for m in groups if m.sum() >= 5):
            continue
        j = (w[pos & flag].sum() / w[pos].sum()) - (w[neg & flag].sum() / w[neg].sum())
        if j > best[1]:
            best = (float(c), float(j))
    return best


def mean_auc(p: np.ndarray, y: np.ndarray, source: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(y[source == s], p[source == s]) for s in np.unique(source)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sets = training_sets()
    texts = [t for s in sets for t in s.texts]
    y = np.concatenate([s.labels for s in sets]).astype(np.float32)
    source = np.array([s.name for s in sets for _ in s.texts])
    target = np.array([g for s in sets for g in s.targets])
    x = features(texts)
    # Neutral statements naming a group: non-toxic identity templates and HateCheck's neutral/positive cases.
    kinds = np.array([g for s in sets for g in s.groups])
    neutral = (y == 0) & (((source == "identity_templates") & (kinds != "you_occupation"))
                          | np.isin(kinds, ("ident_neutral_nh", "ident_pos_nh")))
    rng = np.random.default_rng(args.seed)
    # 20% of each source held out for validation, whole HateCheck template families at a time, so the model
    # and threshold are chosen for sentences whose template it has not seen (as on the test split).
    units = np.array([u for s in sets for u in s.units])
    val = np.zeros(len(y), dtype=bool)
    for s in np.unique(source):
        names = np.unique(units[source == s])
        val |= np.isin(units, rng.choice(names, size=len(names) // 5, replace=False))
    tr = ~val
    results = []
    for decay in DECAYS:
        head = fit_ensemble(x[tr], y[tr], cell_weights(source[tr], y[tr], neutral[tr]), decay, args.seed)
        p = head_probability(head, x[val])
        auc = mean_auc(p, y[val], source[val])
        results.append((auc, decay, head, p))
        print(f"{ENSEMBLE} x {HIDDEN} units, decay {decay:g}: validation ROC AUC (mean over sources) {auc:.4f}",
              flush=True)
    auc, decay, head, pv = max(results, key=lambda r: r[0])
    wv = cell_weights(source[val], y[val], np.zeros(int(val.sum()), dtype=bool))
    nv, gv = neutral[val], target[val]
    threshold, j = balanced_youden(pv, y[val], wv, nv, gv)
    boot = []
    for _ in range(200):
        b = rng.integers(0, val.sum(), size=val.sum())
        boot.append(balanced_youden(pv[b], y[val][b], wv[b], nv[b], gv[b])[0])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    flagged = pv[nv] >= threshold
    print(f"chosen: decay {decay:g}; threshold {threshold:.3f} (95% bootstrap {lo:.3f}-{hi:.3f}), "
          f"validation Youden J {j:.3f}, validation neutral identity false-flag {flagged.mean():.3f}")
    meta = {
        "embedding_key": HEAD_EMBEDDING_KEY,
        "features": "MiniLM vector (float16-rounded) + alt-profanity-check log-odds + cue features",
        "cues": list(CUES),
        "hidden_units": HIDDEN * ENSEMBLE, "ensemble": ENSEMBLE, "member_hidden_units": HIDDEN,
        "neutral_identity_weight": NEUTRAL_IDENTITY_WEIGHT, "weight_decay": decay, "seed": args.seed,
        "threshold": round(threshold, 3), "max_neutral_identity_fpr": MAX_NEUTRAL_IDENTITY_FPR,
        "max_group_neutral_fpr": MAX_GROUP_NEUTRAL_FPR,
        "threshold_ci95": [round(float(lo), 3), round(float(hi), 3)],
        "validation_auc_mean": round(auc, 4), "validation_youden_j": round(j, 4),
        "validation_neutral_identity_fpr": round(float(flagged.mean()), 4),
        "training": {s.name: {"n": int((source[tr] == s.name).sum()), "toxic": int(y[tr][source[tr] == s.name].sum())}
                     for s in sets},
        "data": "bench/data/toxicity/README.md",
        "attribution": "conversationai/unintended-ml-bias-analysis@9c7d91a (CC BY 4.0); "
                       "paul-rottger/hatecheck-data@d843022 (CC BY 4.0, Roettger et al. 2021); "
                       "Vicomtech/hate-speech-dataset@b802137 (CC BY-SA 3.0 ES, de Gibert et al. 2018)",
    }
    final = HeadWeights(head.hidden, head.out_w, head.out_b, head.mean, head.scale, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    final.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
