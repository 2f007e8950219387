"""Server-side SVG charts: time series with 95 % bands, observations and a capacity line.

The pages may load nothing from the internet, so charts are drawn here as plain SVG
strings (no plotting library is needed for lines, bands and axes), and the same SVG is
written to files by the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

import numpy as np

WIDTH, HEIGHT = 760, 320
#: The French thousands separator (a narrow no-break space).
_THIN = "\u202f"


def number_fr(value: float, decimals: int = 0) -> str:
    """A number as French pages write it: ``49 282``, ``3,28``."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", _THIN).replace(".", ",")
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 40


@dataclass(frozen=True)
class Band:
    """One series: median line and a shaded band between ``low`` and ``high``."""

    label: str
    median: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    color: str = "#1f5fa8"


def _nice_max(v: float) -> float:
    if v <= 0 or not np.isfinite(v):
        return 1.0
    mag = 10 ** np.floor(np.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= v:
            return float(m * mag)
    return float(10 * mag)


def line_chart(dates: Sequence[date], bands: Sequence[Band], *, title: str, y_label: str,
               points: tuple[Sequence[date], Sequence[float]] | None = None,
               points_label: str = "observed", hline: float | None = None,
               hline_label: str = "capacity", chart_id: str = "chart") -> str:
    """An accessible SVG line chart (role=img, title and description)."""
    n = len(dates)
    if n == 0:
        raise ValueError("no dates to draw")
    ys = [np.asarray(b.high if b.high is not None else b.median, dtype=float) for b in bands]
    top = max([float(np.nanmax(y)) for y in ys] + [hline or 0.0]
              + ([float(np.max(points[1]))] if points and len(points[1]) else []))
    ymax = _nice_max(top * 1.05)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    d0 = dates[0].toordinal()
    span = max(1, dates[-1].toordinal() - d0)

    def x(d: date) -> float:
        return LEFT + pw * (d.toordinal() - d0) / span

    def y(v: float) -> float:
        return TOP + ph * (1 - min(max(v, 0.0), ymax) / ymax)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{escape(chart_id)}-t">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):
        v = ymax * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     'stroke="#ddd"/>')
        tick = number_fr(v) if ymax >= 20 else f"{v:.2f}".rstrip("0").rstrip(".").replace(
            ".", ",")
        parts.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{tick}</text>')
    months = sorted({date(d.year, d.month, 1) for d in dates if d >= dates[0]})
    for m in months:
        if m < dates[0]:
            continue
        parts.append(f'<line x1="{x(m):.1f}" x2="{x(m):.1f}" y1="{TOP}" y2="{TOP + ph}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{x(m):.1f}" y="{TOP + ph + 16}" font-size="11" '
                     f'text-anchor="middle">{m.strftime("%m/%Y")}</text>')
    parts.append(f'<text transform="translate(14 {TOP + ph / 2}) rotate(-90)" font-size="11" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    for b in bands:
        if b.low is not None and b.high is not None:
            up = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(dates, b.high, strict=True))
            down = " ".join(f"{x(d):.1f},{y(v):.1f}"
                            for d, v in zip(reversed(dates), list(b.low)[::-1], strict=True))
            parts.append(f'<polygon class="band" points="{up} {down}" fill="{b.color}" '
                         'fill-opacity="0.2" stroke="none"/>')
        line = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(dates, b.median, strict=True))
        parts.append(f'<polyline class="median" points="{line}" fill="none" '
                     f'stroke="{b.color}" stroke-width="2"/>')
    if hline is not None:
        parts.append(f'<line class="capacity" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
                     f'y1="{y(hline):.1f}" y2="{y(hline):.1f}" stroke="#c0392b" '
                     'stroke-dasharray="6 4" stroke-width="1.5"/>')
    if points:
        for d, v in zip(points[0], points[1], strict=True):
            if dates[0] <= d <= dates[-1]:
                parts.append(f'<circle class="obs" cx="{x(d):.1f}" cy="{y(float(v)):.1f}" '
                             'r="2.5" fill="#222"/>')
    legend = [(b.label, b.color, "line") for b in bands]
    if points:
        legend.append((points_label, "#222", "dot"))
    if hline is not None:
        legend.append((f"{hline_label} ({number_fr(hline)})" if hline >= 20 else hline_label,
                       "#c0392b", "dash"))
    lx = LEFT + 10
    for label, color, kind in legend:
        if kind == "dot":
            parts.append(f'<circle cx="{lx + 8}" cy="{TOP + 10}" r="3" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="6 4"' if kind == "dash" else ""
            parts.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{TOP + 10}" y2="{TOP + 10}" '
                         f'stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{lx + 20}" y="{TOP + 14}" font-size="11">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    parts.append("</svg>")
    return "\n".join(parts)
