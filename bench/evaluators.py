"""Built-in evaluators on public held-out data: precision, recall, F1 at the default threshold, ROC AUC,
texts/s on this CPU, and what the `evaluators` window stage costs per 10,000 events.

    python bench/evaluators.py                       # every evaluator on the shipped extracts, then the stage cost
    python bench/evaluators.py --only refusal        # one evaluator (refusal, relevance, pii_leak,
                                                     #   language_mismatch, degenerate, injection, judge, stage)
    python bench/evaluators.py --calibrate-relevance # refit relevance's logistic curve on PandaLM (prints constants)
    python bench/evaluators.py --build-extracts /work/.mirror   # rebuild bench/data/evaluators/ from snapshots

Data (bench/data/evaluators/SOURCE.md): XSTest v2 completions of five chat models with human refusal labels;
PandaLM test-set instruction/response pairs (calibration only) and LLMBar instruction/output pairs (held out);
Tatoeba English/X sentence pairs from LASER's test set; presidio-research's synthetic PII texts
(bench/data/pii/). Negatives for relevance are the same responses shuffled onto other prompts; degenerate
answers are made from LLMBar's real outputs (cut mid-sentence, looped, emptied). Nothing here was tuned on the
held-out sets. One function per evaluator; each prints one table row.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.evaluators.base import EvalItem, EvalResult, Evaluator  # noqa: E402
from monitor.evaluators.degenerate import DegenerateEvaluator  # noqa: E402
from monitor.evaluators.language import LanguageMismatchEvaluator  # noqa: E402
from monitor.evaluators.pii_leak import PiiLeakEvaluator  # noqa: E402
from monitor.evaluators.refusal import RefusalEvaluator  # noqa: E402
from monitor.evaluators.relevance import RelevanceEvaluator  # noqa: E402

DATA = ROOT / "bench" / "data" / "evaluators"
PII = ROOT / "bench" / "data" / "pii" / "presidio_synth_extract.json"
PII_TYPES = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"}  # what the detectors cover
EXTRACT_CHARS = 1500  # bench/evaluators_data.py cuts texts at this length
TATOEBA_LANGS = ("deu", "fra", "spa", "ita", "por", "nld", "rus", "pol", "tur", "swe", "cmn", "ara")


def item(prompt: str, response: str | None, i: int = 0, pv: np.ndarray | None = None,
         rv: np.ndarray | None = None) -> EvalItem:
    return EvalItem(i, prompt, response, None, None, pv, rv)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    pos, neg = score[y], score[~y]
    if not pos.size or not neg.size:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(order.size)
    allv = np.concatenate([pos, neg])[order]
    ranks[order] = np.arange(1, order.size + 1)
    for v in np.unique(allv):  # average ranks of ties
        idx = order[allv == v]
        ranks[idx] = ranks[idx].mean()
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def report(name: str, data: str, y: Sequence[bool], results: list[EvalResult], seconds: float) -> None:
    y_all = np.array(y, dtype=bool)
    have = np.array([r.value is not None for r in results])
    yv = y_all[have]
    value = np.array([r.value for r in results if r.value is not None], dtype=float)
    label = np.array([bool(r.label) for r in results if r.value is not None])
    tp, fp, fn = int((label & yv).sum()), int((label & ~yv).sum()), int((~label & yv).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else float("nan")
    print(f"| {name} | {data} | {int(yv.sum())}/{int((~yv).sum())} | {have.mean():.0%} | {precision:.3f} | "
          f"{recall:.3f} | {f1:.3f} | {roc_auc(yv, value):.3f} | {len(results) / seconds:,.0f} |", flush=True)


def run(evaluator: Evaluator, items: list[EvalItem]) -> tuple[list[EvalResult], float]:
    evaluator.evaluate(items[:5])  # load models and compile patterns outside the timing
    t = time.perf_counter()
    out = evaluator.evaluate(items)
    return out, time.perf_counter() - t


def bench_refusal() -> None:
    """XSTest v2: full refusal and partial refusal (positives) vs full compliance, human-labelled."""
    rows = list(csv.DictReader((DATA / "xstest_completions.csv").open(encoding="utf-8")))
    items = [item(r["prompt"], r["completion"], i) for i, r in enumerate(rows)]
    results, seconds = run(RefusalEvaluator("refusal"), items)
    report("refusal", f"XSTest v2 completions, 5 models ({len(rows)})", [r["label"] != "1_full_compliance"
                                                                         for r in rows], results, seconds)
    full = [k for k, r in enumerate(rows) if r["label"] != "3_partial_refusal"]
    report("refusal (full refusals only)", "same, partial refusals left out", [rows[k]["label"] == "2_full_refusal"
                                                                                for k in full],
           [results[k] for k in full], seconds * len(full) / len(rows))


def _pairs(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / name).open(encoding="utf-8")]


def _shuffled(n: int, seed: int) -> list[int]:
    """A derangement: no response lands back on its own prompt."""
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def _embed(texts: list[str]) -> np.ndarray:
    from monitor.embeddings import get_embedder

    return get_embedder(None, device="cpu").encode(texts)


def _relevance_data(name: str, seed: int) -> tuple[list[EvalItem], list[bool], float]:
    pairs = _pairs(name)
    t = time.perf_counter()
    pv, rv = _embed([p["prompt"] for p in pairs]), _embed([p["response"] for p in pairs])
    embed_seconds = time.perf_counter() - t
    perm = _shuffled(len(pairs), seed)
    items = [item(p["prompt"], p["response"], i, pv[i], rv[i]) for i, p in enumerate(pairs)]
    items += [item(p["prompt"], pairs[perm[i]]["response"], len(pairs) + i, pv[i], rv[perm[i]])
              for i, p in enumerate(pairs)]
    return items, [True] * len(pairs) + [False] * len(pairs), embed_seconds


def calibrate_relevance() -> None:
    """Fit logistic(SLOPE * cosine + INTERCEPT) on PandaLM pairs vs shuffled pairs (not the held-out set)."""
    from sklearn.linear_model import LogisticRegression

    from monitor.evaluators.relevance import cosine

    items, y, _ = _relevance_data("pandalm_pairs.jsonl", seed=1)
    x = np.array([[cosine(i.prompt_vec, i.response_vec)] for i in items])  # type: ignore[arg-type]
    model = LogisticRegression(C=1e6).fit(x, np.array(y))
    print(f"SLOPE, INTERCEPT = {model.coef_[0][0]:.3f}, {model.intercept_[0]:.3f}  "
          f"(fitted on {len(items)} PandaLM pairs; paste into monitor/evaluators/relevance.py)")


def bench_relevance() -> None:
    """LLMBar instruction/output pairs vs the same outputs shuffled onto other instructions (held out)."""
    items, y, embed_seconds = _relevance_data("llmbar_pairs.jsonl", seed=2)
    results, seconds = run(RelevanceEvaluator("relevance"), items)
    report("relevance", f"LLMBar pairs vs shuffled ({len(items)})", y, results, seconds)
    texts = len(items)  # each pair's prompt and response, embedded once
    print(f"|  | embedding the {texts} texts (up to {EXTRACT_CHARS} chars) when the drift stage has not: "
          f"{texts / embed_seconds:,.1f} texts/s |  |  |  |  |  |  |  |")


def bench_pii() -> None:
    """presidio-research synthetic texts as responses: positive when a gold span is of a type the detectors cover."""
    rows = json.loads(PII.read_text(encoding="utf-8"))
    items = [item("", r["text"], i) for i, r in enumerate(rows)]
    results, seconds = run(PiiLeakEvaluator("pii_leak"), items)
    report("pii_leak", f"presidio synth, covered types ({len(rows)})",
           [any(t in PII_TYPES for _, _, t in r["spans"]) for r in rows], results, seconds)
    report("pii_leak (any PII)", "same, names/addresses count too", [bool(r["spans"]) for r in rows], results,
           seconds)


def bench_language() -> None:
    """Tatoeba: an English prompt answered by its translation (positive) or by another English sentence, and a
    prompt in language X answered in X (negatives both)."""
    rows = [r.rstrip("\n").split("\t") for r in (DATA / "tatoeba_pairs.tsv").open(encoding="utf-8")][1:]
    rng = random.Random(3)
    items, y = [], []
    same_lang: dict[str, list[str]] = {}
    for lang, _eng, other in rows:
        same_lang.setdefault(lang, []).append(other)
    for k, (lang, eng, other) in enumerate(rows):
        items.append(item(eng, other, 3 * k))
        y.append(True)
        items.append(item(eng, rows[rng.randrange(len(rows))][1], 3 * k + 1))
        y.append(False)
        items.append(item(other, rng.choice(same_lang[lang]), 3 * k + 2))
        y.append(False)
    results, seconds = run(LanguageMismatchEvaluator("language_mismatch"), items)
    report("language_mismatch", f"Tatoeba, en + {len(TATOEBA_LANGS)} languages ({len(items)})", y, results,
           seconds)


def _degenerate_variants(text: str, rng: random.Random) -> list[tuple[str, str]]:
    words = text.split()
    cut = " ".join(words[: max(3, int(len(words) * rng.uniform(0.3, 0.8)))]).rstrip(".!?:;")
    sentence = next((s for s in text.replace("\n", " ").split(". ") if len(s.split()) >= 5), " ".join(words[:8]))
    loop = text[: len(text) // 3] + " " + " ".join([sentence.strip() + "."] * rng.randint(4, 9))
    return [("truncated", cut), ("loop", loop), ("empty", rng.choice(["", " ", "\n", "..."]))]


def bench_degenerate() -> None:
    """LLMBar's real outputs (negatives) against the same outputs cut mid-sentence, looped or emptied."""
    rng = random.Random(4)
    # Outputs the extract cut at its length limit are left out: they are truncated for real.
    outputs = [p["response"] for p in _pairs("llmbar_pairs.jsonl") if 120 <= len(p["response"]) < EXTRACT_CHARS]
    items, y, kinds = [], [], []
    for k, text in enumerate(outputs):
        items.append(item("", text, len(items)))
        y.append(False)
        kinds.append("original")
        kind, bad = _degenerate_variants(text, rng)[k % 3]
        items.append(item("", bad, len(items)))
        y.append(True)
        kinds.append(kind)
    results, seconds = run(DegenerateEvaluator("degenerate"), items)
    report("degenerate", f"LLMBar outputs vs cut/looped/emptied ({len(items)})", y, results, seconds)
    recalls = ", ".join(f"{kind} {np.mean([bool(results[i].label) for i, k in enumerate(kinds) if k == kind]):.3f}"
                        for kind in ("truncated", "loop", "empty"))
    false_alarms = np.mean([bool(results[i].label) for i, k in enumerate(kinds) if k == "original"])
    print(f"|  | recall by kind: {recalls}; originals flagged: {false_alarms:.3f} |  |  |  |  |  |  |  |")


