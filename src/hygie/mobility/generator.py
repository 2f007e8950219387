"""Synthetic mobile-network events over real French geography, with their ground truth.

Real network signalling cannot be had, so the generator builds a synthetic population
with the census distribution of ``geography.py``: every person has a home commune, a
work or school place, a leisure place and a second home; a share of them (the market
share, which differs by département, as operators' shares do) carries a device of the
operator. Each day every person follows a routine (weekday, weekend, public holiday;
some are away visiting another département) and, under a lockdown scenario, outings
become rarer and residents of dense départements leave for their second home.

Devices emit network events (IMSI-like id, UTC epoch milliseconds, cell) at realistic rates,
about 175 a day, fewer at night. Events are written as Parquet partitions
``events/date=YYYY-MM-DD/part-NNNNN.parquet``, each part holding its own devices,
ordered by device and then time (as a collector that files events per device would
deliver them: the pipeline's reduction of a device's events to slots then meets them
one device after another, which keeps its hash tables warm), beside the cell reference
``cells.parquet``.

The generator also writes what really happened, in people extrapolated to the census
(each synthetic person stands for ``census(home département) / persons(home
département)`` people): ``truth/presence.parquet`` (date, slot, dep, people),
``truth/trips.parquet``, ``truth/home_night.parquet``, ``truth/home_day.parquet``
(date, origin, destination, people). Validation compares releases with these.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
from dateutil.easter import easter

from hygie.mobility import storage
from hygie.mobility.geography import Geography, build_cells, first_cells
from hygie.mobility.model import SLOT_SECONDS, TIMEZONE, PipelineConfig, Scenario

#: Share of persons by activity: workers, pupils and students, others.
_CATEGORY_SHARES = (0.42, 0.18, 0.40)
_WORKER, _STUDENT, _OTHER = 0, 1, 2
#: Events per hour of a device at night (00-06h, 23-24h) and by day (06-23h).
_NIGHT_RATE, _DAY_RATE = 2.5, 9.5
_PERIODS = ((0, 360, _NIGHT_RATE), (360, 1380, _DAY_RATE), (1380, 1500, _NIGHT_RATE))
#: Stays of one person-day: home, first outing, home, second outing, home.
_K = 5
#: Persons simulated together (bounds memory: about 1 GiB at 175 events per device).
_CHUNK = 250_000


@dataclass(frozen=True)
class GeneratorConfig:
    """Size and shape of a synthetic run."""

    devices: int = 100_000
    days: int = 7
    start: dt.date = dt.date(2020, 3, 9)
    scenario: str = "normal"
    market_share: float = 0.40
    events_per_device_day: float = 175.0
    seed: int = 2020


@dataclass(frozen=True)
class _Population:
    home: np.ndarray  # (n,) commune index
    home_dep: np.ndarray
    weight: np.ndarray  # people each person stands for
    category: np.ndarray
    work: np.ndarray
    leisure: np.ndarray
    second_home: np.ndarray
    has_device: np.ndarray
    device_id: np.ndarray  # IMSI-like int64, 0 for persons without a device
    activity: np.ndarray  # event-rate multiplier of the device
    exodus: np.ndarray  # leaves for the second home when lockdown starts


def public_holidays(year: int) -> set[dt.date]:
    """French public holidays of a year (fixed dates, Easter Monday, Ascension, Whit Monday)."""
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    e = easter(year)
    days = {dt.date(year, m, d) for m, d in fixed}
    days |= {e + dt.timedelta(days=1), e + dt.timedelta(days=39), e + dt.timedelta(days=50)}
    return days


def day_bounds(day: dt.date) -> tuple[int, int]:
    """UTC epoch seconds of the local (Europe/Paris) midnight starting ``day``, and its length."""
    tz = ZoneInfo(TIMEZONE)
    start = dt.datetime.combine(day, dt.time(0), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)
    return int(start.timestamp()), int((end - start).total_seconds())


def _draw_in(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             order: np.ndarray) -> np.ndarray:
    """Draw communes with probability proportional to population within [lo, hi) of ``cum``."""
    u = lo + rng.random(len(lo)) * (hi - lo)
    idx = np.searchsorted(cum, u, side="right")
    return order[np.minimum(idx, len(order) - 1)]


def _build_population(geo: Geography, cfg: GeneratorConfig, scenario: Scenario,
                      rng: np.random.Generator) -> _Population:
    n_persons = max(1, round(cfg.devices / cfg.market_share))
    quota = geo.dep_pop / geo.dep_pop.sum() * n_persons
    per_dep = np.floor(quota).astype(np.int64)
    rest = n_persons - per_dep.sum()
    per_dep[np.argsort(per_dep - quota)[:rest]] += 1  # largest remainders
    home_dep = np.repeat(np.arange(geo.n_deps, dtype=np.int32), per_dep)
    n = len(home_dep)

    # Communes ordered by département, with cumulative population, to draw inside a
    # département, a région or the whole country in proportion to population.
    order = np.argsort(geo.commune_dep, kind="stable")
    cum = np.cumsum(geo.commune_pop[order]).astype(np.float64)
    dep_hi = np.cumsum(geo.dep_pop).astype(np.float64)
    dep_lo = dep_hi - geo.dep_pop
    home = _draw_in(rng, cum, dep_lo[home_dep], dep_hi[home_dep], order)

    # Régions are not contiguous in département order: draw a département of the same
    # région first (by population), then a commune in it.
    region = geo.dep_region[home_dep]
    n_regions = len(geo.region_codes)
    region_deps = [np.flatnonzero(geo.dep_region == r) for r in range(n_regions)]

    def dep_in_region(regions: np.ndarray) -> np.ndarray:
        out = np.empty(len(regions), dtype=np.int32)
        for r in range(n_regions):
            sel = np.flatnonzero(regions == r)
            if sel.size:
                deps = region_deps[r]
                p = geo.dep_pop[deps] / geo.dep_pop[deps].sum()
                out[sel] = rng.choice(deps, size=sel.size, p=p)
        return out

    def commune_in_dep(deps: np.ndarray) -> np.ndarray:
        return _draw_in(rng, cum, dep_lo[deps], dep_hi[deps], order)

    def commune_national(size: int) -> np.ndarray:
        return _draw_in(rng, cum, np.zeros(size), np.full(size, cum[-1]), order)

    category = rng.choice(3, size=n, p=_CATEGORY_SHARES).astype(np.int8)
    u = rng.random(n)
    work = home.copy()
    same_dep = commune_in_dep(home_dep)
    same_region = commune_in_dep(dep_in_region(region))
    national = commune_national(n)
    worker = category == _WORKER
    work = np.where(worker & (u >= 0.35) & (u < 0.80), same_dep, work)
    work = np.where(worker & (u >= 0.80) & (u < 0.95), same_region, work)
    work = np.where(worker & (u >= 0.95), national, work)
    work = np.where((category == _STUDENT) & (u >= 0.6), same_dep, work)
    leisure = np.where(rng.random(n) < 0.5, home, commune_in_dep(home_dep))
    # Second homes: small communes, half in the home région, half anywhere.
    small = geo.commune_pop < 10_000
    small_order = np.flatnonzero(small)
    small_cum = np.cumsum(geo.commune_pop[small_order]).astype(np.float64)
    far = _draw_in(rng, small_cum, np.zeros(n), np.full(n, small_cum[-1]), small_order)
    near = commune_in_dep(dep_in_region(region))
    second_home = np.where(rng.random(n) < 0.5, near, far)
    moved = geo.commune_dep[second_home] == home_dep
    second_home[moved] = far[moved]

    dep_factor = rng.uniform(0.8, 1.2, geo.n_deps)
    share = dep_factor[home_dep]
    share *= cfg.devices / share.sum()
    has_device = rng.random(n) < np.clip(share, 0.0, 1.0)
    n_dev = int(has_device.sum())
    msin = rng.choice(10**10, size=n_dev, replace=False)
    device_id = np.zeros(n, dtype=np.int64)
    device_id[has_device] = 208_01 * 10**10 + msin
    activity = np.where(has_device, rng.lognormal(-0.08, 0.4, n), 0.0)

    exodus_p = np.zeros(geo.n_deps)
    for code, p in scenario.exodus.items():
        if code in geo.dep_codes:
            exodus_p[geo.dep_codes.index(code)] = p
    exodus = rng.random(n) < exodus_p[home_dep]
    weight = (geo.dep_pop / np.maximum(per_dep, 1))[home_dep]
    return _Population(home=home, home_dep=home_dep, weight=weight, category=category,
                       work=work, leisure=leisure, second_home=second_home,
                       has_device=has_device, device_id=device_id, activity=activity,
                       exodus=exodus)


def _schedule(pop: _Population, sel: slice, day: dt.date, day_index: int, minutes: int,
              scenario: Scenario, holidays: set[dt.date], rng: np.random.Generator,
              local: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stays of the persons ``sel`` for one day: places, starts, ends, each (n, 5), minutes.

    ``local`` is a commune of each person's département, ``far`` one of the whole
    country (where a visit takes them), both drawn for the day.
    """
    home = pop.home[sel]
    n = len(home)
    cat = pop.category[sel]
    off = day.weekday() >= 5 or day in holidays
    lock = scenario.is_lockdown(day_index)
    keep = scenario.lockdown_trip_factor if lock else 1.0

    # First outing: work or school on working days, an errand or leisure otherwise.
    if off:
        go1 = rng.random(n) < 0.6 * keep
        place1 = pop.leisure[sel]
        a1 = rng.uniform(600, 960, n)
        b1 = a1 + rng.uniform(60, 240, n)
    else:
        p_go = np.select([cat == _WORKER, cat == _STUDENT], [0.92, 0.95], 0.6)
        go1 = rng.random(n) < p_go * keep
        place1 = np.where(cat == _OTHER, pop.leisure[sel], pop.work[sel])
        a1 = np.select([cat == _WORKER, cat == _STUDENT],
                       [rng.normal(480, 45, n), rng.normal(495, 20, n)],
                       rng.uniform(540, 960, n))
        length = np.select([cat == _WORKER, cat == _STUDENT],
                           [rng.normal(510, 60, n), rng.normal(450, 45, n)],
                           rng.uniform(60, 180, n))
        b1 = a1 + np.clip(length, 60, 720)
    a1 = np.clip(a1, 300, minutes - 120)
    b1 = np.clip(b1, a1 + 30, minutes - 90)
    # Second outing in the evening: leisure place or anywhere in the département.
    go2 = rng.random(n) < (0.35 if off else 0.3) * keep
    place2 = np.where(rng.random(n) < 0.5, pop.leisure[sel], local)
    a2 = np.maximum(b1 + 30, rng.uniform(1080, 1230, n))
    b2 = np.minimum(a2 + rng.uniform(60, 180, n), minutes - 15)
    go2 &= b2 > a2 + 15

    a1 = np.where(go1, a1, b1)  # a skipped outing is a stay of length zero
    a2 = np.where(go2, a2, b2)
    places = np.stack([home, place1, home, place2, home], axis=1)
    starts = np.stack([np.zeros(n), a1, b1, a2, b2], axis=1)
    ends = np.stack([a1, b1, a2, b2, np.full(n, float(minutes))], axis=1)

    # Away all day: exodus under lockdown, visits (fewer on working days, none locked down).
    away = np.zeros(n, dtype=bool)
    away_place = far.copy()
    if lock:
        ex = pop.exodus[sel]
        away |= ex
        away_place = np.where(ex, pop.second_home[sel], away_place)
    else:
        visit = rng.random(n) < (0.05 if off else 0.015)
        away |= visit
    places[away] = np.stack([away_place[away]] * _K, axis=1)
    starts = np.round(starts).astype(np.int32)
    ends = np.round(ends).astype(np.int32)
    return places.astype(np.int32), starts, ends


