"""The daily mobility pipeline, written once with Ibis, run on DuckDB or PySpark.

One run turns one Europe/Paris day of raw network events into aggregates (issue #9):

1. **Ingestion and pseudonymisation.** Events are reduced to one row per device and
   30-minute slot, and in the same query each device id is replaced by a pseudonym: the
   SHA-256 of a secret key of the day followed by the id (a keyed hash; ids are
   fixed-length IMSIs, so the length-extension weakness of key-prefix hashing does
   not apply, and HMAC has no portable SQL form). The pseudonyms are then ranked
   into compact integers. The day key is destroyed with the raw events (``storage``),
   after which nothing links the day's pseudonyms to a device or to another day.
2. **Presence per 30-minute slot.** The cell of a device in a slot is that of its last
   event in the slot. The winner is found with one ``max`` of ``ms * 2**20 + cell``
   (rather than an arg-max aggregate), which is cheaper and breaks ties identically
   on every engine.
3. **Stays.** Consecutive slots in one commune form a stay, which lasts until the next
   stay starts (a silent phone has not moved); the first stay of the day starts at
   midnight. Stay starts come from per-commune slot masks (``_stay_starts``), so that
   only the stays, not the slots, go through windows. Presence per zone and slot is
   then counted from stays.
4. **Night presence and home.** The night zone is the département where a device
   spends most of the night window. The home register (keyed by a second pseudonym
   under the key of the period) adds up nights per département; the home is the
   département with the most nights, the longest known on a tie.
5. **Origin-destination.** Home x night zone, home x main zone of the day window, and
   trips (moves between consecutive stays, at most ``max_trips_per_device`` a day).
6. **Extrapolation.** A device stands for ``census(home) / devices(home)`` people.

Only aggregates leave this module (with the device count behind each cell, which the
privacy rule needs), plus the home register (one row per pseudonym and département).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from hygie.mobility.geography import Geography
from hygie.mobility.model import SLOT_SECONDS, PipelineConfig

#: Cells are packed under the timestamp in one integer: cell ids must stay below this.
_CELL_SPACE = 1 << 20
#: Slots of a day are packed under the device id in one integer (at most 50 slots a day).
_SLOT_BITS = 6
_SLOT_SPACE = 1 << _SLOT_BITS
_SLOT_MS = SLOT_SECONDS * 1000
#: Département indexes are packed under a count in one integer (96 départements).
_DEP_SPACE = 128

REGISTER_SCHEMA = ibis.schema({"home_pid": "string", "dep_idx": "int32", "nights": "int64",
                               "since": "int64"})
#: Days since 1970 fit under this bound (packed under the night count).
_DAY_SPACE = 1 << 20


@dataclass(frozen=True)
class DayContext:
    """What one run needs to know about its day (times are UTC epoch seconds)."""

    day_start: int
    n_slots: int
    #: Days since 1970-01-01 of the processed day (when a home zone was first seen).
    day_number: int
    day_key: str
    period_key: str


@dataclass
class DayAggregates:
    """The aggregates of one day, at département level with device counts.

    ``presence``: dep, slot, devices, people. ``od``: kind (trips, home_night,
    home_day), level (departement, region), origin, destination, devices (distinct
    devices behind the cell), count (trips, or devices for home tables), people.
    ``fingerprints``: size, groups (how many devices share each combination of home,
    night zone, day zone and trip count: the input of the re-identification test).
    ``register``: the updated home register.
    """

    devices: int
    presence: pd.DataFrame
    od: pd.DataFrame
    fingerprints: pd.DataFrame
    register: pd.DataFrame


def reference_tables(geo: Geography, cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cell and census reference tables the pipeline joins (pandas, small)."""
    dep_idx = {c: i for i, c in enumerate(geo.dep_codes)}
    cell_ref = pd.DataFrame({
        "cell_id": cells["cell_id"].astype("int32"),
        "commune": cells["commune"].astype("int32"),
        "dep_idx": cells["dep"].map(dep_idx).astype("int32"),
    })
    census = pd.DataFrame({
        "dep_idx": np.arange(geo.n_deps, dtype=np.int32),
        "reg_idx": geo.dep_region.astype(np.int32),
        "population": geo.dep_pop.astype(np.float64),
    })
    return cell_ref, census


def _collect(expr: ir.Table | ir.Scalar) -> Any:
    """Bring a (small) result back through Arrow (Ibis's pandas path warns on pandas 3)."""
    if isinstance(expr, ir.Scalar):
        return expr.to_pyarrow().as_py()
    return expr.to_pyarrow().to_pandas()


def _argmax_dep(value: ir.IntegerValue, dep_idx: ir.IntegerValue) -> ir.IntegerValue:
    """Pack (value, département) so that ``max`` picks the largest value, then the lowest index."""
    return value.cast("int64") * _DEP_SPACE + (_DEP_SPACE - 1 - dep_idx.cast("int64"))


