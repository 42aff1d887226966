"""Run Alembic programmatically, from a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

_PKG = Path(__file__).resolve().parent


def _locate() -> tuple[Path, Path]:
    checkout = _PKG.parent
    if (checkout / "alembic" / "env.py").exists():
        return checkout / "alembic.ini", checkout / "alembic"
    return _PKG / "_alembic.ini", _PKG / "_alembic"  # wheels ship them inside the package


def alembic_config(url: str | None = None) -> Config:
    ini, scripts = _locate()
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(scripts))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "-1") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return row[0] if row else None


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
