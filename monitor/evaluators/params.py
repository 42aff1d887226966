"""Shared pieces of the built-in evaluators' parameters: a threshold and a version derived from the params."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field


class ThresholdParams(BaseModel):
    """Parameters every built-in takes: the score at or above which an event is labelled."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Label an event when its value is at or above this.")


def params_version(base: str, params: BaseModel, *extra: str) -> str:
    """`base` plus a short hash of the validated params (and anything else the scores depend on): any change of
    threshold, rule set or model gives a new version, hence fresh scores and a new series baseline."""
    blob = json.dumps([params.model_dump(mode="json"), *extra], sort_keys=True)
    return f"{base}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"
