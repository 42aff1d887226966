"""UI parameters an attacker (or a mistyped link) sends: extreme time offsets in the drift window and report
routes, and path ids past 64 bits. Each is a clear 4xx page, never a 500 (issue #18, finding 6)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.projects.service import CreatedKey
from tests.support.factories import make_key
from tests.support.ui_session import csrf_of

HOSTILE_WINDOWS = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1969-12-31T23:00:00Z",
                   "9999-12-31T23:59:59Z"]
HUGE_IDS = ["99999999999999999999999", str(2**63), "-1", "0"]


@pytest.fixture
def project(session: Session) -> CreatedKey:
    created = make_key(session)
    session.commit()
    return created


@pytest.mark.parametrize("window", HOSTILE_WINDOWS)
def test_extreme_drift_windows_are_422_pages(ui: TestClient, project: CreatedKey, window: str) -> None:
    base = f"/ui/p/{project.project_slug}/drift"
    for path in (f"{base}/{quote(window)}", f"{base}/drift.prompt.mmd/{quote(window)}/report.html"):
        r = ui.get(path)
        assert r.status_code == 422, (path, r.status_code, r.text[:300])
        assert "supported range" in r.text


@pytest.mark.parametrize("when", HOSTILE_WINDOWS[:2])
@pytest.mark.parametrize("param", ["from", "to"])
def test_extreme_time_ranges_on_every_page_are_422(ui: TestClient, project: CreatedKey, when: str,
                                                    param: str) -> None:
    slug = project.project_slug
    for path in ("/ui/", f"/ui/p/{slug}/", f"/ui/p/{slug}/alerts", f"/ui/p/{slug}/events", f"/ui/p/{slug}/drift"):
        r = ui.get(path, params={param: when})
        assert r.status_code == 422, (path, r.status_code, r.text[:300])
        assert f"{param}: is outside the supported range" in r.text


@pytest.mark.parametrize("when", HOSTILE_WINDOWS[:2])
@pytest.mark.parametrize("param", ["window", "cluster_window"])
def test_extreme_event_filters_are_422(ui: TestClient, project: CreatedKey, when: str, param: str) -> None:
    r = ui.get(f"/ui/p/{project.project_slug}/events", params={param: when})
    assert r.status_code == 422, r.text[:300]
    assert "supported range" in r.text


def test_an_offset_window_in_range_is_looked_up_in_utc(ui: TestClient, project: CreatedKey) -> None:
    r = ui.get(f"/ui/p/{project.project_slug}/drift/{quote('2026-11-20T07:00:00+01:00')}")
    assert r.status_code == 404 and "2026-11-20T06:00:00Z" in r.text


@pytest.mark.parametrize("delivery_id", HUGE_IDS)
def test_huge_delivery_ids_are_refused_not_500(ui: TestClient, project: CreatedKey, delivery_id: str) -> None:
    page = ui.get(f"/ui/p/{project.project_slug}/webhooks")
    assert page.status_code == 200
    r = ui.post(f"/ui/p/{project.project_slug}/webhooks/deliveries/{delivery_id}/redeliver",
                data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 422, r.text[:300]
    assert "path.delivery_id" in r.text


def test_the_largest_64_bit_delivery_id_is_a_404(ui: TestClient, project: CreatedKey) -> None:
    page = ui.get(f"/ui/p/{project.project_slug}/webhooks")
    r = ui.post(f"/ui/p/{project.project_slug}/webhooks/deliveries/{2**63 - 1}/redeliver",
                data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 404, r.text[:300]
