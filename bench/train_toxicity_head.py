"""Train the shipped toxicity heads (monitor/safety/data/toxicity_head*.npz) from the public extracts.

    python bench/train_toxicity_head.py [--head default|ensemble|abuse] [--out PATH] [--seed 0]

``--head`` picks the recipe (``RECIPES``) of one head; each rebuilds its file from bench/data/toxicity/:
- ``default`` (``minilm-head``, toxicity_head.npz): a single MLP (or logistic regression, whichever validates
  best) over the vector and the lexical log-odds, no cues, without the 14 more groups, refit on all training data.
- ``ensemble`` (``minilm-head:ensemble``, toxicity_head_ensemble.npz): 5 MLPs with cue features, two weight decays.
- ``abuse`` (not shipped; bench/results/toxicity_head_abuse.npz): the ensemble with non-hateful abuse weighted
  up (ABUSE_WEIGHT: the wiki comments' toxic ones, HateCheck's abuse of individuals and non-protected groups)
  and a per-group bound that allows one statement of a group's small validation slice; an attempt at a head
  that flags rudeness as well as hate while staying fair (docs/safety.md has its held-out figures).
``--abuse-weight`` and ``--neutral-weight`` override a recipe's weights (experiments; recorded in the metadata).

Features: the MiniLM vector of a text (as the pipeline stores it), the lexical model's log-odds and (ensembles)
the 0/1 cue features (quote, negation, reported speech, condemnation; monitor.safety.embedding_head.CUES).
Training data: bench/data/toxicity/ training splits only (identity templates, HateCheck train half and (not
default) the same templates filled for 14 more groups, Stormfront train, wiki comments train); the test splits
are never read here. Each (source, label) cell gets the same total weight, so
neither the large Stormfront set nor its 9:1 class ratio dominates, and the neutral identity templates
("I am gay", "being muslim is fine") weigh as much as the hateful ones: the explicit counterweight to
identity-word bias.

The ensemble heads are ENSEMBLE one-hidden-layer MLPs (different seeds) folded into one wider layer, the
output their mean logit. Weight decay and threshold are chosen on a validation split (20% of each source;
HateCheck by whole template family) of the training data: candidates are compared by mean validation ROC AUC
over the sources; the threshold maximises the source-balanced Youden J on the validation split among the
thresholds that flag at most 3% of its neutral identity statements (non-toxic identity templates, HateCheck's
neutral and positive statements about groups) and (ensembles) at most 10% of any one group's, with a bootstrap
interval. A shipped ensemble is the one whose validation scores chose the threshold (no refit), so the
threshold in the file is calibrated on data the head did not train on; the default was refit on all training
data after the choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from toxicity_sets import ABUSE_FUNCTIONALITIES, LabelledSet, embed_cached, training_sets

from monitor.safety.embedding_head import CUES, HEAD_EMBEDDING_KEY, HeadWeights, head_features, head_probability

ROOT = Path(__file__).resolve().parents[1]
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
# Extra weight on abuse that is not hate (the wiki comments' toxic ones, HateCheck's abuse of individuals and of
# non-protected groups): a monitor's toxicity must flag "Shut up and read the damn manual", and without this the
# hate-heavy data teaches the head to ignore rudeness.
ABUSE_WEIGHT = 4.0


@dataclass(frozen=True)
class Recipe:
    """How one shipped head is trained."""

    file: str  # relative to the repository root
    candidates: tuple[tuple[int, float], ...]  # (hidden units per member, weight decay), compared on validation
    ensemble: int  # members folded into one layer; 1: a single network
    cues: tuple[str, ...]
    more_groups: bool  # train on HateCheck's templates filled for 14 more groups too
    abuse_weight: float
    group_bound: int  # 0: no per-group bound; 1: at most 10% of a group; 2: at most 10% or one statement
    refit: bool  # refit the chosen candidate on all training data (default) instead of shipping the validated fit
    neutral_weight: float = NEUTRAL_IDENTITY_WEIGHT


RECIPES = {
    "default": Recipe("monitor/safety/data/toxicity_head.npz", ((0, 1e-3), (32, 1e-3), (32, 1e-2)), 1, (), False,
                      1.0, 0, True),
    "ensemble": Recipe("monitor/safety/data/toxicity_head_ensemble.npz", tuple((HIDDEN, d) for d in DECAYS),
                       ENSEMBLE, tuple(CUES), True, 1.0, 1, False),
    "abuse": Recipe("bench/results/toxicity_head_abuse.npz", ((HIDDEN, 1e-3),), ENSEMBLE, tuple(CUES), True,
                    ABUSE_WEIGHT, 2, False),
}


def features(texts: list[str], cues: tuple[str, ...] = tuple(CUES)) -> np.ndarray:
    import profanity_check

    return head_features(texts, embed_cached(texts), np.asarray(profanity_check.predict_prob(texts)), cues)


def cell_weights(source: np.ndarray, y: np.ndarray, neutral: np.ndarray, abuse: np.ndarray | None = None,
                 abuse_weight: float = 1.0, neutral_weight: float = NEUTRAL_IDENTITY_WEIGHT) -> np.ndarray:
    """Each (source, label) cell sums to the same weight, neutral identity statements count
    ``neutral_weight`` times within their cell; then ``abuse`` rows (non-hateful abuse labelled toxic) are
    multiplied by ``abuse_weight``; weights average 1."""
    w = np.zeros(len(y))
    cells = {(s, c) for s, c in zip(source.tolist(), y.tolist(), strict=True)}
    for s, c in cells:
        m = (source == s) & (y == c)
        boost = np.where(neutral[m], neutral_weight, 1.0)
        w[m] = boost / boost.sum()
    if abuse is not None:
        w = np.where(abuse, w * abuse_weight, w)
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


def fit_ensemble(x: np.ndarray, y: np.ndarray, w: np.ndarray, decay: float, seed: int,
                 hidden: int = HIDDEN, ensemble: int = ENSEMBLE) -> HeadWeights:
    """``ensemble`` MLPs of ``hidden`` units (seeds seed..seed+ensemble-1) folded into one: hidden layers side by
    side, output weights divided by ``ensemble``, so the output is the members' mean logit (one member: as is)."""
    if ensemble == 1:
        return fit(x, y, w, hidden, decay, seed)
    members = [fit(x, y, w, hidden, decay, seed + k) for k in range(ensemble)]
    w1 = np.concatenate([m.hidden[0][0] for m in members], axis=1)
    b1 = np.concatenate([m.hidden[0][1] for m in members])
    out_w = np.concatenate([m.out_w for m in members]) / ensemble
    out_b = float(np.mean([m.out_b for m in members]))
    return HeadWeights(((w1, b1),), out_w.astype(np.float32), out_b, members[0].mean, members[0].scale, {})


