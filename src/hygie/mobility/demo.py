"""The mobility of ``hygie demo``: a synthetic week of network events, published.

The demo's mobility page, its report and the epidemic models' coupling need daily
releases. This generates a small operator (20,000 devices) over the week the first
lockdown began, under the lockdown scenario, and runs the daily job on it with the
default privacy rule, as ``hygie mobility generate`` and ``hygie mobility run`` would
(about 20 seconds). Nothing is done when releases already exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: The demo operator: devices, days, first day (the week of 17 March 2020).
DEVICES, DAYS, START = 20_000, 7, dt.date(2020, 3, 14)


def seed_demo(platform: Any) -> str:
    """Generate and publish the demo week (once); say what was done."""
    from hygie.mobility import data_root, engines, release, storage
    from hygie.mobility.generator import GeneratorConfig, generate
    from hygie.mobility.geography import GeographyNotFound, find_geo_dir, load_geography
    from hygie.mobility.model import PrivacyRule

    root = data_root(platform.settings)
    published = storage.release_days(root)
    if published:
        return f"{len(published)} daily releases already published"
    try:
        geo = load_geography(find_geo_dir(platform.settings.extra.get("mobility_geo_dir")))
    except GeographyNotFound as exc:
        return f"not generated: {exc}"
    summary = generate(geo, root, GeneratorConfig(devices=DEVICES, days=DAYS, start=START,
                                                  scenario="lockdown"))
    days = storage.raw_days(root)
    for day in days:
        storage.mark_received(storage.events_dir(root, day))
    engine = engines.connect("duckdb")
    try:
        for day in days:
            release.publish_day(engine, root, geo, day, PrivacyRule())
    finally:
        engine.close()
    events = sum(summary["events_per_day"].values())  # type: ignore[attr-defined]
    return (f"{len(days)} daily releases from {events:,} synthetic events of "
            f"{summary['devices']:,} devices (lockdown from 17 March)")
