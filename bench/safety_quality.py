"""Quality of the toxicity scorers on held-out public data: one command.

    python bench/safety_quality.py [--scorer hf:<model>] [--hatecheck-functionalities]

For the default scorer (the ensemble head, minilm-head:ensemble), the older single head (minilm-head), the
combination minilm-combined (the ensemble head OR the lexical model on identity-masked text; not the default:
under the HateCheck AUC target), the lexical model (profanity), the abuse signal the safety stage reports next to
toxicity (profanity:masked: the lexical model on identity-masked text, at its own threshold) and any scorer given
with --scorer, in the same run, on data never used
for training or calibration (bench/data/toxicity/: the test splits of HateCheck, i.e. half its template
families, of the same templates filled for 14 more groups, of Stormfront and of the wiki comments):
ROC AUC, recall and false-flag rate at each scorer's default threshold, the false-flag rate on neutral
statements about each of 21 identity groups (HateCheck ident_neutral / ident_pos cases, with Wilson
intervals), the rude test lines (RUDE_LINES: plain rudeness a monitor must flag), and texts/s (the vector scorers
given stored vectors, and including the embedding pass).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from toxicity_sets import (
    MORE_GROUPS_FILE,
    NEUTRAL_FUNCTIONALITIES,
    LabelledSet,
    embed_cached,
    hatecheck_functionalities,
    hatecheck_test_all,
    held_out_sets,
)

from monitor.safety.combined import CombinedScorer
from monitor.safety.embedding_head import EmbeddingHeadScorer
from monitor.safety.intervals import wilson_interval
from monitor.safety.toxicity import (
    DEFAULT_TOXICITY_SCORER,
    PROFANITY_SCORER,
    ToxicityScorer,
    get_scorer,
    threshold_for,
)

# Plain rudeness without hate (the rude lines of tests/safety/test_stage.py, and one more): a default must flag
# them at its threshold.
RUDE_LINES = ("That's a stupid question, you idiot.", "Shut up and read the damn manual.",
              "What a dumb request, figure it out yourself.", "Nobody cares about your garbage code, loser.")


def scores_of(scorer: ToxicityScorer, s: LabelledSet) -> np.ndarray:
    if isinstance(scorer, EmbeddingHeadScorer | CombinedScorer):  # as in the window stage: from stored (cached) vectors
        return scorer.score_embedded(s.texts, embed_cached(s.texts))
    return np.asarray(scorer.score(s.texts))


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def quality_table(scorers: dict[str, ToxicityScorer], sets: list[LabelledSet]) -> dict[str, dict[str, np.ndarray]]:
    from sklearn.metrics import roc_auc_score

    all_scores = {name: {s.name: scores_of(sc, s) for s in sets} for name, sc in scorers.items()}
    print(f"{'scorer':<22}{'threshold':>10}  " + "  ".join(f"{s.name + ' AUC / recall / FPR':>36}" for s in sets))
    for name, sc in scorers.items():
        t = threshold_for(sc)
        cells = []
        for s in sets:
            p = all_scores[name][s.name]
            flag = p >= t
            auc = roc_auc_score(s.labels, p)
            cells.append(f"{auc:.3f} / {_pct(flag[s.labels == 1].mean())} / {_pct(flag[s.labels == 0].mean())}")
        print(f"{name:<22}{t:>10.3f}  " + "  ".join(f"{c:>36}" for c in cells))
    return all_scores


def per_group_neutral(scorers: dict[str, ToxicityScorer], sets: list[LabelledSet],
                      all_scores: dict[str, dict[str, np.ndarray]]) -> None:
    """HateCheck's 7 groups, then the 14 more its templates were filled for (held-out template families)."""
    parts = [("hatecheck_test", "hatecheck.csv"), ("more_groups_test", MORE_GROUPS_FILE)]
    by_name = {s.name: s for s in sets}
    funcs = np.concatenate([np.array(hatecheck_functionalities(file)) for _, file in parts])
    groups = np.concatenate([np.array(by_name[name].groups) for name, _ in parts])
    scores = {n: np.concatenate([all_scores[n][name] for name, _ in parts]) for n in scorers}
    neutral = np.isin(funcs, NEUTRAL_FUNCTIONALITIES)
    names = list(dict.fromkeys(groups[neutral].tolist()))
    print("\nFalse-flag rate on neutral statements per identity group (held-out HateCheck ident_neutral + ident_pos "
          "templates: its 7 groups, then 14 more; 95% Wilson interval)")
    print(f"{'group':<22}{'n':>4}  " + "  ".join(f"{n:>24}" for n in scorers))
    for g in [*names, "all"]:
        m = neutral & ((groups == g) if g != "all" else True)
        cells = []
        for name, sc in scorers.items():
            flagged = int((scores[name][m] >= threshold_for(sc)).sum())
            lo, hi = wilson_interval(flagged, int(m.sum()))
            cells.append(f"{_pct(flagged / m.sum())} [{_pct(lo)}-{_pct(hi)}]")
        print(f"{g:<22}{int(m.sum()):>4}  " + "  ".join(f"{c:>24}" for c in cells))
    for name, sc in scorers.items():
        rates = [float((scores[name][neutral & (groups == g)] >= threshold_for(sc)).mean()) for g in names]
        print(f"{name}: groups with neutral false-flag <= 5%: {sum(r <= 0.05 for r in rates)}/{len(rates)}; "
              f"<= 10%: {sum(r <= 0.10 for r in rates)}/{len(rates)}; worst {_pct(max(rates))}")


