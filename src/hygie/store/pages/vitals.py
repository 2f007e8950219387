"""Vital-sign charts of the patient record, laid out on the server for inline SVG.

Observations are picked by their LOINC code, on the resource or on a component, which
covers both the R4 vital-signs profiles (blood pressure is a panel whose components
are the systolic and diastolic values, https://hl7.org/fhir/R4/observation-vitalsigns.html)
and the single-value observations some devices send. Units are brought to the ones the
profiles require (°C, kg) before plotting.

Each chart shades its normal range: the Observation's own ``referenceRange`` when
there is one (the most recent wins), else the usual adult values below. Adult values
are not applied to minors, whose normal heart and breathing rates are higher; their
charts are shaded only when the data carries a range. A point outside the shaded range
(or, when there is no range, flagged abnormal by ``interpretation``) is highlighted.

The geometry (scales, ticks, polylines) is computed here and drawn by the template
``store/_chart.html``: the page needs no script, prints as it shows, and each chart is
followed by the same values as a table for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hygie.store.pages.display import PARIS, format_moment, number_text, parse_when

LOINC = "http://loinc.org"

#: Most recent points plotted per series; older ones are left out with a note.
MAX_POINTS = 400

#: Periods the page offers, in days before the latest reading (None: everything).
PERIODS: dict[str, int | None] = {"7": 7, "30": 30, "90": 90, "tout": None}
DEFAULT_PERIOD = "30"

#: A pause between two readings longer than this breaks the line: the values of two
#: stays months apart are not joined as if the patient had been measured in between.
GAP = timedelta(days=3)

#: ``Observation.interpretation`` codes that mean "abnormal" (v3 ObservationInterpretation).
_ABNORMAL = frozenset({"A", "AA", "H", "HH", "HU", "L", "LL", "LU", ">", "<"})
_SKIPPED_STATUS = frozenset({"entered-in-error", "cancelled"})


@dataclass(frozen=True)
class SeriesSpec:
    """One plotted quantity: its LOINC codes and the usual adult normal range."""

    key: str
    label: str
    codes: frozenset[str]
    low: float | None
    high: float | None
    decimals: int


@dataclass(frozen=True)
class ChartSpec:
    """One chart: a title, a unit and one or more series sharing the axes."""

    key: str
    title: str
    unit: str
    series: tuple[SeriesSpec, ...]


#: The charts of the record. Adult ranges: heart rate 60-100/min, respiratory rate
#: 12-20/min, SpO2 95-100 %, temperature 36.1-37.8 °C (fever from 38 °C as French
#: practice defines it), blood pressure 90-140 / 60-90 mmHg (ESH thresholds of
#: hypertension and hypotension). Weight has no normal range.
CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("heart-rate", "Fréquence cardiaque", "/min",
              (SeriesSpec("heart-rate", "Fréquence cardiaque", frozenset({"8867-4"}),
                          60, 100, 0),)),
    ChartSpec("spo2", "Saturation en oxygène (SpO2)", "%",
              (SeriesSpec("spo2", "SpO2", frozenset({"2708-6", "59408-5", "20564-1"}),
                          95, 100, 0),)),
    ChartSpec("respiratory-rate", "Fréquence respiratoire", "/min",
              (SeriesSpec("respiratory-rate", "Fréquence respiratoire",
                          frozenset({"9279-1"}), 12, 20, 0),)),
    ChartSpec("temperature", "Température", "°C",
              (SeriesSpec("temperature", "Température",
                          frozenset({"8310-5", "8331-1", "8328-7", "8332-9", "8333-7"}),
                          36.1, 37.8, 1),)),
    ChartSpec("blood-pressure", "Pression artérielle", "mmHg",
              (SeriesSpec("systolic", "Systolique", frozenset({"8480-6"}), 90, 140, 0),
               SeriesSpec("diastolic", "Diastolique", frozenset({"8462-4"}), 60, 90, 0))),
    ChartSpec("weight", "Poids", "kg",
              (SeriesSpec("weight", "Poids", frozenset({"29463-7", "3141-9"}), None, None, 1),)),
)

_SPEC_BY_CODE = {code: spec for chart in CHARTS for spec in chart.series for code in spec.codes}

# Drawing box, in SVG user units (the SVG scales to its container).
WIDTH, HEIGHT = 640.0, 200.0
LEFT, RIGHT, TOP, BOTTOM = 46.0, 14.0, 10.0, 26.0


@dataclass(frozen=True)
class Reading:
    """One measured value of a series, in the chart's unit."""

    when: datetime
    value: float
    low: float | None = None
    high: float | None = None
    abnormal: bool = False


