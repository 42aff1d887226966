"""`driftloop dashboards push` against a stand-in Grafana on a real socket: what is uploaded, where, and that a
wrong URL, token or data source gives a clear error and uploads nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.dashboards import DATASOURCE_UID, load_dashboards
from tests.dashboards.grafana_stub import GrafanaStub, running_grafana
from tests.support.services import free_port

RUNNER = CliRunner()


@pytest.fixture
def grafana() -> Iterator[GrafanaStub]:
    with running_grafana(GrafanaStub()) as stub:
        yield stub


def push(url: str, *args: str) -> tuple[int, str]:
    result = RUNNER.invoke(app, ["dashboards", "push", "--url", url, *args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def refs(node: object) -> set[str]:
    if isinstance(node, dict):
        own = {node["uid"]} if node.get("type") == "grafana-postgresql-datasource" else set()
        return own.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_push_creates_the_folder_and_uploads_every_dashboard(grafana: GrafanaStub) -> None:
    code, out = push(grafana.url, "--token", grafana.token)
    assert code == 0, out
    bundled = load_dashboards()
    assert [f["title"] for f in grafana.folders] == ["driftloop"]
    assert sorted(u["dashboard"]["uid"] for u in grafana.uploads) == sorted(d["uid"] for d in bundled.values())
    for upload in grafana.uploads:
        assert upload["overwrite"] is True and upload["folderUid"] == grafana.folders[0]["uid"]
        original = next(d for d in bundled.values() if d["uid"] == upload["dashboard"]["uid"])
        assert upload["dashboard"] == original  # uploaded as bundled, data source uid unchanged
    assert "/d/driftloop-overview/driftloop-overview" in out

    code, out = push(grafana.url, "--token", grafana.token)  # again: same folder, new versions
    assert code == 0, out
    assert len(grafana.folders) == 1 and len(grafana.uploads) == 2 * len(bundled)


def test_push_rewrites_the_datasource_and_uses_an_existing_folder() -> None:
    prod = {"id": 7, "uid": "pg-prod", "name": "prod", "type": "grafana-postgresql-datasource"}
    stub = GrafanaStub(datasources=[prod], folders=[{"id": 3, "uid": "ops", "title": "LLM ops"}])
    with running_grafana(stub):
        code, out = push(stub.url, "--token", stub.token, "--folder", "LLM ops", "--datasource-uid", "pg-prod")
    assert code == 0, out
    assert "POST /api/folders" not in stub.calls and len(stub.uploads) == len(load_dashboards())
    for upload in stub.uploads:
        assert upload["folderUid"] == "ops"
        assert refs(upload["dashboard"]) == {"pg-prod"}


def test_push_refuses_an_unknown_datasource_and_names_the_candidates(grafana: GrafanaStub) -> None:
    code, out = push(grafana.url, "--token", grafana.token, "--datasource-uid", "nope")
    assert code == 1
    assert "no data source with uid 'nope'" in out and "driftloop (uid driftloop-postgres)" in out
    assert grafana.uploads == [] and grafana.folders == []


def test_push_with_an_editor_token_skips_the_datasource_check() -> None:
    with running_grafana(GrafanaStub(deny_datasource_reads=True)) as stub:
        code, out = push(stub.url, "--token", stub.token)
    assert code == 0, out
    assert refs([u["dashboard"] for u in stub.uploads]) == {DATASOURCE_UID}


def test_push_with_a_bad_token_says_so(grafana: GrafanaStub) -> None:
    code, out = push(grafana.url, "--token", "glsa_wrong")
    assert code == 1 and "refused the token (401)" in out
    assert grafana.uploads == []


def test_push_to_an_unreachable_grafana_says_so() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out = push(url, "--token", "t", "--timeout", "2")
    assert code == 1 and f"cannot reach Grafana at {url}" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "grafana:3000", "--token", "t"], "must start with http"),
    (["--url", "http://127.0.0.1:9", "--token", " "], "--token is empty"),
    (["--url", "http://127.0.0.1:9", "--token", "t", "--folder", ""], "--folder is empty"),
])
def test_push_refuses_bad_options(args: list[str], message: str) -> None:
    result = RUNNER.invoke(app, ["dashboards", "push", *args])
    assert result.exit_code == 1 and message in result.output + result.stderr


def test_list_shows_the_bundled_dashboards() -> None:
    result = RUNNER.invoke(app, ["dashboards", "list"])
    assert result.exit_code == 0
    for d in load_dashboards().values():
        assert d["uid"] in result.output
