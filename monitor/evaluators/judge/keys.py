"""A project's judge API keys: sealed with the webhook secrets' scheme (DRIFTLOOP_SECRET_KEY), never returned."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitor.evaluators.judge.models import JudgeKey
from monitor.settings import Settings
from monitor.webhooks.signing import SecretBox

MAX_KEY_CHARS = 4096


def set_judge_key(session: Session, project_id: int, name: str, key: str, *, settings: Settings) -> None:
    """Store (or replace) the key called ``name``; judges refer to it by ``params.api_key_name``."""
    if not key or len(key) > MAX_KEY_CHARS or not key.isascii() or any(c.isspace() for c in key):
        raise ValueError(f"a judge API key is 1-{MAX_KEY_CHARS} printable ASCII characters without spaces")
    sealed = SecretBox(settings.secret_key).seal(key)
    row = session.scalar(select(JudgeKey).where(JudgeKey.project_id == project_id, JudgeKey.name == name))
    if row is None:
        session.add(JudgeKey(project_id=project_id, name=name, secret_enc=sealed))
    else:
        row.secret_enc = sealed
    session.flush()


def delete_judge_key(session: Session, project_id: int, name: str) -> bool:
    result = session.execute(delete(JudgeKey).where(JudgeKey.project_id == project_id, JudgeKey.name == name))
    return bool(getattr(result, "rowcount", 0))


def judge_key(session: Session, project_id: int, name: str, *, settings: Settings) -> str:
    """The key in clear, for the judge's Authorization header only; a clear error when it cannot be had."""
    row = session.scalar(select(JudgeKey).where(JudgeKey.project_id == project_id, JudgeKey.name == name))
    if row is None:
        raise LookupError(f"no judge API key named {name!r} in this project (driftloop evaluators set-judge-key)")
    try:
        return SecretBox(settings.secret_key).open(row.secret_enc)
    except ValueError:
        raise ValueError(f"cannot decrypt judge API key {name!r} (was DRIFTLOOP_SECRET_KEY changed?); "
                         "set it again") from None