@dataclass(frozen=True)
class PlotPoint:
    x: float
    y: float
    when: str
    iso: str
    value: str
    out: bool


@dataclass(frozen=True)
class PlotSeries:
    key: str
    label: str
    points: tuple[PlotPoint, ...]
    #: One polyline per run of readings without a long pause (``GAP``).
    lines: tuple[str, ...]
    #: The shaded normal range as (y of the top edge, height), and its text.
    band: tuple[float, float] | None
    band_text: str


@dataclass(frozen=True)
class TableRow:
    when: str
    iso: str
    #: One (value text, out of range) per series; empty text when not measured then.
    cells: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Chart:
    """A chart ready to draw, with its table fallback."""

    key: str
    title: str
    unit: str
    series: tuple[PlotSeries, ...]
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]
    rows: tuple[TableRow, ...]
    n_points: int
    n_out: int
    notes: tuple[str, ...] = ()
    width: float = WIDTH
    height: float = HEIGHT
    box: tuple[float, float, float, float] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    summary: str = field(default="")


def _quantity(value: Any, spec: SeriesSpec) -> float | None:
    """The numeric value of a Quantity in the chart's unit, or None."""
    if not isinstance(value, dict):
        return None
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    amount = float(number)
    if not math.isfinite(amount):
        return None
    unit = str(value.get("code") or value.get("unit") or "")
    if spec.key == "temperature" and unit in ("[degF]", "°F", "degF"):
        amount = (amount - 32) * 5 / 9
    elif spec.key == "weight" and unit == "g":
        amount /= 1000
    elif spec.key == "weight" and unit in ("[lb_av]", "lb", "lbs"):
        amount *= 0.45359237
    return amount


def _range(element: dict[str, Any]) -> tuple[float | None, float | None]:
    for rng in element.get("referenceRange") or []:
        if not isinstance(rng, dict):
            continue
        low = rng.get("low", {}).get("value") if isinstance(rng.get("low"), dict) else None
        high = rng.get("high", {}).get("value") if isinstance(rng.get("high"), dict) else None
        low = float(low) if isinstance(low, (int, float)) else None
        high = float(high) if isinstance(high, (int, float)) else None
        if low is not None or high is not None:
            return low, high
    return None, None


def _abnormal(element: dict[str, Any]) -> bool:
    for concept in element.get("interpretation") or []:
        for coding in concept.get("coding") or [] if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("code") in _ABNORMAL:
                return True
    return False


def _loinc_codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [str(c.get("code")) for c in concept.get("coding") or []
            if isinstance(c, dict) and c.get("system") == LOINC and c.get("code")]


def _effective(observation: dict[str, Any]) -> datetime | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        parsed = parse_when(observation.get(key))
        if parsed:
            return parsed[0]
    period = observation.get("effectivePeriod")
    if isinstance(period, dict):
        parsed = parse_when(period.get("start"))
        if parsed:
            return parsed[0]
    parsed = parse_when(observation.get("issued"))
    return parsed[0] if parsed else None


