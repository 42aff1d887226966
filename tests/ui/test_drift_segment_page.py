"""The window page of a segment's drift: reached from `all`'s, it shows the segment row's λ and where it came
from (its own, or `all`'s carried to the segment's size: monitor.drift.thresholds.with_segment_lambda)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from monitor.drift.thresholds import Calibration, with_segment_lambda
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.store import upsert_points
from monitor.projects.service import get_or_create_project
from tests.support.factories import unique_slug

T0 = datetime(2026, 11, 20, 5, tzinfo=UTC)


def _row(cal: Calibration) -> MetricPoint:
    details = {"p_calibrated": 0.3, "p_adjusted": 0.6,
               "details": {"calibration": {**cal.to_dict(), "computed_at": "2026-11-20T00:00:00+00:00"}}}
    return MetricPoint("drift.prompt.mmd", "ok", 125, value=0.001, p_value=0.001, threshold=0.01, flagged=False,
                       details=details)


def test_segment_window_page_shows_where_its_lambda_came_from(ui: TestClient,
                                                              session_maker: sessionmaker[Session]) -> None:
    whole = Calibration("mmd", 9.0, 20.0, (6.0, 12.0), "reference_blocks", 0.0, 0.01, 6.98, 4000, 16, 500, 1024,
                        0.001, "time blocks differ beyond sampling noise")
    own = Calibration("mmd", 1.0, None, (1.0, 1.0), "reference_blocks", 0.0, 0.01, 2.33, 2000, 16, 125, 128, 0.4,
                      "no variation between time blocks beyond sampling noise")
    seg = with_segment_lambda(own, whole)
    assert seg.lam_from == "all" and seg.lam > 1.0
    slug = unique_slug("seg")
    with session_maker() as s:
        pid = get_or_create_project(s, slug).id
        upsert_points(s, pid, "all", T0, T0 + timedelta(hours=1), [_row(whole)])
        upsert_points(s, pid, "region=eu west", T0, T0 + timedelta(hours=1), [_row(seg)])
        s.commit()

    html = ui.get(f"/ui/p/{slug}/drift/2026-11-20T05:00:00Z").text
    assert '?segment=region%3Deu%20west"' in html  # the other segment is a link away
    r = ui.get(f"/ui/p/{slug}/drift/2026-11-20T05:00:00Z", params={"segment": "region=eu west"})
    assert r.status_code == 200
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r.text)))
    assert "segment region=eu west" in text
    carried = f"{seg.lam:.4g}"
    assert re.search(rf"drift\.prompt\.mmd {re.escape(carried)}.*reference_blocks all \(own 1(\.0+)?, all 9(\.0+)? → "
                     rf"{re.escape(carried)}\)", text), text
    assert "`all`'s λ 9.00 carried" in text
    assert ui.get(f"/ui/p/{slug}/drift/2026-11-20T05:00:00Z", params={"segment": "nope=1"}).status_code == 404
