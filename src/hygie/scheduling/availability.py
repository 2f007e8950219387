"""Opening rules to slots, in local wall time, with daylight-saving changes applied.

A rule says "Mondays 09:00-12:00, consultations of 20 minutes" in the agenda's zone
(Europe/Paris by default). Each day, its local bounds become UTC instants with
``zoneinfo`` (PEP 495): 09:00 is 08:00Z in winter and 07:00Z in summer, so the
slots stay at 09:00 for the people who come, whatever the offset. Within a rule the
slots follow each other in real elapsed time, so a rule that spans a change (a night
service) gets one slot less in March and one more in October, as a clock on the wall
would show. A local time that does not exist (02:30 on the last Sunday of March) is
read as the same wall time after the change (03:30), and a time that exists twice (02:30
on the last Sunday of October) as its first occurrence (``fold=0``).

Public holidays come from the ``holidays`` package (French calendar); closures are
instants, so they cut slots the same way whatever the zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from hygie.scheduling.errors import InvalidInput
from hygie.scheduling.model import Closure, OpeningRule, SlotSpec

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(value: str, what: str = "time") -> time:
    """``"09:30"`` to a ``time``; anything else is an ``InvalidInput`` naming ``what``."""
    match = _HHMM.match(value or "")
    if not match:
        raise InvalidInput(f"{what} must be HH:MM (24 h), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def local_instant(day: date, at: time, zone: ZoneInfo) -> int:
    """The UTC instant (epoch seconds) of wall time ``at`` on ``day`` in ``zone``.

    With ``fold=0`` (PEP 495) a repeated wall time is its first occurrence, and a
    nonexistent one takes the offset in force before the gap, which lands as far past
    the gap as it was into it (02:30 becomes 03:30 summer time).
    """
    return int(datetime.combine(day, at).replace(tzinfo=zone, fold=0).timestamp())


@cache
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=year).keys())


def is_public_holiday(day: date) -> bool:
    """Whether ``day`` is a French public holiday (jour férié)."""
    return day in _french_holidays(day.year)


def check_rule(rule: OpeningRule, duration_min: int) -> None:
    """Refuse a rule that cannot produce slots (bad times, days or duration)."""
    start = parse_hhmm(rule.start_local, "start")
    end = parse_hhmm(rule.end_local, "end")
    if end <= start:
        raise InvalidInput("an opening rule must end after it starts, on the same day")
    if not rule.weekdays or any(d < 1 or d > 7 for d in rule.weekdays):
        raise InvalidInput("weekdays are ISO numbers from 1 (Monday) to 7 (Sunday)")
    if duration_min <= 0 or duration_min > 24 * 60:
        raise InvalidInput("an appointment type lasts between 1 minute and 24 hours")
    if rule.valid_to is not None and rule.valid_to < rule.valid_from:
        raise InvalidInput("valid_to is before valid_from")


def rules_overlap(a: OpeningRule, b: OpeningRule) -> bool:
    """Whether two rules of one agenda could open at the same moment."""
    if not set(a.weekdays) & set(b.weekdays):
        return False
    if a.valid_to is not None and a.valid_to < b.valid_from:
        return False
    if b.valid_to is not None and b.valid_to < a.valid_from:
        return False
    return a.start_local < b.end_local and b.start_local < a.end_local


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def expand(
    rules: Iterable[OpeningRule],
    durations: dict[str, int],
    first: date,
    last: date,
    *,
    zone: ZoneInfo,
    closures: Iterable[Closure] = (),
    skip_public_holidays: bool = True,
) -> list[SlotSpec]:
    """Every slot the rules open from ``first`` to ``last`` (local days, inclusive).

    Slots that overlap a closure are left out; so are public holidays when asked.
    """
    cuts = sorted((c.start_utc, c.end_utc) for c in closures)
    specs: list[SlotSpec] = []
    rules = list(rules)
    for day in _days(first, last):
        if skip_public_holidays and is_public_holiday(day):
            continue
        weekday = day.isoweekday()
        for rule in rules:
            if weekday not in rule.weekdays or day < rule.valid_from:
                continue
            if rule.valid_to is not None and day > rule.valid_to:
                continue
            step = durations[rule.type_code] * 60
            start = local_instant(day, parse_hhmm(rule.start_local), zone)
            end = local_instant(day, parse_hhmm(rule.end_local), zone)
            at = start
            while at + step <= end:
                if not any(s < at + step and at < e for s, e in cuts):
                    specs.append(SlotSpec(rule.agenda_id, rule.type_code, at, at + step))
                at += step
    return specs


def local_day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """The UTC instants where local ``day`` starts and the next one starts (23 to 25 h)."""
    return (local_instant(day, time(0, 0), zone),
            local_instant(day + timedelta(days=1), time(0, 0), zone))