def _unpack_dep(packed: ir.IntegerValue) -> ir.IntegerValue:
    return (_DEP_SPACE - 1 - packed % _DEP_SPACE).cast("int32")


def _overlap(start: ir.IntegerValue, end: ir.IntegerValue, lo: int, hi: int) -> ir.IntegerValue:
    """Slots of the stay [start, end) inside the window [lo, hi)."""
    return ibis.greatest(0, ibis.least(end, hi) - ibis.greatest(start, lo))


def _last_cells(events: ir.Table, ctx: DayContext) -> ir.Table:
    """The cell of the last event of each device and slot, as packed ``dk`` and ``key``.

    Grouped on one packed integer (device, slot) with the winner as one packed maximum:
    a single-column key and a single aggregate are what hash aggregation does fastest.
    Events outside the day are dropped on the raw timestamp, which Parquet statistics
    can answer before decoding.
    """
    day_ms = ctx.day_start * 1000
    ev = events.filter((events.ts_ms >= day_ms)
                       & (events.ts_ms < day_ms + ctx.n_slots * _SLOT_MS))
    since = ev.ts_ms - day_ms
    return ev.group_by(dk=ev.device_id * _SLOT_SPACE + since // _SLOT_MS).agg(
        key=(since * _CELL_SPACE + ev.cell_id.cast("int64")).max())


def _stay_starts(slots: ir.Table, n_slots: int) -> ir.Table:
    """The slots where a stay starts: its commune differs from the last slot heard before.

    Rather than a window over every (device, slot) row, which sorts them all, the slots
    of each device and commune become one bit mask ``here`` (a sum of distinct powers of
    two: each slot has one commune), and the device's masks add up to ``heard`` (a
    group-by and a join, cheaper than a window over the masks). Within a stretch of
    slots free of other communes (``free``), only the first slot of ``here`` starts a
    stay; the later ones follow a slot of the same commune. ``after`` marks the slots
    just after a slot of ``here``; adding it to ``free`` carries through each stretch
    from there and clears it, so ``reach`` is every slot that a slot of ``here``
    precedes within its stretch (an ``after`` bit reached by a carry stays set, hence
    the ``| after``). The first slots are ``here`` less ``reach``, unpacked into rows
    with the day's slot numbers. Masks hold ``n_slots`` (at most 50) bits.
    """
    one = ibis.literal(1).cast("int64")  # a typed literal: Spark shifts a plain 1 in 32 bits
    full = (1 << n_slots) - 1
    # DuckDB sums 64-bit integers into 128 bits, slower to shift and mask (this function
    # took 2.3 times longer): sums are cast back to non-null 64 bits (a group has rows),
    # a cast that Ibis writes out where one to plain int64 would be dropped.
    runs = slots.group_by(["device_id", "commune", "dep_idx"]).agg(
        here=(one << slots.slot).sum().cast("!int64"))
    heard = runs.group_by("device_id").agg(heard=runs.here.sum().cast("!int64"))
    runs = runs.join(heard, "device_id")
    free = full - (runs.heard - runs.here)
    after = (runs.here << 1) & free
    reach = after | (free - (free & (free + after)))
    runs = runs.select("device_id", "commune", "dep_idx", first=runs.here - (runs.here & reach))
    starts = runs.select("device_id", "commune", "dep_idx", "first",
                         slot=ibis.range(0, n_slots).cast("array<int64>").unnest())
    return starts.filter((starts.first >> starts.slot) & 1 == 1).drop("first")


