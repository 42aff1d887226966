"""PII detector precision/recall on a public synthetic corpus, and redaction speed.

    python bench/pii.py                       # measure on the shipped extract
    python bench/pii.py --ner                 # also the optional `person` detector (needs spaCy and a pipeline)
    python bench/pii.py --build-extract PATH  # rebuild the extract from presidio-research's synth_dataset_v2.json

Corpus: microsoft/presidio-research `data/synth_dataset_v2.json` (MIT; bench/data/pii/README.md). Its labelled
types that driftloop detects are mapped (EMAIL_ADDRESS→email, PHONE_NUMBER→phone, CREDIT_CARD→card,
IBAN_CODE→iban, IP_ADDRESS→ip). A predicted span counts as a true positive when it overlaps a gold span of the
mapped type; recall counts gold spans of that type overlapped by a prediction. Detectors the corpus does not
label (credential_url, api_key, high_entropy) report how many spans they flagged: on this corpus (no secrets in
it) every one is a false alarm unless it overlaps some other gold PII span. Every detector runs (all=mask).
With `--ner` the `person` detector runs too (DRIFTLOOP_PII_NER_MODEL names the pipeline, default en_core_web_sm),
scored against the corpus's PERSON spans. Nothing was tuned on this corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.privacy import ner as ner_module
from monitor.privacy.detectors import DETECTORS
from monitor.privacy.redact import Policy, Redactor, default_actions, parse_actions

EXTRACT = Path(__file__).parent / "data" / "pii" / "presidio_synth_extract.json"
MAPPED = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "card", "IBAN_CODE": "iban",
          "IP_ADDRESS": "ip"}


def build_extract(source: Path) -> None:
    """Every record holding a mapped type, plus a seeded sample of as many records without one (negatives)."""
    rows = json.loads(source.read_text())
    keep = [r for r in rows if any(s["entity_type"] in MAPPED for s in r["spans"])]
    others = [r for r in rows if not any(s["entity_type"] in MAPPED for s in r["spans"])]
    keep += random.Random(20).sample(others, min(len(others), len(keep)))
    out = [{"text": r["full_text"], "spans": sorted([[s["start_position"], s["end_position"], s["entity_type"]]
                                                     for s in r["spans"]])} for r in keep]
    EXTRACT.write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n")
    print(f"wrote {len(out)} of {len(rows)} records to {EXTRACT}")


def evaluate(rows: list[dict[str, Any]], ner: bool) -> None:
    redactor = Redactor(Policy(parse_actions("all=mask,person=mask" if ner else "all=mask")))
    mapped = {**MAPPED, "PERSON": "person"} if ner else MAPPED
    stats = {d.name: {"pred": 0, "tp": 0, "any_pii": 0, "gold": 0, "found": 0} for d in DETECTORS
             if ner or d.name != "person"}
    for row in rows:
        text, gold = row["text"], row["spans"]
        preds = [(s, e, d.name) for s, e, d, _ in redactor.find(text)]
        for s, e, name in preds:
            st = stats[name]
            st["pred"] += 1
            st["tp"] += any(gs < e and s < ge and mapped.get(gt) == name for gs, ge, gt in gold)
            st["any_pii"] += any(gs < e and s < ge for gs, ge, _ in gold)
        for gs, ge, gt in gold:
            kind = mapped.get(gt)
            if kind:
                stats[kind]["gold"] += 1
                stats[kind]["found"] += any(s < ge and gs < e and n == kind for s, e, n in preds)
    print(f"corpus: {len(rows)} texts (bench/data/pii/{EXTRACT.name})")
    print("| detector | default | gold spans | predicted | precision | recall | predicted spans on any gold PII |")
    print("|---|---|---:|---:|---:|---:|---:|")
    defaults = default_actions()
    for name, st in stats.items():
        precision = f"{st['tp'] / st['pred']:.3f}" if st["pred"] and st["gold"] else "—"
        recall = f"{st['found'] / st['gold']:.3f}" if st["gold"] else "—"
        print(f"| {name} | {defaults[name]} | {st['gold']} | {st['pred']} | {precision} | {recall} | {st['any_pii']} |")


def speed(rows: list[dict[str, Any]], repeat: int, ner: bool) -> None:
    texts = [r["text"] for r in rows]
    policies = [("default detectors", Policy()), ("all detectors", Policy(parse_actions("all=mask")))]
    if ner:
        policies.append(("default detectors + person (NER)", Policy(parse_actions("person=mask"))))
    for label, policy in policies:
        start = time.perf_counter()
        for _ in range(repeat):
            redactor = Redactor(policy)
            for t in texts:
                redactor.redact_text(t, "prompt")
        elapsed = time.perf_counter() - start
        n = len(texts) * repeat
        chars = sum(map(len, texts)) * repeat
        print(f"{label}: {n / elapsed:,.0f} texts/s ({chars / elapsed / 1e6:.2f} M chars/s, mean "
              f"{sum(map(len, texts)) / len(texts):.0f} chars/text)")
    clean = ["How do I export the quarterly report to a spreadsheet?"] * 2000
    start = time.perf_counter()
    redactor = Redactor(Policy())
    for t in clean * repeat:
        redactor.redact_text(t, "prompt")
    print(f"default detectors, a short text with no PII: {len(clean) * repeat / (time.perf_counter() - start):,.0f} "
          "texts/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-extract", type=Path, help="path of synth_dataset_v2.json")
    ap.add_argument("--repeat", type=int, default=5, help="passes over the corpus for the speed figure")
    ap.add_argument("--ner", action="store_true", help="also the optional `person` detector (needs spaCy and a "
                    "pipeline: DRIFTLOOP_PII_NER_MODEL, default en_core_web_sm)")
    args = ap.parse_args()
    if args.build_extract:
        build_extract(args.build_extract)
        return
    rows = json.loads(EXTRACT.read_text())
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    if args.ner:
        model = os.environ.get("DRIFTLOOP_PII_NER_MODEL") or ner_module.DEFAULT_MODEL
        ner_module.use_model(model)
        start = time.perf_counter()
        ner_module.pipeline()
        print(f"person detector: spaCy pipeline {model!r}, loaded in {time.perf_counter() - start:.1f} s")
    evaluate(rows, args.ner)
    speed(rows, args.repeat, args.ner)


if __name__ == "__main__":
    main()
