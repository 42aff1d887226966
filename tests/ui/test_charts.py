"""Server-side SVG charts: pure functions, checked on their markup."""

from __future__ import annotations

import math
import re

import pytest

from monitor.ui.charts import line_chart, moving_average, sparkline


def polylines(svg: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, p.split(","))) for p in m.split()]  # type: ignore[misc]
            for m in re.findall(r'<polyline[^>]*points="([^"]+)"', svg)]


def test_sparkline_breaks_at_missing_windows_and_marks_flagged_ones() -> None:
    svg = sparkline([1.0, 2.0, None, 4.0, 5.0, 6.0], flagged=[False, False, False, False, True, True], label="x")
    lines = polylines(svg)
    assert [len(line) for line in lines] == [2, 3]
    assert svg.count('class="flagged"') == 2 and "<title>x</title>" in svg
    # Higher values are drawn higher (smaller y); x grows with the window index.
    ys = [y for line in lines for _, y in line]
    assert ys == sorted(ys, reverse=True)
    assert lines[0][0][0] < lines[0][1][0] < lines[1][0][0]


def test_sparkline_of_nothing_or_constants_or_non_finite() -> None:
    assert "<polyline" not in sparkline([]) and "stroke-dasharray" in sparkline([])
    flat = polylines(sparkline([3.0, 3.0, 3.0]))
    assert len({y for _, y in flat[0]}) == 1
    assert [len(line) for line in polylines(sparkline([1.0, math.nan, math.inf, 2.0, 3.0]))] == [2]


def test_labels_are_escaped() -> None:
    assert "<script>" not in sparkline([1.0, 2.0], label="<script>alert(1)</script>")
    assert "<b>" not in line_chart({"<b>x</b>": [1.0, 2.0]}, title="<b>")


def test_line_chart_draws_each_series_with_axes_and_ticks() -> None:
    svg = line_chart({"loss": [3.0, 2.5, 2.0, 1.8], "mean": [None, 2.75, 2.25, 1.9]}, x_label="step", y_label="loss")
    lines = polylines(svg)
    assert [len(line) for line in lines] == [4, 3]
    assert re.findall(r'data-series="([^"]+)"', svg) == ["loss", "mean"]
    ticks = [float(t) for t in re.findall(r'text-anchor="end" font-size="10" fill="#555">([-\d.]+)<', svg)]
    assert ticks and min(ticks) >= 1.8 and max(ticks) <= 3.0 and ticks == sorted(ticks)
    assert "no data" in line_chart({"loss": []})


def test_moving_average() -> None:
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == [None, 1.5, 2.5, 3.5]
    assert moving_average([5.0], 1) == [5.0]
    with pytest.raises(ValueError):
        moving_average([1.0], 0)