def _compact(places: np.ndarray, starts: np.ndarray, ends: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop empty stays and merge consecutive stays at one place; -1 pads the rest."""
    valid = ends > starts
    prev = np.full(places.shape[0], -1)
    out_p = np.full_like(places, -1)
    out_s = np.zeros_like(starts)
    out_e = np.zeros_like(ends)
    count = np.zeros(places.shape[0], dtype=np.int64)
    rows = np.arange(places.shape[0])
    for k in range(places.shape[1]):
        v = valid[:, k]
        same = v & (places[:, k] == prev)
        last = np.maximum(count - 1, 0)
        out_e[rows[same], last[same]] = ends[same, k]
        new = v & ~same
        idx = count[new]
        out_p[rows[new], idx] = places[new, k]
        out_s[rows[new], idx] = starts[new, k]
        out_e[rows[new], idx] = ends[new, k]
        count += new
        prev = np.where(v, places[:, k], prev)
    return out_p, out_s, out_e, count


def _main_zone(dep: np.ndarray, starts: np.ndarray, ends: np.ndarray, lo: int, hi: int
               ) -> np.ndarray:
    """Département where each person spends the most time within [lo, hi) minutes."""
    overlap = np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None)
    total = np.zeros_like(overlap)
    for k in range(dep.shape[1]):
        total += np.where(dep == dep[:, [k]], overlap[:, [k]], 0)
    best = np.argmax(total, axis=1)
    return dep[np.arange(len(dep)), best]


class _Truth:
    """Accumulates the day's truth in people (float64 counts).

    Two weightings are kept: ``people`` (every synthetic person, weighted to the
    census: what really happened) and ``people_sample`` (only persons with a device,
    each weighted by census / devices of its true home département: what a perfect
    pipeline could find from this sample, free of sampling error).
    """

    def __init__(self, n_deps: int, n_slots: int) -> None:
        self.n_deps, self.n_slots = n_deps, n_slots
        self.presence_diff = np.zeros((2, (n_slots + 1) * n_deps))
        self.trips = np.zeros((2, n_deps * n_deps))
        self.home_night = np.zeros((2, n_deps * n_deps))
        self.home_day = np.zeros((2, n_deps * n_deps))

    def add(self, dep: np.ndarray, starts: np.ndarray, ends: np.ndarray, count: np.ndarray,
            home_dep: np.ndarray, weights: tuple[np.ndarray, np.ndarray],
            cfg: PipelineConfig) -> None:
        for i, weight in enumerate(weights):
            self._add(i, dep, starts, ends, count, home_dep, weight, cfg)

    def _add(self, i: int, dep: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             count: np.ndarray, home_dep: np.ndarray, weight: np.ndarray,
             cfg: PipelineConfig) -> None:
        nd = self.n_deps
        valid = dep >= 0
        w = np.broadcast_to(weight[:, None], dep.shape)
        # A person is present at a slot when the slot's midpoint lies in a stay.
        first = np.clip(np.ceil((starts - 15) / 30), 0, self.n_slots).astype(np.int64)
        last = np.clip(np.ceil((ends - 15) / 30), 0, self.n_slots).astype(np.int64)
        d = np.where(valid, dep, 0)
        self.presence_diff[i] += np.bincount((first * nd + d)[valid], w[valid],
                                          minlength=self.presence_diff.shape[1])
        self.presence_diff[i] -= np.bincount((last * nd + d)[valid], w[valid],
                                          minlength=self.presence_diff.shape[1])
        # Trips: moves between consecutive stays (stays are already merged per place).
        for k in range(dep.shape[1] - 1):
            move = (count > k + 1)
            o, t = dep[move, k], dep[move, k + 1]
            self.trips[i] += np.bincount(o * nd + t, weight[move], minlength=nd * nd)
        lo, hi = (h * 60 for h in cfg.night_hours)
        night = _main_zone(np.where(valid, dep, -1), starts, np.where(valid, ends, 0), lo, hi)
        self.home_night[i] += np.bincount(home_dep * nd + night, weight, minlength=nd * nd)
        lo, hi = (h * 60 for h in cfg.day_hours)
        main = _main_zone(np.where(valid, dep, -1), starts, np.where(valid, ends, 0), lo, hi)
        self.home_day[i] += np.bincount(home_dep * nd + main, weight, minlength=nd * nd)

    def frames(self, day: dt.date, dep_codes: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        nd = self.n_deps
        codes = np.array(dep_codes)
        p = [np.cumsum(self.presence_diff[i].reshape(self.n_slots + 1, nd), axis=0)[:-1]
             for i in range(2)]
        out = {"presence": pd.DataFrame({
            "date": day, "slot": np.repeat(np.arange(self.n_slots), nd).astype(np.int32),
            "dep": np.tile(codes, self.n_slots), "people": p[0].ravel(),
            "people_sample": p[1].ravel()})}
        for name in ("trips", "home_night", "home_day"):
            m = getattr(self, name)
            nz = np.flatnonzero(m[0] + m[1])
            out[name] = pd.DataFrame({"date": day, "origin": codes[nz // nd],
                                      "destination": codes[nz % nd], "people": m[0][nz],
                                      "people_sample": m[1][nz]})
        return out


#: Raw events as network probes emit them: IMSI, UTC epoch milliseconds, cell.
EVENT_SCHEMA = pa.schema([("device_id", pa.int64()), ("ts_ms", pa.int64()),
                          ("cell_id", pa.int32())])


def _events(places: np.ndarray, starts: np.ndarray, ends: np.ndarray, device_id: np.ndarray,
            activity: np.ndarray, day_start: int, scale: float, cell_first: np.ndarray,
            cell_count: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Network events of the devices whose stays are given, ordered by device then time."""
    valid = places >= 0
    seg_dev, seg_place, seg_start, seg_len, seg_n = [], [], [], [], []
    rows = np.broadcast_to(np.arange(len(places))[:, None], places.shape)
    for lo, hi, rate in _PERIODS:
        s = np.maximum(starts, lo)
        e = np.minimum(ends, hi)
        ok = valid & (e > s)
        mean = (activity[:, None] * rate * scale / 60.0) * np.where(ok, e - s, 0)
        n = rng.poisson(mean[ok])
        seg_dev.append(rows[ok])
        seg_place.append(places[ok])
        seg_start.append(s[ok])
        seg_len.append((e - s)[ok])
        seg_n.append(n)
    n = np.concatenate(seg_n)
    dev = np.repeat(np.concatenate(seg_dev), n)
    place = np.repeat(np.concatenate(seg_place), n)
    start = np.repeat(np.concatenate(seg_start).astype(np.int64), n)
    length = np.repeat(np.concatenate(seg_len).astype(np.int64), n)
    ts_ms = day_start * 1000 + start * 60_000 + (rng.random(len(dev)) * length * 60_000
                                                   ).astype(np.int64)
    # A device at a place mostly uses one serving cell, sometimes a neighbouring one.
    count = cell_count[place]
    serving = (device_id[dev] + place) % count
    other = rng.integers(0, 1 << 30, len(dev)) % count
    cell = cell_first[place] + np.where(rng.random(len(dev)) < 0.8, serving, other)
    order = np.lexsort((ts_ms, device_id[dev]))
    return pa.Table.from_arrays(
        [pa.array(device_id[dev][order]),
         pa.array(ts_ms[order]),
         pa.array(cell[order].astype(np.int32))], schema=EVENT_SCHEMA)


def generate(geo: Geography, out: Path, cfg: GeneratorConfig) -> dict[str, object]:
    """Write ``cfg.days`` days of events, the cell reference and the truth under ``out``.

    Returns a summary (devices, persons, events per day) also written to
    ``out/generator.json``.
    """
    scenario = Scenario.named(cfg.scenario, cfg.days)
    pipeline_cfg = PipelineConfig()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    cells = build_cells(geo)
    cells.to_parquet(out / "cells.parquet", index=False)
    cell_first, cell_count = first_cells(geo, cells)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(0,)))
    pop = _build_population(geo, cfg, scenario, rng)
    n_persons = len(pop.home)
    devices_per_dep = np.bincount(pop.home_dep[pop.has_device], minlength=geo.n_deps)
    sample_weight = np.where(pop.has_device, (geo.dep_pop / np.maximum(devices_per_dep, 1))[
        pop.home_dep], 0.0)
    # Mean event count of a device-day at rate scale 1 (about 176): scale to the target.
    base = sum((hi - lo) * r for lo, hi, r in _PERIODS[:2]) / 60 + 60 * _NIGHT_RATE / 60
    scale = cfg.events_per_device_day / base
    holidays = public_holidays(cfg.start.year) | public_holidays(cfg.start.year + 1)
    truth: dict[str, list[pd.DataFrame]] = {}
    events_per_day: dict[str, int] = {}
    for d in range(cfg.days):
        day = cfg.start + dt.timedelta(days=d)
        day_start, seconds = day_bounds(day)
        minutes = seconds // 60
        acc = _Truth(geo.n_deps, seconds // SLOT_SECONDS)
        folder = out / "events" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        total = 0
        for part, lo in enumerate(range(0, n_persons, _CHUNK)):
            sel = slice(lo, min(lo + _CHUNK, n_persons))
            day_seed = np.random.SeedSequence(cfg.seed, spawn_key=(1, d, part))
            day_rng = np.random.default_rng(day_seed)
            local = commune_in_dep(geo, pop.home_dep[sel], day_rng)
            far = commune_in_dep(geo, day_rng.choice(geo.n_deps, size=sel.stop - sel.start,
                                                     p=geo.dep_pop / geo.dep_pop.sum()),
                                 day_rng)
            places, starts, ends = _schedule(pop, sel, day, d, minutes, scenario, holidays,
                                             day_rng, local, far)
            places, starts, ends, count = _compact(places, starts, ends)
            dep = np.where(places >= 0, geo.commune_dep[np.maximum(places, 0)], -1)
            acc.add(dep, starts, ends, count, pop.home_dep[sel],
                    (pop.weight[sel], sample_weight[sel]), pipeline_cfg)
            owners = pop.has_device[sel]
            table = _events(places[owners], starts[owners], ends[owners],
                            pop.device_id[sel][owners], pop.activity[sel][owners], day_start,
                            scale, cell_first, cell_count, day_rng)
            storage.write_events(table, folder / f"part-{part:05d}.parquet")
            total += table.num_rows
        events_per_day[day.isoformat()] = total
        for name, frame in acc.frames(day, geo.dep_codes).items():
            truth.setdefault(name, []).append(frame)
    for name, frames in truth.items():
        pd.concat(frames, ignore_index=True).to_parquet(out / "truth" / f"{name}.parquet",
                                                        index=False)
    summary: dict[str, object] = {
        "config": {**asdict(cfg), "start": cfg.start.isoformat()},
        "scenario": {**asdict(scenario)},
        "persons": n_persons,
        "devices": int(pop.has_device.sum()),
        "cells": len(cells),
        "census": dict(zip(geo.dep_codes, geo.dep_pop.tolist(), strict=True)),
        "events_per_day": events_per_day,
    }
    (out / "generator.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def commune_in_dep(geo: Geography, deps: np.ndarray, rng: np.random.Generator
                       ) -> np.ndarray:
    """A commune of each given département, drawn in proportion to population."""
    order = np.argsort(geo.commune_dep, kind="stable")
    cum = np.cumsum(geo.commune_pop[order]).astype(np.float64)
    hi = np.cumsum(geo.dep_pop).astype(np.float64)
    lo = hi - geo.dep_pop
    return _draw_in(rng, cum, lo[deps], hi[deps], order)
