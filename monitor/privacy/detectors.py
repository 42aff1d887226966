"""PII and secret detectors: a regular expression to find candidates and a validator to keep only real ones.

Standard library only (the SDK imports this module). Each detector favours precision: a card number must pass
Luhn and start like a card (an issuer prefix), an IBAN must pass its mod-97 check and have its country's length,
a phone number needs a phone's shape (a leading `+`, parentheses, or at least two separators), an IP address
must parse. Person names are the optional `person` detector (a spaCy named-entity pipeline, monitor/privacy/ner.py;
off by default and only when named); postal addresses are not detected (docs/privacy.md explains the gap).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Detector:
    name: str  # also the metric label and the placeholder's type: `email` -> `<EMAIL>`
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    # A cheap test on the whole text; when it fails the regex is not run at all (most texts hold no PII, and
    # a substring test is ~50x cheaper than a regex scan).
    prefilter: Callable[[str], bool] | None = None
    # Where in the text to look: (start, end) windows, or None for everywhere. Scanning a whole prompt with a
    # pattern that starts with a character class costs ~0.1 µs per character; most PII sits in short windows
    # found far more cheaply (around an `@`, inside a run of digits).
    windows: Callable[[str], list[tuple[int, int]]] | None = None
    # The characters one of which every text the detector could flag contains: the body of a regex character
    # class, with `\d` for any decimal digit. A text holding no character of any active detector's class is
    # clean without running a single detector (monitor/privacy/redact.py, `Redactor.gate`): most texts. It must
    # be implied by `prefilter` (or, without one, by `pattern`); tests/privacy/test_gate.py checks it.
    chars: str = ""
    # Instead of the pattern: a function giving the (start, end) spans found (a named-entity model).
    finder: Callable[[str], list[tuple[int, int]]] | None = None

    @property
    def placeholder(self) -> str:
        return self.name.upper()


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


# Issuer prefixes (IIN ranges) of the card networks people actually type: Visa 4; Mastercard 51-55, 2221-2720;
# Amex 34/37; Discover 6011/65/644-649; Diners 36/38/300-305; JCB 3528-3589; UnionPay 62; Maestro 50/56-69.
_CARD_IIN: Final = re.compile(r"^(?:4|5[0-9]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[4678]|30[0-5]|35|6)")


def card_ok(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and bool(_CARD_IIN.match(digits)) and luhn_ok(digits)


# IBAN length per country (ISO 13616 registry), so a random "DE12 3456..." run must also have the right length.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_ok(text: str) -> bool:
    compact = "".join(ch for ch in text if ch.isalnum()).upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


# A date, alone or followed by more digits (an hour: `2024-01-15 12`), is not a phone number.
_DATE_LIKE: Final = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?:$|[ T])")
_IPV4_LIKE: Final = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def phone_ok(text: str) -> bool:
    digits = _digits(text)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(text) or _IPV4_LIKE.match(text):
        return False
    if text.startswith("+") or "(" in text:
        return True
    separators = sum(1 for ch in text if ch in " .-")
    # Two separators: `555-123-4567`, `020 7946 0958`. Short dotted runs are version numbers more often than
    # phones; ten digits and more (`01.84.17.61.18`, `930.167.3943`) are not versions.
    dotted_only = text.count(".") >= 2 and " " not in text and "-" not in text
    return separators >= 2 and (not dotted_only or len(digits) >= 10)


def ip_ok(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    # `1.2.3.4`-style version strings are IPs too; only the unspecified/loopback ones are never personal.
    return not (address.is_unspecified or address.is_loopback)


def shannon_bits(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def high_entropy_ok(text: str) -> bool:
    # Conservative: at least 32 characters mixing upper case, lower case and digits, and more than 4.5 bits per
    # character. Hex digests (<= 4 bits/char), UUIDs, words and base64 of English text stay below.
    return (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
        and shannon_bits(text) > 4.5
    )


# Seven digits with nothing but the run's separators between them: every run `phone_windows` (>= 7 digits) or
# `card_windows` (>= 13) returns holds this, so a text without it has neither (digits in a run of _NUMBER_RUN
# are separated only by [ ().-]). Most texts with digits ("order #17589", a year) fail it, and skip the runs.
_SEVEN_DIGIT_RUN: Final = re.compile(r"\d(?:[ ().-]*\d){6}")
# A run of digits with the separators phone and card numbers use (at least 6 characters): card and phone
# patterns only need to look inside these.
_NUMBER_RUN: Final = re.compile(r"[+(]?\d[\d ().-]{4,}\d")
_IBAN_GATE: Final = re.compile(r"[A-Za-z]{2}\d\d")


_runs_cache: tuple[str, list[tuple[int, int, int]]] = ("", [])


def _number_runs(text: str) -> list[tuple[int, int, int]]:
    """(start, end + 1, digits) of each run; card and phone ask for the same text in turn, so the last is kept."""
    global _runs_cache
    cached = _runs_cache
    if cached[0] is text:
        return cached[1]
    # One character more at the end, so a pattern's look-ahead still sees what follows the run.
    runs = [(m.start(), min(len(text), m.end() + 1), sum(ch.isdigit() for ch in m.group(0)))
            for m in _NUMBER_RUN.finditer(text)]
    _runs_cache = (text, runs)
    return runs


def card_windows(text: str) -> list[tuple[int, int]]:
    return [(s, e) for s, e, n in _number_runs(text) if n >= 13]


def phone_windows(text: str) -> list[tuple[int, int]]:
    return [(s, e) for s, e, n in _number_runs(text) if n >= 7]


_LOCAL_REVERSED: Final = re.compile(r"[\w.+-]{1,64}")
_DOMAIN: Final = re.compile(r"[A-Za-z0-9.-]{3,300}")


def around_at_signs(text: str) -> list[tuple[int, int]]:
    """The stretch of e-mail-address characters around each `@` (the e-mail pattern then runs only there)."""
    out: list[tuple[int, int]] = []
    i = text.find("@")
    while i >= 0:
        local = _LOCAL_REVERSED.match(text[max(0, i - 64):i][::-1])
        domain = _DOMAIN.match(text, i + 1)
        if local and domain:
            out.append((i - local.end(), min(len(text), domain.end() + 1)))
        i = text.find("@", i + 1)
    return out


# The same tests, faster (per text with digits, the gate's common case; Python 3.11, 2026-12-06): the separators
# matched possessively (`*+`: they hold no digit, so giving some back never helps), 0.3-1.0 µs against 0.9-1.8 for
# the earlier scan of digit stretches; and the IBAN gate's two digits found first, with the two letters checked
# behind them (a digit pair is rare in prose, a letter is not, and the engine starts an attempt at every letter of
# `[A-Za-z]{2}\d\d`), 0.3-0.8 µs against 0.9-3.5. tests/privacy/test_gate.py compares each with its plain regex.
_SEVEN_DIGIT_RUN_FAST: Final = re.compile(r"\d(?:[ ().-]*+\d){6}")
_IBAN_GATE_FAST: Final = re.compile(r"\d\d(?<=[A-Za-z]{2}\d\d)")
# And for ASCII texts (most), the same patterns with `\d` as [0-9]: identical on ASCII, and the engine's ASCII
# digit test is a table lookup where the Unicode one is a call per character (2026-12-06, callgrind: ~1,100
# instructions an event of bench traffic).
_SEVEN_DIGIT_RUN_ASCII: Final = re.compile(_SEVEN_DIGIT_RUN_FAST.pattern, re.ASCII)
_IBAN_GATE_ASCII: Final = re.compile(_IBAN_GATE_FAST.pattern, re.ASCII)


def has_seven_digit_run(text: str) -> bool:
    """`_SEVEN_DIGIT_RUN.search(text)`: seven digits with nothing but [ ().-] between them."""
    return (_SEVEN_DIGIT_RUN_ASCII if text.isascii() else _SEVEN_DIGIT_RUN_FAST).search(text) is not None


def may_hold_iban(text: str) -> bool:
    """`_IBAN_GATE.search(text)`: two letters, then two digits."""
    return (_IBAN_GATE_ASCII if text.isascii() else _IBAN_GATE_FAST).search(text) is not None


def _may_hold_key(text: str) -> bool:
    # Every key format below contains `_` or one of these substrings; substring tests cost nanoseconds, the
    # alternation regex microseconds, and most texts have none of them. (Not any `-`: prose is full of hyphens.)
    return ("_" in text or "sk-" in text or "xox" in text or "glpat-" in text or "-----BEGIN" in text
            or "AKIA" in text or "ASIA" in text or "AIza" in text or "eyJ" in text or "SG." in text)


EMAIL: Final = Detector(
    "email",
    re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])"),
    prefilter=lambda t: "@" in t,
    windows=around_at_signs,
    chars="@",
)
CREDENTIAL_URL: Final = Detector(
    "credential_url",
    re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s:/@]{1,256}:[^\s/@]{1,256}@[^\s/?#]{1,256}"),
    prefilter=lambda t: "://" in t and "@" in t,
    chars="@",
)
API_KEY: Final = Detector(
    "api_key",
    re.compile(
        r"(?<![\w-])(?:"
        r"sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
        r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
        r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
        r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
        r"|glpat-[0-9A-Za-z_-]{20,}"  # GitLab
        r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"
        r"|dl_[A-Za-z0-9]{2,16}_[0-9a-f]{48}"  # driftloop's own API keys
        r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
        r"|-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[\s\S]{0,8192}?-----END [A-Z ]{0,20}PRIVATE KEY-----"
        r")"
    ),
    prefilter=_may_hold_key,
    chars=r"_\-AJG",  # `_`, `-`, the A of AKIA/ASIA/AIza, the J of eyJ, the G of SG.
)
IBAN: Final = Detector(
    "iban",
    re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b"),
    iban_ok,
    prefilter=may_hold_iban,
    chars=r"\d",
)
CARD: Final = Detector(
    "card",
    re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
    card_ok,
    prefilter=has_seven_digit_run,
    windows=card_windows,
    chars=r"\d",
)
PHONE: Final = Detector(
    "phone",
    re.compile(
        r"(?<![\w+])(?:\+\d{7,15}|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{2,6}){1,4})(?![\w])"
    ),
    phone_ok,
    prefilter=has_seven_digit_run,
    windows=phone_windows,
    chars=r"\d",
)
IP: Final = Detector(
    "ip",
    re.compile(
        r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
        r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?)(?![\w.:])"
    ),
    ip_ok,
    prefilter=lambda t: "." in t or ":" in t,
    chars=".:",
)
HIGH_ENTROPY: Final = Detector(
    "high_entropy",
    re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{32,512}(?![A-Za-z0-9+/_=-])"),
    high_entropy_ok,
    chars=r"A-Za-z0-9+/_=\-",
)



def _person_spans(text: str) -> list[tuple[int, int]]:
    from monitor.privacy.ner import person_spans  # stdlib-only module; spaCy is imported on first use

    return person_spans(text)


# No `chars`: a name can be any letters, so with `person` on the redaction gate lets every text through.
PERSON: Final = Detector("person", re.compile(r"(?!)"), finder=_person_spans)

# Priority order: when two detectors match overlapping text, the earlier one wins (a credential URL holds an
# "e-mail", an IBAN holds digit runs that look like a phone number; a model's person span yields to all of them).
DETECTORS: Final[tuple[Detector, ...]] = (
    CREDENTIAL_URL, API_KEY, EMAIL, IBAN, CARD, PHONE, IP, HIGH_ENTROPY, PERSON,
)
BY_NAME: Final[dict[str, Detector]] = {d.name: d for d in DETECTORS}
# On by default: the high-precision ones. IP addresses (also version strings, documentation examples) and
# high-entropy strings (also hashes, ids) are opt-in.
DEFAULT_ON: Final = frozenset({"email", "phone", "card", "iban", "credential_url", "api_key"})
# Turned on only by name, never by `all=...`: they need an optional extra (spaCy and a pipeline) and cost ~100x more.
EXPLICIT_ONLY: Final = frozenset({"person"})
