"""Docs that match the code: the README's configuration table lists every setting, with the settings object's
default and the meaning its field describes (the table is read row by row, not searched for names)."""

from __future__ import annotations

import re
from typing import Any

from monitor.settings import Settings
from tests.support.services import repo_root

_ROW = re.compile(r"^\| `(DRIFTLOOP_[A-Z0-9_]+)` \| `([^`]*)` \| (.*) \|$")


def configuration_table(readme: str) -> dict[str, tuple[str, str]]:
    """{variable: (default as written, meaning)} from the README's "## Configuration" table."""
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            assert match[1] not in rows, f"{match[1]} is in the table twice"
            rows[match[1]] = (match[2], match[3])
        else:
            assert not line.startswith("| `DRIFTLOOP_"), f"a table row the test cannot read: {line}"
    return rows


def as_written(default: Any) -> str:
    """A default as the table writes it: Python's spelling of None, booleans and numbers, `""` for the empty
    string, paths and other strings as they are."""
    if default == "":
        return '""'
    return str(default)


def test_the_configuration_table_matches_the_settings_object() -> None:
    table = configuration_table((repo_root() / "README.md").read_text())
    fields = {f"DRIFTLOOP_{name.upper()}": field for name, field in Settings.model_fields.items()}
    assert sorted(set(fields) - set(table)) == [], "add these to the README configuration table"
    assert sorted(set(table) - set(fields)) == [], "the README documents settings that do not exist"
    wrong_default = {name: (table[name][0], as_written(f.default)) for name, f in fields.items()
                     if table[name][0] != as_written(f.default)}
    assert wrong_default == {}, "README default vs the settings object's"
    wrong_meaning = {name: (table[name][1], f.description) for name, f in fields.items()
                     if table[name][1] != f.description}
    assert wrong_meaning == {}, "README meaning vs the field's description in monitor/settings.py"



_PROJECT_ROW = re.compile(r"^\| `([a-z_]+)` \| `([^`]*)` \| (.*) \|$")


def test_the_project_settings_table_lists_every_setting_with_its_default_and_meaning() -> None:
    import json

    from monitor.pipeline.config import ProjectConfig
    from monitor.projects.config_service import effective

    readme = (repo_root() / "README.md").read_text()
    section = readme.split("\n### Project settings\n", 1)[1].split("\n## ", 1)[0]
    assert "The default reference is the first 1,000 events" in section
    table = {m[1]: (m[2], m[3]) for m in map(_PROJECT_ROW.match, section.splitlines()) if m}
    defaults = effective({})
    expected = {name: (json.dumps(defaults[name]), f.description) for name, f in ProjectConfig.model_fields.items()}
    assert table == expected, "README project settings table vs monitor/pipeline/config.py"


def _code_map_paths(text: str) -> set[str]:
    """Every `monitor/...` or `retrain/...` path written in backquotes in `text`."""
    return {m.rstrip("/") for m in re.findall(r"`((?:monitor|retrain)/[\w./]*)`", text)}


def test_the_code_maps_name_only_paths_that_exist_and_every_top_level_module_and_package() -> None:
    root = repo_root()
    readme = (root / "README.md").read_text().split("Code map", 1)[1].split("\n## ", 1)[0]
    architecture = (root / "docs" / "architecture.md").read_text()
    named = _code_map_paths(readme) | _code_map_paths(architecture)
    assert len(named) > 40  # the maps were found
    assert sorted(p for p in named if not (root / p).exists()) == []
    # Every module and package at the top of `monitor/` and `retrain/` is placed by one of the two maps.
    top = {f"{pkg}/{entry.name}" for pkg in ("monitor", "retrain") for entry in (root / pkg).iterdir()
           if (entry.suffix == ".py" and entry.name != "__init__.py")
           or (entry.is_dir() and (entry / "__init__.py").exists())}
    assert sorted(top - named) == []
