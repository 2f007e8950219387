"""Scheduling fixtures: a migrated platform on each engine, its store, and the service
with a small published calendar (two agendas at one site, a clock set in the future
agenda's past so that every slot is bookable)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.scheduling.engine import Options, SchedulingService
from hygie.scheduling.model import Agenda, AppointmentType, OpeningRule
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

BASE = "http://testserver"
#: The service's clock in tests: Monday 1 March 2021, 08:00 UTC.
NOW = int(datetime(2021, 3, 1, 8, 0, tzinfo=UTC).timestamp())


def make_platform(database_url: str, var_dir: Path) -> Platform:
    platform = open_platform(load_settings(database_url=database_url, var_dir=var_dir,
                                           base_url=BASE))
    upgrade(platform.engine)
    open_store(platform)
    return platform


def publish_calendar(service: SchedulingService, first: date = date(2021, 3, 1),
                     last: date = date(2021, 3, 31)) -> None:
    """Two practitioners at CH Jeanne-Sorel: consultations of 20 minutes on weekday
    mornings, and a pre-operative consultation of 30 minutes on Tuesday afternoons."""
    service.put_appointment_type(AppointmentType("consultation", "Consultation", 20))
    service.put_appointment_type(AppointmentType("anesthesie", "Consultation d'anesthésie",
                                                 30, preadmission=True))
    service.put_agenda(Agenda("ag-cardio-1", "practitioner", "PractitionerRole/role-0001",
                              "Dr Laurence Bénard", "ch-jeanne-sorel", "CH Jeanne-Sorel",
                              "cardiologie", "Cardiologie"))
    service.put_agenda(Agenda("ag-anesth-1", "practitioner", "PractitionerRole/role-0002",
                              "Dr Paul Martin", "ch-jeanne-sorel", "CH Jeanne-Sorel",
                              "anesthesie", "Anesthésie"))
    service.add_rule(OpeningRule("ag-cardio-1", (1, 2, 3, 4, 5), "09:00", "12:00",
                                 "consultation", first))
    service.add_rule(OpeningRule("ag-anesth-1", (2,), "14:00", "17:00", "anesthesie", first))
    service.generate(first, last)


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = make_platform(database_url, tmp_path / "var")
    yield platform
    platform.close()


@pytest.fixture
def service(platform: Platform) -> SchedulingService:
    svc = SchedulingService(platform, Options(worker=False))
    svc.clock = lambda: NOW
    platform.parts["scheduling"] = svc
    publish_calendar(svc)
    return svc
