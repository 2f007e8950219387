"""Scheduling fixtures: a migrated platform on each engine, its store, and the service
with a small published calendar (two agendas at one site, a clock set in the future
agenda's past so that every slot is bookable)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

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


def make_platform(database_url: str, var_dir: Path, base_url: str = BASE) -> Platform:
    platform = open_platform(load_settings(database_url=database_url, var_dir=var_dir,
                                           base_url=base_url))
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


def build_app(platform: Platform) -> Any:
    """The scheduling routes behind the real authentication middleware."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    import hygie.web
    from hygie.scheduling import api
    from hygie.security.middleware import AuthMiddleware

    static = Path(hygie.web.__file__).parent / "static"
    app = Starlette(
        routes=[Mount("/static", StaticFiles(directory=static)),
                Mount("/scheduling", routes=api.routes())],
        middleware=[Middleware(AuthMiddleware, platform=platform,
                               public_paths=["/static/", *("/scheduling" + p
                                                           for p in api.PUBLIC_PATHS)])])
    app.state.platform = platform
    app.state.nav = []
    return app


def staff_token(platform: Platform, scope: str = "system/*.cruds") -> str:
    from hygie.security.tokens import issue_service_token

    return issue_service_token(platform, subject="accueil", scope=scope)


def last_sms(platform: Platform, phone: str) -> str:
    """The text of the latest SMS queued for ``phone`` (the service's outbox)."""
    from sqlalchemy import select

    from hygie.scheduling import tables as t

    with platform.engine.connect() as conn:
        return str(conn.execute(select(t.message.c.body).where(
            t.message.c.recipient == phone).order_by(t.message.c.id.desc()).limit(1))
            .scalar_one())


@pytest.fixture
def client(platform: Platform, service: SchedulingService) -> Iterator[Any]:
    from starlette.testclient import TestClient

    with TestClient(build_app(platform), base_url=BASE) as c:
        yield c
