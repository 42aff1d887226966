"""Settings for a test that runs real Celery workers: this test's database, its own Redis key prefix."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from monitor.settings import Settings, reset_settings_cache
from monitor.worker.app import reconfigure


@contextmanager
def celery_settings(monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, key_prefix: str, *,
                    redis_db: int = 7, extra: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Set the environment (for this process and, through the returned dict, its workers) and point the Celery
    app at it; settings are re-read afterwards. Keys are prefixed per test: nothing shared, nothing to flush."""
    env = {
        "DRIFTLOOP_DATABASE_URL": pg_url,
        "DRIFTLOOP_REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/{redis_db}",
        "DRIFTLOOP_CELERY_KEY_PREFIX": key_prefix,
        "DRIFTLOOP_RUNNER": "celery",
        **(extra or {}),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    reconfigure(Settings())
    try:
        yield env
    finally:
        reset_settings_cache()