def build_stays(events: ir.Table | Sequence[ir.Table], cells: ir.Table, ctx: DayContext
                ) -> tuple[ir.Table, ir.Table]:
    """Steps 1-3: pseudonymise, reduce to slots, and cut into stays.

    ``events`` is one table, or the parts of the day when no device has events in two
    parts (as the generator writes them).

    Returns the pseudonym table (pid, home_pid) and the stays (pid, seq, commune,
    dep_idx, start, end, prev_dep), ``end`` exclusive, in slots from local midnight.
    """
    # One row per device and slot first (about 4x fewer rows than events), part by part:
    # a part holds every event of its devices, and aggregating parts one at a time keeps
    # each hash table a part's size (a sixth less CPU than one table for the day, at a
    # million devices).
    parts = [events] if isinstance(events, ir.Table) else list(events)
    per_part = [_last_cells(part, ctx) for part in parts]
    slots = per_part[0].union(*per_part[1:]) if len(per_part) > 1 else per_part[0]
    slots = slots.select(device_id=slots.dk >> _SLOT_BITS, slot=slots.dk & (_SLOT_SPACE - 1),
                         cell_id=(slots.key & (_CELL_SPACE - 1)).cast("int32"))
    slots = slots.join(cells, "cell_id").select("device_id", "slot", "commune", "dep_idx")
    starts = _stay_starts(slots, ctx.n_slots)
    # Stays are cut per raw device id; the pseudonyms are computed once per device, from
    # its first stay, and replace the id in the same query, on the stays (20x fewer rows
    # than slots): nothing holding a raw id is stored, and the events are read once.
    by_slot = ibis.window(group_by="device_id", order_by="slot")
    stays = starts.select(
        "device_id", "commune", "dep_idx", "slot",
        seq=ibis.row_number().over(by_slot),
        nxt=starts.slot.lead().over(by_slot),
        prev_dep=starts.dep_idx.lag().over(by_slot),
    )
    ids = stays.filter(stays.seq == 0)
    raw = ids.device_id.cast("string")
    ids = ids.select(
        "device_id",
        digest=(ibis.literal(ctx.day_key) + raw).hexdigest("sha256"),
        home_pid=(ibis.literal(ctx.period_key) + raw).hexdigest("sha256").substr(0, 32),
    )
    ids = ids.select("device_id", "home_pid",
                     pid=ibis.row_number().over(order_by=ids.digest).cast("int64"))
    stays = stays.join(ids, "device_id")
    stays = stays.select(
        "pid", "home_pid", "seq", "commune", "dep_idx", "prev_dep",
        start=ibis.ifelse(stays.seq == 0, 0, stays.slot).cast("int64"),
        end=stays.nxt.fill_null(ctx.n_slots).cast("int64"),
    ).cache()
    return stays.filter(stays.seq == 0).select("pid", "home_pid"), stays.drop("home_pid")


def compute_day(events: ir.Table | Sequence[ir.Table], cells: ir.Table, census: ir.Table,
                register: ir.Table, ctx: DayContext, cfg: PipelineConfig) -> DayAggregates:
    """Run the whole day on the engine that holds ``events`` and return its aggregates.

    ``events``: device_id (int64), ts_ms (int64, UTC epoch milliseconds), cell_id (int32);
    one table, or parts that each hold every event of their devices.
    ``cells``: cell_id, commune, dep_idx. ``census``: dep_idx, reg_idx, population.
    ``register``: the home register of the period so far (``REGISTER_SCHEMA``).
    """
    ids, stays = build_stays(events, cells, ctx)
    per_slot = 2  # slots per hour
    n_lo, n_hi = (h * per_slot for h in cfg.night_hours)
    d_lo, d_hi = (h * per_slot for h in cfg.day_hours)

    # Step 4: night zone, main zone of the day and number of stays per device.
    per_dep = stays.group_by(["pid", "dep_idx"]).agg(
        night=_overlap(stays.start, stays.end, n_lo, n_hi).sum(),
        day=_overlap(stays.start, stays.end, d_lo, d_hi).sum(),
        stays=stays.count(),
    )
    device_day = per_dep.group_by("pid").agg(
        nk=_argmax_dep(per_dep.night, per_dep.dep_idx).max(),
        dk=_argmax_dep(per_dep.day, per_dep.dep_idx).max(),
        stays=per_dep.stays.sum(),
    )
    device_day = device_day.select(
        "pid", "stays", night_dep=_unpack_dep(device_day.nk), day_dep=_unpack_dep(device_day.dk)
    ).join(ids.select("pid", "home_pid"), "pid")

    tonight = device_day.select("home_pid", dep_idx=device_day.night_dep,
                                nights=ibis.literal(1, type="int64"),
                                since=ibis.literal(ctx.day_number, type="int64"))
    merged = register.select(*REGISTER_SCHEMA.names).union(tonight)
    new_register = merged.group_by(["home_pid", "dep_idx"]).agg(nights=merged.nights.sum(),
                                                                since=merged.since.min())
    # Most nights wins; on a tie the zone known for longer stays home (a first night
    # away does not move anyone's home).
    rank = new_register.nights * _DAY_SPACE + (_DAY_SPACE - 1 - new_register.since)
    homes = new_register.group_by("home_pid").agg(
        hk=_argmax_dep(rank, new_register.dep_idx).max())
    homes = homes.select("home_pid", home_dep=_unpack_dep(homes.hk))

    devices = device_day.join(homes, "home_pid").drop("home_pid")
    per_home = devices.group_by("home_dep").agg(n=devices.count())
    weights = per_home.join(census, per_home.home_dep == census.dep_idx)
    weights = weights.select("home_dep", w=weights.population / weights.n)
    devices = devices.join(weights, "home_dep").cache()

    # Step 5: presence as +1 / -1 at each stay's start and end, summed per slot later.
    sw = stays.join(devices.select("pid", "w"), "pid")
    starts = sw.select("dep_idx", slot=sw.start, dn=ibis.literal(1, type="int64"), dw=sw.w)
    ends = sw.filter(sw.end < ctx.n_slots)
    ends = ends.select("dep_idx", slot=ends.end, dn=ibis.literal(-1, type="int64"), dw=-ends.w)
    deltas = starts.union(ends)
    deltas = deltas.group_by(["dep_idx", "slot"]).agg(dn=deltas.dn.sum(), dw=deltas.dw.sum())

    homes_od = []
    for kind, column in (("home_night", "night_dep"), ("home_day", "day_dep")):
        t = devices.group_by(["home_dep", column]).agg(devices=devices.count(),
                                                      people=devices.w.sum())
        homes_od.append((kind, _collect(t.rename(origin="home_dep", destination=column))))

    trips = sw.filter((sw.seq >= 1) & (sw.seq <= cfg.max_trips_per_device))
    regions = census.select("dep_idx", "reg_idx")
    trips = trips.join(regions.rename(o_reg="reg_idx", prev_dep="dep_idx"), "prev_dep")
    trips = trips.join(regions.rename(d_reg="reg_idx"), "dep_idx")
    trip_tables = []
    for level, o, d in (("departement", "prev_dep", "dep_idx"), ("region", "o_reg", "d_reg")):
        t = trips.group_by([o, d]).agg(devices=trips.pid.nunique(), count=trips.count(),
                                       people=trips.w.sum())
        trip_tables.append((level, _collect(t.rename(origin=o, destination=d))))

    capped = ibis.least(devices.stays - 1, cfg.max_trips_per_device)
    prints = devices.group_by(["home_dep", "night_dep", "day_dep", capped.name("trips")]).agg(
        size=devices.count())
    prints = prints.group_by("size").agg(groups=prints.count())

    return _assemble(
        devices=int(_collect(devices.count())),
        deltas=_collect(deltas),
        homes_od=homes_od,
        trip_tables=trip_tables,
        fingerprints=_collect(prints),
        # sorted by the engine, in parallel: a million pseudonyms took pandas a second
        register=_collect(new_register.order_by(["home_pid", "dep_idx"])),
        census=_collect(census),
        n_slots=ctx.n_slots,
    )


