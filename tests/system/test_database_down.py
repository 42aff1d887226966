"""With the database unreachable the collector says 503 + Retry-After, never 500, and readiness fails."""

from __future__ import annotations

from fastapi.testclient import TestClient

from monitor.api.app import create_app
from monitor.settings import Settings
from tests.support.factories import event_dict
from tests.support.services import free_port


def test_unreachable_database_gives_503_with_retry_after() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    app = create_app(Settings(database_url=url, retry_after_seconds=7))
    with TestClient(app) as client:
        r = client.post("/v1/events", json={"events": [event_dict()]}, headers={"Authorization": "Bearer dl_x_y"})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "7"
        assert "nothing was stored" in r.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
