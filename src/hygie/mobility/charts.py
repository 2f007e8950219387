"""Server-side SVG charts of releases: choropleth, top flows, time series, and reports.

The pages ship no chart library (no CDN, no internet): charts are drawn here as SVG
text, embedded in the pages and in ``hygie mobility report``, which also renders them
to PNG with CairoSVG. The choropleth reuses the outlines of the département map
(path id = INSEE code).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

import pandas as pd

from hygie.mobility import release
from hygie.mobility.geography import Geography

_SVG_NS = "{http://www.w3.org/2000/svg}"
_FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


@dataclass(frozen=True)
class ChangeMap:
    """Daily mean presence per zone on a day and on the baseline day, and the change."""

    day: dt.date
    baseline: dt.date
    table: pd.DataFrame  # zone, people, baseline, change (fraction, NaN when withheld)


def presence_change(root: Path, day: dt.date, baseline: dt.date) -> ChangeMap:
    """Change of daily mean presence per département between ``baseline`` and ``day``."""
    p = release.read_presence(root, "departement", start=min(day, baseline),
                              end=max(day, baseline))
    daily = p.groupby(["date", "zone"])["people"].mean(numeric_only=True).unstack("date")
    if day not in daily.columns or baseline not in daily.columns:
        raise release.ReleaseNotFound("no release for the day or the baseline")
    table = pd.DataFrame({"zone": daily.index, "people": daily[day].to_numpy(),
                          "baseline": daily[baseline].to_numpy()})
    table["change"] = table["people"] / table["baseline"] - 1
    return ChangeMap(day=day, baseline=baseline, table=table.reset_index(drop=True))


@cache
def _outlines(svg_path: Path) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    root = ET.parse(svg_path).getroot()
    paths = tuple((p.get("id", ""), p.get("aria-label", ""), p.get("d", ""))
                  for p in root.iter(f"{_SVG_NS}path"))
    return root.get("viewBox", "0 0 613 585"), paths


def _diverging(change: float, limit: float) -> str:
    """Blue for a fall, red for a rise, white for no change; grey when unknown."""
    if change is None or math.isnan(change):
        return "#cccccc"
    x = max(-1.0, min(1.0, change / limit))
    if x < 0:
        r, g, b = 255 + x * (255 - 33), 255 + x * (255 - 102), 255 + x * (255 - 172)
    else:
        r, g, b = 255 - x * (255 - 178), 255 - x * (255 - 24), 255 - x * (255 - 43)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def _number(value: float) -> str:
    """``72 525 458``: French digit groups (narrow no-break spaces)."""
    return f"{value:,.0f}".replace(",", "\u202f")


def _percent(value: float, decimals: int = 0) -> str:
    """``+12,5 %``, ``-20 %``."""
    return f"{100 * value:+.{decimals}f}".replace(".", ",") + "\u202f%"


def _day(day: dt.date) -> str:
    return day.strftime("%d/%m/%Y")


def choropleth_svg(geo: Geography, cmap: ChangeMap, limit: float = 0.2) -> str:
    """The département map filled by presence change vs baseline, with a legend."""
    view_box, paths = _outlines(geo.geo_dir / "france.departments.svg")
    change = dict(zip(cmap.table["zone"], cmap.table["change"], strict=True))
    _, _, w, h = (float(v) for v in view_box.split())
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h + 60:.0f}" '
             f'width="{w:.0f}" height="{h + 60:.0f}" role="img" class="mobility-map" '
             f'aria-label="Évolution de la présence par département">',
             '<rect width="100%" height="100%" fill="white"/>']
    for code, name, d in paths:
        c = change.get(code, float("nan"))
        label = "non publié" if math.isnan(c) else _percent(c, 1)
        parts.append(f'<path id="dep-{escape(code)}" d="{escape(d)}" fill="{_diverging(c, limit)}" '
                     f'stroke="#555" stroke-width="0.5" data-change="{label}">'
                     f'<title>{escape(name)} ({escape(code)}): {label}</title></path>')
    y = h + 15
    for i in range(11):
        v = -limit + i * limit / 5
        parts.append(f'<rect x="{150 + i * 28}" y="{y}" width="28" height="14" '
                     f'fill="{_diverging(v, limit)}" stroke="#999" stroke-width="0.3"/>')
    parts.append(f'<text x="150" y="{y + 30}" font-size="11" {_FONT}>{_percent(-limit)}</text>')
    parts.append(f'<text x="{150 + 10 * 28}" y="{y + 30}" font-size="11" {_FONT}>'
                 f'{_percent(limit)}</text>')
    parts.append(f'<text x="{150 + 11 * 28 + 12}" y="{y + 11}" font-size="12" {_FONT}>'
                 f'{_day(cmap.day)} / {_day(cmap.baseline)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def top_flows_svg(flows: pd.DataFrame, names: dict[str, str], n: int = 12,
                  title: str = "Principaux flux") -> str:
    """Horizontal bars of the largest published flows between different zones."""
    t = flows[(~flows["suppressed"]) & (flows["origin"] != flows["destination"])]
    t = t.nlargest(n, "people")
    width, bar_h, left = 640, 22, 300
    height = 40 + bar_h * max(1, len(t))
    top = float(t["people"].max()) if len(t) else 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="mobility-flows" '
             f'aria-label="{escape(title)}">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="10" y="20" font-size="14" font-weight="bold" {_FONT}>{escape(title)}'
             f'</text>']
    for i, row in enumerate(t.itertuples()):
        y = 30 + i * bar_h
        origin = names.get(row.origin, row.origin)
        label = f"{origin} → {names.get(row.destination, row.destination)}"
        length = (width - left - 90) * row.people / top
        parts.append(f'<text x="{left - 6}" y="{y + 15}" font-size="11" text-anchor="end" '
                     f'{_FONT}>{escape(label)}</text>')
        parts.append(f'<rect class="flow-bar" x="{left}" y="{y + 4}" width="{length:.1f}" '
                     f'height="{bar_h - 8}" fill="#3b6fb6"/>')
        parts.append(f'<text x="{left + length + 4:.1f}" y="{y + 15}" font-size="11" {_FONT}>'
                     f'{_number(row.people)}</text>')
    if not len(t):
        parts.append(f'<text x="10" y="50" font-size="12" {_FONT}>Aucun flux publié.</text>')
    parts.append("</svg>")
    return "".join(parts)


def time_series_svg(series: pd.Series, title: str, unit: str = "personnes") -> str:
    """A line chart of a series indexed by date (or datetime)."""
    width, height, pad = 640, 260, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="mobility-series" '
             f'aria-label="{escape(title)}">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="10" y="20" font-size="14" font-weight="bold" {_FONT}>{escape(title)}'
             f'</text>']
    s = series.dropna()
    if len(s):
        lo, hi = float(min(0.0, s.min())), float(s.max()) or 1.0
        n = len(s)
        xs = [pad + (width - 2 * pad) * (i / max(1, n - 1)) for i in range(n)]
        ys = [height - pad - (height - 2 * pad) * (v - lo) / (hi - lo or 1.0) for v in s]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
                     f'y2="{height - pad}" stroke="#888"/>')
        parts.append(f'<polyline class="series-line" points="{points}" fill="none" '
                     f'stroke="#b2182b" stroke-width="2"/>')
        for x, y, (k, v) in zip(xs, ys, s.items(), strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#b2182b">'
                         f'<title>{escape(str(k))} : {_number(v)} {escape(unit)}</title></circle>')
        parts.append(f'<text x="{pad}" y="{height - pad + 18}" font-size="10" {_FONT}>'
                     f'{escape(str(s.index[0]))}</text>')
        parts.append(f'<text x="{width - pad}" y="{height - pad + 18}" font-size="10" '
                     f'text-anchor="end" {_FONT}>{escape(str(s.index[-1]))}</text>')
        parts.append(f'<text x="{pad}" y="{pad - 8}" font-size="10" {_FONT}>max. '
                     f'{_number(hi)} {escape(unit)}</text>')
    else:
        parts.append(f'<text x="10" y="50" font-size="12" {_FONT}>Aucune donnée.</text>')
    parts.append("</svg>")
    return "".join(parts)


def daily_trips(root: Path) -> pd.Series:
    """Published trips per day (people), all département pairs."""
    t = release.read_od(root, "trips", "departement")
    daily = t.groupby("date")["people"].sum()
    daily.index = [_day(d) for d in daily.index]
    return daily


def zone_presence_series(root: Path, zone: str, level: str = "departement") -> pd.Series:
    """Presence of one zone per 30-minute slot across all releases."""
    p = release.read_presence(root, level)
    p = p[p["zone"] == zone].sort_values(["date", "slot"])
    index = [f"{d:%d/%m/%Y} {s // 2:02d}:{30 * (s % 2):02d}" for d, s in
             zip(p["date"], p["slot"], strict=True)]
    return pd.Series(p["people"].to_numpy(), index=index)


def dashboard_svgs(root: Path, geo: Geography, day: dt.date, baseline: dt.date,
                   zone: str = "75") -> dict[str, str]:
    """The three charts of the page and of the report."""
    names = geo.zone_names("departement")
    flows = release.read_od(root, "trips", "departement", start=day, end=day)
    return {
        "map": choropleth_svg(geo, presence_change(root, day, baseline)),
        "flows": top_flows_svg(flows, names,
                               title=f"Principaux déplacements entre départements, {_day(day)}"),
        "trips": time_series_svg(daily_trips(root), "Déplacements par jour (personnes)"),
        "zone": time_series_svg(zone_presence_series(root, zone),
                                f"Présence : {names.get(zone, zone)}, par demi-heure"),
    }


def _strip_svg(svg: str) -> tuple[float, float, str]:
    m = re.match(r'<svg[^>]*width="([\d.]+)"[^>]*height="([\d.]+)"[^>]*>(.*)</svg>$', svg, re.S)
    if not m:
        raise ValueError("not an SVG produced by this module")
    return float(m.group(1)), float(m.group(2)), m.group(3)


def compose_svg(svgs: list[str]) -> str:
    """Stack SVG charts vertically into one SVG (the PNG report)."""
    y, width, body = 0.0, 0.0, []
    for svg in svgs:
        w, h, inner = _strip_svg(svg)
        body.append(f'<svg x="0" y="{y}" width="{w}" height="{h}" '
                    f'viewBox="{_view_box(svg, w, h)}">{inner}</svg>')
        y += h + 10
        width = max(width, w)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{y:.0f}">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>')


def _view_box(svg: str, w: float, h: float) -> str:
    m = re.search(r'viewBox="([^"]+)"', svg)
    return m.group(1) if m else f"0 0 {w} {h}"


def write_report(root: Path, geo: Geography, day: dt.date, baseline: dt.date, out: Path,
                 fmt: str = "html", zone: str = "75") -> Path:
    """Write the dashboard of a day as a standalone HTML page or a PNG image."""
    svgs = dashboard_svgs(root, geo, day, baseline, zone)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "png":
        import cairosvg

        path = out / f"mobility-{day.isoformat()}.png"
        cairosvg.svg2png(bytestring=compose_svg(list(svgs.values())).encode("utf-8"),
                         write_to=str(path))
        return path
    if fmt != "html":
        raise ValueError(f"unknown report format {fmt!r}: html or png")
    manifest = release.read_manifest(root, day)
    path = out / f"mobility-{day.isoformat()}.html"
    report = manifest.get("privacy_report", {})
    path.write_text(
        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">"
        f"<title>Mobilité {_day(day)}</title></head><body>"
        f"<h1>Mobilité de la population, {_day(day)}</h1>"
        f"<p>Évolution de la présence par rapport au {_day(baseline)} ; "
        f"{_number(manifest['devices'])} appareils ; aucun groupe publié sous "
        f"{manifest['rule']['min_count']} appareils ; "
        f"epsilon {report.get('epsilon_total', 0):.3g}.</p>"
        + "".join(f"<figure>{svg}</figure>" for svg in svgs.values())
        + "</body></html>", encoding="utf-8")
    return path
