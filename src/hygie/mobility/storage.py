"""Where the mobility service keeps its files, and the 24-hour retention of raw data.

Everything lives under one root (``settings.var_dir / "mobility"`` by default)::

    cells.parquet                       cell reference (cell -> commune -> département)
    events/date=YYYY-MM-DD/*.parquet    raw events of a day, with _received.json
    keys/day-YYYY-MM-DD.key             secret key of the day's pseudonyms
    keys/period-YYYY-MM.key             secret key of the home register of a month
    register/period=YYYY-MM.parquet     home register (pseudonym, département, nights)
    releases/date=YYYY-MM-DD/           presence.parquet, od.parquet, manifest.json
    truth/*.parquet                     what the generator really simulated

A part of a day's raw events holds every event of its devices (the pipeline reduces
each part on its own); the generator writes parts that way.

Raw events and the day key are deleted 24 hours after the events were received
(``purge_raw``): once the key is gone nothing links a pseudonym back to a device. The
register and its key are deleted when the first day of a later month is processed
(``rotate_period``). Releases (aggregates only)
are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: How long raw events (and the key of their day) are kept after reception.
RAW_RETENTION = dt.timedelta(hours=24)
_RECEIVED = "_received.json"


def write_events(table: pa.Table, path: Path) -> None:
    """Write one part of a day's raw events (``device_id``, ``ts_ms``, ``cell_id``).

    Decoding is the first cost of every pipeline run, so the layout is chosen for it:
    timestamps, ordered within each device, are delta-encoded (a few bits an event
    instead of eight bytes, and decoded without a dictionary); ids, with few distinct
    values in a part, are dictionary-encoded; pages are not compressed on top. Decoding
    17 M events took 0.28 s of CPU with Snappy and dictionaries everywhere, 0.14 s like
    this, from a file a third smaller.
    """
    pq.write_table(table, path, row_group_size=1 << 20, compression="none",
                   use_dictionary=["device_id", "cell_id"],
                   column_encoding={"ts_ms": "DELTA_BINARY_PACKED"})


def events_dir(root: Path, day: dt.date) -> Path:
    return root / "events" / f"date={day.isoformat()}"


def release_dir(root: Path, day: dt.date) -> Path:
    return root / "releases" / f"date={day.isoformat()}"


def register_path(root: Path, day: dt.date) -> Path:
    return root / "register" / f"period={day:%Y-%m}.parquet"


def mark_received(folder: Path, when: dt.datetime | None = None) -> None:
    """Record when a day's raw events were received (UTC), which starts their 24 hours."""
    when = when or dt.datetime.now(dt.UTC)
    (folder / _RECEIVED).write_text(json.dumps({"received_at": when.isoformat()}),
                                    encoding="utf-8")


def received_at(folder: Path) -> dt.datetime:
    marker = folder / _RECEIVED
    if marker.is_file():
        return dt.datetime.fromisoformat(json.loads(marker.read_text("utf-8"))["received_at"])
    return dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.UTC)


def _key(path: Path) -> str:
    """Read a secret key, creating it (32 random bytes, hex, owner-only) when absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def day_key(root: Path, day: dt.date) -> str:
    """Secret key of one day's pseudonyms (rotates daily, deleted with the raw events)."""
    return _key(root / "keys" / f"day-{day.isoformat()}.key")


def period_key(root: Path, day: dt.date) -> str:
    """Secret key of the home register of the day's month."""
    return _key(root / "keys" / f"period-{day:%Y-%m}.key")


def raw_days(root: Path) -> list[dt.date]:
    """Days whose raw events are still present."""
    folder = root / "events"
    if not folder.is_dir():
        return []
    return sorted(dt.date.fromisoformat(p.name.removeprefix("date=")) for p in folder.iterdir()
                  if p.is_dir() and p.name.startswith("date="))


def release_days(root: Path) -> list[dt.date]:
    """Days with a published release."""
    folder = root / "releases"
    if not folder.is_dir():
        return []
    return sorted(dt.date.fromisoformat(p.name.removeprefix("date=")) for p in folder.iterdir()
                  if (p / "manifest.json").is_file())


def purge_raw(root: Path, now: dt.datetime | None = None) -> list[dt.date]:
    """Delete raw events and day keys received more than 24 hours before ``now``.

    Returns the days whose raw events were deleted.
    """
    now = now or dt.datetime.now(dt.UTC)
    purged = []
    for day in raw_days(root):
        folder = events_dir(root, day)
        if now - received_at(folder) >= RAW_RETENTION:
            shutil.rmtree(folder)
            (root / "keys" / f"day-{day.isoformat()}.key").unlink(missing_ok=True)
            purged.append(day)
    # Day keys whose events are already gone (e.g. a run interrupted after ingestion).
    raw = {d.isoformat() for d in raw_days(root)}
    for path in (root / "keys").glob("day-*.key"):
        day_name = path.stem.removeprefix("day-")
        if day_name not in raw and now.date() - dt.date.fromisoformat(day_name) >= dt.timedelta(
                days=1):
            path.unlink()
    return purged


def rotate_period(root: Path, day: dt.date) -> None:
    """Delete home registers and period keys of months before ``day``'s month."""
    month = f"{day:%Y-%m}"
    for path in (root / "register").glob("period=*.parquet"):
        if path.stem.removeprefix("period=") < month:
            path.unlink()
    for path in (root / "keys").glob("period-*.key"):
        if path.stem.removeprefix("period-") < month:
            path.unlink()
