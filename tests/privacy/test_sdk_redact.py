"""Client-side redaction in the SDK (`Client(..., redact=True)`): the same detectors, applied before encoding."""

from __future__ import annotations

import json

import pytest

from monitor.sdk import Client
from monitor.sdk.items import EVENT, EVENT_FIELDS, FEEDBACK, FEEDBACK_FIELDS, InvalidItem, Limits, encode_item
from monitor.sdk.transport import client_policy


def _event(**values: object) -> tuple[object, ...]:
    return tuple(values.get(n) for n in EVENT_FIELDS)


def test_event_and_feedback_text_is_redacted_before_it_leaves_the_app() -> None:
    policy = client_policy(True)
    line = encode_item(EVENT, _event(event_id="e1", prompt="mail ann@x.io", response="card 4111111111111111",
                                     error="at +1 415 555 0132", metadata={"u": {"e": "ann@x.io"}, "n": 1}),
                       Limits(), None, policy)
    assert json.loads(line) == {"event_id": "e1", "prompt": "mail <EMAIL>", "response": "card <CARD>",
                                "error": "at <PHONE>", "metadata": {"u": {"e": "<EMAIL>"}, "n": 1}}
    fb = encode_item(FEEDBACK, tuple({"feedback_id": "f", "event_id": "e1", "score": 1, "comment": "ann@x.io"}.get(n)
                                     for n in FEEDBACK_FIELDS), Limits(), None, policy)
    assert json.loads(fb)["comment"] == "<EMAIL>"
    assert json.loads(encode_item(EVENT, _event(event_id="e2", prompt="ann@x.io"), Limits()))["prompt"] == "ann@x.io"


def test_refuse_drops_the_item_and_hash_is_collector_side_only() -> None:
    with pytest.raises(InvalidItem, match="prompt contains email"):
        encode_item(EVENT, _event(event_id="e1", prompt="ann@x.io"), Limits(), None, client_policy("email=refuse"))
    with pytest.raises(ValueError, match="collector-side"):
        client_policy({"email": "hash"})
    # An invalid option disables the client (it never raises into the app), like every other bad argument.
    assert Client("http://127.0.0.1:9", "k", redact="emial=mask", spool_dir=False)._enabled is False
