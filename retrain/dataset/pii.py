"""Scrubbing personal data from training text: e-mail addresses, phone numbers and payment card numbers.

Card numbers are only replaced when they pass the Luhn check, so order numbers and other long digit runs
survive; phone numbers need a plausible shape (7-15 digits with separators or a leading +).
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)")

EMAIL_TOKEN, PHONE_TOKEN, CARD_TOKEN = "[EMAIL]", "[PHONE]", "[CARD]"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD_TOKEN if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    has_shape = text.startswith("+") or "(" in text or len(re.findall(r"[ .-]", text)) >= 2
    return PHONE_TOKEN if 7 <= len(digits) <= 15 and has_shape else text


def scrub(text: str) -> tuple[str, int]:
    """(text with PII replaced by tokens, number of replacements)."""
    count = 0

    def counted(fn):  # type: ignore[no-untyped-def]
        def inner(m: re.Match[str]) -> str:
            nonlocal count
            out: str = fn(m)
            count += out != m.group(0)
            return out

        return inner

    text = EMAIL.sub(counted(lambda m: EMAIL_TOKEN), text)
    text = CARD.sub(counted(_card), text)
    text = PHONE.sub(counted(_phone), text)
    return text, count