def bench_stage(events: int = 10_000) -> None:
    from bench.evaluators_stage import stage_cost

    stage_cost(events)


def bench_injection() -> None:
    from bench.evaluators_judge import injection_bench  # held-out split of injection_prompts.jsonl

    injection_bench()


def bench_judge() -> None:
    from bench.evaluators_judge import judge_bench  # serve-model + SmolLM2 over real HTTP

    judge_bench("smollm2", 6, 40)


BENCHES: dict[str, Callable[[], None]] = {
    "refusal": bench_refusal, "relevance": bench_relevance, "pii_leak": bench_pii,
    "language_mismatch": bench_language, "degenerate": bench_degenerate, "injection": bench_injection,
    "judge": bench_judge, "stage": bench_stage,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=list(BENCHES), action="append")
    ap.add_argument("--calibrate-relevance", action="store_true")
    ap.add_argument("--build-extracts", type=Path, metavar="MIRROR_ROOT")
    args = ap.parse_args()
    if args.build_extracts:
        from bench.evaluators_data import build_extracts

        build_extracts(args.build_extracts)
        return
    if args.calibrate_relevance:
        calibrate_relevance()
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    print(f"# bench/evaluators.py at {commit.stdout.strip()}, {time.strftime('%Y-%m-%d')}, CPU")
    print("| evaluator | held-out data (n) | positives/negatives | scored | precision | recall | F1 | ROC AUC | "
          "texts/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.only or list(BENCHES):
        if name == "stage":
            continue
        BENCHES[name]()
    if not args.only or "stage" in args.only:
        bench_stage()


if __name__ == "__main__":
    main()
