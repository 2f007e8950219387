"""Thresholds, complementary suppression, differential privacy and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hygie.mobility import privacy
from hygie.mobility.model import PrivacyRule

SPEC = privacy.TableSpec("home_night", row=("origin",), cell="destination", total_public=True,
                         sensitivity=1)


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "origin": ["75", "75", "75", "92", "92"],
        "destination": ["75", "92", "69", "92", "75"],
        "devices": [500, 40, 7, 300, 60],
        "people": [50_000.0, 4_000.0, 700.0, 30_000.0, 6_000.0],
    })


def test_cells_under_the_threshold_are_withheld_with_a_complement() -> None:
    out, facts = privacy.protect(_table(), SPEC, PrivacyRule(min_count=20))
    row = out[out["origin"] == "75"].set_index("destination")
    assert row.loc["69", "suppressed"] and np.isnan(row.loc["69", "people"])
    # The 75 row total is the census: 75->92 (the smallest other cell) goes too.
    assert row.loc["92", "suppressed"] and not row.loc["75", "suppressed"]
    assert facts["min_devices_published"] >= 20 and facts["recoverable_cells"] == 0
    assert "devices" not in out.columns


def test_without_a_public_total_only_small_cells_go() -> None:
    spec = privacy.TableSpec("trips", row=("origin",), cell="destination", total_public=False,
                             sensitivity=12)
    out, facts = privacy.protect(_table(), spec, PrivacyRule(min_count=20))
    assert out["suppressed"].sum() == 1 and facts["suppressed"] == 1


def test_merge_pools_small_cells_into_other() -> None:
    t = _table()
    t.loc[len(t)] = ["75", "13", 15, 1500.0]
    out, facts = privacy.protect(t, SPEC, PrivacyRule(min_count=20, method="merge"))
    other = out[(out["origin"] == "75") & (out["destination"] == privacy.OTHER)]
    assert len(other) == 1 and other["people"].iloc[0] == 2200.0  # 7 + 15 devices pooled
    assert not other["suppressed"].iloc[0]
    assert facts["min_devices_published"] >= 20


def test_differential_privacy_adds_calibrated_noise_and_records_epsilon() -> None:
    zones = ["75", "92", "69"]
    out, facts = privacy.protect(_table(), SPEC, PrivacyRule(epsilon=1.0), epsilon=0.5,
                                 weight_max=100.0, grid=([(z,) for z in zones], zones))
    assert facts["epsilon"] == pytest.approx(0.5)
    assert facts["cells"] == 9  # the full grid, absent cells included
    assert facts["noise_scale_people"] == pytest.approx(1 * 100.0 / 0.25)
    published = out[~out["suppressed"]].set_index(["origin", "destination"])["people"]
    assert abs(published[("75", "75")] - 50_000) < 400 * 20  # 20 noise scales
    assert (out["people"].dropna() >= 0).all()


def test_laplace_epsilon_matches_sensitivity_over_scale() -> None:
    assert privacy.laplace_epsilon(48, 96.0) == pytest.approx(0.5)


def test_cells_to_hide_catch_a_region_cell_with_one_hidden_part() -> None:
    fine = pd.DataFrame({"origin": ["75", "75"], "destination": ["92", "93"],
                         "people": [np.nan, 5.0], "suppressed": [True, False]})
    hide = privacy.cells_to_hide(fine, SPEC, {"75": "11", "92": "11", "93": "11"})
    assert hide == {("11", "11")}


def test_uniqueness_counts_devices_alone_in_their_group() -> None:
    prints = pd.DataFrame({"size": [1, 2, 30], "groups": [5, 10, 3]})
    u = privacy.uniqueness(prints, k=20)
    assert u["devices"] == 5 + 20 + 90 and u["unique_devices"] == 5
    assert u["share_in_groups_below_k"] == pytest.approx(25 / 115)


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError):
        PrivacyRule(method="round")
    with pytest.raises(ValueError):
        PrivacyRule(epsilon=0)
