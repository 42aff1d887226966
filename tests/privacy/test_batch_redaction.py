"""`redact_batch` on parsed events (the collector's path): the shortcuts for clean texts and flat clean metadata
must leave nothing raw, whichever field or metadata value the PII sits in."""

from __future__ import annotations

import msgspec
import pytest

from monitor.ingest.fastparse import parse_events
from monitor.privacy.ingest import redact_batch
from monitor.privacy.policy import ProjectPrivacy
from monitor.privacy.redact import Policy, parse_actions
from monitor.schemas import Limits

PII = {
    "email": "jane.doe@example.com", "phone": "+44 20 7946 0958", "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00", "credential_url": "postgres://admin:s3cr3t@db.internal/app",
    "api_key": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
}
PRIVACY = ProjectPrivacy(enabled=True, policy=Policy(parse_actions("all=mask")), on_error="refuse",
                         budget_seconds=1.0)


def _events(**fields: object) -> list[msgspec.Struct]:
    clean = {"event_id": "clean", "prompt": "Is there a way to reset the password?", "response": "Yes.",
             "metadata": {"locale": "en", "n": 3, "ok": True, "x": None, "f": 1.5}}
    raw = msgspec.json.encode({"events": [clean, {"event_id": "e1", **fields}, clean]})
    events = parse_events(raw, Limits())
    assert events is not None
    return list(events)


@pytest.mark.parametrize("kind", list(PII))
@pytest.mark.parametrize("where", ["prompt", "response", "error", "flat metadata", "nested metadata"])
def test_every_kind_of_pii_is_redacted_wherever_it_sits(kind: str, where: str) -> None:
    text = f"see {PII[kind]} please"
    if where == "flat metadata":
        fields: dict[str, object] = {"metadata": {"locale": "en", "n": 2, "note": text}}
    elif where == "nested metadata":
        fields = {"metadata": {"locale": "en", "inner": {"note": [text]}}}
    else:
        fields = {where: text}
    before = _events(**fields)
    after = redact_batch(PRIVACY, "events", before)
    stored = msgspec.json.encode([msgspec.structs.asdict(e) for e in after]).decode()
    assert PII[kind] not in stored
    assert f"<{kind.upper()}>" in stored
    assert after[0] is before[0] and after[2] is before[2]  # clean items are passed through untouched
