"""Built-in evaluator `degenerate`: an empty, truncated or looping answer.

Three checks, the worst wins:
- empty: no response, or only whitespace/punctuation;
- loop: the share of the response's word 4-grams that repeat an earlier one (a model stuck in a loop repeats
  whole phrases; normal prose repeats almost none), scaled so that `loop_share` counts as certain;
- truncated: the text stops mid-sentence (no closing punctuation, bracket, quote, code fence or emoji, and the
  last line is prose: not a list item, heading, table row or number) after a response long enough to have ended
  properly (short chatty answers often end without a full stop).

The defaults were set on PandaLM's responses (the calibration set of bench/evaluators.py): 90% of those real
answers repeat under 17% of their 4-grams, so half the `loop_share` of 0.5 (25%) labels a loop; their false
"truncations" were all list items, tables and headings, hence the last-line rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field

from monitor.evaluators.base import EvalItem, EvalResult, scored
from monitor.evaluators.params import ThresholdParams, params_version

_WORD = re.compile(r"\w+", re.UNICODE)
_ENDS_CLEANLY = re.compile(r"""(?:[.!?…:;)\]}"'»\u201d\u2019*`>|~\u2600-\u27bf\U0001f300-\U0001faff]|```)\s*$""")
_CONTENT = re.compile(r"\w", re.UNICODE)
# A last line that is not running prose: "- item", "3. item", "# Heading", "| a | b |", "Day 9: ...", "#tag".
_NOT_PROSE = re.compile(r"^\s*(?:[-*•+#>]|\d+[.):]|[A-Z][\w ]{0,20}:|.*\|)|(?:\d|#\w+)\s*$")


class DegenerateParams(ThresholdParams):
    loop_share: float = Field(0.5, gt=0, le=1, description="Share of repeated 4-grams that counts as a sure loop.")
    min_truncation_chars: int = Field(80, ge=0, description="Shorter answers are not judged truncated.")
    truncation_score: float = Field(0.7, ge=0, le=1, description="Value given to an answer that stops mid-sentence.")


def repeated_share(text: str, n: int = 4) -> float:
    """Share of word n-grams already seen earlier in the text (0 for texts shorter than 2n words)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 2 * n:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def ends_mid_sentence(text: str) -> bool:
    stripped = text.rstrip()
    if not stripped or _ENDS_CLEANLY.search(stripped):
        return False
    last_line = stripped.rsplit("\n", 1)[-1]
    return not _NOT_PROSE.search(last_line)


def degenerate_score(response: str | None, p: DegenerateParams) -> tuple[float, str]:
    if response is None or not _CONTENT.search(response):
        return 1.0, "empty response"
    loop = min(1.0, repeated_share(response) / p.loop_share)
    truncated = p.truncation_score if (len(response) >= p.min_truncation_chars and ends_mid_sentence(response)) \
        else 0.0
    if loop >= truncated and loop > 0:
        return loop, f"{repeated_share(response):.0%} of its 4-grams repeat an earlier one"
    if truncated > 0:
        return truncated, f"stops mid-sentence: ...{response.rstrip()[-30:]!r}"
    return 0.0, "complete, no repetition"


@dataclass
class DegenerateEvaluator:
    name: str
    params: DegenerateParams = field(default_factory=DegenerateParams)
    fields: frozenset[str] = frozenset({"response"})
    version: str = field(init=False, default="")  # set from the params: a change is a new version
    good_when_high: bool | None = False

    def __post_init__(self) -> None:
        self.version = params_version("degenerate1", self.params)

    def evaluate(self, items: Sequence[EvalItem]) -> list[EvalResult]:
        out = []
        for item in items:
            value, why = degenerate_score(item.response, self.params)
            out.append(scored(value, self.params.threshold, why))
        return out
