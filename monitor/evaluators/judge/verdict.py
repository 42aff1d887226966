"""The judge's verdict: a JSON schema to constrain it, and a parser that validates and repairs.

Servers that support ``response_format: {"type": "json_schema"}`` (vLLM, recent Ollama, hosted APIs) are held
to ``VERDICT_SCHEMA``; others answer free text, so ``parse_verdict`` accepts JSON inside code fences or prose,
a score given as "4" or 4.0, and, as the last repair, a "score: 4" line. Anything else is ``VerdictError``: that
item errors (with the reason), the window does not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

SCORE_MIN, SCORE_MAX = 1, 5
MAX_EXPLANATION = 500

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX},
        "label": {"type": "string", "maxLength": 40},
        "explanation": {"type": "string", "maxLength": MAX_EXPLANATION},
    },
    "required": ["score", "label", "explanation"],
    "additionalProperties": False,
}


class VerdictError(ValueError):
    """The judge's reply is not a usable verdict."""


@dataclass(frozen=True)
class Verdict:
    score: int
    label: str
    explanation: str
    repaired: bool = False  # True when the reply was not the schema's JSON and had to be repaired

    @property
    def value(self) -> float:
        return (self.score - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)


_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_SCORE_LINE = re.compile(r"\bscore\W{0,3}([1-5])(?:\s*/\s*5)?\b", re.IGNORECASE)


def _score(raw: object) -> int:
    if isinstance(raw, bool):
        raise VerdictError("score is a boolean, not 1-5")
    if isinstance(raw, str):
        raw = raw.strip()
    try:
        x = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise VerdictError(f"score {str(raw)[:20]!r} is not a number") from None
    if not x.is_integer() or not SCORE_MIN <= x <= SCORE_MAX:
        raise VerdictError(f"score {x:g} is not an integer from {SCORE_MIN} to {SCORE_MAX}")
    return int(x)


def _from_object(obj: Any, repaired: bool) -> Verdict:
    if not isinstance(obj, dict) or "score" not in obj:
        raise VerdictError("the JSON has no score")
    label = str(obj.get("label") or "").strip()[:40]
    explanation = str(obj.get("explanation") or "").strip()[:MAX_EXPLANATION]
    extra = set(obj) - {"score", "label", "explanation"}
    return Verdict(_score(obj["score"]), label, explanation, repaired or bool(extra) or not (label and explanation))


def parse_verdict(text: str | None) -> Verdict:
    """The verdict in ``text``; raises VerdictError saying what was wrong."""
    if not text or not text.strip():
        raise VerdictError("the judge returned an empty reply")
    t = text.strip()
    try:
        return _from_object(json.loads(t), repaired=False)
    except json.JSONDecodeError:
        pass
    for m in _OBJECT.finditer(t):  # JSON in a code fence or inside prose
        try:
            return _from_object(json.loads(m.group(0)), repaired=True)
        except (json.JSONDecodeError, VerdictError):
            continue
    m2 = _SCORE_LINE.search(t)
    if m2:
        return Verdict(int(m2.group(1)), "", t[:MAX_EXPLANATION], repaired=True)
    raise VerdictError(f"no verdict in the judge's reply: {t[:80]!r}")
