"""Which demo topic produced a simulated prompt: the tests that check a drift explanation classify its
examples by the templates that wrote them, not by a word list (a word list matches quiet prompts too:
"pack" is in "My package #…")."""

from __future__ import annotations

import re

from monitor.demo.traffic import TOPICS

# (literal length, pattern, topic), most specific first: "How do I switch my {thing} to annual billing?"
# (billing) also matches "How do I {verb} my {thing}?" (account), so the template with more fixed text wins.
_PATTERNS = sorted(
    ((len(re.sub(r"\{\w+\}", "", t)), re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(t))), topic)
     for topic, (templates, _) in TOPICS.items() for t in templates),
    key=lambda row: -row[0],
)


def topic_of(text: str) -> str | None:
    """The demo topic whose templates produced `text` (None if none did)."""
    return next((topic for _, pattern, topic in _PATTERNS if pattern.fullmatch(text)), None)
