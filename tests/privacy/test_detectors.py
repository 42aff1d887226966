"""Detectors and redaction actions: validators (Luhn, IBAN mod-97, phone shape, IP parsing), false-positive guards,
the four actions, and that the stdlib-only modules stay importable by the SDK."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.privacy.detectors import BY_NAME, DETECTORS, card_ok, high_entropy_ok, iban_ok, luhn_ok, phone_ok
from monitor.privacy.redact import PiiRefused, Policy, Redactor, default_actions, parse_actions

ALL_MASK = Policy(parse_actions("all=mask"))


def found(text: str, policy: Policy = ALL_MASK) -> list[tuple[str, str]]:
    return [(d.name, text[s:e]) for s, e, d, _ in Redactor(policy).find(text)]


@pytest.mark.parametrize("text, kind, value", [
    ("write to Jane.Doe+tag@mail.example.co.uk today", "email", "Jane.Doe+tag@mail.example.co.uk"),
    ("call +1 (415) 555-0132 now", "phone", "+1 (415) 555-0132"),
    ("ring +44 20 7946 0958", "phone", "+44 20 7946 0958"),
    ("tel. 030 901820 12", "phone", "030 901820 12"),
    ("+33 1 42 68 53 00 is Paris", "phone", "+33 1 42 68 53 00"),
    ("whatsapp +447700677662 ok", "phone", "+447700677662"),
    ("fr 01.84.17.61.18 ok", "phone", "01.84.17.61.18"),
    ("visa 4111 1111 1111 1111 exp", "card", "4111 1111 1111 1111"),
    ("amex 3782-822463-10005", "card", "3782-822463-10005"),
    ("mc 5555555555554444.", "card", "5555555555554444"),
    ("IBAN DE89 3704 0044 0532 0130 00 thanks", "iban", "DE89 3704 0044 0532 0130 00"),
    ("pay GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
    ("db postgres://admin:s3cr3t@db.internal:5432/app", "credential_url", "postgres://admin:s3cr3t@db.internal:5432"),
    ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz012345", "api_key", "sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
    ("token ghp_" + "a1B2" * 9 + " end", "api_key", "ghp_" + "a1B2" * 9),
    ("slack xoxb-123456789012-abcdefABCDEF", "api_key", "xoxb-123456789012-abcdefABCDEF"),
    ("aws AKIAIOSFODNN7EXAMPLE", "api_key", "AKIAIOSFODNN7EXAMPLE"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "api_key", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("from 203.0.113.7 at noon", "ip", "203.0.113.7"),
    ("v6 2001:db8:85a3::8a2e:370:7334 here", "ip", "2001:db8:85a3::8a2e:370:7334"),
    ("secret Zx8vQ2mN7pL4kR9tY3wB6cF1hJ5gD0sA end", "high_entropy", "Zx8vQ2mN7pL4kR9tY3wB6cF1hJ5gD0sA"),
])
def test_detects(text: str, kind: str, value: str) -> None:
    assert (kind, value) in found(text)


@pytest.mark.parametrize("text", [
    "order 1234567890123 shipped",  # fails Luhn
    "4111 1111 1111 1112",  # Luhn off by one
    "9111111111111111 9 is not an issuer prefix",  # passes Luhn? either way: no card IIN starts with 9
    "meeting on 2024-01-15 or 15/01/2024 at 10.30",  # dates
    "logged at 1978-04-13 12:30:00 and 2003-08-28T12",  # dates with times
    "upgrade to version 1.2.3 or 10.20.30",  # dotted versions are not phones
    "DE89 3704 0044 0532 0130 01",  # IBAN checksum off by one
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a hex digest is not a secret
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "the price is 1 200 EUR and 35 km",
    "user@localhost or foo@bar",  # no TLD
    "https://example.com/path?q=1 and http://user@host/ (no password)",
    "sk-short and ghp_tooShort",
    "ip 127.0.0.1 and ::1 are loopback",
])
def test_false_positive_guards(text: str) -> None:
    assert [f for f in found(text) if f[0] != "high_entropy"] == [], found(text)


def test_validators() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert card_ok("4012888888881881") and not card_ok("1234567812345670")  # passes Luhn, no issuer prefix
    assert luhn_ok("1234567812345670")
    assert iban_ok("NL91ABNA0417164300") and iban_ok("FR14 2004 1010 0505 0001 3M02 606")
    assert not iban_ok("NL91ABNA041716430")  # wrong length for NL
    assert not iban_ok("XX91ABNA0417164300")  # no such country
    assert phone_ok("(555) 123-4567") and not phone_ok("555-1234") and not phone_ok("2024-01-15")
    assert not high_entropy_ok("a" * 40) and not high_entropy_ok("0123456789abcdef" * 3)


def test_actions_mask_hash_drop_refuse() -> None:
    text = "mail bob@corp.io and BOB@corp.io, card 4111-1111-1111-1111"
    masked = Redactor(Policy()).redact_text(text, "prompt")
    assert masked == "mail <EMAIL> and <EMAIL>, card <CARD>"
    hashed = Redactor(Policy(parse_actions("email=hash"), b"project-1")).redact_text(text, "prompt")
    assert hashed is not None and "bob" not in hashed.lower() and "<CARD>" in hashed
    tokens = [w.strip(",") for w in hashed.split() if w.startswith("<EMAIL:")]
    assert len(tokens) == 2 and tokens[0] == tokens[1]  # same address (case-insensitively) -> same token
    other = Redactor(Policy(parse_actions("email=hash"), b"project-2")).redact_text(text, "prompt")
    assert other is not None and tokens[0] not in other  # another project's key -> another token
    assert Redactor(Policy(parse_actions("card=drop"))).redact_text(text, "prompt") is None
    with pytest.raises(PiiRefused) as refused:
        Redactor(Policy(parse_actions("card=refuse"))).redact_text(text, "response")
    assert refused.value.field == "response" and refused.value.detector == "card"
    assert "4111" not in str(refused.value)
    assert Redactor(Policy(parse_actions("all=off"))).redact_text(text, "prompt") == text


def test_metadata_values_are_redacted_and_counted() -> None:
    r = Redactor(Policy())
    out = r.value({"user": "ann@x.org", "n": 3, "tags": ["ok", "+49 30 1234 5678"], "nested": {"k": None}}, "metadata")
    assert out == {"user": "<EMAIL>", "n": 3, "tags": ["ok", "<PHONE>"], "nested": {"k": None}}
    assert r.counts == {"email": 1, "phone": 1}


def test_defaults_and_parsing() -> None:
    on = {name for name, action in default_actions().items() if action != "off"}
    assert on == {"email", "phone", "card", "iban", "credential_url", "api_key"}
    assert parse_actions("all=hash,ip=off")["ip"] == "off"
    with pytest.raises(ValueError, match="unknown PII detector"):
        parse_actions("emial=mask")
    with pytest.raises(ValueError, match="unknown PII action"):
        parse_actions("email=scramble")
    with pytest.raises(ValueError, match="hash key"):
        Policy(parse_actions("email=hash"))


def test_overlaps_go_to_the_earlier_detector() -> None:
    # The credential URL contains something e-mail shaped; the IBAN contains digit runs.
    assert found("see https://ann:pw@host.example.com/x") == [("credential_url", "https://ann:pw@host.example.com")]
    assert [k for k, _ in found("IBAN GB82 WEST 1234 5698 7654 32")] == ["iban"]


@given(st.text(max_size=300))
def test_redaction_never_crashes_and_is_idempotent(text: str) -> None:
    r = Redactor(ALL_MASK)
    once = r.redact_text(text, "t")
    assert once is not None and r.redact_text(once, "t") == once


def test_detector_modules_use_only_the_standard_library() -> None:
    # The SDK imports these (client-side redaction): nothing outside the stdlib and monitor.privacy.
    root = Path(__file__).resolve().parents[2] / "monitor" / "privacy"
    for name in ("__init__.py", "detectors.py", "redact.py"):
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] in sys.stdlib_module_names or mod.startswith("monitor.privacy"), (name, mod)
    assert set(BY_NAME) == {d.name for d in DETECTORS}
