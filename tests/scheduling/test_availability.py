"""Opening rules become slots at the right wall-clock times across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from hygie.scheduling.availability import (
    check_rule,
    expand,
    is_public_holiday,
    local_day_bounds,
    local_instant,
    rules_overlap,
)
from hygie.scheduling.errors import InvalidInput
from hygie.scheduling.model import Closure, OpeningRule, to_local

PARIS = ZoneInfo("Europe/Paris")


def _utc(instant: int) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%d %H:%M")


def test_wall_time_is_kept_across_the_spring_and_autumn_changes() -> None:
    rule = OpeningRule("a", (5, 6, 7, 1), "09:00", "09:40", "c", date(2021, 1, 1))
    specs = expand([rule], {"c": 20}, date(2021, 3, 26), date(2021, 3, 29), zone=PARIS,
                   skip_public_holidays=False)
    starts = [_utc(s.start_utc) for s in specs]
    # Friday 26 and Saturday 27 March: UTC+1; Sunday 28 (change at 02:00) and Monday: UTC+2.
    assert starts == ["2021-03-26 08:00", "2021-03-26 08:20", "2021-03-27 08:00",
                      "2021-03-27 08:20", "2021-03-28 07:00", "2021-03-28 07:20",
                      "2021-03-29 07:00", "2021-03-29 07:20"]
    autumn = expand([rule], {"c": 20}, date(2021, 10, 30), date(2021, 11, 1), zone=PARIS,
                    skip_public_holidays=False)
    assert [_utc(s.start_utc) for s in autumn][::2] == [
        "2021-10-30 07:00", "2021-10-31 08:00", "2021-11-01 08:00"]
    assert all(to_local(s.start_utc).time() in (time(9, 0), time(9, 20)) for s in specs + autumn)


def test_a_night_rule_across_a_change_follows_real_elapsed_time() -> None:
    rule = OpeningRule("a", (7,), "01:00", "04:00", "c", date(2021, 1, 1))
    spring = expand([rule], {"c": 60}, date(2021, 3, 28), date(2021, 3, 28), zone=PARIS,
                    skip_public_holidays=False)
    # 01:00 -> 04:00 local lasts two real hours on the day clocks jump forward.
    assert [to_local(s.start_utc).strftime("%H:%M") for s in spring] == ["01:00", "03:00"]
    autumn = expand([rule], {"c": 60}, date(2021, 10, 31), date(2021, 10, 31), zone=PARIS,
                    skip_public_holidays=False)
    # ... and four on the day they fall back: 02:00 happens twice.
    assert [to_local(s.start_utc).strftime("%H:%M%z") for s in autumn] == [
        "01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]


def test_nonexistent_and_repeated_local_times() -> None:
    gap = local_instant(date(2021, 3, 28), time(2, 30), PARIS)
    assert to_local(gap).strftime("%H:%M%z") == "03:30+0200"
    twice = local_instant(date(2021, 10, 31), time(2, 30), PARIS)
    assert to_local(twice).strftime("%H:%M%z") == "02:30+0200"  # first occurrence
    lo, hi = local_day_bounds(date(2021, 3, 28), PARIS)
    assert hi - lo == 23 * 3600
    lo, hi = local_day_bounds(date(2021, 10, 31), PARIS)
    assert hi - lo == 25 * 3600


def test_public_holidays_and_closures_cut_slots() -> None:
    assert is_public_holiday(date(2021, 5, 13))  # Ascension
    assert is_public_holiday(date(2021, 7, 14))
    assert not is_public_holiday(date(2021, 7, 15))
    rule = OpeningRule("a", (1, 2, 3, 4, 5), "09:00", "10:00", "c", date(2021, 1, 1))
    specs = expand([rule], {"c": 30}, date(2021, 5, 12), date(2021, 5, 14), zone=PARIS)
    assert {to_local(s.start_utc).day for s in specs} == {12, 14}
    closure = Closure(local_instant(date(2021, 5, 14), time(9, 15), PARIS),
                      local_instant(date(2021, 5, 14), time(9, 20), PARIS), "réunion")
    specs = expand([rule], {"c": 30}, date(2021, 5, 14), date(2021, 5, 14), zone=PARIS,
                   closures=[closure])
    assert [to_local(s.start_utc).strftime("%H:%M") for s in specs] == ["09:30"]


def test_rules_are_checked() -> None:
    with pytest.raises(InvalidInput):
        check_rule(OpeningRule("a", (1,), "12:00", "09:00", "c", date(2021, 1, 1)), 20)
    with pytest.raises(InvalidInput):
        check_rule(OpeningRule("a", (8,), "09:00", "12:00", "c", date(2021, 1, 1)), 20)
    with pytest.raises(InvalidInput):
        check_rule(OpeningRule("a", (1,), "9h", "12:00", "c", date(2021, 1, 1)), 20)
    a = OpeningRule("a", (1, 2), "09:00", "12:00", "c", date(2021, 1, 1))
    assert rules_overlap(a, OpeningRule("a", (2,), "11:00", "13:00", "c", date(2021, 1, 1)))
    assert not rules_overlap(a, OpeningRule("a", (2,), "12:00", "13:00", "c", date(2021, 1, 1)))
    assert not rules_overlap(a, OpeningRule("a", (3,), "09:00", "12:00", "c", date(2021, 1, 1)))
