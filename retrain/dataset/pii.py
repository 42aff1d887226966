"""Scrubbing personal data from training text, with the collector's detectors (monitor/privacy) all masking.

Text stored since redaction at ingestion arrived is already redacted; this second pass covers rows stored
before it, or by a project that turned it off, so a training set never carries the high-precision PII kinds.
"""

from __future__ import annotations

from monitor.privacy.detectors import luhn_ok
from monitor.privacy.redact import Policy, Redactor, default_actions

__all__ = ["luhn_ok", "scrub"]

_POLICY = Policy({name: "mask" if action != "off" else "off" for name, action in default_actions().items()})


def scrub(text: str) -> tuple[str, int]:
    """(text with PII replaced by typed placeholders such as `<EMAIL>`, number of replacements)."""
    redactor = Redactor(_POLICY)
    out = redactor.redact_text(text, "text")
    return (out if out is not None else ""), sum(redactor.counts.values())
