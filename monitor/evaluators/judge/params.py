"""A judge's per-project parameters (``evaluators: [{kind: judge, params: {...}}]``), validated, and the
factory that builds the evaluator from them and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.evaluators.judge.client import JudgeClient
from monitor.evaluators.judge.evaluator import JudgeEvaluator
from monitor.evaluators.judge.spend import MemoryLedger, SpendLedger
from monitor.settings import Settings


class JudgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rubric: Literal["correctness", "faithfulness", "helpfulness", "policy"] = "helpfulness"
    policy: str = Field("", max_length=4000, description="The policy text (rubric `policy` only).")
    base_url: str | None = Field(None, max_length=2048, description="Overrides DRIFTLOOP_JUDGE_BASE_URL.")
    model: str | None = Field(None, max_length=200, description="Overrides DRIFTLOOP_JUDGE_MODEL.")
    api_key_name: str | None = Field(None, max_length=64, description="A key stored with set-judge-key.")
    threshold: float = Field(0.5, gt=0, le=1, description="Score (0-1) at or above which the label is true.")
    max_tokens_per_day: int | None = Field(None, ge=0, description="Overrides DRIFTLOOP_JUDGE_MAX_TOKENS_PER_DAY.")
    max_calls_per_minute: float | None = Field(None, gt=0, le=100_000, description="Rate budget of this judge.")
    max_output_tokens: int = Field(200, ge=16, le=4096)
    timeout_seconds: float | None = Field(None, gt=0, le=600)
    window_deadline_seconds: float | None = Field(None, gt=0, le=3600)
    min_coverage: float = Field(0.5, gt=0.0, le=1.0, description="The default coverage rule pages below this.")
    use_schema: bool = Field(True, description="Send response_format json_schema (dropped if the server refuses).")

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v


def build_judge(name: str, params: Mapping[str, Any], settings: Settings, *, api_key: str | None = None,
                ledger: SpendLedger | None = None) -> JudgeEvaluator:
    """The evaluator of one project's judge spec. ``api_key`` is the project's stored key when
    ``api_key_name`` names one (the caller reads it: this module has no database); else DRIFTLOOP_JUDGE_API_KEY."""
    p = JudgeParams.model_validate(dict(params))
    base_url = p.base_url or settings.judge_base_url
    model = p.model or settings.judge_model
    if not base_url or not model:
        raise ValueError("the judge needs an endpoint and a model: set DRIFTLOOP_JUDGE_BASE_URL and "
                         "DRIFTLOOP_JUDGE_MODEL, or params.base_url and params.model")
    client = JudgeClient(base_url, model, api_key=api_key or settings.judge_api_key,
                         timeout_s=p.timeout_seconds or settings.judge_timeout_seconds,
                         max_tokens=p.max_output_tokens, use_schema=p.use_schema)
    limit = p.max_tokens_per_day if p.max_tokens_per_day is not None else settings.judge_max_tokens_per_day
    ev = JudgeEvaluator(client, name=name, rubric=p.rubric, policy=p.policy, threshold=p.threshold,
                        ledger=ledger or MemoryLedger(limit),
                        window_deadline_s=p.window_deadline_seconds or settings.judge_window_deadline_seconds,
                        max_calls_per_minute=p.max_calls_per_minute)
    ev.params = p
    ev.daily_limit = limit
    return ev