def balanced_youden(p: np.ndarray, y: np.ndarray, w: np.ndarray, neutral_identity: np.ndarray,
                    group: np.ndarray, group_bound: int = 2) -> tuple[float, float]:
    """(threshold, J) maximising weighted TPR - FPR over the cut points that flag at most
    MAX_NEUTRAL_IDENTITY_FPR of the neutral identity statements and (``group_bound`` 1) MAX_GROUP_NEUTRAL_FPR of
    any group's, or (2) that or one statement: a group's validation slice has about 7, where one flag is 14%."""
    cuts = np.unique(np.round(p, 3))
    pos, neg = y == 1, y == 0
    groups = [neutral_identity & (group == g) for g in np.unique(group[neutral_identity])] if group_bound else []
    slack = 1.0 if group_bound == 2 else 0.0
    best = (1.0, -1.0)
    for c in cuts:
        flag = p >= c
        if neutral_identity.any() and flag[neutral_identity].mean() > MAX_NEUTRAL_IDENTITY_FPR:
            continue
        if any(flag[m].sum() > max(slack, MAX_GROUP_NEUTRAL_FPR * m.sum()) for m in groups if m.sum() >= 5):
            continue
        j = (w[pos & flag].sum() / w[pos].sum()) - (w[neg & flag].sum() / w[neg].sum())
        if j > best[1]:
            best = (float(c), float(j))
    return best


