"""The stored form of an audit principal (monitor/principals.py) reads back as what was written."""

from __future__ import annotations

import pytest

from monitor import principals
from monitor.principals import Principal


@pytest.mark.parametrize("p", [
    principals.api_key(12, "deploy-bot"), principals.api_key(3, "name:with:colons"), principals.operator("alice"),
    principals.system("retrain-job"), Principal("cli", "root"),
])
def test_stored_principals_read_back(p: Principal) -> None:
    assert principals.parse(str(p)) == p


def test_descriptions_and_unrecorded_entries() -> None:
    assert principals.api_key(7, "ci").describe() == 'API key #7 "ci"'
    assert principals.operator("alice").describe() == "operator alice"
    assert principals.parse(None) is None and principals.view("") is None
    assert principals.view("operator:bob") == {"kind": "operator", "name": "bob", "key_id": None,
                                               "text": "operator bob"}
    assert len(str(principals.api_key(1, "x" * 400))) == principals.MAX_CHARS
