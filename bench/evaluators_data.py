"""Rebuilding the extracts under bench/data/evaluators/ from repository snapshots (see SOURCE.md there).

    python bench/evaluators.py --build-extracts /work/.mirror

Each extract is a seeded sample, small enough to ship; the texts are as published, cut to a length the
evaluators look at."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "evaluators"
XSTEST_MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")
TATOEBA_LANGS = ("deu", "fra", "spa", "ita", "por", "nld", "rus", "pol", "tur", "swe", "cmn", "ara")
MAX_CHARS = 1500


def _show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def build_extracts(mirror: Path) -> None:
    rng = random.Random(0)
    DATA.mkdir(parents=True, exist_ok=True)
    # Refusals: 80 completions per model, a seeded sample over all three labels.
    xs = mirror / "paul-rottger+exaggerated-safety" / "repo" / ".git"
    xs = xs if xs.exists() else xs.parent
    out = []
    for model in XSTEST_MODELS:
        rows = list(csv.DictReader(io.StringIO(_show(xs, f"model_completions/xstest_v2_completions_{model}.csv"))))
        for r in rng.sample(rows, 80):
            out.append({"model": model, "type": r["type"], "prompt": r["prompt"],
                        "completion": r["completion"][:MAX_CHARS], "label": r["final_label"]})
    with (DATA / "xstest_completions.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    # Relevance: PandaLM (calibration) and LLMBar (held out) instruction/response pairs.
    pl = mirror / "WeOpenML+PandaLM" / "repo"
    pl = pl / ".git" if (pl / ".git").exists() else pl
    panda = [r for r in json.loads(_show(pl, "data/testset-v1.json"))
             if isinstance(r.get("response1"), str) and r["response1"].strip()]
    with (DATA / "pandalm_pairs.jsonl").open("w", encoding="utf-8") as f:
        for r in rng.sample(panda, 300):
            prompt = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
            f.write(json.dumps({"prompt": prompt[:MAX_CHARS], "response": r["response1"][:MAX_CHARS]}) + "\n")
    lb = mirror / "princeton-nlp+LLMBar" / "repo"
    lb = lb / ".git" if (lb / ".git").exists() else lb
    pairs = []
    for path in ("Dataset/LLMBar/Natural/dataset.json", "Dataset/Processed/LLMEval^2/dataset.json",
                 "Dataset/Processed/MT-Bench/dataset.json"):
        for r in json.loads(_show(lb, path)):
            out_key = "output_1" if r["label"] == 1 else "output_2"  # the preferred output: an answer to it
            if isinstance(r[out_key], str) and r[out_key].strip():
                pairs.append({"prompt": r["input"][:MAX_CHARS], "response": r[out_key][:MAX_CHARS]})
    with (DATA / "llmbar_pairs.jsonl").open("w", encoding="utf-8") as f:
        for p in rng.sample(pairs, 300):
            f.write(json.dumps(p) + "\n")
    # Language: 40 Tatoeba pairs per language, both sides with at least 12 letters (shorter is not scored).
    tb = mirror / "facebookresearch+LASER" / "repo"
    tb = tb / ".git" if (tb / ".git").exists() else tb
    with (DATA / "tatoeba_pairs.tsv").open("w", encoding="utf-8") as f:
        f.write("lang\teng\tother\n")
        for lang in TATOEBA_LANGS:
            other = _show(tb, f"data/tatoeba/v1/tatoeba.{lang}-eng.{lang}").splitlines()
            eng = _show(tb, f"data/tatoeba/v1/tatoeba.{lang}-eng.eng").splitlines()
            ok = [(e, o) for e, o in zip(eng, other, strict=True) if _letters(e) >= 12 and _letters(o) >= 6
                  and "\t" not in e + o]
            for e, o in rng.sample(ok, 40):
                f.write(f"{lang}\t{e}\t{o}\n")
    print(f"wrote extracts to {DATA}")
