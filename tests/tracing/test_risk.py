"""ROBERT v2 scoring with its published parameters, on cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from hygie.tracing.epochs import EPOCHS_PER_DAY
from hygie.tracing.risk import (
    DEFAULT_PARAMETERS,
    aggregate_risk,
    evaluate,
    purge_exposures,
    score_contact,
    soft_max,
)


def test_published_parameters() -> None:
    p = DEFAULT_PARAMETERS
    assert (p.rssi_max, p.soft_max_a, p.soft_max_b, p.p0) == (-35, 4.342, 0.2, -66.0)
    assert p.deltas == (39, 27, 23, 21, 20, 15)
    assert (p.r0, p.threshold, p.contagious_days, p.at_risk_days) == (0.0071, 0.1, 14, 7)


def test_soft_max_of_equal_values_is_that_value() -> None:
    assert soft_max([-60, -60, -60], 4.342) == pytest.approx(-60)
    assert soft_max([], 4.342) == 0.0
    # Mean power of -50 and -60 dBm: 10*log10((1e-5 + 1e-6) / 2) = -52.6 dBm.
    assert soft_max([-50, -60], 4.342) == pytest.approx(-52.596, abs=0.01)


def test_close_contact_for_a_whole_epoch_scores_fourteen_minutes() -> None:
    times = [60 * m + s for m in range(15) for s in (0, 30)]
    score = score_contact(times, [-45] * len(times))
    # Every minute's gamma is >= 1, clipped to 1; 1.2 * 1 capped at 1; last minute = 14.
    assert score == pytest.approx(14.0)


def test_rssi_is_capped_and_invalid_values_dropped() -> None:
    times = [60 * m for m in range(15)]
    strong = score_contact(times, [-20] * 15)   # capped at -35: still a full risk
    assert strong == pytest.approx(14.0)
    assert score_contact(times, [0] * 15) == 0.0  # above -5 dBm: not a real reading


def test_far_contact_scores_zero_and_mid_range_in_between() -> None:
    times = [60 * m for m in range(15)]
    assert score_contact(times, [-80] * 15) == 0.0  # below P0 everywhere
    mid = score_contact(times, [-60] * 15)
    # Windows of 2 readings: gamma = (-60 + 66) / 23 for inner minutes.
    assert 0 < mid < 14
    inner = 6 / 23
    last = 6 / 27
    expected = min(1.2 * soft_max([inner] * 14 + [last], 0.2), 1.0) * 14
    assert mid == pytest.approx(expected)


def test_spread_beyond_epoch_and_tolerance_scores_zero() -> None:
    assert score_contact([0, 900 + 181], [-50, -50]) == 0.0
    assert score_contact([], []) == 0.0


def test_aggregate_and_threshold() -> None:
    assert aggregate_risk([14.0]) == pytest.approx(1 - math.exp(-0.0071 * 14))
    assert aggregate_risk([14.0]) < 0.1 < aggregate_risk([14.0, 1.0])


def test_evaluation_window_and_at_risk_duration() -> None:
    now = 10_000
    exposed = {now - 10: [14.0], now - 9: [14.0]}
    ev = evaluate(exposed, now)
    assert ev.at_risk and ev.last_contact_epoch == now - 9
    # Seven days after the last contact the state ends, though the epochs are kept.
    later = now - 9 + 7 * EPOCHS_PER_DAY + 1
    assert not evaluate(exposed, later).at_risk
    # Fourteen days later the exposures are forgotten altogether.
    assert purge_exposures(exposed, now + 14 * EPOCHS_PER_DAY) == {}
    assert not evaluate({now: [3.0]}, now).at_risk
