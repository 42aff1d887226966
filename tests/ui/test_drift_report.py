"""The downloadable Evidently report of a window's drift, from the stored events (and embeddings)."""

from __future__ import annotations

import hashlib
import re
from html import unescape

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.models import Event
from monitor.pipeline.vectors import ensure_vectors
from monitor.settings import Settings
from tests.support.factories import unique_slug
from tests.support.ui_seed import seed_world


def word_hash_embedding(texts: list[str]) -> np.ndarray:
    """A tiny deterministic bag-of-words embedding: enough to give topics different directions."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            out[i, int(hashlib.sha256(word.encode()).hexdigest()[:6], 16) % 32] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.mark.slow
def test_window_report_downloads_with_scalar_and_embedding_columns(
    ui: TestClient, session: Session, session_maker: sessionmaker[Session], settings: Settings,
) -> None:
    w = seed_world(session_maker, settings, slug=unique_slug("ui"))
    ids = list(session.scalars(select(Event.id).where(Event.project_id == w.project_id)))
    ensure_vectors(session, ids, "prompt", "test-bow-32", word_hash_embedding)
    session.commit()

    url = f"/ui/p/{w.slug}/drift/drift.prompt.mmd/2026-11-20T06:00:00Z/report.html"
    r = ui.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "attachment" in r.headers["content-disposition"] and "drift.prompt.mmd" in r.headers["content-disposition"]
    assert r.headers["content-security-policy"] == "sandbox"
    body = r.text
    assert len(body) > 100_000 and "<script" in body and 'src="http' not in body  # self-contained, offline
    for column in ("prompt_length", "latency_ms", "completion_tokens", "prompt_pc1", "prompt_pc5"):
        assert column in body, column
    cached = list((settings.data_dir / "reports").rglob("*.html"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert ui.get(url).content == r.content and cached[0].stat().st_mtime_ns == stamp  # served from the cache

    # The response-length series has no stored embeddings: scalar columns only.
    other = ui.get(f"/ui/p/{w.slug}/drift/drift.response.mmd/2026-11-20T06:00:00Z/report.html").text
    assert "response_length" in other and "response_pc1" not in other


def test_report_errors_are_clear(ui: TestClient, session_maker: sessionmaker[Session], settings: Settings) -> None:
    w = seed_world(session_maker, settings, slug=unique_slug("ui"))
    base = f"/ui/p/{w.slug}/drift"
    missing = ui.get(f"{base}/drift.prompt.mmd/2030-01-01T00:00:00Z/report.html")
    assert missing.status_code == 404 and "no drift.prompt.mmd row for the window" in unescape(missing.text)
    naive = ui.get(f"{base}/drift.prompt.mmd/2026-11-20T06:00:00/report.html")
    assert naive.status_code == 422 and "needs a time zone" in naive.text
    assert ui.get(f"{base}/ops.volume/2026-11-20T06:00:00Z/report.html").status_code == 422
    assert not (settings.data_dir / "reports").exists()
