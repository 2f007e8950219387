"""Tracing fixtures: the published vectors, a service on each database with a clock the
test moves, registered phones, and a small app serving only the tracing routes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.tracing import api
from hygie.tracing.engine import TracingService
from hygie.tracing.epochs import SERVICE_START_UNIX, ntp_from_unix
from hygie.tracing.keystore import FileKeyStore
from hygie.tracing.model import TracingSettings
from hygie.tracing.phone import PhoneApp
from hygie.tracing.protocol import load_public_key
from tests.conftest import shared_data

#: A Tuesday, 10:00 UTC, well after the service start.
T0 = float(SERVICE_START_UNIX + 500 * 86400 + 10 * 3600)


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def ntp(self) -> int:
        return ntp_from_unix(self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return json.loads((shared_data() / "tracing" / "test-vectors.json").read_text())


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_service(platform: Platform, clock: Clock, **settings: Any) -> TracingService:
    svc = TracingService(platform.engine, FileKeyStore(platform.settings.var_dir / "keys.json"),
                         TracingSettings(**settings), clock)
    svc.create_tables()
    platform.parts["tracing"] = svc
    return svc


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(load_settings(database_url=database_url, var_dir=tmp_path / "var"))
    yield p
    p.close()


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(load_settings(database_url=f"sqlite:///{tmp_path / 'h.db'}",
                                    var_dir=tmp_path / "var"))
    yield p
    p.close()


@pytest.fixture
def service(platform: Platform, clock: Clock) -> TracingService:
    return make_service(platform, clock)


@pytest.fixture
def sqlite_service(sqlite_platform: Platform, clock: Clock) -> TracingService:
    return make_service(sqlite_platform, clock)


def register(svc: TracingService, phone: PhoneApp | None = None) -> PhoneApp:
    """Register a phone directly with the engine (the captcha has its own tests)."""
    phone = phone or PhoneApp()
    done = svc.register_key(load_public_key(base64.b64decode(phone.public_key())))
    phone.complete_registration(svc.config()["serverPublicKey"], done.tuples)
    return phone


def meet(a: PhoneApp, b: PhoneApp, start_ntp: int, minutes: int, rssi: int = -50,
         every_s: int = 20) -> None:
    """a and b hear each other for ``minutes`` from ``start_ntp``."""
    for s in range(0, minutes * 60, every_s):
        b.hear(a.hello(start_ntp + s), start_ntp + s + 1, rssi)
        a.hear(b.hello(start_ntp + s), start_ntp + s + 1, rssi)


@pytest.fixture
def client(sqlite_service: TracingService, sqlite_platform: Platform) -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/tracing", routes=api.routes())])
    app.state.platform = sqlite_platform
    with TestClient(app) as c:
        yield c


def ask_status(svc: TracingService, phone: PhoneApp, ntp: int) -> Any:
    """Exposure status request as the app makes it, keeping renewed tuples."""
    found = svc.status(phone.status_request(ntp))
    if found.tuples:
        phone.add_tuples(found.tuples)
    return found
