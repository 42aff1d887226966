"""Does a lexical view make the `knn` drift test see new neighbouring intents? (issue #16, brief s10-16)

    python bench/knn_lexical.py --dataset clinc150 --trials 40            # where w / n-grams are CHOSEN
    python bench/knn_lexical.py --dataset hwu64 --trials 20 --configs minilm <chosen>   # held out, once

`knn` links every pooled item to its k = 6 most cosine-similar items (MiniLM) and counts current items whose
neighbours are all current ("isolated", monitor/drift/knn.py). On HWU64 a new intent's queries sit among their
scenario's known intents in MiniLM space, so few of them are isolated. New intents often bring their own words
("exchange rate", "snooze"); here the graph is built on a *hybrid* similarity

    s(a, b) = (1 - w) · cos(MiniLM a, MiniLM b) + w · cos(TF-IDF a, TF-IDF b)

with the TF-IDF vocabulary and idf fitted on the pooled texts (reference + window, label-blind), so the graph is a
function of the unlabelled pool and permuting the side labels over it stays an exact test (as for `knn`). The pooled
order is shuffled (seeded, label-blind) before the top-k so that ties (TF-IDF cosine 0 between texts without a
shared term) are not broken by position, which would correlate with the side. Everything after the graph is `knn`'s
own: `isolation_need`, `permutation_nulls` (1,000 permutations, sequential stop), the normal score of
`thresholds.result_score`; config `minilm` (w = 0) reproduces `knn_test`'s score (checked at start-up) except
where rows repeat (a cyclic day whose intent ran out): `knn_test` breaks ties between identical vectors by position,
which follows the side, so there the two differ slightly (a block score 0.54 here against 0.86, seen once).

Cells, 1,000 per side, as bench/drift_power.py draws them: quiet, 10% new, 20% new (`new_intent_windows`, rows
here), and "cyclic quiet, no repeats" (`cyclic_disjoint_sample`: a day of 8 windows from hwu64_full for HWU64, a
1,500-row day from the extract for CLINC150). Printed per config and cell: share with score >= 2.33 (alpha 0.01
alone), mean score; for the cyclic cell (and with --calibrate-all, every cell) also the calibrated decision: the
config's own genomic-control calibration on the reference (thresholds.py's procedure for one gated method: 16 time
blocks and 16 random blocks against 2 blocks' worth of other reference rows, 200 permutations each, Mann-Whitney
gate at 0.01, λ carried to the window's size), flagged when deflated p <= 0.01. Note: drift_power's `knn`
calibrated row shares its gate with `mmd` (Bonferroni); here each config has its own gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.feature_extraction.text import TfidfVectorizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.drift.calibration import IntentPool, cyclic_disjoint_sample, load_intent_pool  # noqa: E402
from monitor.drift.knn import DEFAULT_K, isolation_need, knn_test, permutation_nulls  # noqa: E402
from monitor.drift.null import deflated_p, inflation, normal_score, null_moments, tail_p, z_score  # noqa: E402
from monitor.drift.thresholds import (  # noqa: E402
    CALIBRATION_PERMUTATIONS,
    carried_lambda,
    effective_size,
    result_score,
)

ANALYZERS: dict[str, dict[str, Any]] = {
    "word1": {"analyzer": "word", "ngram_range": (1, 1)},
    "word12": {"analyzer": "word", "ngram_range": (1, 2)},
    "char35": {"analyzer": "char_wb", "ngram_range": (3, 5)},
}
DEFAULT_CONFIGS = ("minilm", "word1@0.3", "word1@0.5", "word12@0.3", "word12@0.5", "char35@0.3", "char35@0.5",
                   "word12@1.0")
MAX_PER_SIDE = 2000  # knn_test's default subsampling


def parse_config(name: str) -> tuple[str | None, float]:
    """'minilm' -> (None, 0); 'word12@0.3' -> ('word12', 0.3)."""
    if name == "minilm":
        return None, 0.0
    analyzer, w = name.split("@")
    if analyzer not in ANALYZERS or not 0.0 < float(w) <= 1.0:
        raise ValueError(f"bad config {name!r}")
    return analyzer, float(w)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, np.float32(1.0))


def hybrid_graph(vectors: np.ndarray, texts: list[str], analyzer: str | None, w: float, k: int,
                 order_seed: int) -> np.ndarray:
    """(N x k) neighbour indices on (1 - w)·cos(vectors) + w·cos(TF-IDF fitted on `texts`), self excluded; ties
    broken by a seeded shuffle of the pooled order (label-blind)."""
    n = vectors.shape[0]
    shuffle = np.random.default_rng([order_seed, 7]).permutation(n)
    x = _unit(vectors[shuffle])
    sim = x @ x.T
    if analyzer is not None:
        tf = TfidfVectorizer(lowercase=True, sublinear_tf=True, dtype=np.float32, **ANALYZERS[analyzer])
        t = tf.fit_transform([texts[i] for i in shuffle])
        sim *= np.float32(1.0 - w)
        sim += np.float32(w) * (t @ t.T).toarray()
    np.fill_diagonal(sim, -np.inf)
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    # Back to the unshuffled order: row shuffle[i] of the pool has neighbours shuffle[top[i]].
    graph = np.empty_like(top)
    graph[shuffle] = shuffle[top]
    return graph


def knn_score(pool: IntentPool, ref_rows: np.ndarray, cur_rows: np.ndarray, config: str, seed: int,
              n_permutations: int = 1000) -> float:
    """knn_test's normal score (isolated count, k = 6, sequential permutations) on the config's graph."""
    analyzer, w = parse_config(config)
    rng = np.random.default_rng(seed)
    # knn_test subsamples each side to MAX_PER_SIDE with the same generator before drawing permutations.
    if ref_rows.size > MAX_PER_SIDE:
        ref_rows = ref_rows[np.sort(rng.choice(ref_rows.size, MAX_PER_SIDE, replace=False))]
    if cur_rows.size > MAX_PER_SIDE:
        cur_rows = cur_rows[np.sort(rng.choice(cur_rows.size, MAX_PER_SIDE, replace=False))]
    rows = np.concatenate([ref_rows, cur_rows])
    m, n = ref_rows.size, cur_rows.size
    total = m + n
    k = min(DEFAULT_K, total - 1)
    graph = hybrid_graph(pool.vectors[rows], [pool.texts[i] for i in rows], analyzer, w, k, seed)
    labels = np.concatenate([np.zeros(m, dtype=bool), np.ones(n, dtype=bool)])
    need = isolation_need(k, n, total)
    observed = float(np.count_nonzero((np.count_nonzero(labels[graph], axis=1) >= need) & labels))

    def draw(size: int) -> np.ndarray:
        keys = rng.random((size, total))
        return keys > np.partition(keys, m - 1, axis=1)[:, m - 1 : m]

    _, null_iso, _ = permutation_nulls(draw, graph, need, m, n, k, observed, "isolated", 0.01, n_permutations, True)
    mean, sd, skew = null_moments(null_iso)
    return normal_score(tail_p(z_score(observed, mean, sd), skew))


def calibrated_lambda(score: Callable[[np.ndarray, np.ndarray, int], float], ref_rows: np.ndarray, window: int,
                      seed: int, n_blocks: int = 8, gate: float = 0.01) -> tuple[float, float]:
    """(λ, gate p) of thresholds._calibrate for one gated method (no runs), with `score(rest, block, seed)`."""
    total = ref_rows.size
    size = min(total // n_blocks, window)
    rng = np.random.default_rng(seed)
    starts = np.linspace(0, total - size, 2 * n_blocks).round().astype(int)
    time_blocks = [np.arange(st, st + size) for st in starts]
    noise_blocks = [np.sort(rng.choice(total, size, replace=False)) for _ in range(starts.size)]
    rest_size = min(total - size, 2 * size)

    def block_scores(blocks: list[np.ndarray], base: int) -> np.ndarray:
        brng = np.random.default_rng(base)
        out = np.empty(len(blocks))
        for i, block in enumerate(blocks):
            outside = np.ones(total, dtype=bool)
            outside[block] = False
            rest = np.sort(brng.choice(np.flatnonzero(outside), rest_size, replace=False))
            out[i] = score(ref_rows[rest], ref_rows[block], base + i)
        return out

    scores = block_scores(time_blocks, seed)
    noise = block_scores(noise_blocks, seed + 10_000)
    p = float(mannwhitneyu(scores, noise, alternative="greater").pvalue)
    if p > gate:
        return 1.0, p
    return carried_lambda(inflation(scores), effective_size(size, rest_size), effective_size(window, total)), p


def _block_score(pool: IntentPool, config: str, rest: np.ndarray, block: np.ndarray, seed: int) -> float:
    """A calibration block's score: as thresholds._block_score runs knn, with CALIBRATION_PERMUTATIONS."""
    return knn_score(pool, rest, block, config, seed, CALIBRATION_PERMUTATIONS)


