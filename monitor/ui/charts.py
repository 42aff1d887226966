"""Charts as inline SVG, rendered on the server: pure functions, numbers in, markup out.

No JavaScript and nothing fetched: the pages work offline and under a strict Content-Security-Policy
(presentation attributes only, no inline `style`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape


def _finite(values: Sequence[float | None]) -> list[tuple[int, float]]:
    return [(i, float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(float(v))]


def _scale(lo: float, hi: float, size: float, pad: float, flip: bool) -> tuple[float, float]:
    """(a, b) so that a * v + b maps [lo, hi] onto [pad, size - pad] (reversed when `flip`, SVG y grows down)."""
    if hi == lo:
        hi, lo = hi + 1.0, lo - 1.0
    a = (size - 2 * pad) / (hi - lo)
    return (-a, size - pad + a * lo) if flip else (a, pad - a * lo)


def _runs(points: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """Consecutive indices form one polyline; a gap (a missing window) breaks the line."""
    runs: list[list[tuple[int, float]]] = []
    for p in points:
        if runs and p[0] == runs[-1][-1][0] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def sparkline(values: Sequence[float | None], *, flagged: Sequence[bool] | None = None, width: int = 120,
              height: int = 28, label: str = "", slots: int = 0) -> Markup:
    """A small trend line; points of flagged windows are drawn as red dots, the latest point as a dot.

    With `slots`, the x axis has room for that many windows and the values sit at its right end, so two
    windows are a short stroke at the right, not a diagonal across the whole card."""
    offset = max(slots - len(values), 0)
    points = [(i + offset, v) for i, v in _finite(values)]
    if flagged is not None and offset:
        flagged = [False] * offset + list(flagged)
    title = f"<title>{escape(label)}</title>" if label else ""
    head = (f'<svg class="spark" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg">{title}')
    if not points:
        return Markup(f'{head}<line x1="2" y1="{height / 2}" x2="{width - 2}" y2="{height / 2}" stroke="#ccc" '
                      'stroke-dasharray="2 3"/></svg>')
    n = max(len(values) + offset, 2)
    ax, bx = _scale(0, n - 1, width, 3, flip=False)
    ys = [v for _, v in points]
    ay, by = _scale(min(ys), max(ys), height, 3, flip=True)

    def xy(i: int, v: float) -> str:
        return f"{ax * i + bx:.1f},{ay * v + by:.1f}"

    parts = [head]
    for run in _runs(points):
        if len(run) > 1:
            parts.append(f'<polyline fill="none" stroke="#3b6ea5" stroke-width="1.5" '
                         f'points="{" ".join(xy(i, v) for i, v in run)}"/>')
    for i, v in points:
        if flagged is not None and i < len(flagged) and flagged[i]:
            x, y = xy(i, v).split(",")
            parts.append(f'<circle class="flagged" cx="{x}" cy="{y}" r="2.5" fill="#c0392b"/>')
    x, y = xy(*points[-1]).split(",")
    parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="#1d3f66"/></svg>')
    return Markup("".join(parts))


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    if hi == lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def line_chart(series: Mapping[str, Sequence[float | None]], *, width: int = 560, height: int = 220,
               x_label: str = "", y_label: str = "", title: str = "") -> Markup:
    """A line chart with axes and ticks; one line per named series (first series drawn strongest)."""
    colours = ("#3b6ea5", "#e67e22", "#27ae60", "#8e44ad")
    left, right, top, bottom = 52, 12, 12, 34
    all_points = {name: _finite(vals) for name, vals in series.items()}
    ys = [v for pts in all_points.values() for _, v in pts]
    n = max((len(v) for v in series.values()), default=0)
    head = (f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title or y_label)}</title>')
    if not ys:
        return Markup(f'{head}<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#777" '
                      f'font-size="12">no data</text></svg>')
    lo, hi = min(ys), max(ys)
    ax, bx = _scale(0, max(n - 1, 1), width - left - right, 0, flip=False)
    ay, by = _scale(lo, hi, height - top - bottom, 0, flip=True)
    parts = [head, f'<g transform="translate({left},{top})">']
    plot_w, plot_h = width - left - right, height - top - bottom
    for t in _ticks(lo, hi):
        y = ay * t + by
        parts.append(f'<line x1="0" y1="{y:.1f}" x2="{plot_w}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="-6" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#555">{_fmt(t)}</text>')
    for t in _ticks(0, max(n - 1, 1)):
        if t != int(t):
            continue
        x = ax * t + bx
        parts.append(f'<text x="{x:.1f}" y="{plot_h + 14}" text-anchor="middle" font-size="10" fill="#555">'
                     f'{int(t) + 1}</text>')
    parts.append(f'<line x1="0" y1="{plot_h}" x2="{plot_w}" y2="{plot_h}" stroke="#999"/>'
                 f'<line x1="0" y1="0" x2="0" y2="{plot_h}" stroke="#999"/>')
    for k, (name, pts) in enumerate(all_points.items()):
        colour = colours[k % len(colours)]
        for run in _runs(pts):
            coords = " ".join(f"{ax * i + bx:.1f},{ay * v + by:.1f}" for i, v in run)
            if len(run) == 1:
                i, v = run[0]
                parts.append(f'<circle cx="{ax * i + bx:.1f}" cy="{ay * v + by:.1f}" r="2.5" fill="{colour}"/>')
            else:
                parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{colour}" '
                             f'stroke-width="{2 if k == 0 else 1.5}" points="{coords}"/>')
        parts.append(f'<text x="{plot_w - 4}" y="{12 + 13 * k}" text-anchor="end" font-size="11" '
                     f'fill="{colour}">{escape(name)}</text>')
    parts.append("</g>")
    if x_label:
        parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" font-size="11" '
                     f'fill="#333">{escape(x_label)}</text>')
    if y_label:
        parts.append(f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" font-size="11" fill="#333" '
                     f'transform="rotate(-90 12 {top + plot_h / 2})">{escape(y_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def moving_average(values: Sequence[float], window: int) -> list[float | None]:
    """Trailing mean over `window` points (None until enough points): the trend under a noisy loss."""
    if window < 1:
        raise ValueError("window must be at least 1")
    out: list[float | None] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / window if i >= window - 1 else None)
    return out
