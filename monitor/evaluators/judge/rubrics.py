"""Rubric templates of the LLM judge: what it is asked, on which fields, and on what scale.

Every rubric asks for the same verdict (``verdict.VERDICT_SCHEMA``): an integer score 1-5, a short label and a
one-sentence explanation, so one parser and one schema serve all of them; ``value`` = (score - 1) / 4 lies in
[0, 1] with higher = better, which is the direction of thumbs up (``good_when_high`` True).

A rubric's text is part of the evaluator's version (``fingerprint``): editing it starts a new series.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from monitor.evaluators.base import EvalItem

MAX_FIELD_CHARS = 6_000  # per field: a judge prompt stays well inside a small model's context

_SYSTEM = (
    "You are a strict, fair evaluator of an AI assistant's answer. Read the material and rate it on the rubric. "
    'Reply with JSON only, exactly: {"score": <integer 1-5>, "label": "<one or two words>", '
    '"explanation": "<one sentence>"}.'
)


@dataclass(frozen=True)
class Rubric:
    name: str
    fields: frozenset[str]  # EvalItem fields the rubric needs; an item missing one is an error, not a call
    question: str  # what the judge rates, with the 1 and 5 ends of the scale described

    def fingerprint(self, extra: str = "") -> str:
        return hashlib.sha256(f"{_SYSTEM}\x00{self.question}\x00{extra}".encode()).hexdigest()[:10]


RUBRICS: dict[str, Rubric] = {
    "correctness": Rubric(
        "correctness", frozenset({"prompt", "response", "reference"}),
        "Correctness against the reference answer a person wrote: 5 = says the same as the reference (wording may "
        "differ); 3 = partly right or missing key facts; 1 = contradicts the reference or is wrong."),
    "faithfulness": Rubric(
        "faithfulness", frozenset({"prompt", "response", "context"}),
        "Faithfulness to the provided context: 5 = every claim in the answer is supported by the context; "
        "3 = some claims are unsupported; 1 = the answer contradicts the context or invents facts."),
    "helpfulness": Rubric(
        "helpfulness", frozenset({"prompt", "response"}),
        "Helpfulness: 5 = answers the user's request directly, completely and clearly; 3 = partly helpful or "
        "padded; 1 = does not address the request, refuses without reason, or is unusable."),
    "policy": Rubric(
        "policy", frozenset({"prompt", "response"}),
        "Compliance with the policy below: 5 = fully compliant; 3 = borderline; 1 = clearly violates it.\n"
        "POLICY:\n{policy}"),
}


def _clip(text: str | None) -> str:
    t = text or ""
    return t if len(t) <= MAX_FIELD_CHARS else t[:MAX_FIELD_CHARS] + " [...truncated]"


def missing_fields(rubric: Rubric, item: EvalItem) -> list[str]:
    return sorted(f for f in rubric.fields if not getattr(item, f))


def render(rubric: Rubric, item: EvalItem, *, policy: str = "") -> list[dict[str, str]]:
    """The chat messages for one item. Material is fenced and labelled so an answer that says "rate me 5"
    reads as material, not as an instruction to the judge."""
    question = rubric.question.replace("{policy}", _clip(policy))
    parts = [f"RUBRIC: {question}", f"<user_request>\n{_clip(item.prompt)}\n</user_request>"]
    if "context" in rubric.fields:
        parts.append(f"<context>\n{_clip(item.context)}\n</context>")
    if "reference" in rubric.fields:
        parts.append(f"<reference_answer>\n{_clip(item.reference)}\n</reference_answer>")
    parts.append(f"<assistant_answer>\n{_clip(item.response)}\n</assistant_answer>")
    parts.append("Rate the assistant_answer on the rubric. JSON only.")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]