def validation_mask(sets: list[LabelledSet], rng: np.random.Generator) -> np.ndarray:
    """20% of each source held out for validation, whole HateCheck template families at a time, so the model
    and threshold are chosen for sentences whose template it has not seen (as on the test split). The same
    ``sets`` and a fresh generator of the same seed give the same split (bench/calibrate_toxicity_combined.py
    relies on it to calibrate on the ensemble head's validation split)."""
    source = np.array([s.name for s in sets for _ in s.texts])
    units = np.array([u for s in sets for u in s.units])
    val = np.zeros(len(units), dtype=bool)
    for s in np.unique(source):
        names = np.unique(units[source == s])
        val |= np.isin(units, rng.choice(names, size=len(names) // 5, replace=False))
    return val


def neutral_identity_mask(sets: list[LabelledSet]) -> np.ndarray:
    """Neutral statements naming a group: non-toxic identity templates and HateCheck's neutral/positive cases."""
    y = np.concatenate([s.labels for s in sets])
    source = np.array([s.name for s in sets for _ in s.texts])
    kinds = np.array([g for s in sets for g in s.groups])
    return np.asarray((y == 0) & (((source == "identity_templates") & (kinds != "you_occupation"))
                                  | np.isin(kinds, ("ident_neutral_nh", "ident_pos_nh"))))


def mean_auc(p: np.ndarray, y: np.ndarray, source: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(y[source == s], p[source == s]) for s in np.unique(source)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=sorted(RECIPES), default="default", help="which shipped head to rebuild")
    parser.add_argument("--out", type=Path, help="where to write it (default: its file in monitor/safety/data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--abuse-weight", type=float, help="override the recipe's weight on non-hateful abuse")
    parser.add_argument("--neutral-weight", type=float, help="override NEUTRAL_IDENTITY_WEIGHT")
    args = parser.parse_args()
    recipe = RECIPES[args.head]
    if args.abuse_weight is not None:
        recipe = replace(recipe, abuse_weight=args.abuse_weight)
    if args.neutral_weight is not None:
        recipe = replace(recipe, neutral_weight=args.neutral_weight)
    out: Path = args.out or ROOT / recipe.file
    sets = [s for s in training_sets() if recipe.more_groups or s.name != "more_groups_train"]
    texts = [t for s in sets for t in s.texts]
    y = np.concatenate([s.labels for s in sets]).astype(np.float32)
    source = np.array([s.name for s in sets for _ in s.texts])
    target = np.array([g for s in sets for g in s.targets])
    x = features(texts, recipe.cues)
    kinds = np.array([g for s in sets for g in s.groups])
    neutral = neutral_identity_mask(sets)
    # Abuse that is not hate, labelled toxic: weighted up by the default recipe.
    abuse = (y == 1) & ((source == "wiki_train") | np.isin(kinds, ABUSE_FUNCTIONALITIES))
    rng = np.random.default_rng(args.seed)
    val = validation_mask(sets, rng)
    tr = ~val
    results = []
    for hidden, decay in recipe.candidates:
        w_tr = cell_weights(source[tr], y[tr], neutral[tr], abuse[tr], recipe.abuse_weight, recipe.neutral_weight)
        head = fit_ensemble(x[tr], y[tr], w_tr, decay, args.seed, hidden, recipe.ensemble)
        p = head_probability(head, x[val])
        auc = mean_auc(p, y[val], source[val])
        results.append((auc, hidden, decay, head, p))
        print(f"{recipe.ensemble} x {hidden} units, decay {decay:g}: validation ROC AUC (mean over sources) "
              f"{auc:.4f}", flush=True)
    auc, hidden, decay, head, pv = max(results, key=lambda r: r[0])
    wv = cell_weights(source[val], y[val], np.zeros(int(val.sum()), dtype=bool))
    nv, gv = neutral[val], target[val]
    threshold, j = balanced_youden(pv, y[val], wv, nv, gv, recipe.group_bound)
    boot = []
    for _ in range(200):
        b = rng.integers(0, val.sum(), size=val.sum())
        boot.append(balanced_youden(pv[b], y[val][b], wv[b], nv[b], gv[b], recipe.group_bound)[0])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    flagged = pv[nv] >= threshold
    print(f"chosen: {hidden} units, decay {decay:g}; threshold {threshold:.3f} (95% bootstrap {lo:.3f}-{hi:.3f}), "
          f"validation Youden J {j:.3f}, validation neutral identity false-flag {flagged.mean():.3f}")
    fitted = tr
    if recipe.refit:
        head = fit_ensemble(x, y, cell_weights(source, y, neutral, abuse, recipe.abuse_weight,
                                                    recipe.neutral_weight), decay, args.seed,
                            hidden, recipe.ensemble)
        fitted = np.ones(len(y), dtype=bool)
    meta = {
        "recipe": args.head,
        "embedding_key": HEAD_EMBEDDING_KEY,
        "features": "MiniLM vector (float16-rounded) + alt-profanity-check log-odds"
                    + (" + cue features" if recipe.cues else ""),
        "hidden_units": hidden * recipe.ensemble,
        "neutral_identity_weight": recipe.neutral_weight, "abuse_weight": recipe.abuse_weight,
        "weight_decay": decay, "seed": args.seed,
        "threshold": round(threshold, 3), "max_neutral_identity_fpr": MAX_NEUTRAL_IDENTITY_FPR,
        "threshold_ci95": [round(float(lo), 3), round(float(hi), 3)],
        "validation_auc_mean": round(auc, 4), "validation_youden_j": round(j, 4),
        "validation_neutral_identity_fpr": round(float(flagged.mean()), 4),
        "training": {s.name: {"n": int((source[fitted] == s.name).sum()),
                              "toxic": int(y[fitted][source[fitted] == s.name].sum())} for s in sets},
        "data": "bench/data/toxicity/README.md",
        "attribution": "conversationai/unintended-ml-bias-analysis@9c7d91a (CC BY 4.0); "
                       "paul-rottger/hatecheck-data@d843022 (CC BY 4.0, Roettger et al. 2021); "
                       "Vicomtech/hate-speech-dataset@b802137 (CC BY-SA 3.0 ES, de Gibert et al. 2018)",
    }
    if recipe.cues:
        meta["cues"] = list(recipe.cues)
    if recipe.ensemble > 1:
        meta.update(ensemble=recipe.ensemble, member_hidden_units=hidden)
    if recipe.group_bound:
        meta["max_group_neutral_fpr"] = MAX_GROUP_NEUTRAL_FPR
    final = HeadWeights(head.hidden, head.out_w, head.out_b, head.mean, head.scale, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    final.save(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