def new_intent_rows(pool: IntentPool, n: int, share: float, rng: np.random.Generator,
                    n_new: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """`new_intent_windows` (same draws from `rng`), returning pool rows instead of vectors."""
    new = rng.choice(pool.eligible_new_intents(), n_new, replace=False)
    is_new = np.isin(pool.intents, new)
    base, other = rng.permutation(np.flatnonzero(~is_new)), np.flatnonzero(is_new)
    k = round(share * n)
    cur = np.concatenate([base[n : 2 * n - k], rng.choice(other, k, replace=False)])
    return base[:n], cur[rng.permutation(n)]


def cyclic_rows(pool: IntentPool, n_reference: int, n: int, rng: np.random.Generator,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """drift_power's `cyclic_windows_distinct` (same draws), as pool rows."""
    ref_times = np.sort(rng.random(n_reference))
    cur_times = (rng.random() + rng.random(n) / 288.0) % 1.0
    draw = cyclic_disjoint_sample(pool, ref_times, cur_times, amplitude=0.5, rng=rng, seed=seed)
    return draw.reference, draw.window


def check_reproduces_knn(pool: IntentPool) -> None:
    """Config `minilm` must give knn_test's score (same graph up to ties, same permutations)."""
    ref, cur = new_intent_rows(pool, 500, 0.1, np.random.default_rng(5))
    want = result_score(knn_test(pool.vectors[ref], pool.vectors[cur], seed=3))
    got = knn_score(pool, ref, cur, "minilm", seed=3)
    print(f"check: minilm config {got:.4f}, knn_test {want:.4f}", file=sys.stderr)
    if abs(got - want) > 0.05:  # duplicate queries are ties, broken differently
        raise SystemExit(f"config minilm does not reproduce knn_test: {got} vs {want}")


def diagnose(pool: IntentPool, configs: list[str], trials: int, n: int, seed: int) -> None:
    """Why a config does or does not help: on 10% new windows, the share of new-intent items isolated (all k
    neighbours current), of known current items isolated (chance), and the share of neighbours of the same intent."""
    rng = np.random.default_rng(seed)
    acc: dict[str, list[list[float]]] = {c: [[], [], [], []] for c in configs}
    for t in range(trials):
        ref, cur = new_intent_rows(pool, n, 0.1, rng)
        rows = np.concatenate([ref, cur])
        current = np.r_[np.zeros(ref.size, bool), np.ones(cur.size, bool)]
        is_new = np.isin(pool.intents[rows], sorted(set(pool.intents[cur]) - set(pool.intents[ref])))
        for c in configs:
            analyzer, w = parse_config(c)
            graph = hybrid_graph(pool.vectors[rows], [pool.texts[i] for i in rows], analyzer, w, DEFAULT_K, t)
            isolated = current[graph].sum(axis=1) == DEFAULT_K
            same_intent = (pool.intents[rows][graph] == pool.intents[rows][:, None]).mean(axis=1)
            for i, v in enumerate((isolated[is_new].mean(), isolated[current & ~is_new].mean(),
                                   same_intent[is_new].mean(), same_intent[~is_new].mean())):
                acc[c][i].append(float(v))
    print(f"\n10% new, {trials} windows, {n} per side\n\n| config | new items isolated | known current items isolated"
          " | new items' neighbours of their intent | known items' neighbours of their intent |")
    print("|---|---:|---:|---:|---:|")
    for c, values in acc.items():
        print(f"| `{c}` | " + " | ".join(f"{np.mean(v):.3f}" for v in values) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="clinc150", choices=("clinc150", "hwu64"))
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--cells", nargs="*", default=["quiet", "10% new", "20% new", "cyclic quiet, no repeats"])
    parser.add_argument("--calibrate", nargs="*", default=None,
                        help="configs calibrated in the cyclic cell (default: all given)")
    parser.add_argument("--calibrate-all", action="store_true",
                        help="calibrate (on the trial's reference) in every cell, not only the cyclic one")
    parser.add_argument("--diagnose", type=int, default=0, help="only print neighbour diagnostics on this many "
                        "10%% new windows")
    args = parser.parse_args()
    for c in args.configs:
        parse_config(c)
    calibrate = args.configs if args.calibrate is None else args.calibrate
    pool = load_intent_pool(args.dataset)
    if args.diagnose:
        diagnose(pool, args.configs, args.diagnose, args.n, args.seed)
        return
    check_reproduces_knn(pool)
    big = load_intent_pool("hwu64_full") if args.dataset == "hwu64" else pool
    n_ref_cyclic = 8 * args.n if args.dataset == "hwu64" else 3 * args.n // 2
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    table: dict[str, dict[str, dict[str, float]]] = {}
    shares = {"quiet": 0.0, "5% new": 0.05, "10% new": 0.1, "20% new": 0.2, "cyclic quiet, no repeats": None}
    for cell in args.cells:
        share = shares[cell]
        scores: dict[str, list[float]] = {c: [] for c in args.configs}
        flags: dict[str, list[bool]] = {c: [] for c in calibrate}
        lams: dict[str, list[float]] = {c: [] for c in calibrate}
        for t in range(args.trials):
            if share is None:
                src = big
                ref, cur = cyclic_rows(big, n_ref_cyclic, args.n, rng, seed=t)
            else:
                src = pool
                ref, cur = new_intent_rows(pool, args.n, share, rng)
            for c in args.configs:
                s = knn_score(src, ref, cur, c, seed=t)
                scores[c].append(s)
                if (share is None or args.calibrate_all) and c in calibrate:
                    block_score = partial(_block_score, src, c)
                    lam, _ = calibrated_lambda(block_score, ref, args.n, seed=t)
                    lams[c].append(lam)
                    flags[c].append(deflated_p(s, lam) <= 0.01)
            print(f"  {cell} {t + 1}/{args.trials} ({time.perf_counter() - started:.0f} s): "
                  + ", ".join(f"{c} {scores[c][-1]:.2f}" for c in args.configs)
                  + "".join(f" | {c} λ {lams[c][-1]:.2f} flagged {flags[c][-1]}" for c in flags if flags[c]),
                  file=sys.stderr, flush=True)
        table[cell] = {c: {"share_2.33": float(np.mean(np.array(scores[c]) >= 2.3263)),
                           "mean_score": float(np.mean(np.clip(scores[c], -40, 40)))} for c in args.configs}
        for c in flags:
            if flags[c]:
                table[cell][c].update(calibrated=float(np.mean(flags[c])), mean_lambda=float(np.mean(lams[c])))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n## knn on MiniLM vs hybrid MiniLM + TF-IDF — {args.dataset}, {args.n} per side, {args.trials} trials "
          f"per cell, seed {args.seed} ({when}, load {os.getloadavg()[0]:.2f}, "
          f"{time.perf_counter() - started:.0f} s)\n")
    print("Share with score >= 2.33 / mean score (cyclic: + calibrated share flagged, mean λ)\n")
    print("| config | " + " | ".join(table) + " |")
    print("|---|" + "---:|" * len(table))
    for c in args.configs:
        cells = []
        for cell in table:
            r = table[cell][c]
            txt = f"{r['share_2.33']:.2f} / {r['mean_score']:.2f}"
            if "calibrated" in r:
                txt += f" (cal {r['calibrated']:.2f}, λ {r['mean_lambda']:.2f})"
            cells.append(txt)
        print(f"| `{c}` | " + " | ".join(cells) + " |")
    out = ROOT / "bench" / "results" / f"knn_lexical_{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "when": when, "table": table}, indent=1))


if __name__ == "__main__":
    main()
