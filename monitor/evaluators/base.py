"""Placeholder of the shared evaluator interface (docs: /work/briefs/EVAL_INTERFACE.md), written by s5-21b so
its evaluators type-check before s5-21a's framework lands; on merge, s5-21a's base.py wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EvalItem:
    event_id: int
    prompt: str
    response: str | None
    context: str | None
    reference: str | None
    prompt_vec: np.ndarray | None
    response_vec: np.ndarray | None


@dataclass(frozen=True)
class EvalResult:
    value: float | None
    label: bool | None
    explanation: str
    error: str | None = None


class Evaluator(Protocol):
    name: str
    version: str
    fields: frozenset[str]
    good_when_high: bool | None

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]: ...


class EvaluatorFailed(Exception):
    """The whole evaluator failed for this window (endpoint down, budget exhausted)."""
