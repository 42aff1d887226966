"""The built-in evaluators by kind: an explicit table (no registration by import side effects).

A factory takes the project's `EvaluatorSpec` and the settings and returns a ready evaluator; it validates the
spec's `params` (a ValueError naming the field) and loads nothing heavy (models load on first `evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from monitor.evaluators.base import Evaluator
from monitor.evaluators.degenerate import DegenerateEvaluator, DegenerateParams
from monitor.evaluators.injection import InjectionParams
from monitor.evaluators.judge.params import JudgeParams
from monitor.evaluators.language import LanguageMismatchEvaluator, LanguageParams
from monitor.evaluators.params import ThresholdParams
from monitor.evaluators.pii_leak import PiiLeakEvaluator, PiiLeakParams
from monitor.evaluators.refusal import RefusalEvaluator, RefusalParams
from monitor.evaluators.relevance import RelevanceEvaluator

if TYPE_CHECKING:
    from monitor.settings import Settings


class EvaluatorSpec(Protocol):
    """What a factory reads of the project's evaluator spec (`monitor.pipeline.config.EvaluatorSpec`, which
    validates its params through `check_params` here: naming that class would close an import cycle)."""

    name: str
    kind: str
    params: dict[str, Any]


Factory = Callable[[EvaluatorSpec, "Settings"], Evaluator]
P = TypeVar("P", bound=BaseModel)


def parse_params(model: type[P], params: dict[str, Any]) -> P:
    """`params` validated by `model`; a ValueError naming each bad field as params.<field>."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"params.{'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None


def _refusal(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    return RefusalEvaluator(spec.name, parse_params(RefusalParams, spec.params))


def _embedding_key(settings: Settings) -> str | None:
    """The key of the vectors the drift stage stores; None when the default model's package is absent (the stage
    reports that when it needs vectors)."""
    from monitor.embeddings import resolve_embedding_model

    try:
        return resolve_embedding_model(settings.embedding_model)[1]
    except RuntimeError:
        return None


def _relevance(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    params = parse_params(ThresholdParams, spec.params)
    key = _embedding_key(settings) or settings.embedding_model or "default"
    return RelevanceEvaluator(spec.name, model_key=key, params=params)


def _pii_leak(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    return PiiLeakEvaluator(spec.name, parse_params(PiiLeakParams, spec.params))


def _language(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    return LanguageMismatchEvaluator(spec.name, parse_params(LanguageParams, spec.params))


def _degenerate(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    return DegenerateEvaluator(spec.name, parse_params(DegenerateParams, spec.params))


def _injection(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    from monitor.evaluators.injection import InjectionEvaluator
    from monitor.safety.embedding_head import HEAD_EMBEDDING_KEY

    params = parse_params(InjectionParams, spec.params)
    return InjectionEvaluator(spec.name, threshold=params.threshold, device=settings.device,
                              use_stored_vectors=_embedding_key(settings) == HEAD_EMBEDDING_KEY)


def _judge(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    from monitor.evaluators.judge.params import build_judge

    parse_params(JudgeParams, spec.params)
    return build_judge(spec.name, spec.params, settings)


BUILTINS: dict[str, Factory] = {
    "refusal": _refusal,
    "relevance": _relevance,
    "pii_leak": _pii_leak,
    "language_mismatch": _language,
    "degenerate": _degenerate,
    "injection": _injection,
    "judge": _judge,
}

# The params model of each kind, so a project config is checked when it is set, not when a window first runs.
PARAMS: dict[str, type[BaseModel]] = {
    "refusal": RefusalParams,
    "relevance": ThresholdParams,
    "pii_leak": PiiLeakParams,
    "language_mismatch": LanguageParams,
    "degenerate": DegenerateParams,
    "injection": InjectionParams,
    "judge": JudgeParams,
}


def build(spec: EvaluatorSpec, settings: Settings) -> Evaluator:
    try:
        factory = BUILTINS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown evaluator kind {spec.kind!r}; choose from {', '.join(BUILTINS)}") from None
    return factory(spec, settings)


def check_params(kind: str, params: dict[str, Any]) -> None:
    """Raise a ValueError naming the field when `params` do not fit `kind`."""
    if kind not in BUILTINS:
        raise ValueError(f"unknown evaluator kind {kind!r}; choose from {', '.join(BUILTINS)}")
    model = PARAMS.get(kind)
    if model is not None:
        parse_params(model, params)
