"""Docs that match the code: every setting is in the README's configuration table."""

from __future__ import annotations

from monitor.settings import Settings
from tests.support.services import repo_root


def test_every_setting_is_documented() -> None:
    readme = (repo_root() / "README.md").read_text()
    names = [f"DRIFTLOOP_{name.upper()}" for name in Settings.model_fields]
    missing = [n for n in names if f"`{n}`" not in readme]
    assert missing == [], f"add these to the README configuration table: {missing}"
