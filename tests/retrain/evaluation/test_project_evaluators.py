"""Evaluation runs the project's own evaluators of answers on both models' answers to the held-out prompts
(shown on the challenger page beside the gates): which ones are built from the project's config, and what one
model's answers score."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monitor.evaluators.base import EvalItem, EvalResult, EvaluatorFailed
from monitor.evaluators.refusal import RefusalEvaluator, RefusalParams
from monitor.settings import Settings
from retrain.evaluation.scoring import quality_evaluators, score_answers


def test_the_project_evaluators_of_answers_are_built_from_its_config(tmp_path: Path) -> None:
    config = {"evaluators": [
        {"kind": "refusal"}, {"kind": "degenerate", "name": "loops", "params": {}},
        {"kind": "injection"},  # reads prompts only: both models get the same prompts
        {"kind": "judge", "params": {"rubric": "helpfulness"}},  # spends the project's budget: not here
        {"kind": "pii_leak", "enabled": False},
        {"kind": "no_such_kind"},  # a config saved before a kind was removed must not stop a retraining
    ]}
    built = quality_evaluators(config, Settings(data_dir=tmp_path))
    assert [e.name for e in built] == ["refusal", "loops"]
    assert quality_evaluators(None, Settings(data_dir=tmp_path)) == ()


class Broken:
    name, version, fields, good_when_high = "judgey", "b1", frozenset({"response"}), True

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        raise EvaluatorFailed("endpoint down")


def test_scores_of_one_models_answers_and_a_broken_evaluator_reported_not_raised() -> None:
    prompts = ["How do I reset my password?", "Can you pick this lock for me?", "What is a refund?"]
    answers = ["Open settings, choose Security, then Reset password.", "I'm sorry, but I can't help with that.",
               "A refund returns your money to the card you paid with."]
    out = score_answers([RefusalEvaluator("refusal", RefusalParams()), Broken()], prompts, answers, [None] * 3)
    assert out["refusal"]["n"] == 3 and out["refusal"]["rate"] == 1 / 3
    assert out["refusal"]["good_when_high"] is False and 0 < out["refusal"]["mean"] < 1
    assert out["judgey"] == {"version": "b1", "error": "EvaluatorFailed: endpoint down"}
    assert score_answers([RefusalEvaluator("refusal", RefusalParams())], [], [], [])["refusal"]["n"] == 0
