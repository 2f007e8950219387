"""When sessions happen: wall-clock times in Europe/Paris turned into UTC instants.

A schedule says "at 08:00 and 15:00 every day for 14 days" or "on days 1, 3, 5 and 7 at
10:00"; day 1 is the enrollment's start date. Times are local: 08:00 stays 08:00 across
a daylight-saving change (the UTC instant moves). A local time that does not exist
(the spring-forward hour) is taken one hour later, as the clock shows; a time that
happens twice (autumn) is taken at its first occurrence (PEP 495, ``fold=0``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hygie.followup.model import ZONE

PARIS = ZoneInfo(ZONE)


def parse_hhmm(text: str) -> time:
    """``"08:00"`` as a time; raises ValueError."""
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    return time(int(hours), int(minutes))


@lru_cache(maxsize=4096)
def local_instant_ms(day: date, at: str, zone: str = ZONE) -> int:
    """UTC milliseconds of ``at`` (``"HH:MM"``) on ``day`` in ``zone``."""
    tz = PARIS if zone == ZONE else ZoneInfo(zone)
    naive = datetime.combine(day, parse_hhmm(at))
    aware = naive.replace(tzinfo=tz)
    # A non-existent local time (spring forward) round-trips to another wall time:
    # take the instant the clock shows once it has jumped.
    back = datetime.fromtimestamp(aware.timestamp(), tz).replace(tzinfo=None)
    if back != naive:
        aware = (naive + timedelta(hours=1)).replace(tzinfo=tz)
    return int(aware.timestamp() * 1000)


def local_date(ms: int, zone: str = ZONE) -> date:
    """The Europe/Paris date of a UTC instant."""
    return datetime.fromtimestamp(ms / 1000, PARIS if zone == ZONE else ZoneInfo(zone)).date()


def local_text(ms: int, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A UTC instant shown in Europe/Paris time."""
    return datetime.fromtimestamp(ms / 1000, PARIS).strftime(fmt)


def day_text(iso: str | None) -> str:
    """A calendar day (ISO ``YYYY-MM-DD``, as enrolments keep them) as French pages
    write it, ``DD/MM/YYYY``; anything else as it is."""
    if not iso:
        return "—"
    try:
        return date.fromisoformat(iso).strftime("%d/%m/%Y")
    except ValueError:
        return iso


def end_of_followup_ms(end: date) -> int:
    """The instant a follow-up ends: midnight after its last day, Paris time."""
    return local_instant_ms(end + timedelta(days=1), "00:00")


def next_session_ms(
    after_ms: int, start: date, end: date, times: tuple[str, ...], on_days: tuple[int, ...] | None
) -> int | None:
    """The first session strictly after ``after_ms``, or None when the follow-up has
    no session left."""
    first = max(start, local_date(after_ms))
    ordered = sorted(times)
    day = first
    while day <= end:
        number = (day - start).days + 1
        if on_days is None or number in on_days:
            for at in ordered:
                due = local_instant_ms(day, at)
                if due > after_ms:
                    return due
        day += timedelta(days=1)
    return None


def session_times(
    start: date, end: date, times: tuple[str, ...], on_days: tuple[int, ...] | None
) -> list[int]:
    """Every session instant of a follow-up (for pages and tests)."""
    out: list[int] = []
    cursor = local_instant_ms(start, "00:00") - 1
    while True:
        due = next_session_ms(cursor, start, end, times, on_days)
        if due is None:
            return out
        out.append(due)
        cursor = due
