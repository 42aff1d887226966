"""The evaluator interface (issue #21): an evaluator scores events and yields a value in [0, 1], a thresholded
label and a short explanation per event.

Pure: nothing here touches the database or the queue. The window stage (monitor/pipeline/stages/evaluators.py)
builds the items, stores one result per (event, evaluator version) and summarises them as metric rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

FIELDS = frozenset({"prompt", "response", "context", "reference", "prompt_vec", "response_vec"})


@dataclass(frozen=True)
class EvalItem:
    event_id: int
    prompt: str
    response: str | None
    context: str | None  # retrieved passages etc. from event metadata (key configurable, default "context")
    reference: str | None  # the corrected answer from feedback, when there is one
    prompt_vec: np.ndarray | None  # stored sentence embeddings (the drift stage's vectors), when present
    response_vec: np.ndarray | None


@dataclass(frozen=True)
class EvalResult:
    value: float | None  # score in [0, 1]; higher = more of what the evaluator names (refusal, relevance...)
    label: bool | None  # the thresholded decision (value >= threshold), None when value is None
    explanation: str  # short, human-readable
    error: str | None = None  # set when this item could not be scored (value None)


class Evaluator(Protocol):
    name: str  # metric names: eval.<name>.mean, eval.<name>.rate, eval.<name>.agreement ...
    version: str  # changes whenever rubric/model/threshold changes (a new version = a new series baseline)
    fields: frozenset[str]  # which of FIELDS it needs
    good_when_high: bool | None  # direction against human feedback (thumbs up); None = not applicable

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]: ...  # same length/order; never raises per item


class EvaluatorFailed(Exception):
    """The whole evaluator failed (endpoint down, budget exhausted, a missing package): the window is still
    computed; the evaluator is marked failed for that window with this message."""


def scored(value: float, threshold: float, explanation: str) -> EvalResult:
    """A result with its value clipped to [0, 1] and labelled against `threshold`."""
    v = min(1.0, max(0.0, float(value)))
    return EvalResult(v, v >= threshold, explanation)


def unscored(error: str) -> EvalResult:
    return EvalResult(None, None, "", error)
