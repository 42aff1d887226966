"""Issue #18, finding 5: a job's base model comes from the allow-list (model roots, the configured model, ids the
project's registry holds), the refusal is the same whether a path exists or not, and clients never see absolute
server paths (job messages, results, versions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.models import Project
from monitor.settings import Settings
from retrain.jobs.base_models import model_roots, resolve_base_model
from retrain.jobs.config import ConfigError
from retrain.jobs.service import create_job, job_dict, update_job
from retrain.public_paths import public_path, scrub, scrub_text
from tests.support.factories import make_key

PROBES = ["../../../../etc/shadow", "/etc/shadow", "/root", "/etc/passwd", "etc/passwd", "/nonexistent/x.gguf",
          "models:../../../etc/passwd", "bundled:/etc/passwd", "~/.ssh/id_rsa", "root"]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Settings, Path]:
    root = tmp_path / "approved"
    (root / "llama").mkdir(parents=True)
    (root / "llama" / "config.json").write_text("{}")
    (root / "tiny.gguf").write_bytes(b"GGUF")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.gguf").write_bytes(b"GGUF")
    os.symlink(outside, root / "escape")  # a link inside the root pointing out of it
    os.symlink(outside / "key.gguf", root / "escape.gguf")
    settings = Settings(model_roots=str(root), data_dir=tmp_path / "data")
    return settings, root


def test_models_inside_a_root_resolve_by_relative_or_root_qualified_name(roots: tuple[Settings, Path]) -> None:
    settings, root = roots
    assert [r.name for r in model_roots(settings)] == ["approved"]
    assert resolve_base_model("llama", settings) == str((root / "llama").resolve())
    assert resolve_base_model("approved:tiny.gguf", settings) == str((root / "tiny.gguf").resolve())
    assert resolve_base_model(str(root / "llama"), settings) == str((root / "llama").resolve())
    assert resolve_base_model(None, settings) is None and resolve_base_model("SmolLM2", settings) is None


@pytest.mark.parametrize("ref", [*PROBES, "escape/key.gguf", "escape.gguf", "approved:escape.gguf", "llama/../..",
                                 "missing-model", "org/some-hub-model"])
def test_everything_else_is_refused_the_same_way(roots: tuple[Settings, Path], ref: str) -> None:
    settings, root = roots
    with pytest.raises(ConfigError) as caught:
        resolve_base_model(ref, settings)
    message = str(caught.value)
    assert message.startswith(f"base_model {ref!r} is not an allowed base model")
    # No oracle: the text after the name is identical for existing and missing paths, and names no server path.
    with pytest.raises(ConfigError) as missing:
        resolve_base_model("does-not-exist", settings)
    tail = " is not an allowed base model"
    assert message.split(tail)[1] == str(missing.value).split(tail)[1]
    assert str(root) not in message and "/tmp" not in message


def test_the_configured_model_and_registered_ids_stay_allowed(roots: tuple[Settings, Path]) -> None:
    settings, _ = roots
    hub = settings.model_copy(update={"base_model": "org/served-model"})
    assert resolve_base_model("org/served-model", hub) == "org/served-model"
    assert resolve_base_model("org/other", settings, registered={"org/other"}) == "org/other"
    with pytest.raises(ConfigError):
        resolve_base_model("org/other", settings, registered={"org/different"})


def test_default_roots_are_the_bundled_model_and_the_registry_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    roots = {r.name: r.path for r in model_roots(settings)}
    assert roots["models"] == (tmp_path / "data" / "models").resolve()
    (tmp_path / "data" / "models" / "mine").mkdir(parents=True)
    assert resolve_base_model("models:mine", settings) == str((tmp_path / "data" / "models" / "mine").resolve())


def test_public_paths_are_relative_to_their_root(roots: tuple[Settings, Path]) -> None:
    settings, root = roots
    data = Path(settings.data_dir).resolve()
    assert public_path(data / "adapters" / "project-1" / "job-2", settings) == "data:adapters/project-1/job-2"
    assert public_path(root / "llama", settings) == "approved:llama"
    assert public_path("/etc/shadow", settings) == "<server path>/shadow"
    assert public_path("smollm2", settings) == "smollm2"
    text = (f"train: ModelLoadError: {root}/llama/model.safetensors is truncated; see http://host/a/b, 3/5 done, "
            f"'/var/lib/driftloop/x.jsonl'")
    scrubbed = scrub_text(text, settings)
    assert scrubbed == ("train: ModelLoadError: approved:llama/model.safetensors is truncated; see http://host/a/b, "
                        "3/5 done, '<server path>/x.jsonl'")
    nested = scrub({"dataset": {"path": str(data / "datasets" / "p1.jsonl"), "n": 3}, "list": ["/srv/a"]}, settings)
    assert nested == {"dataset": {"path": "data:datasets/p1.jsonl", "n": 3}, "list": ["<server path>/a"]}


def _project(session: Session) -> tuple[dict[str, str], int]:
    created = make_key(session)
    pid = session.scalars(select(Project.id).where(Project.slug == created.project_slug)).one()
    session.commit()
    return {"Authorization": f"Bearer {created.key}"}, pid


@pytest.mark.parametrize("ref", ["../../../../etc/shadow", "/root", "/etc/shadow", "/nonexistent"])
def test_the_api_refuses_probes_without_revealing_what_exists(client: TestClient, session: Session,
                                                                ref: str) -> None:
    auth, _ = _project(session)
    r = client.post("/v1/retrain", headers=auth, json={"actor": "mallory", "params": {"base_model": ref}})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["field"] == "params" and "is not an allowed base model" in problem["message"]
    for leak in ("is a file", "directory", "config.json", "does not exist", ".gguf;"):
        assert leak not in problem["message"]


def test_job_messages_and_results_show_no_absolute_paths(client: TestClient, session: Session,
                                                         session_maker: object, settings: Settings) -> None:
    auth, pid = _project(session)
    job = create_job(session, pid, created_by="t", settings=settings)
    session.commit()
    data = Path(settings.data_dir).resolve()
    update_job(session_maker, job.id, status="failed",  # type: ignore[arg-type]
               message=f"train: OSError: [Errno 2] No such file or directory: '{data}/adapters/x' and '/root/y'",
               results={"dataset": {"path": str(data / "datasets" / "project-1.jsonl")}})
    body = client.get(f"/v1/retrain/jobs/{job.id}", headers=auth).json()
    assert body["message"] == ("train: OSError: [Errno 2] No such file or directory: 'data:adapters/x' and "
                               "'<server path>/y'")
    assert body["results"] == {"dataset": {"path": "data:datasets/project-1.jsonl"}}
    session.expire_all()
    assert "/root" not in str(job_dict(job))
