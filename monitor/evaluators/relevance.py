"""Built-in evaluator `relevance`: does the response address the prompt?

The cosine between the prompt's and the response's sentence embeddings (the vectors the drift stage stores, so
scoring costs no extra model pass), mapped to [0, 1] by a logistic curve fitted on public data: PandaLM's test
set instructions with their own responses (relevant) and with another instruction's response (not relevant).
`python bench/evaluators.py --calibrate-relevance` refits it and prints the constants below. The curve is only
valid for the embedding model it was fitted with; with another model the version changes and the explanation
says the score is uncalibrated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from monitor.evaluators.base import EvalItem, EvalResult, scored, unscored
from monitor.evaluators.params import ThresholdParams, params_version

CALIBRATED_FOR = "all-minilm-l6-v2"  # the embedding model key the constants were fitted with
SLOPE, INTERCEPT = 18.020, -3.906  # logistic(SLOPE * cosine + INTERCEPT): `bench/evaluators.py --calibrate-relevance`


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else 0.0


def calibrated(cos: float) -> float:
    return 1.0 / (1.0 + math.exp(-(SLOPE * cos + INTERCEPT)))


@dataclass
class RelevanceEvaluator:
    name: str
    model_key: str = CALIBRATED_FOR
    params: ThresholdParams = field(default_factory=ThresholdParams)
    fields: frozenset[str] = frozenset({"prompt_vec", "response_vec"})
    version: str = field(init=False, default="")  # set from the params: a change is a new version
    good_when_high: bool | None = True

    def __post_init__(self) -> None:
        self.version = params_version("relevance1", self.params, self.model_key, f"{SLOPE}/{INTERCEPT}")

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        out = []
        note = "" if CALIBRATED_FOR in self.model_key else f" (uncalibrated for {self.model_key})"
        for item in items:
            if item.prompt_vec is None or item.response_vec is None:
                out.append(unscored("no stored embedding of the prompt or the response"))
                continue
            cos = cosine(np.asarray(item.prompt_vec, dtype=np.float64), np.asarray(item.response_vec, np.float64))
            out.append(scored(calibrated(cos), self.params.threshold, f"prompt-response cosine {cos:.2f}{note}"))
        return out
