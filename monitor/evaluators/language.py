"""Built-in evaluator `language_mismatch`: the response is in another language than the prompt.

Each text's language distribution comes from py3langid (langid.py's naive Bayes model over byte n-grams, 97
languages, shipped inside the package: nothing is downloaded). The value (see `mismatch`) is near 0 when the
response's most likely language is the prompt's and near 1 when it clearly is another, so a confident "English vs
French" scores near 1 and an unsure short text in between. Texts with fewer than `min_letters` letters
(a "ok", a number) are not scored: no detector can tell their language.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from monitor.evaluators.base import EvalItem, EvalResult, EvaluatorFailed, scored, unscored
from monitor.evaluators.params import ThresholdParams, params_version

_identifier: Any = None
_lock = threading.Lock()


class LanguageParams(ThresholdParams):
    min_letters: int = Field(12, ge=1, le=1000, description="Texts with fewer letters are not scored.")
    languages: list[str] | None = Field(None, description="Restrict detection to these ISO 639-1 codes.")
    max_chars: int = Field(200, ge=20, le=100_000, description="Identify the language of this many first characters "
                           "(the cost grows with the length; a few sentences are plenty).")


def identifier(languages: list[str] | None = None) -> Any:
    """The langid model (loaded once per process: ~1 s)."""
    global _identifier
    with _lock:
        if _identifier is None:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError as exc:  # an optional dependency: the evaluator fails, the window does not
                raise EvaluatorFailed("language_mismatch needs the py3langid package (pip install py3langid)") \
                    from exc
            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if languages:
            _identifier.set_languages(languages)
        return _identifier


def distribution(ident: Any, text: str) -> tuple[dict[str, float], str, float]:
    """(probability per language, top language, its probability)."""
    ranked = ident.rank(text)
    top, p_top = ranked[0]
    return dict(ranked), top, float(p_top)


def mismatch(prompt: dict[str, float], response: dict[str, float]) -> float:
    """Expected, over the prompt's languages l, of 1 - P_response(l) / max P_response: 0 when the response's most
    likely language is the prompt's, near 1 when the response's model clearly prefers another one. A ratio to
    the top, not a raw probability, because the model spreads short texts thinly over related languages."""
    top = max(response.values()) or 1.0
    return float(sum(p * (1.0 - response.get(lang, 0.0) / top) for lang, p in prompt.items()))


_LETTER = re.compile(r"[^\W\d_]")


def letters(text: str, enough: int) -> int:
    """Letters in `text`, counted up to `enough` (all a caller needs to know)."""
    n = 0
    for _ in _LETTER.finditer(text):
        n += 1
        if n >= enough:
            break
    return n


@dataclass
class LanguageMismatchEvaluator:
    name: str
    params: LanguageParams = field(default_factory=LanguageParams)
    fields: frozenset[str] = frozenset({"prompt", "response"})
    version: str = field(init=False, default="")  # set from the params: a change is a new version
    good_when_high: bool | None = False

    def __post_init__(self) -> None:
        self.version = params_version("langid1", self.params)

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        ident = identifier(self.params.languages)
        known: dict[str, tuple[dict[str, float], str, float]] = {}  # apps repeat prompts: identify each text once

        def dist(text: str) -> tuple[dict[str, float], str, float]:
            text = text[: self.params.max_chars]
            found = known.get(text)
            if found is None:
                found = known[text] = distribution(ident, text)
            return found

        out = []
        for item in items:
            if not item.response or letters(item.response, self.params.min_letters) < self.params.min_letters:
                out.append(unscored("response too short to tell its language"))
                continue
            if letters(item.prompt, self.params.min_letters) < self.params.min_letters:
                out.append(unscored("prompt too short to tell its language"))
                continue
            pp, lp, cp = dist(item.prompt)
            pr, lr, cr = dist(item.response)
            value = mismatch(pp, pr)
            out.append(scored(value, self.params.threshold,
                              f"prompt {lp} ({cp:.0%}), response {lr} ({cr:.0%})"))
        return out
