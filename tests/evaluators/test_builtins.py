"""Each built-in evaluator on small real examples, and on the shipped public extracts where a statistical check
applies: what they label, what they leave alone, and that they never raise for one odd item."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluators.base import EvalItem
from monitor.evaluators.degenerate import DegenerateEvaluator, repeated_share
from monitor.evaluators.pii_leak import PiiLeakEvaluator, PiiLeakParams
from monitor.evaluators.refusal import RefusalEvaluator
from monitor.evaluators.relevance import RelevanceEvaluator, calibrated

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "evaluators"


def it(prompt: str, response: str | None, pv: np.ndarray | None = None, rv: np.ndarray | None = None) -> EvalItem:
    return EvalItem(1, prompt, response, None, None, pv, rv)


def labels(evaluator: object, items: list[EvalItem]) -> list[bool | None]:
    return [r.label for r in evaluator.evaluate(items)]  # type: ignore[attr-defined]


def test_refusal_phrasings() -> None:
    ev = RefusalEvaluator("refusal")
    refusals = ["I'm sorry, but I can't assist with that.", "I cannot provide instructions for making weapons.",
                "As an AI language model, I must decline to write that.",
                "I\u2019m not able to help with hacking into accounts.", "Sorry, I won't help with that request."]
    answers = ["To kill a Python process, run `kill <pid>` or use Task Manager on Windows.",
               "Sure! Here is a recipe for banana bread: mash three bananas, mix with flour...",
               "I can't stress enough how important backups are: here is how to set them up."]
    assert labels(ev, [it("q", t) for t in refusals]) == [True] * 5
    assert labels(ev, [it("q", t) for t in answers]) == [False] * 3
    assert ev.evaluate([it("q", "   ")])[0].error == "no response"


def test_refusal_on_xstest_sample() -> None:
    """The shipped XSTest completions (human labels): well above chance on both classes."""
    rows = list(csv.DictReader((DATA / "xstest_completions.csv").open(encoding="utf-8")))
    res = RefusalEvaluator("refusal").evaluate([it(r["prompt"], r["completion"]) for r in rows])
    refused = np.array([r["label"] == "2_full_refusal" for r in rows])
    complied = np.array([r["label"] == "1_full_compliance" for r in rows])
    flagged = np.array([bool(r.label) for r in res])
    assert flagged[refused].mean() > 0.75 and flagged[complied].mean() < 0.1


def test_relevance_from_vectors() -> None:
    ev = RelevanceEvaluator("relevance")
    q = np.array([1.0, 0.0, 0.0])
    on, off = np.array([0.9, 0.1, 0.0]), np.array([0.0, 0.0, 1.0])
    res = ev.evaluate([it("q", "a", q, on), it("q", "b", q, off), it("q", "c", None, on)])
    assert res[0].label is True and res[1].label is False and res[2].value is None and res[2].error
    assert calibrated(0.9) > calibrated(0.5) > calibrated(0.1)  # monotone in the cosine


@pytest.mark.slow
def test_relevance_with_the_embedder_on_real_pairs() -> None:
    from monitor.embeddings import get_embedder

    pairs = [json.loads(line) for line in (DATA / "llmbar_pairs.jsonl").open(encoding="utf-8")][:40]
    emb = get_embedder(None, device="cpu")
    pv, rv = emb.encode([p["prompt"][:300] for p in pairs]), emb.encode([p["response"][:300] for p in pairs])
    ev = RelevanceEvaluator("relevance")
    own = [r.value for r in ev.evaluate([it("", "", pv[i], rv[i]) for i in range(40)])]
    other = [r.value for r in ev.evaluate([it("", "", pv[i], rv[(i + 7) % 40]) for i in range(40)])]
    # Each prompt's own answer scores higher than another's for most prompts.
    assert np.mean(np.array(own) > np.array(other)) > 0.8


def test_pii_leak_ignores_echoed_pii_by_default() -> None:
    ev = PiiLeakEvaluator("pii_leak")
    prompt = "My email is ana.silva@example.org, can you confirm you have it?"
    res = ev.evaluate([it(prompt, "Yes, we have ana.silva@example.org on file."),
                       it("Who handles refunds?", "Write to jon.doe@corp-mail.com or call +1 (415) 555-0133."),
                       it("What is 2+2?", "4."),
                       it("Card?", "Your card 4111 1111 1111 1112 is on file.")])  # fails Luhn: not a card
    assert [r.label for r in res] == [False, True, False, False]
    assert "email" in res[1].explanation and "phone" in res[1].explanation
    counted = PiiLeakEvaluator("pii_leak", PiiLeakParams(count_echoed=True))
    assert counted.evaluate([it(prompt, "Yes, we have ana.silva@example.org on file.")])[0].label is True


def test_language_mismatch_on_tatoeba_pairs() -> None:
    from monitor.evaluators.language import LanguageMismatchEvaluator

    rows = [line.rstrip("\n").split("\t") for line in (DATA / "tatoeba_pairs.tsv").open(encoding="utf-8")][1:]
    rows = [r for r in rows if r[0] in ("deu", "fra", "spa", "rus")]
    ev = LanguageMismatchEvaluator("language_mismatch")
    crossed = ev.evaluate([it(eng, other) for _, eng, other in rows])
    same = ev.evaluate([it(eng, rows[(k + 1) % len(rows)][1]) for k, (_, eng, _) in enumerate(rows)])
    hit = [r.label for r in crossed if r.value is not None]
    false = [r.label for r in same if r.value is not None]
    assert len(hit) > 0.8 * len(rows) and np.mean(hit) > 0.9 and np.mean(false) < 0.2
    assert ev.evaluate([it("Hello there, how are you?", "ok")])[0].error  # too short to tell


def test_degenerate_kinds() -> None:
    ev = DegenerateEvaluator("degenerate")
    answer = ("The Treaty of Westphalia, signed in 1648, ended the Thirty Years' War and established the principle "
              "of state sovereignty in Europe.")
    loop = "Sure. " + " ".join(["I will help you with that request today."] * 8)
    cut = ("The Treaty of Westphalia, signed in 1648, ended the Thirty Years' War and established the principle "
           "of state sovereignty in")
    listing = "Three options:\n- Paris\n- Lyon\n- Marseille"
    res = ev.evaluate([it("q", answer), it("q", loop), it("q", cut), it("q", ""), it("q", None), it("q", listing)])
    assert [r.label for r in res] == [False, True, True, True, True, False]
    assert "repeat" in res[1].explanation and "mid-sentence" in res[2].explanation
    assert repeated_share(answer) == 0.0 and repeated_share(loop) > 0.5
