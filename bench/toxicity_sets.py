"""The shipped public toxicity extracts (bench/data/toxicity/) as labelled sets, with cached MiniLM embeddings.

Shared by the training script (bench/train_toxicity_head.py) and the quality benchmark
(bench/safety_quality.py). Embedding ~23k texts takes minutes on 2 CPU cores, so vectors are cached in
bench/results/ (git-ignored), keyed by the text itself: a changed extract re-embeds only new texts.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "toxicity"
# DRIFTLOOP_BENCH_EMBEDDING_CACHE moves the cache (e.g. to /tmp, shared between worktrees).
CACHE = Path(os.environ.get("DRIFTLOOP_BENCH_EMBEDDING_CACHE")
             or Path(__file__).resolve().parent / "results" / "toxicity_embeddings.npz")

# HateCheck cases that state something neutral or positive about a group ("I am a trans woman",
# "Muslims are great"): the per-group false-flag rate is measured on these. Counter-speech that quotes
# hate and reclaimed slurs are reported separately (functionality rows), not as "neutral".
NEUTRAL_FUNCTIONALITIES = ("ident_neutral_nh", "ident_pos_nh")
# HateCheck labels abuse of individuals and of non-protected groups ("You are a lying idiot", "Politicians are
# scum") "not hateful": not hate speech, but toxic, which is what a monitor of LLM answers must flag. They are
# trained on as toxic and left out of the hate-vs-not figures (reported per functionality instead).
ABUSE_FUNCTIONALITIES = ("target_indiv_nh", "target_group_nh")
# Friendly profanity and abuse of objects: whether they count is a product decision; not trained on, and left
# out of the figures.
AMBIGUOUS_FUNCTIONALITIES = ("profanity_nh", "target_obj_nh")
# HateCheck's templates filled for 14 more identity groups (bench/toxicity_data.py), same family split.
MORE_GROUPS_FILE = "hatecheck_more_groups.csv"


@dataclass(frozen=True)
class LabelledSet:
    name: str
    texts: list[str]
    labels: np.ndarray  # 1 toxic / hateful, 0 not
    groups: list[str]  # identity group or functionality/template, "" when none
    units: list[str]  # what a validation split must keep together (a HateCheck template family; else the row)
    targets: list[str]  # the identity group a HateCheck case names, "" elsewhere


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _make(name: str, rows: list[dict[str, str]], group_key: str | None) -> LabelledSet:
    return LabelledSet(name, [r["text"] for r in rows], np.array([int(r["label"]) for r in rows]),
                       [r[group_key] if group_key else "" for r in rows],
                       [f"{name}:{r.get('family') or i}" for i, r in enumerate(rows)],
                       [r.get("target_ident", "") for r in rows])


def _hatecheck(split: str, *, as_toxicity: bool, file: str = "hatecheck.csv") -> list[dict[str, str]]:
    """One HateCheck split. ``as_toxicity``: abuse relabelled toxic (training); else left out (hate figures).
    Ambiguous functionalities are left out of both."""
    out = []
    for r in _rows(file):
        if r["split"] != split or r["functionality"] in AMBIGUOUS_FUNCTIONALITIES:
            continue
        if r["functionality"] in ABUSE_FUNCTIONALITIES:
            if not as_toxicity:
                continue
            r = {**r, "label": "1"}
        out.append(r)
    return out


def training_sets() -> list[LabelledSet]:
    """What the head is trained on: identity templates, and the train splits of HateCheck, Stormfront and the
    wiki comments."""
    return [
        _make("identity_templates", _rows("identity_templates.csv"), "template"),
        _make("hatecheck_train", _hatecheck("train", as_toxicity=True), "functionality"),
        _make("more_groups_train", _hatecheck("train", as_toxicity=True, file=MORE_GROUPS_FILE), "functionality"),
        _make("stormfront_train", [r for r in _rows("stormfront.csv") if r["split"] == "train"], None),
        _make("wiki_train", [r for r in _rows("wiki_comments.csv") if r["split"] == "train"], None),
    ]


def held_out_sets() -> list[LabelledSet]:
    """Never trained on: the test splits of HateCheck (half its template families; its 7 groups, then the same
    templates filled for 14 more groups), Stormfront and the wiki comments."""
    return [
        _make("hatecheck_test", _hatecheck("test", as_toxicity=False), "target_ident"),
        _make("more_groups_test", _hatecheck("test", as_toxicity=False, file=MORE_GROUPS_FILE), "target_ident"),
        _make("stormfront_test", [r for r in _rows("stormfront.csv") if r["split"] == "test"], None),
        _make("wiki_test", [r for r in _rows("wiki_comments.csv") if r["split"] == "test"], None),
    ]


def hatecheck_functionalities(file: str = "hatecheck.csv") -> list[str]:
    """Functionality of each held-out HateCheck case (of ``file``), in ``held_out_sets()`` order."""
    return [r["functionality"] for r in _hatecheck("test", as_toxicity=False, file=file)]


def hatecheck_test_all() -> LabelledSet:
    """Every held-out HateCheck case with its gold label, for per-functionality rates."""
    return _make("hatecheck_test_all", [r for r in _rows("hatecheck.csv") if r["split"] == "test"], "functionality")


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def embed_cached(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """MiniLM vectors (L2-normalised float32) for ``texts``, from the cache where possible."""
    from monitor.embeddings import get_embedder

    known: dict[str, np.ndarray] = {}
    if CACHE.exists():
        with np.load(CACHE) as z:
            known = dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
    keys = [_key(t) for t in texts]
    todo = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in known))
    if todo:
        print(f"embedding {len(todo)} texts (cached: {len(texts) - len(todo)}) ...", flush=True)
        vecs = get_embedder(None, batch_size=batch_size).encode(todo)
        known.update((_key(t), v.astype(np.float16)) for t, v in zip(todo, vecs, strict=True))
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    # float16 round trip, as the pipeline stores vectors, so training sees what production sees.
    return np.stack([known[k] for k in keys]).astype(np.float32)
