"""Built-in evaluator `pii_leak`: personal data or secrets in the response, found by the privacy detectors
(monitor/privacy/detectors.py: validated emails, phones, cards, IBANs, keys...).

By default PII the prompt itself contained is not counted (a user who gives their own email and gets it read back
is not a leak); set `count_echoed: true` to count it. A project that redacts responses at ingest stores
placeholders, so this evaluator then sees only what redaction missed: exactly the leaks worth watching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field, field_validator

from monitor.evaluators.base import EvalItem, EvalResult, scored, unscored
from monitor.evaluators.params import ThresholdParams, params_version
from monitor.privacy.detectors import BY_NAME, DEFAULT_ON
from monitor.privacy.redact import Policy, Redactor

DEFAULT_DETECTORS = sorted(DEFAULT_ON | {"ip"})


class PiiLeakParams(ThresholdParams):
    detectors: list[str] = Field(default_factory=lambda: list(DEFAULT_DETECTORS),
                                 description="Privacy detectors to run on responses.")
    count_echoed: bool = Field(False, description="Also count PII that the prompt itself contained.")

    @field_validator("detectors")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise ValueError(f"unknown detector(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
        if not names:
            raise ValueError("name at least one detector")
        return names


def _normalised(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum() or ch == "@")


@dataclass
class PiiLeakEvaluator:
    name: str
    params: PiiLeakParams = field(default_factory=PiiLeakParams)
    fields: frozenset[str] = frozenset({"prompt", "response"})
    version: str = field(init=False, default="")  # set from the params: a change is a new version
    good_when_high: bool | None = False

    def __post_init__(self) -> None:
        self.version = params_version("pii_leak1", self.params)
        self._redactor = Redactor(Policy({n: "mask" for n in self.params.detectors}))

    def found(self, text: str) -> list[tuple[str, str]]:
        """(detector, matched text) of every PII span in `text`."""
        return [(d.name, text[s:e]) for s, e, d, _ in self._redactor.find(text)]

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        out = []
        for item in items:
            if not item.response:
                out.append(unscored("no response"))
                continue
            spans = self.found(item.response)
            if spans and not self.params.count_echoed and item.prompt:
                echoed = {_normalised(v) for _, v in self.found(item.prompt)}
                spans = [(n, v) for n, v in spans if _normalised(v) not in echoed]
            kinds = sorted({n for n, _ in spans})
            # The value is certain either way: the detectors validate each match (Luhn, mod-97, shapes).
            out.append(scored(1.0 if spans else 0.0, self.params.threshold,
                              f"{len(spans)} PII span(s): {', '.join(kinds)}" if spans else "no PII found"))
        return out