def _assemble(*, devices: int, deltas: pd.DataFrame, homes_od: list[tuple[str, pd.DataFrame]],
              trip_tables: list[tuple[str, pd.DataFrame]], fingerprints: pd.DataFrame,
              register: pd.DataFrame, census: pd.DataFrame, n_slots: int) -> DayAggregates:
    """Shape the collected aggregates (small tables) into ``DayAggregates``.

    Presence is the running sum of the start/end deltas over the slots of each
    département; home tables are summed up to régions here, which is exact since each
    device counts once in them (trip tables need distinct counts, done by the engine).
    """
    n_deps = len(census)
    dn = np.zeros((n_slots, n_deps), dtype=np.int64)
    dw = np.zeros((n_slots, n_deps))
    if len(deltas):
        s = deltas["slot"].to_numpy(dtype=np.int64)
        d = deltas["dep_idx"].to_numpy(dtype=np.int64)
        dn[s, d] = deltas["dn"].to_numpy(dtype=np.int64)
        dw[s, d] = deltas["dw"].to_numpy(dtype=np.float64)
    presence = pd.DataFrame({
        "dep_idx": np.tile(np.arange(n_deps, dtype=np.int32), n_slots),
        "slot": np.repeat(np.arange(n_slots, dtype=np.int32), n_deps),
        "devices": np.cumsum(dn, axis=0).ravel(),
        "people": np.cumsum(dw, axis=0).ravel(),
    })
    region_of = census.set_index("dep_idx")["reg_idx"]
    frames = []
    for kind, t in homes_od:
        t = t.assign(count=t["devices"])
        for level in ("departement", "region"):
            if level == "region":
                t = t.assign(origin=t["origin"].map(region_of), destination=t["destination"].map(
                    region_of)).groupby(["origin", "destination"], as_index=False)[
                    ["devices", "count", "people"]].sum()
            frames.append(t.assign(kind=kind, level=level))
    for level, t in trip_tables:
        frames.append(t.assign(kind="trips", level=level))
    od = pd.concat(frames, ignore_index=True)
    od = od.astype({"origin": "int32", "destination": "int32", "devices": "int64",
                    "count": "int64", "people": "float64"})
    od = od[["kind", "level", "origin", "destination", "devices", "count", "people"]]
    od = od.sort_values(["kind", "level", "origin", "destination"], ignore_index=True)
    fingerprints = fingerprints.astype("int64").sort_values("size", ignore_index=True)
    register = register.astype({"dep_idx": "int32", "nights": "int64", "since": "int64"})
    return DayAggregates(devices=devices, presence=presence, od=od,
                         fingerprints=fingerprints, register=register)
