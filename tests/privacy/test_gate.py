"""The redaction gate (`Redactor.may_hold_pii`): a text without any character of the active detectors' classes is
passed through without running them, so the gate must never rule out a text a detector would flag. Checked
against the full detector run on PII samples, the public PII corpus and random texts (ASCII and not), for the
default policy, every detector on, and each detector alone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.privacy.detectors import (
    _IBAN_GATE,
    _SEVEN_DIGIT_RUN,
    API_KEY,
    DETECTORS,
    has_seven_digit_run,
    may_hold_iban,
)
from monitor.privacy.redact import Policy, Redactor, parse_actions

POLICIES = {
    "default": Policy(),
    "all": Policy(parse_actions("all=mask")),
    **{d.name: Policy(parse_actions(f"all=off,{d.name}=mask")) for d in DETECTORS},
}
SAMPLES = [
    "write to Jane.Doe+tag@mail.example.co.uk today", "call +1 (415) 555-0132 now", "visa 4111 1111 1111 1111",
    "IBAN DE89 3704 0044 0532 0130 00 thanks", "db postgres://admin:s3cr3t@db.internal:5432/app",
    "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz012345", "slack xoxb-123456789012-abcdefABCDEF",
    "aws AKIAIOSFODNN7EXAMPLE", "google AIzaSyA1b2C3d4E5f6G7h8I9j0KkLlMmNnOoPpQ", "host 192.168.10.20 down",
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "secret Zx8Qw2Er5Ty7Ui9Op1As3Df4Gh6Jk8Lz0Xc", "Is there a way to reset the password on my account?",
    "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "MY PHONE +44 20 7946 0958"),  # full-width forms
    "\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661",  # Arabic-Indic digits
    "two-factor login", "v1.2.3 :)",
]


def _agrees(text: str) -> None:
    for name, policy in POLICIES.items():
        redactor = Redactor(policy)
        if not redactor.may_hold_pii(text):
            assert redactor.find(text) == [], (name, text)


@pytest.mark.parametrize("text", SAMPLES)
def test_the_gate_never_rules_out_a_sample_a_detector_flags(text: str) -> None:
    _agrees(text)


def test_the_gate_never_rules_out_a_corpus_text() -> None:
    corpus = json.loads((Path(__file__).parents[2] / "bench/data/pii/presidio_synth_extract.json").read_text())
    texts = [r["text"] for r in corpus]
    assert len(texts) > 100
    for text in texts:
        _agrees(text)


# Characters every detector cares about, non-ASCII digits (which `\d` matches) and ordinary letters.
_ALPHABET = st.sampled_from([*"aAbBzZeyJGKISQk_-@.:/+=() 0123456789x", "\u0663", "\uff15", "sk-", "AKIA", "SG.", "xox"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_the_gate_never_rules_out_a_random_text(text: str) -> None:
    _agrees(text)


def test_the_gate_passes_most_prose_without_running_a_detector() -> None:
    redactor = Redactor(Policy())
    assert not redactor.may_hold_pii("Is there a way to reset the password on my account?")
    # A hyphen passes the gate (keys such as `sk-…` hold one), but not the key detector's prefilter.
    assert redactor.may_hold_pii("two-factor") and API_KEY.prefilter is not None
    assert not API_KEY.prefilter("Can I enable the two-factor login today?")
    assert redactor.may_hold_pii("call me on 555 0132")
    assert not Redactor(Policy(parse_actions("all=off"))).may_hold_pii("jane@example.com")  # nothing active


def test_a_sendgrid_key_without_dash_or_underscore_is_found() -> None:
    key = "SG." + "aB3" * 7 + "c." + "Xy9" * 14 + "z"
    spans = Redactor(Policy()).find(f"use {key} here")
    assert [(d.name, s, e) for s, e, d, _ in spans] == [("api_key", 4, 4 + len(key))]


def _spans(redactor: Redactor, text: str) -> list[tuple[int, int, str]]:
    return [(s, e, d.name) for s, e, d, _ in redactor.find(text)]


def _without_prefilters(policy: Policy) -> Redactor:
    """The same detectors with no prefilter: each runs its pattern (in its windows) on every text."""
    redactor = Redactor(policy)
    redactor._active = tuple((dataclasses.replace(d, prefilter=None), a) for d, a in redactor._active)
    return redactor


# Digit runs with every separator the card and phone patterns allow, around the seven- and thirteen-digit limits.
_DIGITS = st.sampled_from([*"0123456789", "\u0663", "\uff15", " ", "-", ".", "(", ")", "+", "a", "x", "#", "/"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_DIGITS, max_size=40).map("".join))
def test_the_digit_run_prefilter_never_rules_out_a_card_or_phone_number(text: str) -> None:
    # `has_seven_digit_run` decides whether the card and phone detectors look at all: it must rule out only texts
    # in which, run everywhere, they find nothing.
    for policy in (Policy(parse_actions("all=off,card=mask,phone=mask")), Policy()):
        assert _spans(Redactor(policy), text) == _spans(_without_prefilters(policy), text)


@pytest.mark.parametrize("text", [*SAMPLES, "order #17589", "555-013", "55 01 32", "call 5550132 now",
                                  "+1 (415) 555-0132", "4111-1111-1111-1111", "(0) 20 7946 0958"])
def test_the_digit_run_prefilter_on_samples(text: str) -> None:
    assert _spans(Redactor(Policy()), text) == _spans(_without_prefilters(Policy()), text)
    if text in ("order #17589", "555-013", "55 01 32"):  # six digits or fewer: ruled out before any run is found
        assert not has_seven_digit_run(text)
    if text in ("call 5550132 now", "+1 (415) 555-0132"):
        assert has_seven_digit_run(text)
    if text == "+1 (415) 555-0132":
        assert _spans(Redactor(Policy()), text)


_MIXED = st.sampled_from([*"0123456789", "\u0663", "\uff15", *" ().-+#/", *"aZxQé", "AB", "DE", "12", "1234567"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_MIXED, max_size=80).map("".join))
def test_the_fast_prefilters_equal_their_regexes(text: str) -> None:
    # Both prefilters are faster forms of one regex each (possessive separators; the IBAN pair's letters checked
    # behind its digits): they must answer exactly as it does.
    assert has_seven_digit_run(text) == (_SEVEN_DIGIT_RUN.search(text) is not None), text
    assert may_hold_iban(text) == (_IBAN_GATE.search(text) is not None), text


@pytest.mark.parametrize("text", ["12" * 40 + "AB12", "1 " * 50 + "DE89", "AB12" + "34" * 50, "9" * 200 + "x",
                                  "x" * 100 + "1234567", "DE" + "12" * 33 + "AB"])
def test_the_fast_prefilters_on_long_digit_runs(text: str) -> None:
    # Long digit runs, where the faster forms scan most differently from the plain regexes (the IBAN form tries every
    # digit pair; the seven-digit form every digit of a run).
    assert has_seven_digit_run(text) == (_SEVEN_DIGIT_RUN.search(text) is not None)
    assert may_hold_iban(text) == (_IBAN_GATE.search(text) is not None)
