"""Booking, moving, cancelling; no double booking under 100 concurrent attempts; caps."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, time

import pytest
from sqlalchemy import func, select

from hygie.scheduling import tables as t
from hygie.scheduling.availability import local_instant
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.errors import (
    ArrivalCapReached,
    InvalidInput,
    InvalidState,
    SlotUnavailable,
)
from hygie.scheduling.model import PARIS, Closure, Patient, to_local

ALICE = Patient("Durand", "Alice", "1980-02-03", "+33612345678", "alice@example.org")


def _slot_at(service: SchedulingService, day: date, hhmm: str, type_code: str) -> int:
    at = local_instant(day, time.fromisoformat(hhmm), PARIS)
    found = service.search(first_utc=at, last_utc=at + 1, type_code=type_code)
    assert found, f"no free slot at {day} {hhmm}"
    return found[0].id


def test_search_finds_slots_by_type_service_site_and_date(service: SchedulingService) -> None:
    found = service.search(type_code="anesthesie", limit=100)
    assert found and all(s.type_code == "anesthesie" for s in found)
    # Tuesdays 14:00-17:00 local, 30 minutes: six a day, at Paris wall times.
    assert {to_local(s.start_utc).strftime("%a %H:%M") for s in found} == {
        f"Tue {h}" for h in ("14:00", "14:30", "15:00", "15:30", "16:00", "16:30")}
    # 30 March is after the change to summer time: still 14:00 in Paris, 12:00 UTC.
    late = [s for s in found if to_local(s.start_utc).date() == date(2021, 3, 30)]
    assert late[0].start_utc == local_instant(date(2021, 3, 30), time(14), PARIS)
    assert to_local(late[0].start_utc).utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    cardio = service.search(service_code="cardiologie", site_id="ch-jeanne-sorel", limit=5)
    assert [s.agenda_id for s in cardio] == ["ag-cardio-1"] * 5
    assert cardio == sorted(cardio, key=lambda s: s.start_utc)
    assert service.search(site_id="ch-elsewhere") == []
    assert service.search(first_utc=local_instant(date(2021, 3, 2), time(0), PARIS),
                          last_utc=local_instant(date(2021, 3, 3), time(0), PARIS),
                          type_code="consultation", limit=200).__len__() == 9


def test_book_move_cancel(service: SchedulingService) -> None:
    first = _slot_at(service, date(2021, 3, 2), "09:00", "consultation")
    second = _slot_at(service, date(2021, 3, 4), "10:20", "consultation")
    booking = service.book(first, ALICE, source="public")
    assert booking.status == "booked" and booking.manage_secret
    assert service.booking_by_secret(booking.manage_secret).id == booking.id
    assert first not in [s.id for s in service.search(type_code="consultation", limit=200)]
    with pytest.raises(SlotUnavailable):
        service.book(first, ALICE)
    moved = service.move(booking.id, second)
    assert moved.slot_id == second and moved.revision == 2
    assert first in [s.id for s in service.search(type_code="consultation", limit=200)]
    cancelled = service.cancel(booking.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(InvalidState):
        service.cancel(booking.id)
    assert second in [s.id for s in service.search(type_code="consultation", limit=200)]


def test_bad_patients_are_refused(service: SchedulingService) -> None:
    slot = _slot_at(service, date(2021, 3, 2), "09:20", "consultation")
    for bad in (Patient("", "A", "1980-01-01"), Patient("A", "B", "1980-13-01"),
                Patient("A", "B", "2999-01-01"), Patient("A", "B", "1980-01-01", email="x")):
        with pytest.raises(InvalidInput):
            service.book(slot, bad)


def test_one_hundred_concurrent_attempts_give_exactly_one_booking(
        service: SchedulingService) -> None:
    slot = _slot_at(service, date(2021, 3, 3), "11:00", "consultation")
    barrier = threading.Barrier(100)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            service.book(slot, Patient("Patient", f"N{i}", "1970-01-01"))
            return "booked"
        except SlotUnavailable:
            return "taken"

    with ThreadPoolExecutor(max_workers=100) as pool:
        outcomes = list(pool.map(attempt, range(100)))
    assert outcomes.count("booked") == 1
    assert outcomes.count("taken") == 99
    with service.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.booking).where(
            t.booking.c.slot_id == slot)).scalar_one() == 1
        assert conn.execute(select(t.slot.c.status).where(
            t.slot.c.id == slot)).scalar_one() == "booked"


def test_arrival_cap_holds_in_any_window(service: SchedulingService) -> None:
    """One arrival in any 15 minutes: 09:10 booked hides 09:00 and 09:20 (a sliding
    window; quarter-hour buckets would have let 09:20 through)."""
    from hygie.scheduling.model import Agenda, OpeningRule

    service.put_agenda(Agenda("ag-cardio-2", "practitioner", "PractitionerRole/role-0003",
                              "Dr Anne Petit", "ch-jeanne-sorel", "CH Jeanne-Sorel",
                              "cardiologie", "Cardiologie"))
    service.add_rule(OpeningRule("ag-cardio-2", (3,), "09:10", "12:00", "consultation",
                                 date(2021, 3, 1)))
    service.generate(date(2021, 3, 1), date(2021, 3, 31), "ag-cardio-2")
    service.put_site_cap("ch-jeanne-sorel", 1, 15)
    day = date(2021, 3, 10)
    service.book(_slot_at(service, day, "09:10", "consultation"), ALICE)
    lo = local_instant(day, time(9), PARIS)
    offered = {to_local(s.start_utc).strftime("%H:%M")
               for s in service.search(first_utc=lo, last_utc=lo + 3600, limit=50)}
    assert offered == {"09:30", "09:40", "09:50"}
    with service.engine.connect() as conn:
        slot_0920 = conn.execute(select(t.slot.c.id).where(
            t.slot.c.agenda_id == "ag-cardio-1",
            t.slot.c.start_utc == lo + 20 * 60)).scalar_one()
    with pytest.raises(ArrivalCapReached):
        service.book(slot_0920, ALICE)
    service.book(_slot_at(service, day, "09:30", "consultation"), ALICE)


def test_closure_blocks_free_slots_and_reports_bookings(service: SchedulingService) -> None:
    day = date(2021, 3, 11)
    booked = service.book(_slot_at(service, day, "10:00", "consultation"), ALICE)
    lo = local_instant(day, time(0), PARIS)
    closure_id, affected = service.add_closure(Closure(lo, lo + 86400, "formation",
                                                       agenda_id="ag-cardio-1"))
    assert closure_id and affected == [booked.id]
    assert service.search(first_utc=lo, last_utc=lo + 86400, agenda_id="ag-cardio-1") == []


def test_rules_can_be_removed_with_their_free_slots(service: SchedulingService) -> None:
    rules = service.rules("ag-anesth-1")
    assert len(rules) == 1
    before = len(service.search(agenda_id="ag-anesth-1", limit=200))
    assert before == 6 * 5  # five Tuesdays in March 2021
    assert service.remove_rule(rules[0].id or 0) == before
    assert service.search(agenda_id="ag-anesth-1") == []


def _attempts_in_a_process(args: tuple[str, str, int, float, int]) -> list[str]:
    """25 threads of one process book the same slot at the agreed instant."""
    import time as clock

    from hygie.config import load_settings
    from hygie.platform import open_platform
    from hygie.scheduling.engine import Options
    from hygie.store.server import open_store
    from tests.scheduling.conftest import NOW

    url, var_dir, slot, start_at, threads = args
    # Four processes share the server's 100 connections with the test's own: 25
    # threads of a process queue for 12 of them, and attempt at the same instant.
    platform = open_platform(load_settings(database_url=url, var_dir=var_dir,
                                           database_pool_size=6, database_max_overflow=6))
    open_store(platform)
    service = SchedulingService(platform, Options(worker=False))
    service.clock = lambda: NOW

    def attempt(i: int) -> str:
        clock.sleep(max(0.0, start_at - clock.time()))
        try:
            service.book(slot, Patient("Patient", f"P{i}", "1970-01-01"))
            return "booked"
        except SlotUnavailable:
            return "taken"

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(attempt, range(threads)))
    finally:
        platform.close()


def test_attempts_from_several_processes_give_exactly_one_booking(
        service: SchedulingService) -> None:
    """Four processes of 25 threads: the database, not a lock of one process, decides."""
    import multiprocessing
    import time as clock

    slot = _slot_at(service, date(2021, 3, 5), "11:20", "consultation")
    settings = service.platform.settings
    start_at = clock.time() + 8.0  # after the processes have started and imported
    jobs = [(settings.database_url, str(settings.var_dir), slot, start_at, 25)] * 4
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = [o for batch in pool.map(_attempts_in_a_process, jobs) for o in batch]
    assert len(outcomes) == 100
    assert outcomes.count("booked") == 1
    with service.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.booking).where(
            t.booking.c.slot_id == slot)).scalar_one() == 1