def collect_readings(observations: Iterable[dict[str, Any]]) -> dict[str, list[Reading]]:
    """Readings of every known vital sign, by series key, oldest first."""
    found: dict[str, list[Reading]] = {}
    for obs in observations:
        if not isinstance(obs, dict) or obs.get("status") in _SKIPPED_STATUS:
            continue
        when = _effective(obs)
        if when is None:
            continue
        elements = [obs, *(c for c in obs.get("component") or [] if isinstance(c, dict))]
        seen: set[str] = set()
        for element in elements:
            spec = next((_SPEC_BY_CODE[c] for c in _loinc_codes(element.get("code"))
                         if c in _SPEC_BY_CODE), None)
            if spec is None or spec.key in seen:
                continue
            value = _quantity(element.get("valueQuantity"), spec)
            if value is None:
                continue
            seen.add(spec.key)
            low, high = _range(element)
            found.setdefault(spec.key, []).append(
                Reading(when, value, low, high, _abnormal(element) or _abnormal(obs)))
    for readings in found.values():
        readings.sort(key=lambda r: r.when)
    return found


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _band(readings: list[Reading], spec: SeriesSpec,
          adult: bool) -> tuple[float | None, float | None]:
    """The normal range to shade: the latest recorded one, else the adult default."""
    for reading in reversed(readings):
        if reading.low is not None or reading.high is not None:
            return reading.low, reading.high
    return (spec.low, spec.high) if adult else (None, None)


def _is_out(reading: Reading, low: float | None, high: float | None) -> bool:
    if low is None and high is None:
        return reading.abnormal
    return (low is not None and reading.value < low) or (high is not None
                                                          and reading.value > high)


def _tick_text(value: float) -> str:
    """An axis label: as many decimals as the tick needs (37,5 but 38), decimal comma."""
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_label(moment: datetime, span: timedelta) -> str:
    local = moment.astimezone(PARIS)
    if span <= timedelta(days=2):
        return local.strftime("%d/%m %H:%M")
    if span <= timedelta(days=400):
        return local.strftime("%d/%m")
    return local.strftime("%m/%Y")


