"""Hostile admin input (issue #18, finding 2): YAML alias bombs and deep nesting are refused with a 422 that
says why, the import parses off the event loop one at a time, and every non-ingest body is capped at 64 KiB
with a 413 naming the limit (ingestion keeps its own, larger limit). Both backends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.alerts import routes as alert_routes
from monitor.alerts.rules import RuleFileError, parse_rule_file
from monitor.api.body_cap import SMALL_BODY_BYTES
from monitor.api.offload import run_blocking
from monitor.settings import Settings
from monitor.yaml_input import MAX_DEPTH, YAMLInputError, load_untrusted
from tests.support.factories import event_dict, make_key

RULE_HEAD = """rules:
  - name: bomb
    metric: drift.prompt.mmd
    field: p_value
    comparator: "<"
    threshold: 0.01
    actions:
      - type: retrain
        params:
"""


def alias_bomb(levels: int = 7) -> str:
    """The issue's attack: each level a list of ten aliases of the previous one (10**levels leaves)."""
    lines = ["          l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"          l{i}: &l{i} [{refs}]")
    return RULE_HEAD + "\n".join(lines) + "\n"


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    return Settings(database_url=url, data_dir=tmp_path / "data")


@pytest.fixture
def admin(session: Session) -> Iterator[dict[str, str]]:
    key = make_key(session)
    session.commit()
    yield {"Authorization": f"Bearer {key.key}", "content-type": "application/yaml"}


def _import(client: TestClient, headers: dict[str, str], text: str, **params: Any) -> Any:
    return client.post("/v1/alert-rules/import", content=text, headers=headers, params={"dry_run": "true", **params})


def test_an_alias_bomb_is_refused_before_anything_expands(client: TestClient, admin: dict[str, str]) -> None:
    bomb = alias_bomb(7)
    assert len(bomb) < 1024  # a tiny request ...
    r = _import(client, admin, bomb)
    assert r.status_code == 422, r.text  # ... refused outright, not expanded into 10**7 nodes
    (problem,) = r.json()["detail"]
    assert "anchors (&name) are not accepted" in problem["message"] and problem["field"].startswith("line 10")
    # an alias without its anchor is not a way round it
    r = _import(client, admin, RULE_HEAD + "          a: [*l0]\n")
    assert r.status_code == 422 and "alias" in r.text.lower()
    assert client.get("/v1/alert-rules", headers=admin).json() == []


def test_deep_nesting_is_refused_naming_the_limit(client: TestClient, admin: dict[str, str]) -> None:
    deep = RULE_HEAD + "          x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    r = _import(client, admin, deep)
    assert r.status_code == 422 and f"nested deeper than {MAX_DEPTH} levels" in r.text
    # a file nested up to the limit is read (and then judged by the rule model, not the loader)
    assert load_untrusted("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n", "a: !!python/object/apply:os.system [echo]\n", "[" * 33 + "]" * 33, "a: [\n",
])
def test_the_loader_refuses_what_rule_files_never_need(text: str) -> None:
    with pytest.raises(YAMLInputError):
        load_untrusted(text)
    with pytest.raises(RuleFileError) as refused:
        parse_rule_file(text)
    assert refused.value.problems[0].field.startswith(("line", "file"))


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_the_import_parses_off_the_event_loop(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []

    def recording_parse(raw: str | bytes) -> Any:
        seen.append(_on_loop())
        return parse_rule_file(raw)

    monkeypatch.setattr(alert_routes, "parse_rule_file", recording_parse)
    assert _import(client, admin, "rules: []\n").status_code == 200
    assert seen == [False]  # parsed in a worker thread, never on the event loop


def test_the_admin_lane_runs_one_job_at_a_time() -> None:
    """Blocking admin work queues in its lane: four at once never overlap, none runs on the loop, and the
    loop keeps running meanwhile (a ticker task counts while the jobs hold the lane)."""
    active, peak, on_loop = 0, 0, []
    lock = threading.Lock()
    first_started = threading.Event()
    release = threading.Event()

    def job() -> int:
        nonlocal active, peak
        on_loop.append(_on_loop())
        with lock:
            active += 1
            peak = max(peak, active)
        first_started.set()
        release.wait(timeout=5)
        with lock:
            active -= 1
        return 1

    async def main() -> tuple[list[int], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                if ticks >= 20:
                    release.set()  # the loop got 20 turns while a job held the lane: let the jobs finish
                await asyncio.sleep(0)

        tasks = [asyncio.ensure_future(run_blocking(job, lane="admin")) for _ in range(4)]
        await asyncio.to_thread(first_started.wait, 5)
        await ticker()
        return list(await asyncio.gather(*tasks)), ticks

    results, ticks = asyncio.run(main())
    assert results == [1, 1, 1, 1] and peak == 1 and on_loop == [False] * 4 and ticks >= 20


@pytest.mark.parametrize(("path", "kind"), [
    ("/v1/alert-rules/import", "yaml"), ("/v1/alert-rules", "json"), ("/v1/webhook-endpoints", "json"),
    ("/v1/models/v1/approve", "json"), ("/ui/login", "form"),
])
def test_non_ingest_bodies_are_capped_at_64_kib(client: TestClient, admin: dict[str, str], path: str,
                                                kind: str) -> None:
    big = b"x" * (SMALL_BODY_BYTES + 1)
    content_type = {"yaml": "application/yaml", "json": "application/json",
                    "form": "application/x-www-form-urlencoded"}[kind]
    headers = {**admin, "content-type": content_type}
    r = client.post(path, content=big, headers=headers)
    assert r.status_code == 413, r.text
    assert f"the limit for this route is {SMALL_BODY_BYTES} bytes (64 KiB)" in r.json()["detail"]
    # without a Content-Length (chunked upload) the cap holds as the body streams in
    chunks = iter([b"x" * 40_000, b"x" * 40_000])
    r = client.post(path, content=chunks, headers=headers)
    assert r.status_code == 413, r.text
    assert f"{SMALL_BODY_BYTES} bytes" in r.json()["detail"]


def test_ingestion_keeps_its_own_larger_limit(client: TestClient, session: Session) -> None:
    key = make_key(session)
    session.commit()
    events = [event_dict(prompt="p" * 7000, response="r" * 7000) for _ in range(10)]
    r = client.post("/v1/events", json={"events": events}, headers={"Authorization": f"Bearer {key.key}"})
    assert r.status_code == 200, r.text[:300]
    assert len(r.request.content) > SMALL_BODY_BYTES
