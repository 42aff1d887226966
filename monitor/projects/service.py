"""Projects and their API keys with their scopes. Service functions take the session first and never commit."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.errors import NotFoundError
from monitor.models import ApiKey, Project

KEY_PREFIX = "dl_"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# What a key may do. `ingest`: send events, feedback and OTLP spans. `read`: every GET of the project's data.
# `admin`: every other write (rules, webhooks, model decisions, retraining), and reading too. Ingest stays
# separate from admin on purpose: the key embedded in every app pod must not be able to approve a model.
SCOPES: tuple[str, ...] = ("ingest", "read", "admin")
DEFAULT_SCOPES: tuple[str, ...] = ("ingest",)  # least privilege: what an application needs
_IMPLIED: dict[str, frozenset[str]] = {"admin": frozenset({"read"})}


def hash_key(key: str) -> str:
    # Keys carry 192 bits of randomness, so a fast hash is enough: nothing to brute-force, and it keeps the
    # per-request auth lookup to one indexed equality.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(values: str | Iterable[str]) -> tuple[str, ...]:
    """Scope names from a string or strings, each a comma- or space-separated list; canonical order, no repeats.

    Unknown names are refused (ValueError naming them and the valid ones): a typo must not create a key that
    silently can do less, or more, than meant."""
    items = [values] if isinstance(values, str) else list(values)
    names = {name for item in items for name in re.split(r"[\s,]+", item.strip().lower()) if name}
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(map(repr, unknown))}: choose from {', '.join(SCOPES)}")
    if not names:
        raise ValueError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in names)


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether a key with scopes `held` may do what needs `needed` (admin implies read)."""
    return any(s == needed or needed in _IMPLIED.get(s, frozenset()) for s in held)


@dataclass(frozen=True)
class CreatedKey:
    id: int
    project_slug: str
    name: str
    prefix: str
    key: str  # shown once; never stored
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AuthenticatedKey:
    project: Project
    scopes: tuple[str, ...]
    key_id: int = 0
    key_name: str = ""


def get_project(session: Session, slug: str) -> Project:
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        raise NotFoundError(f"no project named {slug!r}")
    return project


def get_or_create_project(session: Session, slug: str, name: str | None = None) -> Project:
    if not _SLUG.match(slug):
        raise ValueError(f"project slug {slug!r} must be 1-64 chars of a-z, 0-9, '-' or '_', starting alphanumeric")
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        project = Project(slug=slug, name=name or slug, config={})
        session.add(project)
        session.flush()
    return project


def create_key(session: Session, project_slug: str, name: str = "default",
               scopes: str | Iterable[str] = DEFAULT_SCOPES) -> CreatedKey:
    granted = parse_scopes(scopes)  # before the project is created: a bad scope changes nothing
    project = get_or_create_project(session, project_slug)
    visible = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{visible}_{secrets.token_hex(24)}"
    # Stored space-separated in canonical order (`ingest read admin`), as migration 0007 writes old keys.
    row = ApiKey(project_id=project.id, name=name, prefix=f"{KEY_PREFIX}{visible}", key_hash=hash_key(key),
                 scopes=" ".join(granted))
    session.add(row)
    session.flush()
    return CreatedKey(id=row.id, project_slug=project.slug, name=name, prefix=row.prefix, key=key, scopes=granted)


def list_keys(session: Session, project_slug: str | None = None) -> list[tuple[ApiKey, Project]]:
    stmt = select(ApiKey, Project).join(Project, Project.id == ApiKey.project_id).order_by(ApiKey.id)
    if project_slug:
        stmt = stmt.where(Project.slug == project_slug)
    return [(k, p) for k, p in session.execute(stmt).all()]


def revoke_key(session: Session, prefix_or_id: str) -> ApiKey:
    stmt = select(ApiKey)
    stmt = stmt.where(ApiKey.id == int(prefix_or_id)) if prefix_or_id.isdigit() else stmt.where(
        ApiKey.prefix == prefix_or_id
    )
    rows = list(session.scalars(stmt))
    if not rows:
        raise NotFoundError(f"no API key {prefix_or_id!r}")
    if len(rows) > 1:
        raise ValueError(f"{prefix_or_id!r} matches {len(rows)} keys; revoke by id")
    key = rows[0]
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def authenticate(session: Session, presented: str) -> AuthenticatedKey | None:
    """The project a live key belongs to and the key's scopes, or None for unknown and revoked keys."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    row = session.execute(
        select(ApiKey.revoked_at, ApiKey.scopes, Project, ApiKey.id, ApiKey.name)
        .join(Project, Project.id == ApiKey.project_id)
        .where(ApiKey.key_hash == hash_key(presented))
    ).first()
    if row is None or row[0] is not None:
        return None
    project: Project = row[2]
    # Split, not parsed: a name this version does not know (written by a newer one) grants nothing here.
    return AuthenticatedKey(project=project, scopes=tuple(str(row[1]).split()), key_id=int(row[3]),
                            key_name=str(row[4]))