def per_functionality(scorers: dict[str, ToxicityScorer]) -> None:
    hatecheck = hatecheck_test_all()
    funcs = np.array(hatecheck.groups)
    scores = {name: scores_of(sc, hatecheck) for name, sc in scorers.items()}
    print("\nHeld-out HateCheck flag rate per functionality (_h hateful: higher is better; _nh not hateful: lower is "
          "better, except target_indiv/target_group: abuse, toxic though not hate; profanity_nh, target_obj_nh: "
          "a product decision). The table above leaves these four out.")
    print(f"{'functionality':<22}{'n':>4}  " + "  ".join(f"{n:>12}" for n in scorers))
    for f in dict.fromkeys(funcs.tolist()):
        m = funcs == f
        cells = [_pct(float((scores[n][m] >= threshold_for(sc)).mean())) for n, sc in scorers.items()]
        print(f"{f:<22}{int(m.sum()):>4}  " + "  ".join(f"{c:>12}" for c in cells))


def rude_lines(scorers: dict[str, ToxicityScorer]) -> None:
    from monitor.embeddings import get_embedder

    vecs = get_embedder(None).encode(list(RUDE_LINES)).astype(np.float16).astype(np.float32)
    print("\nPlain rudeness (score; * flagged at the scorer's threshold)")
    print(f"{'text':<48}" + "".join(f"{n:>22}" for n in scorers))
    scores = {n: (sc.score_embedded(list(RUDE_LINES), vecs) if isinstance(sc, EmbeddingHeadScorer | CombinedScorer)
                  else np.asarray(sc.score(list(RUDE_LINES)))) for n, sc in scorers.items()}
    for i, text in enumerate(RUDE_LINES):
        cells = [f"{scores[n][i]:.3f}{'*' if scores[n][i] >= threshold_for(sc) else ' '}" for n, sc in scorers.items()]
        print(f"{text[:46]:<48}" + "".join(f"{c:>22}" for c in cells))


def throughput(scorers: dict[str, ToxicityScorer], texts: list[str]) -> None:
    from monitor.embeddings import get_embedder

    batch = (texts * (20_000 // len(texts) + 1))[:20_000]  # a window stage's sample per segment
    vecs = embed_cached(texts)
    vecs = np.concatenate([vecs] * (20_000 // len(texts) + 1))[:20_000]
    parts = []
    for name, sc in scorers.items():
        if isinstance(sc, EmbeddingHeadScorer | CombinedScorer):
            best = min(_timed(lambda sc=sc: sc.score_embedded(batch, vecs)) for _ in range(3))
            parts.append(f"{name} given stored vectors {len(batch) / best:,.0f} texts/s")
        elif name in ("profanity", PROFANITY_SCORER):
            best = min(_timed(lambda sc=sc: sc.score(batch)) for _ in range(3))
            parts.append(f"{name} {len(batch) / best:,.0f} texts/s")
    sample = texts[:256]
    get_embedder(None).encode(sample[:8])  # load the model outside the timing
    embed = _timed(lambda: get_embedder(None).encode(sample))
    print(f"\nThroughput on {len(batch):,} texts: " + "; ".join(parts)
          + f"; the MiniLM pass alone (when no vector is stored) ~{len(sample) / embed:,.0f} texts/s "
          f"(embedding {len(sample)} texts)")


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", action="append", default=[], help="another backend spec to compare")
    parser.add_argument("--hatecheck-functionalities", action="store_true", help="also print per-functionality rates")
    args = parser.parse_args()
    combined = get_scorer("minilm-combined")
    assert isinstance(combined, CombinedScorer)
    scorers: dict[str, ToxicityScorer] = {DEFAULT_TOXICITY_SCORER: get_scorer(DEFAULT_TOXICITY_SCORER)}
    scorers.update({"minilm-head": get_scorer("minilm-head"), "minilm-combined": combined,
                    "profanity": get_scorer("profanity"), PROFANITY_SCORER: get_scorer(PROFANITY_SCORER)})
    for spec in args.scorer:
        scorers[spec] = get_scorer(spec)
    cal = combined.calibration
    print(f"default toxicity scorer: {DEFAULT_TOXICITY_SCORER}; abuse signal (safety.profanity_rate): "
          f"{PROFANITY_SCORER}")
    print(f"minilm-combined: flagged when the ensemble head >= {cal['head_threshold']} or the lexical model on "
          f"identity-masked text >= {cal['lexical_threshold']} (95% bootstrap {cal['lexical_threshold_ci95']}; both "
          "chosen on the validation split); combined score threshold 0.5. Other thresholds: their own calibrated "
          "ones (docs/safety.md)\n")
    sets = held_out_sets()
    scores = quality_table(scorers, sets)
    per_group_neutral(scorers, sets, scores)
    if args.hatecheck_functionalities:
        per_functionality(scorers)
    rude_lines(scorers)
    throughput(scorers, [t for s in sets for t in s.texts])


if __name__ == "__main__":
    main()
