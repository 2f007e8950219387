"""Releases checked against the generator's ground truth (issue #9, validation).

Targets: presence per zone within 5 %, flows of 100 people or more within 10 % (at
least 95 % of them: the main zone of a day is a discrete choice that a slot boundary
can flip for a few devices), and,
for the lockdown scenario, the fall of trips and the exodus found again.

Two truths are compared (see ``generator._Truth``): ``people`` is what the whole
synthetic population did, ``people_sample`` what the persons carrying a device did,
extrapolated with their true home. Presence is checked against the first (the
extrapolation must find the population); flows against the second, because a flow of
100 people rests on about 40 devices at a 40 % market share, whose sampling error
alone is about 12 %: comparing with the sample's truth measures the pipeline, not luck.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hygie.mobility import release

PRESENCE_TOLERANCE = 0.05
FLOW_TOLERANCE = 0.10
MIN_FLOW_PEOPLE = 100.0
#: Share of compared flows that must fall within the tolerance.
FLOW_SHARE = 0.95


class TruthNotFound(LookupError):
    """The root holds no generator truth (real data has none): nothing to validate against."""


def _truth(root: Path, name: str) -> pd.DataFrame:
    path = root / "truth" / f"{name}.parquet"
    if not path.is_file():
        raise TruthNotFound(f"no generator truth under {root}")
    t = pd.read_parquet(path)
    t["date"] = pd.to_datetime(t["date"]).dt.date
    return t


def validate_presence(root: Path) -> dict[str, Any]:
    """Daily mean presence per département, estimate vs truth."""
    est = release.read_presence(root, "departement")
    truth = _truth(root, "presence").rename(columns={"dep": "zone"})
    m = est.merge(truth, on=["date", "zone", "slot"], how="inner")
    m = m[~m["suppressed"]]
    daily = m.groupby(["date", "zone"])[["people_x", "people_y"]].mean()
    err = (daily["people_x"] - daily["people_y"]).abs() / daily["people_y"]
    cell_err = (m["people_x"] - m["people_y"]).abs() / m["people_y"]
    return {
        "zones_days": len(err),
        "max_error": float(err.max()) if len(err) else None,
        "mean_error": float(err.mean()) if len(err) else None,
        "slot_cells_within": float((cell_err <= PRESENCE_TOLERANCE).mean()) if len(m) else None,
        "within_tolerance": bool(len(err) and (err <= PRESENCE_TOLERANCE).all()),
        "tolerance": PRESENCE_TOLERANCE,
    }


def validate_flows(root: Path, min_people: float = MIN_FLOW_PEOPLE) -> dict[str, Any]:
    """Published OD cells of ``min_people`` or more (in truth), estimate vs sample truth."""
    out: dict[str, Any] = {"min_people": min_people, "tolerance": FLOW_TOLERANCE,
                           "required_share": FLOW_SHARE}
    all_ok = True
    for kind in release.OD_KINDS:
        est = release.read_od(root, kind, "departement")
        truth = _truth(root, kind)
        m = est[~est["suppressed"]].merge(truth, on=["date", "origin", "destination"],
                                          how="inner")
        m = m[m["people_sample"] >= min_people]
        err = (m["people_x"] - m["people_sample"]).abs() / m["people_sample"]
        ok = bool(len(err) == 0 or (err <= FLOW_TOLERANCE).mean() >= FLOW_SHARE)
        all_ok &= ok
        out[kind] = {
            "flows": len(m),
            "max_error": float(err.max()) if len(err) else None,
            "share_within": float((err <= FLOW_TOLERANCE).mean()) if len(err) else None,
            "within_tolerance": ok,
            "max_error_vs_population": float(
                ((m["people_x"] - m["people_y"]).abs() / m["people_y"]).max()) if len(m) else None,
        }
    out["within_tolerance"] = all_ok
    return out


def _trip_totals(table: pd.DataFrame, column: str) -> pd.Series:
    return table.groupby("date")[column].sum()


def validate_lockdown(root: Path) -> dict[str, Any] | None:
    """Trip fall and exodus from the home département 75, estimate vs truth.

    Compares working days before and from the lockdown day the generator recorded.
    Estimated trips add up published cells (withheld ones are missing from both
    periods alike); the exodus is the census population of 75 minus the residents
    of 75 who spent the night there (a row total that the census makes public).
    """
    meta = json.loads((root / "generator.json").read_text("utf-8"))
    lock_day = meta["scenario"].get("lockdown_day")
    if lock_day is None:
        return None
    start = dt.date.fromisoformat(meta["config"]["start"])
    lock = start + dt.timedelta(days=lock_day)
    est = release.read_od(root, "trips", "departement")
    truth = _truth(root, "trips")
    est_total = est.groupby("date")["people"].sum()
    truth_total = _trip_totals(truth, "people")
    days = [d for d in est_total.index if d.weekday() < 5]
    before = [d for d in days if d < lock]
    after = [d for d in days if d >= lock]
    if not before or not after:
        return None

    def fall(series: pd.Series) -> float:
        return float(1 - series[after].mean() / series[before].mean())

    night = release.read_od(root, "home_night", "departement")
    truth_night = _truth(root, "home_night")
    census_75 = _census_of(root, "75")
    home75 = night[(night["origin"] == "75") & (night["destination"] == "75")]
    est_away = (census_75 - home75.set_index("date")["people"]).reindex(after)
    t75 = truth_night[truth_night["origin"] == "75"]
    truth_away = t75[t75["destination"] != "75"].groupby("date")["people"].sum().reindex(after)
    base = t75[t75["destination"] != "75"].groupby("date")["people"].sum().reindex(before)
    est_fall, truth_fall = fall(est_total), fall(truth_total)
    exodus_est = float(est_away.mean() - (census_75 - home75.set_index("date")["people"]
                                          ).reindex(before).mean())
    exodus_truth = float(truth_away.mean() - base.mean())
    return {
        "lockdown_from": lock.isoformat(),
        "trip_fall_estimated": est_fall,
        "trip_fall_true": truth_fall,
        "trip_fall_recovered": abs(est_fall - truth_fall) <= 0.03,
        "paris_residents_gone_estimated": exodus_est,
        "paris_residents_gone_true": exodus_truth,
        "exodus_recovered": bool(np.isfinite(exodus_est)
                                 and abs(exodus_est - exodus_truth) <= 0.10 * exodus_truth),
    }


def _census_of(root: Path, dep: str) -> float:
    meta = json.loads((root / "generator.json").read_text("utf-8"))
    return float(meta["census"][dep])


def validate(root: Path) -> dict[str, Any]:
    """Every check that applies to the releases under ``root``."""
    report: dict[str, Any] = {
        "presence": validate_presence(root),
        "flows": validate_flows(root),
        "lockdown": validate_lockdown(root),
    }
    lock = report["lockdown"]
    report["passed"] = bool(
        report["presence"]["within_tolerance"] and report["flows"]["within_tolerance"]
        and (lock is None or (lock["trip_fall_recovered"] and lock["exodus_recovered"])))
    return report