def build_chart(chart: ChartSpec, readings: dict[str, list[Reading]], *,
                adult: bool = True, since: datetime | None = None) -> Chart | None:
    """Lay out one chart from the readings taken ``since`` then, or None if there are none."""
    notes = []
    present = []
    for spec in chart.series:
        every = readings.get(spec.key, [])
        shown = [r for r in every if since is None or r.when >= since][-MAX_POINTS:]
        if shown:
            present.append((spec, shown))
        if len(shown) < len(every) and (shown or len(chart.series) > 1):
            older = len(every) - len(shown)
            notes.append(f"{spec.label} : {older} mesure{'s' if older > 1 else ''} plus "
                         f"ancienne{'s' if older > 1 else ''} hors de la période.")
    if not present:
        return None
    bands = {spec.key: _band(rs, spec, adult) for spec, rs in present}
    if not adult and any(spec.low is not None for spec, _ in present) \
            and all(b == (None, None) for b in bands.values()):
        notes.append("Valeurs normales de l'adulte non appliquées (patient mineur).")

    times = [r.when for _, rs in present for r in rs]
    t0, t1 = min(times), max(times)
    if t1 - t0 < timedelta(minutes=1):
        t0, t1 = t0 - timedelta(hours=12), t1 + timedelta(hours=12)
    values = [r.value for _, rs in present for r in rs]
    values += [v for band in bands.values() for v in band if v is not None]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 1.0)
    step = _nice_step((hi + pad) - (lo - pad), 4)
    lo = math.floor((lo - pad) / step) * step
    hi = math.ceil((hi + pad) / step) * step
    if chart.unit == "%" and max(values) <= 100:
        hi = min(hi, 100.0)  # a saturation scale never needs to go past 100 %
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    margin = (t1 - t0) * 0.03  # keeps the first and last points off the plot's edges
    d0, seconds = t0 - margin, (t1 - t0 + 2 * margin).total_seconds()

    def sx(moment: datetime) -> float:
        return round(x0 + (moment - d0).total_seconds() / seconds * (x1 - x0), 1)

    def sy(value: float) -> float:
        return round(y1 - (value - lo) / (hi - lo) * (y1 - y0), 1)

    y_ticks = [(sy(lo + i * step), _tick_text(lo + i * step))
               for i in range(round((hi - lo) / step) + 1)]
    span = t1 - t0
    x_ticks = tuple((sx(t0 + span * f), _time_label(t0 + span * f, span))
                    for f in (0, 0.25, 0.5, 0.75, 1))

    series = []
    by_time: dict[datetime, dict[str, tuple[str, bool]]] = {}
    n_out = 0
    for spec, rs in present:
        low, high = bands[spec.key]
        points = []
        for r in rs:
            out = _is_out(r, low, high)
            n_out += out
            text = number_text(r.value, spec.decimals)
            when = format_moment(r.when)
            points.append(PlotPoint(sx(r.when), sy(r.value), when, _iso(r.when), text, out))
            by_time.setdefault(r.when, {})[spec.key] = (text, out)
        band = None
        band_text = ""
        if low is not None or high is not None:
            top = sy(min(high, hi)) if high is not None else y0
            bottom = sy(max(low, lo)) if low is not None else y1
            band = (top, round(bottom - top, 1))
            band_text = _range_text(low, high, spec.decimals, chart.unit)
        runs: list[list[str]] = []
        for index, (r, p) in enumerate(zip(rs, points, strict=True)):
            if index == 0 or r.when - rs[index - 1].when > GAP:
                runs.append([])
            runs[-1].append(f"{p.x},{p.y}")
        lines = tuple(" ".join(run) for run in runs if len(run) > 1)
        series.append(PlotSeries(spec.key, spec.label, tuple(points), lines, band, band_text))

    rows = tuple(
        TableRow(format_moment(when), _iso(when),
                 tuple(cells.get(spec.key, ("", False)) for spec, _ in present))
        for when, cells in sorted(by_time.items(), reverse=True)
    )
    n_points = sum(len(s.points) for s in series)
    summary = f"{chart.title} : {n_points} mesure{'s' if n_points > 1 else ''}"
    if n_out:
        summary += f", dont {n_out} hors des valeurs normales"
    last = series[0].points[-1]
    summary += f" ; dernière le {last.when} : {last.value} {chart.unit}."
    return Chart(chart.key, chart.title, chart.unit, tuple(series), tuple(y_ticks), x_ticks,
                 rows, n_points, n_out, tuple(notes), summary=summary)


def _range_text(low: float | None, high: float | None, decimals: int, unit: str) -> str:
    if low is not None and high is not None:
        return f"normale {number_text(low, decimals)} à {number_text(high, decimals)} {unit}"
    if low is not None:
        return f"normale ≥ {number_text(low, decimals)} {unit}"
    assert high is not None
    return f"normale ≤ {number_text(high, decimals)} {unit}"


def build_charts(observations: Iterable[dict[str, Any]], *, adult: bool = True,
                 days: int | None = None) -> tuple[list[Chart], list[str]]:
    """The charts with data, and the titles of those without any measurement.

    With ``days``, only the readings of the last ``days`` days before the latest reading
    of any vital sign are drawn, so that the charts show the current stay, not years.
    """
    readings = collect_readings(observations)
    since = None
    if days is not None and readings:
        since = max(rs[-1].when for rs in readings.values()) - timedelta(days=days)
    charts, missing = [], []
    for spec in CHARTS:
        chart = build_chart(spec, readings, adult=adult, since=since)
        if chart is None and any(readings.get(series.key) for series in spec.series):
            missing.append(f"{spec.title} (mesures antérieures à la période)")
        elif chart is None:
            missing.append(spec.title)
        else:
            charts.append(chart)
    return charts, missing
